"""The `workbench` command, run as a user would: a subprocess."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from workbench.store import RunStore

SMALL = ["-p", "dataset=gaussian", "-p", "dim=2", "-p", "steps=30", "-p", "n_components=1"]


def workbench_cli(*args, db, check_rc=None):
    env = {**os.environ, "WORKBENCH_DB": str(db), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)
    if check_rc is not None:
        assert done.returncode == check_rc, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_list_shows_parameters_with_bounds_and_docs(tmp_path):
    out = workbench_cli("list", db=tmp_path / "r.db", check_rc=0).stdout
    assert "lightsb:" in out
    assert "epsilon = " in out and "a number in" in out


@pytest.mark.slow
def test_run_records_and_prints_metrics(tmp_path):
    db = tmp_path / "r.db"
    done = workbench_cli("run", "lightsb", *SMALL, db=db, check_rc=0)
    assert "finished" in done.stdout and "loss" in done.stdout
    (run,) = RunStore(db).list()
    assert run.status == "finished" and run.params["steps"] == 30 and run.params["dim"] == 2
    assert run.curves["loss"]["step"]
    table = workbench_cli("runs", db=db, check_rc=0).stdout
    assert "lightsb" in table and "finished" in table
    header, _, row = table.splitlines()[:3]
    assert header.split()[-1] == "headline" and "cbw2_uvp" not in header  # several experiments: one headline column
    assert f"cbw2_uvp {run.metrics['cbw2_uvp']:.4g}; kl {run.metrics['kl']:.4g}" in row
    assert "cbw2_uvp" in workbench_cli("runs", "lightsb", db=db, check_rc=0).stdout  # one experiment: all of them
    chosen = workbench_cli("runs", "lightsb", "--metrics", "kl, cond_mean", db=db, check_rc=0).stdout.splitlines()[0]
    assert chosen.split()[-2:] == ["cond_mean_rel_error", "kl"]
    shown = json.loads(workbench_cli("show", str(run.id), db=db, check_rc=0).stdout)
    assert shown["id"] == run.id and shown["params"]["dim"] == 2


@pytest.mark.slow
def test_db_option_overrides_environment(tmp_path):
    other = tmp_path / "other.db"
    workbench_cli("run", "lightsb", *SMALL, "--db", str(other), "-q", db=tmp_path / "env.db", check_rc=0)
    assert len(RunStore(other).list()) == 1
    assert not (tmp_path / "env.db").exists()


@pytest.mark.parametrize("override, fragments", [  # a value out of bounds: tests/test_contract.py, for every experiment
    ("nosuch=1", ["unknown parameter 'nosuch'", "valid names:", "epsilon"]),
])
def test_bad_input_exits_2_names_the_problem_records_nothing(tmp_path, override, fragments):
    db = tmp_path / "r.db"
    done = workbench_cli("run", "lightsb", "-p", override, db=db, check_rc=2)
    for fragment in fragments:
        assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert not db.exists() or RunStore(db).list() == []


def test_cross_parameter_rule_exits_2_before_any_work(tmp_path):
    db = tmp_path / "r.db"
    done = workbench_cli("run", "lightsb", "-p", "dataset=swiss_roll", "-p", "dim=3", db=db)
    assert done.returncode == 2 and "dim" in done.stderr  # a 2-D toy needs dim 2
    assert not db.exists() or RunStore(db).list() == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so device=cuda is allowed")
def test_device_cuda_without_cuda_exits_2_and_records_nothing(tmp_path):
    db = tmp_path / "r.db"
    done = workbench_cli("run", "lightsb", *SMALL, "-p", "device=cuda", db=db, check_rc=2)
    assert "'device' = 'cuda'" in done.stderr and "no CUDA device" in done.stderr and "Traceback" not in done.stderr
    assert not db.exists() or RunStore(db).list() == []


@pytest.mark.slow
def test_runs_tables_fit_120_columns_and_show_keeps_everything(tmp_path):
    db = tmp_path / "r.db"
    store = RunStore(db)
    optimizers = ["adamw", "galore", "dct", "apollo", "apollo_mini", "frugal", "lion", "adamw8bit", "lamb"]
    metrics = {f"{name}.{metric}": 0.1234567 + i for i, name in enumerate(optimizers)
               for metric in ("test_accuracy", "final_loss", "state_bytes", "step_ms")}
    optimizers_run = store.record("optimizers", {"task": "digits"}, "finished", metrics=metrics)
    store.record("lightsb", {"dim": 2}, "finished", metrics={"cbw2_uvp": 0.5, "kl": 0.25})
    headline = "test_accuracy: " + ", ".join(f"{name} {metrics[name + '.test_accuracy']:.4g}" for name in optimizers)
    assert len(headline) > 120  # the cell that used to widen every row

    table = workbench_cli("runs", db=db, check_rc=0).stdout.splitlines()
    assert max(map(len, table)) <= 120
    assert table[2].startswith(f"{optimizers_run}   optimizers") and table[2].endswith("…")
    last_cell = re.split(r" {2,}", table[2])[-1]  # the seconds column before it varies in width
    assert headline.startswith(last_cell[:-1])  # cut, not changed
    assert table[3].endswith("cbw2_uvp 0.5; kl 0.25")  # short cells whole
    assert "workbench show ID" in table[-1]
    wide = workbench_cli("runs", "optimizers", db=db, check_rc=0).stdout.splitlines()  # a column per metric
    assert max(map(len, wide)) <= 120 and "adamw.test_accuracy" in wide[0] and "columns left out" in wide[-1]
    lightsb = workbench_cli("runs", "lightsb", db=db, check_rc=0).stdout.splitlines()
    assert lightsb[0].split()[-2:] == ["cbw2_uvp", "kl"] and "cut to fit" not in lightsb[-1]  # fits: unchanged

    shown = json.loads(workbench_cli("show", str(optimizers_run), db=db, check_rc=0).stdout)
    assert shown["metrics"] == pytest.approx(metrics)

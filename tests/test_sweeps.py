"""Sweeps: points, validation, a failure isolated, resume, the local pool and a real Dask cluster, Ctrl-C,
the store's migration, the comparison report, and the kernels started ahead (one fresh kernel per point).
A stand-in lightsb notebook (WORKBENCH_NOTEBOOKS) keeps each point at a kernel start: it reports
score = 2·epsilon + seed and its kernel's pid, and fails its check when epsilon ≥ 5."""
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import FIRST_RUNS_TABLE, free_port
from test_runner_paths import write_notebook

import workbench
from workbench.compare import write_report
from workbench.experiment import ConfigError
from workbench.store import RunStore
from workbench.sweeps import SINGLE_THREAD, expand, parse_grid, parse_random, run_point
from workbench.warm_kernels import WarmKernels

STAND_IN = ("epsilon = 1.0\nseed = 0\nnap = 0.0  # notebook-only: seconds to sleep",
            "import os, time, workbench\ntime.sleep(nap)\n"
            "workbench.report(metrics={'score': 2 * epsilon + seed, 'kernel_pid': os.getpid()})\n"
            "assert epsilon < 5, 'epsilon too large for this check'")
GRID = {"epsilon": ["0.5", "1", "2", "10"]}  # the last point fails its check


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "lightsb.ipynb", *STAND_IN)
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(folder))
    return folder


def check_first_pass(store: RunStore, sweep_id: str, output_dir: Path) -> None:
    runs = store.list(sweep_id=sweep_id)
    assert sorted(run.status for run in runs) == ["failed", "finished", "finished", "finished"]
    for run in runs:
        assert run.metrics["score"] == 2 * run.params["epsilon"] + run.params["seed"]  # read back from the notebook
        assert Path(run.notebook).exists() and Path(run.notebook).parent == output_dir / "sweeps" / sweep_id
    (failed,) = [run for run in runs if run.status == "failed"]
    assert failed.params["epsilon"] == 10 and "epsilon too large for this check" in failed.error
    kernels = {run.metrics["kernel_pid"] for run in runs}
    assert len(kernels) == 4 and os.getpid() not in kernels  # a kernel of its own per point, never the driver
    assert not any(Path(f"/proc/{pid}").exists() for pid in kernels)  # each killed after its point


def test_points_of_a_grid_and_of_a_random_search(notebooks):
    grid = parse_grid(["epsilon=0.1,1", "n_components=4,16,64"])
    points = expand("lightsb", grid, fixed={"steps": "50"})
    assert len(points) == 6 and points[0] == {"steps": "50", "epsilon": "0.1", "n_components": "4"}
    draws = expand("lightsb", None, parse_random(["lr=1e-4:1e-1:log", "n_components=2:40"]), n=200, sweep_seed=3)
    lrs, ks = [p["lr"] for p in draws], [p["n_components"] for p in draws]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs) and all(isinstance(k, int) and 2 <= k <= 40 for k in ks)
    assert sum(lr < 1e-2 for lr in lrs) > 100  # log-uniform: two of three decades below 1e-2
    assert draws == expand("lightsb", None, parse_random(["lr=1e-4:1e-1:log", "n_components=2:40"]), n=200, sweep_seed=3)
    with pytest.raises(ConfigError, match="lo < hi"):
        parse_random(["lr=1:0.1"])


@pytest.mark.slow
def test_local_pool_isolates_a_failure_resumes_and_reports(notebooks, tmp_path):
    store, output_dir = RunStore(tmp_path / "runs.db"), tmp_path / "runs"
    frame = workbench.sweep("lightsb", grid=GRID, params={"seed": 3}, workers=2, store=store, output_dir=output_dir,
                            progress=False)
    sweep_id = frame["sweep_id"].iloc[0]
    check_first_pass(store, sweep_id, output_dir)
    assert store.sweep(sweep_id)["spec"]["points"][0] == {"seed": 3, "epsilon": 0.5}

    seen = []
    again = workbench.sweep("lightsb", grid=GRID, params={"seed": 3}, store=store, output_dir=output_dir,
                            progress=seen.append)  # the same sweep: only the failed point runs again
    assert again["sweep_id"].iloc[0] == sweep_id and len(again) == 5
    assert seen[-1] == {"done": 3, "failed": 1, "running": 0}
    workbench.sweep(resume=sweep_id, store=store, output_dir=output_dir, progress=False)
    assert [run.status for run in store.list(sweep_id=sweep_id)].count("finished") == 3  # still the same 3

    report = write_report(store.list(sweep_id=sweep_id), tmp_path / "report.html").read_text()
    for run in store.list(sweep_id=sweep_id):
        assert f"<td>{run.id}</td>" in report
    assert "plotly" in report and "<script src=" not in report  # Plotly's JavaScript inlined: opens offline


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and two single-threaded workers, as separate processes on loopback, in their own folders."""
    dask = str(Path(sys.executable).parent / "dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for i in range(2):
        folder = tmp_path / f"worker{i}"
        folder.mkdir()
        processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--local-directory", str(folder)], cwd=folder,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from dask.distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    yield address
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


def cli(*args, db, env_extra=None, **kwargs):
    env = {**os.environ, "WORKBENCH_DB": str(db), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600, **kwargs)


@pytest.mark.slow
def test_dask_cluster_runs_the_sweep_and_a_resume_skips_the_finished(notebooks, dask_cluster, tmp_path):
    db, output_dir = tmp_path / "runs.db", tmp_path / "runs"
    args = ["sweep", "lightsb", "--grid", "epsilon=0.5,1,2,10", "-p", "seed=3", "--executor", "dask",
            "--scheduler", dask_cluster, "--output-dir", str(output_dir), "-q"]
    done = cli(*args, db=db)
    assert done.returncode == 1, done.stdout + done.stderr  # one point failed
    sweep_id = done.stdout.split()[1].rstrip(":")
    assert done.stdout.startswith(f"sweep {sweep_id}: 4 points of lightsb")
    check_first_pass(RunStore(db), sweep_id, output_dir)
    again = cli(*args, db=db)
    assert f"sweep {sweep_id}: 4 points of lightsb, 3 already finished" in again.stdout
    assert len(RunStore(db).list(sweep_id=sweep_id)) == 5
    table = cli("runs", "--sweep", sweep_id, db=db).stdout
    assert table.count("finished") == 3 and "score" in table
    assert cli("compare", sweep_id, "-o", str(tmp_path / "r.html"), db=db).returncode == 0


@pytest.mark.slow
def test_a_bad_value_refuses_the_whole_sweep(notebooks, tmp_path):
    db = tmp_path / "runs.db"
    done = cli("sweep", "lightsb", "--grid", "epsilon=0.5,-1", "--grid", "nap=0,1", db=db)
    assert done.returncode == 2 and "'epsilon' = '-1'" in done.stderr and "Traceback" not in done.stderr
    done = cli("sweep", "lightsb", "--random", "nap=x:y", db=db)
    assert done.returncode == 2 and "--random expects" in done.stderr
    assert not db.exists() or (RunStore(db).list() == [] and not RunStore(db).dataframe().shape[0])


@pytest.mark.slow
def test_via_experiment_and_a_timeout(notebooks, tmp_path):
    store = RunStore(tmp_path / "runs.db")
    frame = workbench.sweep("lightsb", grid={"epsilon": [0.5, 2]}, via="experiment", store=store, progress=False,
                            params={"dataset": "gaussian", "dim": 2, "n_components": 1, "steps": 50})
    assert list(frame["status"]) == ["finished", "finished"] and frame["metric.cbw2_uvp"].notna().all()
    assert all(run.notebook is None and run.curves["loss"]["step"] for run in store.list())
    slow = workbench.sweep("lightsb", grid={"nap": [60]}, timeout=8, store=store, progress=False)
    (run,) = store.list(sweep_id=slow["sweep_id"].iloc[0])
    assert run.status == "failed" and run.error == "timed out after 8 s" and run.duration_s < 30


PROBE = ("nap = 0.0\ncrash = False",
         "import os, sys, time, workbench\n"
         "workbench.report(metrics={'kernel_pid': os.getpid(), 'warm': float('torch._dynamo' in sys.modules),\n"
         "                          'torch_bound': float('torch' in globals())})\n"
         "time.sleep(nap)\n"
         "if crash:\n    print('the kernel goes down', file=sys.__stderr__, flush=True)\n    os._exit(3)")


@pytest.mark.slow
def test_each_point_gets_a_fresh_kernel_started_ahead_and_a_timeout_or_a_crash_ends_only_its_own(tmp_path):
    write_notebook(tmp_path / "probe.ipynb", *PROBE)
    probe = (tmp_path / "probe.ipynb").read_text()

    def point(later, timeout=120, **params):
        return {"name": "lightsb", "via": "notebook", "params": params, "notebook": probe, "timeout": timeout,
                "later": later}

    kernels = WarmKernels(ahead=1, env={**os.environ, **SINGLE_THREAD})
    try:
        kernels.start("lightsb", 1)
        (first,) = kernels.unused
        done = run_point(point(later=2), kernels)
        assert done["status"] == "finished", done["error"]
        assert done["metrics"] == {"kernel_pid": first.process.pid, "warm": 1, "torch_bound": 0}  # warm, names unbound
        (second,) = kernels.unused  # started for the next point while this one ran
        assert second is not first and not first.alive() and not first.folder.exists()

        slow = run_point(point(later=1, timeout=5, nap=60.0), kernels)
        assert slow["status"] == "failed" and slow["error"] == "timed out after 5 s" and slow["seconds"] < 30
        (third,) = kernels.unused
        assert not second.alive() and third.alive()  # the timeout killed its own kernel, not the next one

        crashed = run_point(point(later=0, crash=True), kernels)
        assert crashed["status"] == "failed" and "DeadKernelError" in crashed["error"]
        assert "the kernel goes down" in crashed["error"]  # the kernel's last output
        assert kernels.unused == [] and not third.alive()  # no point left: nothing started ahead
    finally:
        kernels.close()


@pytest.mark.slow
def test_ctrl_c_leaves_no_run_running(notebooks, tmp_path):
    db = tmp_path / "runs.db"
    env = {**os.environ, "WORKBENCH_DB": str(db), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "sweep", "lightsb", "--grid", "epsilon=1,2,3",
                                "-p", "nap=120", "--workers", "2", "-q", "--output-dir", str(tmp_path / "runs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (db.exists() and len(RunStore(db).list()) == 3):
        time.sleep(0.2)
    time.sleep(5)  # the kernels are up and napping
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    statuses = [run.status for run in RunStore(db).list()]
    assert statuses == ["stopped"] * 3  # two in flight, one queued: none left running
    assert processes_started_with(f"WORKBENCH_DB={db}") == []  # no kernel left (running a point or started
    # ahead), and no kernel factory


def processes_started_with(entry: str) -> list[int]:
    """The processes whose initial environment holds ``entry`` (KEY=VALUE): those a sweep started and left
    behind, forked kernels included (they keep their factory's initial environment)."""
    found = []
    for process in Path("/proc").iterdir():
        try:
            if process.name.isdigit() and entry.encode() in (process / "environ").read_bytes().split(b"\0"):
                found.append(int(process.name))
        except OSError:  # ended meanwhile, or not ours
            pass
    return found


OLD_SCHEMA = FIRST_RUNS_TABLE + """
INSERT INTO runs (experiment, status, params, metrics, started_at) VALUES ('lightsb', 'finished', '{"dim": 2}', '{"kl": 0.5}', 1.0);
INSERT INTO runs (experiment, status, params, started_at, error) VALUES ('optimizers', 'failed', '{}', 2.0, 'boom');
"""


def test_a_store_written_before_sweeps_migrates_in_place(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = RunStore(path)
    old = store.list()
    assert [(r.id, r.experiment, r.status, r.params, r.metrics, r.error) for r in old] == [
        (1, "lightsb", "finished", {"dim": 2}, {"kl": 0.5}, None), (2, "optimizers", "failed", {}, {}, "boom")]
    assert all(run.sweep_id is None for run in old)
    store.add_sweep("abc", "lightsb", {"via": "notebook", "points": [{}]})
    new = store.record("lightsb", {}, "finished", sweep_id="abc")
    assert [run.id for run in store.list(sweep_id="abc")] == [new] and len(RunStore(path).list()) == 3
    assert math.isclose(store.list()[0].started_at, 1.0)

"""Run store: records, loads, lists, DataFrame, and concurrent writers from several processes."""
import multiprocessing as mp
import sqlite3

import pytest

import workbench
from workbench.store import RunStore


def test_record_load_roundtrip(store):
    run_id = store.record("toy", {"lr": 0.1, "steps": 3}, "finished", metrics={"loss": 0.25},
                          curves={"loss": {"step": [1, 2], "value": [1.0, 0.5]}}, seed=7, device="cpu", duration_s=1.5)
    run = store.load(run_id)
    assert (run.experiment, run.status, run.seed, run.device) == ("toy", "finished", 7, "cpu")
    assert run.params == {"lr": 0.1, "steps": 3} and run.metrics == {"loss": 0.25}
    assert run.curves["loss"]["value"] == [1.0, 0.5] and run.duration_s == 1.5
    assert "python" in run.versions and "torch" in run.versions
    assert run.git_commit is None or len(run.git_commit) == 40
    with pytest.raises(KeyError):
        store.load(run_id + 1)
    with pytest.raises(ValueError, match="status 'done' is not allowed"):
        store.finish(run_id, "done")


def test_wal_mode_and_dataframe(store):
    store.record("a", {"x": 1}, "finished", metrics={"m": 1.0})
    store.record("b", {"x": 2}, "failed", error="boom")
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    frame = store.dataframe()
    assert list(frame["experiment"]) == ["a", "b"] and list(frame["status"]) == ["finished", "failed"]
    assert frame.loc[0, "metric.m"] == 1.0 and list(frame["param.x"]) == [1, 2]
    assert len(store.list("a")) == 1


def test_run_records_status_through_the_api(store):
    result = workbench.run("toy_countdown", steps=5, store=store)
    run = store.load(result.run_id)
    assert run.status == "finished" and run.metrics["x"] == pytest.approx(result.metrics["x"])
    assert run.params["steps"] == 5 and len(run.curves["loss"]["step"]) == 5
    with pytest.raises(RuntimeError, match="toy failure"):
        workbench.run("toy_countdown", steps=10, mode="fail", store=store)
    failed = store.list()[-1]
    assert failed.status == "failed" and "toy failure" in failed.error


def _writer(path, worker, n_runs):
    store = RunStore(path)
    for i in range(n_runs):
        run_id = store.start("concurrent", {"worker": worker, "i": i}, seed=i)
        store.finish(run_id, "finished", metrics={"value": worker * 1000 + i},
                     curves={"c": {"step": list(range(50)), "value": [float(worker)] * 50}})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"
    RunStore(path)
    n_workers, n_runs = 4, 25
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, w, n_runs)) for w in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    runs = RunStore(path).list("concurrent")
    assert len(runs) == n_workers * n_runs
    assert {r.metrics["value"] for r in runs} == {w * 1000 + i for w in range(n_workers) for i in range(n_runs)}
    assert all(r.status == "finished" and r.curves["c"]["value"] == [float(r.params["worker"])] * 50 for r in runs)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

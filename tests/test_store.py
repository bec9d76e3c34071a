"""Run store: records, loads, lists, DataFrame, concurrent writers from several processes, a store written before a
column existed, and runs that outlive their process (written while they report, read as died once it is gone)."""
import math
import multiprocessing as mp
import os
import socket
import sqlite3
import time

import pytest
from support import FIRST_RUNS_TABLE

import workbench
import workbench.store
from workbench.store import STALE_SECONDS, LiveRun, RunStore


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


# --- runs survive their process -------------------------------------------------------------------------

OLD_SCHEMA = FIRST_RUNS_TABLE + """
INSERT INTO runs (experiment, status, params, metrics, started_at) VALUES ('toy', 'finished', '{}', '{"m": 1.5}', 1.0);
INSERT INTO runs (experiment, status, params, started_at) VALUES ('toy', 'running', '{}', 2.0);
"""


def test_a_store_written_before_pids_opens_reads_and_records(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = RunStore(path)
    old_finished, old_running = store.list()
    assert (old_finished.status, old_finished.metrics, old_finished.pid) == ("finished", {"m": 1.5}, None)
    assert old_running.status == "running"  # no process recorded: nothing says it died
    run = store.load(store.start("toy", {}))
    assert run.status == "running" and run.pid == os.getpid() and run.host == socket.gethostname()


def _start_and_exit(path):
    RunStore(path).start("toy", {"left": "running"})


def test_a_run_whose_process_is_gone_reads_as_died(store):
    process = mp.get_context("spawn").Process(target=_start_and_exit, args=(store.path,))
    process.start()
    process.join(120)
    (orphan,) = store.list()
    assert orphan.status == "died" and orphan.pid == process.pid
    assert [run.id for run in store.list() if run.status == "died"] == [orphan.id]  # a status to filter by
    mine = store.start("toy", {})
    assert store.load(mine).status == "running"  # this process runs it
    with sqlite3.connect(store.path) as db:  # raw: still recorded as running
        assert db.execute("SELECT status FROM runs WHERE id = ?", (orphan.id,)).fetchone()[0] == "running"
    store.finish(mine, "finished")
    assert store.load(mine).status == "finished"


def test_a_reused_pid_is_not_taken_for_the_process_that_started_the_run(store):
    run_id = store.start("toy", {})
    with sqlite3.connect(store.path) as db:  # this pid, but a process that started at another time
        db.execute("UPDATE runs SET process_start = process_start || '0' WHERE id = ?", (run_id,))
    assert store.load(run_id).status == "died"


@pytest.mark.parametrize("age, status", [(10.0, "running"), (STALE_SECONDS + 60, "died")])
def test_a_run_of_another_host_dies_when_its_heartbeat_is_stale(store, age, status):
    run_id = store.start("toy", {})
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET host = 'elsewhere', heartbeat = ? WHERE id = ?", (time.time() - age, run_id))
    assert store.load(run_id).status == status


def test_the_process_beats_for_its_open_runs(store, monkeypatch):
    monkeypatch.setattr(workbench.store, "HEARTBEAT_SECONDS", 0.05)
    run_id = store.start("toy", {})
    first = store.load(run_id).heartbeat
    heart = workbench.store._Heartbeat()  # a fresh one: the process's own thread sleeps its 30 s
    heart.add(store.path, run_id)
    deadline = time.monotonic() + 60
    while store.load(run_id).heartbeat == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.load(run_id).heartbeat > first
    heart.discard(store.path, [run_id])


def test_live_run_writes_in_batches_and_finish_keeps_what_it_wrote(store):
    run_id = store.start("toy", {})
    live = LiveRun(store, run_id, every=3600)
    live.add(1, {"loss": 2.0, "acc": 0.1})  # the first report is written at once
    live.add(2, {"loss": 1.0, "acc": float("nan")})  # within the batch: not yet
    run = store.load(run_id)
    assert run.curves == {"loss": {"step": [1], "value": [2.0]}, "acc": {"step": [1], "value": [0.1]}}
    assert run.metrics == {"loss": 2.0, "acc": 0.1}
    live.flush()
    run = store.load(run_id)
    assert run.curves["loss"] == {"step": [1, 2], "value": [2.0, 1.0]} and run.metrics["loss"] == 1.0
    assert math.isnan(run.metrics["acc"])  # a non-finite latest value reads back as NaN
    store.finish(run_id, "failed", error="boom")  # no metrics given: those written while it ran stay
    assert store.load(run_id).curves["loss"]["step"] == [1, 2]
    live.add(3, {"loss": 0.5})
    live.flush()  # a closed run is left as it is
    assert store.load(run_id).curves["loss"]["step"] == [1, 2] and store.load(run_id).status == "failed"


def test_a_failed_run_keeps_the_curves_it_reported(store):
    with pytest.raises(RuntimeError, match="toy failure"):
        workbench.run("toy_countdown", steps=40, mode="fail", store=store)
    (run,) = store.list()
    assert run.status == "failed" and run.curves["loss"]["step"] == list(range(1, 20))  # it fails at step 20
    assert run.metrics["loss"] == run.curves["loss"]["value"][-1]


def test_metrics_stored_under_an_earlier_name_are_read_under_the_current_one(store, monkeypatch):
    from conftest import Countdown

    monkeypatch.setattr(Countdown, "renamed_metrics", {"loss_final": "final.loss"})
    run_id = store.record("toy_countdown", {}, "finished", metrics={"loss_final": 0.5, "x": 1.0},
                          curves={"loss_final": {"step": [1], "value": [0.5]}})
    other = store.record("no_such_experiment", {}, "finished", metrics={"loss_final": 0.5})
    assert store.load(run_id).metrics == {"final.loss": 0.5, "x": 1.0}
    assert list(store.load(run_id).curves) == ["final.loss"]
    assert store.load(other).metrics == {"loss_final": 0.5}  # an experiment not installed here: as stored

"""A run killed with SIGKILL mid-way keeps what it reported and shows as died: in `workbench runs`, `workbench show`,
the comparison report and the Runs page. The run and the notebook run as a user starts them, in a process of
their own; the tests poll the store with generous timeouts, never assuming a speed."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_runner_paths import write_notebook

from workbench.panels.runs import RunsPage
from workbench.store import RunStore


def start(*command, db, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_DB": str(db)}
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", *command, "-q"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, db, timeout=240.0):
    """The store's one run once ``condition(run)`` holds, polling; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = RunStore(db).list() if db.exists() else []
        if runs and condition(runs[0]):
            return runs[0]
        time.sleep(0.2)
    pytest.fail(f"no run in {db} met the condition within {timeout} s")


def kill(process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(60)
    assert process.returncode == -signal.SIGKILL


def cli(*args, db) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_DB": str(db)}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_killed_run_keeps_its_curves_and_shows_as_died(tmp_path):
    db = tmp_path / "runs.db"
    process = start("run", "lightsb", "-p", "steps=200000", db=db, cwd=tmp_path)
    try:
        seen = wait_for(lambda run: len(run.curves.get("loss", {}).get("step", [])) >= 3, db)
        assert seen.status == "running"  # its process lives
    finally:
        kill(process)
    run = RunStore(db).load(seen.id)
    assert run.status == "died" and run.finished_at is None
    steps = run.curves["loss"]["step"]
    assert steps[: len(seen.curves["loss"]["step"])] == seen.curves["loss"]["step"]  # nothing lost, in order
    assert steps == sorted(steps) and 0 < steps[-1] < 200000
    assert run.metrics["loss"] == run.curves["loss"]["value"][-1]  # the last reported value

    table = cli("runs", db=db).splitlines()
    assert table[0].split()[:3] == ["id", "experiment", "status"]
    assert table[2].split()[:3] == [str(run.id), "lightsb", "died"]
    shown = json.loads(cli("show", str(run.id), db=db))
    assert shown["status"] == "died" and shown["curves"]["loss"].startswith(f"{len(steps)} points")
    cli("compare", str(run.id), "-o", str(tmp_path / "report.html"), db=db)
    assert "1 runs: 1 died" in (tmp_path / "report.html").read_text()

    page = RunsPage(RunStore(db))
    assert list(page.table.value["status"]) == ["died"]
    page.status.value = "running"
    assert page.table.value.empty
    page.status.value = "died"
    assert list(page.table.value["run"]) == [run.id]
    page.table.selection = [0]
    assert f"Run {run.id}: lightsb, died" in page.detail.objects[0].object


@pytest.mark.slow
def test_a_killed_notebook_run_keeps_what_it_reported(tmp_path, monkeypatch):
    notebooks, pid_file = tmp_path / "notebooks", tmp_path / "kernel.pid"
    notebooks.mkdir()
    write_notebook(notebooks / "lightsb.ipynb", "seed = 0",
                   f"import os, pathlib, workbench\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
                   "workbench.report(metrics={'score': 3.5}, curves={'loss': {'step': [1, 2], 'value': [1.0, 0.5]}})",
                   "import time\ntime.sleep(300)")
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(notebooks))
    db = tmp_path / "runs.db"
    process = start("notebook", "lightsb", db=db, cwd=tmp_path)
    try:
        seen = wait_for(lambda run: run.metrics, db)  # reported while the notebook still runs
        assert seen.status == "running" and seen.metrics == {"score": 3.5}
    finally:
        kill(process)
        if pid_file.exists():  # the kernel outlives its driver: end it
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    run = RunStore(db).load(seen.id)
    assert run.status == "died" and run.metrics == {"score": 3.5}
    assert run.curves == {"loss": {"step": [1, 2], "value": [1.0, 0.5]}} and run.notebook.endswith(".ipynb")

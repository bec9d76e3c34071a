"""The paths of running notebooks that the method notebooks never take: a failing notebook, `notebook --all`,
notebook-only parameters, NaN in a report, Ctrl-C, a run finished twice. Small stand-in notebooks keep
them fast; `WORKBENCH_NOTEBOOKS` points the runner at them."""
import math
import os
import signal
import subprocess
import sys
import time

import nbformat
import papermill
import pytest

from workbench.experiment import ConfigError
from workbench.runner import run_notebook
from workbench.store import RunStore


def write_notebook(path, parameters: str, *cells: str):
    """A notebook with a cell tagged `parameters` followed by code cells."""
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                 "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, str(path))


REPORTING = ("seed = 0\nsteps = 50\nextra_rounds = 3       # notebook-only; a comment with rounds = 3 in it\n"
             "labels = ['a', 'b']",
             "import math, workbench\n"
             "workbench.report(metrics={'score': extra_rounds + 0.5, 'diverged': math.nan, 'n_labels': len(labels)})")
FAILING = ("seed = 0", "assert 1 + 1 == 3, 'the check failed'")


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """A notebooks folder with a reporting stand-in for toy_countdown and lightsb, a failing one for optimizers."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "toy_countdown.ipynb", *REPORTING)
    write_notebook(folder / "lightsb.ipynb", "seed = 0", "import workbench\nworkbench.report(metrics={'score': 3.5})")
    write_notebook(folder / "optimizers.ipynb", *FAILING)
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(folder))
    return folder


def test_notebook_only_parameters_are_typed_run_and_recorded(notebooks, tmp_path):
    store = RunStore(tmp_path / "runs.db")
    report, _, run_id = run_notebook("toy_countdown", {"extra_rounds": "7", "labels": "x,y,z", "steps": "9"},
                                     output_dir=tmp_path / "out", store=store)
    assert report["metrics"]["score"] == 7.5 and report["metrics"]["n_labels"] == 3  # ints and lists reached it
    run = store.load(run_id)
    assert run.status == "finished"
    assert run.params["extra_rounds"] == 7 and run.params["labels"] == ["x", "y", "z"] and run.params["steps"] == 9


def test_nan_in_a_report_is_recorded_as_nan(notebooks, tmp_path):
    store = RunStore(tmp_path / "runs.db")
    report, _, run_id = run_notebook("toy_countdown", {}, output_dir=tmp_path / "out", store=store)
    assert math.isnan(report["metrics"]["diverged"])
    metrics = store.load(run_id).metrics
    assert math.isnan(metrics["diverged"]) and metrics["score"] == 3.5
    assert math.isnan(store.dataframe()["metric.diverged"].iloc[0])


@pytest.mark.parametrize("params, fragments", [
    ({"nosuch": 1}, ["unknown parameter 'nosuch'", "experiment parameters: curvature, delay",
                     "notebook-only parameters (notebooks/toy_countdown.ipynb): extra_rounds, labels"]),
    ({"extra_rounds": "2.5"}, ["notebook parameter 'extra_rounds' = '2.5'", "an integer", "its default 3"]),
    ({"steps": "0"}, ["parameter 'steps' = '0'", "an integer in [1, 100000]"]),
])
def test_bad_notebook_parameters_are_refused_before_anything_runs(notebooks, tmp_path, params, fragments):
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(ConfigError) as error:
        run_notebook("toy_countdown", params, output_dir=tmp_path / "out", store=store)
    for fragment in fragments:
        assert fragment in str(error.value)
    assert store.list() == [] and not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_a_failing_notebook_is_recorded_as_failed_with_its_error(notebooks, tmp_path):
    write_notebook(notebooks / "toy_countdown.ipynb", *FAILING)
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(papermill.PapermillExecutionError, match="the check failed"):
        run_notebook("toy_countdown", {}, output_dir=tmp_path / "out", store=store)
    (run,) = store.list()
    assert run.status == "failed" and "AssertionError" in run.error and "the check failed" in run.error


def test_the_executed_notebook_is_written_first_then_at_most_every_few_seconds_and_last(notebooks, tmp_path,
                                                                                      monkeypatch):
    """papermill writes the notebook as each cell starts and ends (62 writes here, milliseconds apart); the runner's
    engine writes it at the start, after a cell once SAVE_EVERY seconds have passed, and at the end, its final state
    complete."""
    from papermill import engines

    from workbench import notebook_engine

    monkeypatch.setattr(notebook_engine, "SAVE_EVERY", 1.0)
    written, times = [], []  # per write: how many code cells had run to completion, and when
    write = engines.write_ipynb

    def counting_write(nb, path):
        written.append(sum(c.metadata.get("papermill", {}).get("status") == "completed"
                           for c in nb.cells if c.cell_type == "code"))
        times.append(time.monotonic())
        write(nb, path)

    monkeypatch.setattr(engines, "write_ipynb", counting_write)
    quick = ["x = 1"] * 14
    write_notebook(notebooks / "toy_countdown.ipynb", "seed = 0", *quick, "import time\ntime.sleep(1.2)", *quick,
                   "import workbench\nworkbench.report(metrics={'score': 1.0})")
    report, output, _ = run_notebook("toy_countdown", {}, output_dir=tmp_path / "out", store=False)
    assert report["metrics"] == {"score": 1.0}
    assert written[0] == 0 and written[-1] == 31  # the start, and the end with every cell
    assert all(b - a >= 1.0 for a, b in zip(times[:-2], times[1:-1]))  # the last one is never held back
    assert any(16 <= done < 31 for done in written)  # a write on the way: after the sleep, 1.2 s since the last
    assert all(cell.get("execution_count") for cell in nbformat.read(output, as_version=4).cells)


def cli(*args, env_extra, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kwargs)


@pytest.mark.slow
def test_notebook_all_runs_every_notebook_and_isolates_a_failure(notebooks, tmp_path):
    db = tmp_path / "runs.db"
    done = cli("notebook", "--all", "-q", "--output-dir", str(tmp_path / "out"),
               env_extra={"WORKBENCH_DB": str(db), "WORKBENCH_NOTEBOOKS": str(notebooks)})
    assert done.returncode == 1, done.stdout + done.stderr  # one notebook failed
    assert "optimizers: notebook failed" in done.stderr and "the check failed" in done.stderr
    runs = {run.experiment: run for run in RunStore(db).list()}
    assert set(runs) == {"lightsb", "optimizers"}  # every experiment with a notebook in the folder, none else
    assert runs["lightsb"].status == "finished" and runs["lightsb"].metrics["score"] == 3.5
    assert runs["optimizers"].status == "failed"
    table = done.stdout.splitlines()
    assert any(line.startswith("lightsb") and "finished" in line for line in table)
    assert any(line.startswith("optimizers") and "failed" in line for line in table)
    assert max(map(len, done.stdout.split("\n\n")[0].splitlines())) <= 120  # the table: its long paths cut to fit


def ignore_sigint() -> None:
    """In a child before it starts: SIGINT ignored, inherited from its parent as from a Jupyter kernel."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("command", [
    ["run", "lightsb", "-p", "dataset=gaussian", "-p", "dim=2", "-p", "n_components=1", "-p", "steps=1000000"],
    ["notebook", "lightsb"],  # the stand-in notebook below sleeps
])
@pytest.mark.slow
def test_ctrl_c_records_the_run_as_stopped_and_exits_130(notebooks, tmp_path, command):
    write_notebook(notebooks / "lightsb.ipynb", "seed = 0", "import time\ntime.sleep(120)")
    db = tmp_path / "runs.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_DB": str(db)}
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", *command, "-q"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=ignore_sigint)  # as when started from a Jupyter kernel
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (db.exists() and RunStore(db).list()):
        time.sleep(0.2)
    time.sleep(2.0)  # inside the training loop, or the notebook's cell
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "interrupted, recorded as stopped" in err
    (run,) = RunStore(db).list()
    assert run.status == "stopped" and run.finished_at is not None


def test_finish_never_overwrites_a_closed_run(store):
    run_id = store.record("toy_countdown", {"steps": 1}, "finished", metrics={"loss": 0.5})
    with pytest.raises(ValueError, match=f"run {run_id} is already finished"):
        store.finish(run_id, "failed", error="late")
    run = store.load(run_id)
    assert run.status == "finished" and run.metrics == {"loss": 0.5} and run.error is None

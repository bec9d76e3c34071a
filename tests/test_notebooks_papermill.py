"""Notebooks executed by papermill with overrides, through `workbench notebook`'s run_notebook, on kernels forked
from a preloaded process as sweeps run them (the ``warm_kernel`` fixture)."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from notebook_cases import OVERRIDES

from workbench.experiment import ConfigError
from workbench.handout import is_solution, student_copy
from workbench.reporting import read_reports
from workbench.runner import run_notebook
from workbench.store import RunStore

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.notebook


@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_notebook_passes_its_checks_with_overrides_and_is_recorded(case, tmp_path, warm_kernel, executed_at_overrides):
    """The settings of every case in notebook_cases (those the mutation tests break) pass unbroken, and the run is
    recorded with them. A notebook's own case is the session's shared run (``executed_at_overrides``, from which
    the book test makes its chapter). Its student copy (`workbench handout`: each worked solution an empty cell)
    runs what this run ran up to its first solution: every code cell from there on is a solution, so the copy runs
    top to bottom with its checks passing because this run did; the solutions run here, under nbval and under
    the breakages."""
    name = case.split("/")[0]
    if not (NOTEBOOKS / f"{name}.ipynb").exists():
        pytest.fail(f"notebooks/{name}.ipynb is missing")
    if case == name:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        first = next((i for i, cell in enumerate(notebook.cells) if is_solution(cell)), None)
        assert first is not None, f"{name}: no worked solution to take out"
        after = [i for i, cell in enumerate(notebook.cells[first:], first)
                 if cell.cell_type == "code" and not is_solution(cell)]
        assert after == [], f"{name}: code cells {after} follow a solution, so a student copy would run them without it"
        student_code = [cell.source for cell in student_copy(notebook).cells if cell.cell_type == "code"]
        assert [source for source in student_code if source] == [
            cell.source for cell in notebook.cells if cell.cell_type == "code" and not is_solution(cell)]
        path, run_id = executed_at_overrides(name)
        store = RunStore(path)
    else:
        store = RunStore(tmp_path / "runs.db")
        run_id = run_notebook(name, OVERRIDES[case], output_dir=tmp_path, store=store, km=warm_kernel(name))[2]
    run = store.load(run_id)
    output = Path(run.notebook)
    assert run.status == "finished" and output.exists()
    for key, value in OVERRIDES[case].items():
        assert run.params[key] == value  # the parameters it really ran with, notebook-only ones included
    report = read_reports(output)
    assert run.metrics == report["metrics"] and run.metrics
    assert report["params"]["seed"] == run.params["seed"]


def test_bad_papermill_parameter_fails_inside_the_notebook(tmp_path, warm_kernel):
    with pytest.raises(papermill.PapermillExecutionError, match=r"ConfigError: lightsb: parameter 'epsilon' = -1"):
        papermill.execute_notebook(str(NOTEBOOKS / "lightsb.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"epsilon": -1}, kernel_name="python3", progress_bar=False,
                                   km=warm_kernel("lightsb"))


def test_bad_override_is_rejected_before_papermill_starts(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(ConfigError, match="unknown parameter 'nosuch'; experiment parameters: .*; notebook-only"):
        run_notebook("lightsb", {"nosuch": 1}, output_dir=tmp_path, store=store)
    assert store.list() == []
    env = {**os.environ, "WORKBENCH_DB": str(tmp_path / "cli.db")}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "notebook", "lightsb", "-p", "epsilon=-1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "'epsilon' = '-1'" in done.stderr

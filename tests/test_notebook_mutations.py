"""Mutation tests: every method notebook fails when its method is broken, under `workbench notebook` here and
under nbval in test_notebook_mutations_nbval.py (two files, so that `make test`'s two workers share them).

For each breakage in ``notebook_cases.MUTATIONS``, a copy of the notebook gets a first cell that applies
the breakage (a monkeypatch in the kernel), then runs with the case's small settings, which the unbroken
notebook passes (`test_notebooks_papermill.py`). The run must end in an AssertionError from the
notebook's own checks: a breakage that crashes the notebook some other way proves nothing.
"""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_cases import MUTATIONS, OVERRIDES

from workbench.store import RunStore

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.notebook


def broken_copy(mutation, folder: Path) -> Path:
    """notebooks/<name>.ipynb with the breakage as its first cell, written to folder/<name>.ipynb."""
    notebook = nbformat.read(NOTEBOOKS / f"{mutation.notebook}.ipynb", as_version=4)
    patch = f"# deliberate breakage for a mutation test: {mutation.name}\n{mutation.patch.strip()}\n"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(patch))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{mutation.notebook}.ipynb"
    nbformat.write(notebook, str(path))
    return path


def cli_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def assert_checks_failed(output: str, mutation) -> None:
    assert "AssertionError" in output, f"{mutation.name}: the notebook did not fail on a check:\n{output[-3000:]}"
    assert mutation.expect in output, f"{mutation.name}: no failing check mentions {mutation.expect!r}:\n{output[-3000:]}"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: f"{m.case}:{m.name}")
def test_workbench_notebook_fails_and_records_the_failure(mutation, tmp_path):
    folder = broken_copy(mutation, tmp_path / "notebooks").parent
    db = tmp_path / "runs.db"
    overrides = [arg for key, value in OVERRIDES[mutation.case].items() for arg in ("-p", f"{key}={cli_value(value)}")]
    env = {**os.environ, "WORKBENCH_NOTEBOOKS": str(folder), "WORKBENCH_DB": str(db), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "notebook", mutation.notebook, "-q", *overrides,
                           "--output-dir", str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_checks_failed(done.stderr, mutation)
    (run,) = RunStore(db).list()
    assert run.status == "failed" and "AssertionError" in run.error

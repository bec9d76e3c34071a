"""Mutation tests: every method notebook fails its own checks when its method is broken.

For each breakage in ``notebook_cases.MUTATIONS``, a copy of the notebook gets a first cell that applies
the breakage (a monkeypatch in the kernel), then runs with the case's small settings, which the unbroken
notebook passes (`test_notebooks_papermill.py`). The run must end in an AssertionError from the
notebook's own checks, naming the check (``expect``): a breakage that crashes the notebook some other way
proves nothing.

Each breakage runs once, through :func:`workbench.runner.run_notebook` (what `workbench notebook` runs) on a
kernel forked from a preloaded process, as sweeps run their points (the ``warm_kernel`` fixture). One breakage
also runs on fresh kernels through the `workbench notebook` command and through nbval, to show that the three
ways fail on the same check.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from notebook_cases import MUTATIONS, OVERRIDES

from workbench.runner import run_notebook
from workbench.store import RunStore

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = [pytest.mark.notebook, pytest.mark.slow]
CHECK = re.compile(r"AssertionError: (.+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


def failed_check(output: str, mutation) -> str:
    """The message of the first of the notebook's checks that failed (nbval goes on to the later cells), which
    must name what ``mutation`` breaks."""
    checks = CHECK.findall(ANSI.sub("", output))
    assert checks, f"{mutation.name}: the notebook did not fail on a check:\n{output[-3000:]}"
    assert mutation.expect in output, f"{mutation.name}: no failing check mentions {mutation.expect!r}:\n{output[-3000:]}"
    return checks[0].strip()


# `make test` runs a file on one worker (--dist loadfile, which keeps a notebook's nbval cells on one kernel):
# the breakages of these notebooks run here, the others in test_notebook_mutations_rest.py, about half the CPU each.
HERE = ("koopman", "optimizers")


def cases(here: bool) -> list:
    """The breakages of the notebooks in HERE (or of the others) as parameters with readable ids."""
    chosen = [m for m in MUTATIONS if (m.notebook in HERE) == here]
    return [pytest.param(m, id=f"{m.case}:{m.name}") for m in chosen]


def check_breakage(mutation, tmp_path, monkeypatch, warm_kernel) -> None:
    """The broken notebook, run as `workbench notebook` runs it, fails on the check ``mutation.expect`` names and
    is recorded as failed."""
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(broken_copy(mutation, tmp_path / "notebooks").parent))
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        run_notebook(mutation.notebook, OVERRIDES[mutation.case], output_dir=tmp_path / "runs", store=store,
                     km=warm_kernel(mutation.notebook))
    failed_check(str(failure.value), mutation)
    (run,) = store.list()
    assert run.status == "failed" and "AssertionError" in run.error


@pytest.mark.parametrize("mutation", cases(here=True))
def test_breakage_fails_the_notebooks_checks_and_is_recorded(mutation, tmp_path, monkeypatch, warm_kernel):
    check_breakage(mutation, tmp_path, monkeypatch, warm_kernel)


# caught by a building-block check before anything trains: three runs of the notebook in seconds
AGREEING = next(m for m in MUTATIONS if m.name == "rollout_uses_K_transposed")


def test_workbench_notebook_and_nbval_fail_on_the_same_check(tmp_path, monkeypatch, warm_kernel):
    """The `workbench notebook` command and nbval each start a fresh kernel (nbval through its own client): the
    breakage fails both with the check message that it gives on a forked kernel."""
    mutation = AGREEING
    source = broken_copy(mutation, tmp_path / "notebooks")
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(source.parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        run_notebook(mutation.notebook, OVERRIDES[mutation.case], output_dir=tmp_path / "forked", store=None,
                     km=warm_kernel(mutation.notebook))
    forked = failed_check(str(failure.value), mutation)

    overrides = [arg for key, value in OVERRIDES[mutation.case].items() for arg in ("-p", f"{key}={cli_value(value)}")]
    cli = subprocess.run([sys.executable, "-m", "workbench.cli", "notebook", mutation.notebook, "-q", *overrides,
                          "--output-dir", str(tmp_path / "runs")], capture_output=True, text=True,
                         env={**env, "WORKBENCH_DB": str(tmp_path / "runs.db")}, timeout=600)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    (run,) = RunStore(tmp_path / "runs.db").list()
    assert run.status == "failed" and "AssertionError" in run.error

    prepared = tmp_path / f"{mutation.notebook}.ipynb"  # the case's parameters injected, nothing executed
    papermill.execute_notebook(str(source), str(prepared), parameters=OVERRIDES[mutation.case], prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    nbval = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-x", "-p", "no:cacheprovider", "-q", str(prepared)],
                           capture_output=True, text=True, env=env, cwd=NOTEBOOKS, timeout=600)
    assert nbval.returncode == 1, nbval.stdout + nbval.stderr
    assert failed_check(cli.stderr, mutation) == failed_check(nbval.stdout, mutation) == forked

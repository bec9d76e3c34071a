"""Mutation tests under nbval: every breakage of notebook_cases.MUTATIONS fails its notebook's own checks when nbval
runs it (test_notebook_mutations.py runs the same breakages under `workbench notebook`)."""
import os
import subprocess
import sys

import papermill
import pytest
from notebook_cases import MUTATIONS, OVERRIDES
from test_notebook_mutations import NOTEBOOKS, assert_checks_failed, broken_copy

pytestmark = pytest.mark.notebook


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: f"{m.case}:{m.name}")
def test_nbval_fails(mutation, tmp_path):
    source = broken_copy(mutation, tmp_path / "broken")
    prepared = tmp_path / f"{mutation.notebook}.ipynb"  # the case's parameters injected, nothing executed
    papermill.execute_notebook(str(source), str(prepared), parameters=OVERRIDES[mutation.case], prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", str(prepared)],
                          capture_output=True, text=True, env=env, cwd=NOTEBOOKS, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_checks_failed(done.stdout, mutation)

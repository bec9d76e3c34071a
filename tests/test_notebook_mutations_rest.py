"""The breakages of the notebooks that test_notebook_mutations.py leaves out (see ``HERE`` there): a file of its own,
so that `make test`'s two workers share the breakages."""
import pytest
from test_notebook_mutations import cases, check_breakage

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


@pytest.mark.parametrize("mutation", cases(here=False))
def test_breakage_fails_the_notebooks_checks_and_is_recorded(mutation, tmp_path, monkeypatch, warm_kernel):
    check_breakage(mutation, tmp_path, monkeypatch, warm_kernel)

"""`workbench handout`: student copies without the worked solutions, the teacher's copies with outputs, a README."""
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from workbench.handout import ANSWER_PROMPT, executed_copy, is_solution, student_copy, write_handout

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


def notebook_with_a_solution():
    v4 = nbformat.v4
    solution = v4.new_code_cell("answer = 42\nassert answer == 42", metadata={"tags": ["solution"]})
    check = v4.new_code_cell("assert 1 + 1 == 2")
    check.outputs, check.execution_count = [v4.new_output("stream", text="2\n")], 3
    return v4.new_notebook(cells=[v4.new_markdown_cell("# Exercise 1"), check, solution, v4.new_code_cell("x = 1")])


def test_a_student_copy_replaces_each_solution_by_an_empty_cell_and_clears_outputs():
    notebook = notebook_with_a_solution()
    copy = student_copy(notebook)
    assert [(c.cell_type, c.source) for c in copy.cells] == [
        ("markdown", "# Exercise 1"), ("code", "assert 1 + 1 == 2"), ("markdown", ANSWER_PROMPT), ("code", ""),
        ("code", "x = 1")]
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")
    assert is_solution(notebook.cells[2]) and notebook.cells[1].outputs  # the teacher's notebook is unchanged
    nbformat.validate(copy)


@pytest.mark.parametrize("name", NAMES)
def test_no_solution_text_survives_in_a_student_copy(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    text = nbformat.writes(student_copy(notebook))
    solutions = [cell.source for cell in notebook.cells if is_solution(cell)]
    assert not any(is_solution(cell) for cell in student_copy(notebook).cells)
    assert [source for source in solutions if source.strip() and source in text] == []
    assert text.count(ANSWER_PROMPT) == len(solutions)


def fake_executed(runs: Path, name: str, age_s: float = 0.0) -> Path:
    """A notebook as `workbench notebook` writes it under runs/notebooks, ``age_s`` seconds older than now."""
    path = runs / "notebooks" / f"{name}-20261207-120000-1.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"executed {name}")])
    notebook.metadata["papermill"] = {"end_time": "2026-12-07T12:01:00", "exception": None}
    nbformat.write(notebook, path)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_the_teacher_copy_reuses_an_executed_notebook_newer_than_its_source_else_executes(tmp_path):
    runs = tmp_path / "runs"
    fresh = fake_executed(runs, "lightsb")
    stale = fake_executed(runs, "koopman", age_s=time.time() - (NOTEBOOKS / "koopman.ipynb").stat().st_mtime + 60)
    assert executed_copy("lightsb", runs) == fresh and executed_copy("koopman", runs) is None
    executed = []

    def execute(name):
        executed.append(name)
        return stale

    sources = write_handout(tmp_path / "course", ["lightsb", "koopman"], runs_dir=runs, execute=execute)
    assert executed == ["koopman"] and sources == {"lightsb": str(fresh), "koopman": str(stale)}
    teacher = nbformat.read(tmp_path / "course" / "teacher" / "lightsb.ipynb", as_version=4)
    assert teacher.cells[0].source == "executed lightsb"
    readme = (tmp_path / "course" / "README.md").read_text()
    assert "make install" in readme and "student/koopman.ipynb" in readme and "jupyter lab" in readme


def test_the_cli_writes_every_notebook(tmp_path):
    runs = tmp_path / "runs"
    for name in NAMES:
        fake_executed(runs, name)
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "handout", str(tmp_path / "course"), "--runs",
                           str(runs)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WORKBENCH_DB": str(tmp_path / "runs.db")})
    assert done.returncode == 0, done.stderr
    for folder in ("student", "teacher"):
        assert sorted(p.stem for p in (tmp_path / "course" / folder).glob("*.ipynb")) == NAMES
    assert "student copies in" in done.stdout

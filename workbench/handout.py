"""Course handouts: a student copy of every method notebook without the worked solutions, the teacher's copy
with its outputs, and a README that tells students how to install and open them.

A worked solution is a code cell tagged ``solution`` (nbgrader's idea of a solution region, one whole cell). In the
student copy each becomes an empty code cell and a markdown cell "your answer", so the copy still runs top to
bottom: the method's own checks stay, only the answers go. The teacher's copy is the notebook executed at its
defaults: the newest one ``workbench notebook`` (``make run``) wrote under ``runs/notebooks/`` when it is newer than
the source, otherwise executed now.
"""
from __future__ import annotations

import shutil
from pathlib import Path

SOLUTION_TAG = "solution"
ANSWER_PROMPT = "**Your answer:** write the code that answers the exercise above, and a sentence with the answer."

STUDENT_README = """# {title}

One notebook per method: the problem, its equations and pictures, a run of the method, checks against ground
truth, and exercises at the end. Answer each exercise in the empty cell under "Your answer".

## Install the workbench (once)

In a copy of the workbench repository (your teacher says where to get it), on Linux or macOS with Python 3.11:

    make install            # a virtual environment in .venv with everything the notebooks need; a CPU is enough

## Open the notebooks

    .venv/bin/jupyter lab {folder}

Run each notebook top to bottom (Run > Run All Cells): at its defaults it takes about a minute on a laptop CPU.
The panels (widgets with sliders and a Run button) need the running notebook: change a parameter there to explore
an exercise, then write the code and your answer in the cells under it.

The notebooks: {notebooks}.
"""


def is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_copy(notebook):
    """A copy of ``notebook`` (nbformat, version 4) with outputs cleared and every ``solution`` cell replaced by a
    markdown cell with :data:`ANSWER_PROMPT` and an empty code cell; ``notebook`` itself is not changed."""
    import nbformat

    copy = nbformat.reads(nbformat.writes(notebook), as_version=4)
    cells = []
    for cell in copy.cells:
        if is_solution(cell):
            cells += [nbformat.v4.new_markdown_cell(ANSWER_PROMPT), nbformat.v4.new_code_cell("")]
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    copy.cells = cells
    return copy


def executed_copy(name: str, runs_dir: Path) -> Path | None:
    """The newest notebook of experiment ``name`` that ``workbench notebook`` executed under ``runs_dir/notebooks``,
    newer than the source notebook and run to its end without an error (a run that failed, or was killed, leaves its
    notebook there too); None when there is none."""
    import nbformat

    from workbench.runner import notebook_path

    source_time = notebook_path(name).stat().st_mtime
    executed = sorted((path for path in (runs_dir / "notebooks").glob(f"{name}-*.ipynb")
                       if path.stat().st_mtime > source_time), key=lambda path: path.stat().st_mtime, reverse=True)
    for path in executed:
        run = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        if run.get("end_time") and not run.get("exception"):
            return path
    return None


def write_handout(out_dir: str | Path, names: list[str], runs_dir: str | Path = "runs", execute=None) -> dict:
    """Write ``out_dir/student/<name>.ipynb``, ``out_dir/teacher/<name>.ipynb`` and ``out_dir/README.md``.

    A teacher's copy is the executed notebook from ``runs_dir`` (:func:`executed_copy`) or, when there is none,
    ``execute(name)``, which returns the path of a notebook executed at its defaults. Returns {name: where the
    teacher's copy came from}."""
    import nbformat

    from workbench.runner import notebook_path

    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    for folder in ("student", "teacher"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    sources = {}
    for name in names:
        notebook = nbformat.read(notebook_path(name), as_version=4)
        nbformat.write(student_copy(notebook), out_dir / "student" / f"{name}.ipynb")
        executed = executed_copy(name, runs_dir) or execute(name)
        shutil.copyfile(executed, out_dir / "teacher" / f"{name}.ipynb")
        sources[name] = str(executed)
    readme = STUDENT_README.format(title="workbench: the course notebooks", folder=(out_dir / "student").resolve(),
                                   notebooks=", ".join(f"student/{name}.ipynb" for name in names))
    (out_dir / "README.md").write_text(readme)
    return sources

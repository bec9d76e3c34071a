"""The course site: the method notebooks, executed at their defaults, as a static site that opens offline.

``python -m workbench.book`` (what ``make book`` runs):

1. takes each method notebook executed at its defaults: the newest one ``workbench notebook`` (``make run``) wrote
   under ``runs/notebooks/`` when it is newer than its source and ran to its end (:func:`workbench.handout.executed_copy`), else
   executes it now (recorded in the run store, as ``workbench notebook`` records it);
2. makes a chapter of each (:func:`chapter`): Plotly figures become HTML drawn by a local ``plotly.min.js``; outputs
   that need a live kernel (Panel's and Bokeh's JavaScript, ipywidgets) go; where a panel stood, its final metrics
   figure and how to get the live panel (``make lab``); worked solutions (cells tagged ``solution``) fold behind
   "Show solution";
3. writes the chapters with ``book/index.md`` under ``book/_build/src`` and runs Sphinx (MyST-NB, the book theme,
   ``book/conf.py``) into ``book/_build/html``, every warning an error.

Nothing a page loads comes from the network: this module is also the Sphinx extension (:func:`setup`) that copies
plotly.js (from the plotly package) and MathJax 3 (from the ``django-static-mathjax`` package on PyPI) into the
site's ``_static``.
"""
from __future__ import annotations

import argparse
import itertools
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import nbformat

from workbench.handout import executed_copy, is_solution
from workbench.reporting import MIME_TYPE as REPORT_MIME
from workbench.reporting import read_reports

BOOK_DIR = Path(__file__).resolve().parents[1] / "book"
SOLUTION_PROMPTS = {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
PLOTLY_MIME = "application/vnd.plotly.v1+json"
PANEL_MIME = "application/vnd.holoviews_exec.v0+json"
# outputs that run in a live front end (Panel's and Bokeh's loaders and views, ipywidgets, raw JavaScript), and the
# workbench report's JSON, which the driver reads (its text/plain stays)
DROPPED_MIMES = ("application/javascript", "application/vnd.holoviews_load.v0+json", PANEL_MIME,
                 "application/vnd.bokehjs_load.v0+json", "application/vnd.bokehjs_exec.v0+json",
                 "application/vnd.jupyter.widget-view+json", REPORT_MIME)
PANEL_NOTE = ("**The live panel** (parameter form, Run / Stop, live figures) needs a running notebook: `make lab` "
              "opens the notebooks in JupyterLab. Here, the panel's live metrics figure as it stands at the end of "
              "a run at this notebook's settings:")
NBVAL_MARKER = re.compile(r"^# NBVAL_[A-Z_]+\n", re.MULTILINE)  # nbval's cell markers: for the tests, not readers
# MathJax 3, TeX in, SVG out (no font files to load), every TeX extension built in; its menu loads ui/, a11y/ and sre/
# when a reader turns its accessibility options on
MATHJAX_FILES = ("tex-svg-full.js", "ui", "a11y", "sre")


def plotly_html(figure: dict[str, Any], div_id: str) -> str:
    """The HTML of a Plotly figure (its JSON, as the ``application/vnd.plotly.v1+json`` output holds it), drawn by
    the page's own ``plotly.min.js``: no CDN."""
    import plotly.io

    return plotly.io.to_html({"data": figure.get("data", []), "layout": figure.get("layout", {})},
                             config=figure.get("config"), include_plotlyjs=False, full_html=False,
                             default_height="525px", div_id=div_id)


def is_panel(cell) -> bool:
    """Whether the cell displayed a Panel object (its output: Panel's view beside a text/plain repr; the outputs of
    ``pn.extension()`` carry no text/plain)."""
    return any(PANEL_MIME in output.get("data", {}) and "text/plain" in output["data"] for output in cell.outputs)


def static_outputs(outputs: list, figure_id: Callable[[], str]) -> list:
    """``outputs`` without what needs a live front end: a Plotly figure becomes its HTML, a progress-bar widget
    keeps its text, Panel's and Bokeh's loaders and views and any HTML with a script go, and so do the outputs
    left empty."""
    kept = []
    for output in outputs:
        if output.output_type in ("stream", "error"):
            kept.append(output)
            continue
        data = {mime: value for mime, value in output.get("data", {}).items() if mime not in DROPPED_MIMES}
        if "<script" in str(data.get("text/html", "")):
            data.pop("text/html")  # its script expects the notebook's front end (Panel's styles, Bokeh's loaders)
        if PLOTLY_MIME in data:
            data = {"text/html": plotly_html(data.pop(PLOTLY_MIME), figure_id())}
        if data:
            output.data = data
            kept.append(output)
    return kept


def panel_outputs(name: str, report: dict[str, Any], figure_id: Callable[[], str]) -> list:
    """What stands where the live panel of experiment ``name`` stood: :data:`PANEL_NOTE` and the figure of the
    panel's live metrics (``live_figure`` of the headline metrics, as the panel draws them) from the curves the
    notebook reported."""
    from workbench.experiment import get
    from workbench.panels.base import default_metrics, live_figure

    outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": PANEL_NOTE})]
    curves = report.get("curves", {})
    if curves:
        figure = live_figure(curves, default_metrics(list(curves), get(name).headline), f"{name}: live metrics")
        outputs.append(nbformat.v4.new_output("display_data", data={"text/html": plotly_html(figure, figure_id())}))
    return outputs


def chapter(notebook, name: str):
    """The chapter of experiment ``name`` made from its executed ``notebook`` (nbformat 4, left unchanged): see the
    module's docstring, step 2."""
    copy = nbformat.reads(nbformat.writes(notebook), as_version=4)
    copy.metadata.pop("widgets", None)  # no widget state: MyST-NB then loads no widget manager from a CDN
    numbers = itertools.count(1)

    def figure_id() -> str:  # the same from one build to the next
        return f"{name}-figure-{next(numbers)}"

    for cell in (c for c in copy.cells if c.cell_type == "code"):
        cell.source = NBVAL_MARKER.sub("", cell.source)
        if is_panel(cell):
            cell.outputs = panel_outputs(name, read_reports(notebook), figure_id)
        else:
            cell.outputs = static_outputs(cell.outputs, figure_id)
        if is_solution(cell):
            cell.metadata.setdefault("tags", []).append("hide-cell")
            cell.metadata["mystnb"] = {**cell.metadata.get("mystnb", {}), **SOLUTION_PROMPTS}
    return copy


def write_sources(src: Path, names: list[str], runs_dir: Path, execute: Callable[[str], Path]) -> dict[str, str]:
    """Write ``src/index.md`` (from ``book/index.md``) and ``src/chapters/<name>.ipynb`` for each of ``names``, from
    the finished run in ``runs_dir`` (:func:`workbench.handout.executed_copy`) or ``execute(name)``; returns {name: the executed
    notebook it came from}."""
    chapters = src / "chapters"
    shutil.rmtree(chapters, ignore_errors=True)  # a notebook removed since the last build leaves no chapter
    chapters.mkdir(parents=True)
    shutil.copyfile(BOOK_DIR / "index.md", src / "index.md")
    sources = {}
    for name in names:
        executed = executed_copy(name, runs_dir) or execute(name)
        nbformat.write(chapter(nbformat.read(executed, as_version=4), name), chapters / f"{name}.ipynb")
        sources[name] = str(executed)
    return sources


def sphinx_build(src: Path, out: Path) -> int:
    """Sphinx's HTML build of ``src`` with ``book/conf.py`` into ``out/html`` (doctrees in ``out/doctrees``); every
    warning is an error, all of them reported. Returns Sphinx's exit code."""
    from sphinx.cmd.build import build_main

    return build_main(["-b", "html", "-c", str(BOOK_DIR), "-d", str(out / "doctrees"), "--fail-on-warning",
                       "--keep-going", "-q", str(src), str(out / "html")])


def build(out: Path, names: list[str], runs_dir: Path, execute: Callable[[str], Path]) -> int:
    """The whole site: sources under ``out/src``, HTML under ``out/html``; returns Sphinx's exit code."""
    sources = write_sources(out / "src", names, runs_dir, execute)
    for name, source in sources.items():
        print(f"{name}: chapter from {source}", file=sys.stderr)
    return sphinx_build(out / "src", out)


def copy_static(app, exception) -> None:
    """Sphinx ``build-finished``: put plotly.js and the MathJax files the pages load into the site's ``_static``."""
    if exception is not None or app.builder.format != "html":
        return
    import mathjax
    import plotly

    static = Path(app.outdir) / "_static"
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    for entry in MATHJAX_FILES:
        target = static / "mathjax" / entry
        if (es5 / entry).is_dir():
            shutil.copytree(es5 / entry, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(es5 / entry, target)


def setup(app) -> dict[str, Any]:
    """The Sphinx extension (``extensions`` in book/conf.py): the site's JavaScript comes with it."""
    app.connect("build-finished", copy_static)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs", type=Path,
                        help="where `workbench notebook` (make run) wrote executed notebooks: the newest, when newer "
                             "than its source and run to its end, is reused (default: runs)")
    parser.add_argument("--out", default=BOOK_DIR / "_build", type=Path,
                        help="the sources go to OUT/src, the site to OUT/html (default: book/_build)")
    args = parser.parse_args(argv)

    from workbench.runner import notebook_names, run_notebook

    def execute(name: str) -> Path:
        print(f"{name}: no finished run of its notebook newer than its source in {args.runs}: executing it at its "
              "defaults (about a minute)", file=sys.stderr)
        return run_notebook(name, {}, output_dir=args.runs, store=True, progress=True)[1]

    names = notebook_names()
    code = build(args.out, names, args.runs, execute)
    if code == 0:
        print(f"the course site: {(args.out / 'html' / 'index.html').resolve()}")
    return code


if __name__ == "__main__":
    sys.exit(main())

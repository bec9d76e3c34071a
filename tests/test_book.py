"""`make book`: the course site. Chapters made from executed notebooks (Plotly figures drawn by a local plotly.js,
outputs that need a live kernel gone, a panel's final figure and how to get it live, solutions folded), and the
built site opened from disk in headless Chromium with every request that leaves the machine blocked."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbench.book import PANEL_NOTE, PLOTLY_MIME, chapter, write_sources
from workbench.reporting import MIME_TYPE as REPORT_MIME

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
v4 = nbformat.v4


def output(kind: str = "display_data", **data):
    return v4.new_output(kind, data=data, **({"execution_count": 1} if kind == "execute_result" else {}))


def executed_notebook():
    """An executed notebook with the outputs the method notebooks have: Panel's extension, a progress-bar widget, a
    workbench report with curves, a Plotly figure, a displayed panel, a worked solution."""
    panel_view = {"application/vnd.holoviews_exec.v0+json": "", "text/html": "<div id='p1'></div><script>x</script>"}
    imports = v4.new_code_cell("import panel as pn\npn.extension('plotly')", outputs=[
        output(**{"text/html": '<script type="esms-options">{"shimMode": true}</script><style>*{}</style>'}),
        output(**{"application/javascript": "bokeh()", "application/vnd.holoviews_load.v0+json": "bokeh()"}),
        output(**panel_view)])
    curves = {"cbw2_uvp": {"step": [10, 20], "value": [3.0, 1.0]}, "loss": {"step": [10, 20], "value": [5.0, 4.0]}}
    run = v4.new_code_cell("result = workbench.execute(experiment)", outputs=[
        output(**{"application/vnd.jupyter.widget-view+json": {"model_id": "m1"}, "text/plain": "lightsb: 100%"}),
        output(**{REPORT_MIME: {"experiment": "lightsb", "metrics": {"cbw2_uvp": 1.0}, "curves": curves},
                  "text/plain": "workbench report: cbw2_uvp = 1"})])
    figure = {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4], "name": "the trace"}], "layout": {"height": 300}}
    plot = v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nfigure", outputs=[output(**{PLOTLY_MIME: figure})])
    panel = v4.new_code_cell("ExperimentPanel(experiment)",
                             outputs=[output("execute_result", **panel_view, **{"text/plain": "ExperimentPanel()"})])
    solution = v4.new_code_cell("answer = 1 + 1\nprint(answer)\nassert answer == 2", metadata={"tags": ["solution"]},
                                outputs=[v4.new_output("stream", name="stdout", text="2\n")])
    notebook = v4.new_notebook(cells=[v4.new_markdown_cell("# A method\n\n$x^2$"), imports, run, plot, panel,
                                      solution])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return notebook


def test_a_chapter_keeps_what_a_page_can_show_without_a_kernel():
    notebook = executed_notebook()
    before = nbformat.writes(notebook)
    markdown, imports, run, plot, panel, solution = chapter(notebook, "lightsb").cells
    assert nbformat.writes(notebook) == before  # the executed notebook is not changed
    assert imports.outputs == []  # Panel's styles, loaders and views run only in a live front end
    assert [o.data for o in run.outputs] == [{"text/plain": "lightsb: 100%"},
                                             {"text/plain": "workbench report: cbw2_uvp = 1"}]
    [figure] = plot.outputs
    assert list(figure.data) == ["text/html"] and plot.source == "figure"  # nbval's marker is not for readers
    html = figure.data["text/html"]
    assert 'Plotly.newPlot(' in html and '"the trace"' in html and 'id="lightsb-figure-1"' in html
    assert "<script src" not in html and "cdn" not in html.lower()  # drawn by the page's own plotly.js
    assert markdown == notebook.cells[0] and solution.outputs == notebook.cells[5].outputs


def test_a_panel_shows_its_final_metrics_figure_and_how_to_get_it_live():
    panel = chapter(executed_notebook(), "lightsb").cells[4]
    note, figure = panel.outputs
    assert note.data == {"text/markdown": PANEL_NOTE} and "`make lab`" in PANEL_NOTE
    html = figure.data["text/html"]
    assert '"cbw2_uvp"' in html and '"loss"' not in html  # the panel's default: lightsb's headline metrics
    assert '"lightsb: live metrics"' in html and 'id="lightsb-figure-2"' in html


def test_a_panel_without_reported_curves_keeps_only_the_note():
    notebook = executed_notebook()
    notebook.cells[2].outputs = notebook.cells[2].outputs[:1]  # no workbench report
    assert [o.data for o in chapter(notebook, "lightsb").cells[4].outputs] == [{"text/markdown": PANEL_NOTE}]


def test_a_worked_solution_folds_behind_show_solution_and_no_widget_state_is_left():
    book = chapter(executed_notebook(), "lightsb")
    solution = book.cells[5]
    assert solution.metadata.tags == ["solution", "hide-cell"]
    assert solution.metadata.mystnb == {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
    assert [c.metadata.get("tags", []) for c in book.cells[:5]] == [[]] * 5
    assert "widgets" not in book.metadata  # MyST-NB would load a widget manager from a CDN for it
    nbformat.validate(book)


def fake_executed(runs: Path, name: str, exception: bool = False) -> Path:
    """A notebook as `workbench notebook` writes it under runs/notebooks, newer than its source; ``exception``: one of
    its cells raised."""
    path = runs / "notebooks" / f"{name}-20261207-120000-1.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    notebook = v4.new_notebook(cells=[v4.new_markdown_cell(f"# executed {name}")])
    notebook.metadata["papermill"] = {"end_time": "2026-12-07T12:01:00", "exception": exception or None}
    nbformat.write(notebook, path)
    return path


def test_the_sources_are_the_index_and_one_chapter_per_notebook_from_finished_runs_or_executed_now(tmp_path):
    runs, src = tmp_path / "runs", tmp_path / "src"
    reused = fake_executed(runs, "lightsb")
    fake_executed(runs, "spd_normalization", exception=True)  # a failed run is no chapter: executed again
    elsewhere = fake_executed(tmp_path / "elsewhere", "koopman")
    (src / "chapters").mkdir(parents=True)
    (src / "chapters" / "removed_method.ipynb").write_text("{}")  # a chapter left by an earlier build
    executed = []

    def execute(name):
        executed.append(name)
        return elsewhere

    sources = write_sources(src, ["lightsb", "koopman", "spd_normalization"], runs, execute)
    assert executed == ["koopman", "spd_normalization"]
    assert sources == {"lightsb": str(reused), "koopman": str(elsewhere), "spd_normalization": str(elsewhere)}
    assert sorted(p.name for p in (src / "chapters").iterdir()) == ["koopman.ipynb", "lightsb.ipynb",
                                                                   "spd_normalization.ipynb"]
    assert nbformat.read(src / "chapters" / "koopman.ipynb", as_version=4).cells[0].source == "# executed koopman"
    index = (src / "index.md").read_text()
    assert index == (ROOT / "book" / "index.md").read_text() and "chapters/*" in index and "make lab" in index


# ---- the built site in headless Chromium ----

TIMEOUT_MS = 60_000
@pytest.fixture(scope="module")
def site(tmp_path_factory, executed_at_overrides):
    """`python -m workbench.book` (what `make book` runs) over the notebooks executed at the small settings of
    notebook_cases.OVERRIDES (the session's runs that the papermill test checks), left under runs/notebooks as
    `make run` leaves them: the site's folder."""
    pytest.importorskip("myst_nb", reason="the book extra is not installed: pip install -e '.[book]' (make book)")
    from workbench.store import RunStore

    root = tmp_path_factory.mktemp("book")
    (root / "runs" / "notebooks").mkdir(parents=True)
    pending = NAMES[::-1]  # the papermill test takes them in order: start at the other end, skip what it is running
    while pending:
        shared = {name: executed_at_overrides(name, wait=False) for name in pending}
        if not any(shared.values()):  # every one left is running on the other worker: wait for the first
            shared[pending[0]] = executed_at_overrides(pending[0])
        for name, (store, run_id) in ((name, run) for name, run in shared.items() if run):
            # copied now: newer than its source, as a run made after the last edit is
            shutil.copy(RunStore(store).load(run_id).notebook, root / "runs" / "notebooks")
            pending.remove(name)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "workbench.book", "--runs", str(root / "runs"), "--out",
                           str(root / "_build")], capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    for name in NAMES:  # every chapter from the executed notebooks, none executed again
        assert f"{name}: chapter from {root / 'runs' / 'notebooks'}/{name}-" in done.stderr, done.stderr
    return root / "_build" / "html"


@pytest.fixture
def page(browser):
    """A page that records console errors and lets only requests for local files through (``page.blocked``)."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.errors, page.blocked = [], []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))

    def only_local(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            page.blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    yield page
    page.close()


RAW_TEX = re.compile(r"\$[^$\n]+\$|\\\(|\\\[")  # $...$, \( or \[ left in the text: an equation MathJax did not typeset
# the article's text that is neither code nor typeset math nor a figure: where raw TeX would show
PROSE = """() => {
    const article = document.querySelector('article').cloneNode(true);
    article.querySelectorAll('pre, code, mjx-container, .js-plotly-plot, script').forEach(node => node.remove());
    return article.innerText;
}"""


@pytest.mark.browser
@pytest.mark.timeout(1800)  # the first test builds the site: five notebooks executed, then Sphinx
def test_the_index_lists_every_notebook_as_a_chapter(site, page):
    from playwright.sync_api import expect

    page.goto((site / "index.html").as_uri())
    expect(page.get_by_role("heading", name="The methods")).to_be_visible()
    chapters = page.locator("article .toctree-wrapper a.reference")
    expect(chapters).to_have_count(len(NAMES))
    assert sorted(Path(href).stem for href in chapters.evaluate_all("links => links.map(a => a.href)")) == NAMES
    assert (page.errors, page.blocked) == ([], [])


@pytest.mark.browser
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", NAMES)
def test_a_chapter_draws_its_figures_typesets_its_equations_and_opens_its_solutions_offline(site, page, name):
    from playwright.sync_api import expect

    page.goto((site / "chapters" / f"{name}.html").as_uri())
    figures = page.locator("article .plotly-graph-div")
    assert figures.count() >= 1
    expect(page.locator("article .js-plotly-plot svg.main-svg").first).to_be_visible()
    page.wait_for_function("""() => [...document.querySelectorAll('article .plotly-graph-div')]
                                    .every(div => div.querySelector('svg.main-svg'))""")  # every figure drew
    equations = page.locator("article .math")
    assert equations.count() >= 1
    page.wait_for_function("""() => [...document.querySelectorAll('article .math')]
                                    .every(math => math.querySelector('mjx-container'))""")  # every one typeset
    assert page.locator("article mjx-container [data-mjx-error], article mjx-merror").count() == 0
    prose = page.evaluate(PROSE)
    assert [prose[max(0, raw.start() - 80):raw.end()] for raw in RAW_TEX.finditer(prose)] == []
    solution = page.locator("details", has=page.locator("summary", has_text="Show solution")).first
    expect(solution.locator(".cell_input")).to_be_hidden()
    solution.locator("summary").click()
    expect(solution).to_have_attribute("open", "")
    expect(solution.locator(".cell_input")).to_be_visible()
    expect(solution.locator(".cell_input")).to_contain_text("assert")
    assert (page.errors, page.blocked) == ([], [])

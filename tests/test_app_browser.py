"""`workbench serve` in headless Debian Chromium: every page loads cleanly, a run launched from a page shows
its live plot and formatted results and appears on the Runs page, selected runs are compared, figures
save as SVG, a run's metrics download as CSV."""
from __future__ import annotations

import importlib
import pkgutil
import re
import sys

import pytest
from support import free_port, served

import workbench

# the app's experiment pages: the bundled experiments, one module each in workbench.labs
BUNDLED = [m.name for m in pkgutil.iter_modules(importlib.import_module("workbench.labs").__path__)]

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
QUADRATIC = {"task": "quadratic", "steps": 40, "optimizers": ["adamw", "lion"]}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The served app over a store holding two optimizers runs that differ by lr; yields (its base URL, the URL
    it printed, with its token)."""
    root = tmp_path_factory.mktemp("app")
    db = root / "runs" / "workbench.db"
    for lr in (0.01, 0.05):
        workbench.run("optimizers", store=db, lr=lr, **QUADRATIC)
    port = free_port()
    with served([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port)], root, root / "serve.log",
                WORKBENCH_DB=str(db)) as (_, printed):
        yield f"http://127.0.0.1:{port}", printed


@pytest.fixture
def page(browser, app):
    """A fresh browser page (no cookie) logged in through the URL the app printed, as a person would."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(app[1])
    expect(page.get_by_role("link", name="Runs").first).to_be_visible()  # in: the token's cookie is set
    yield page
    page.close()


def test_the_app_refuses_a_browser_without_the_token(browser, app):
    page = browser.new_page()
    try:
        for route in ("", "runs"):
            assert page.goto(f"{app[0]}/{route}").status == 403
    finally:
        page.close()


def wait_until_tables_take_updates(page) -> None:
    """Wait until every Tabulator of the page has finished building: until then Panel's Tabulator view drops the
    data the server sends (``setData`` returns early while ``_initializing`` or ``_building``, panel/models/
    tabulator.ts), so a filter applied sooner would leave the old rows for ever."""
    page.wait_for_function("""() => {
        const tables = [...Bokeh.index.all_views()].filter(view => view.tabulator !== undefined);
        return tables.length > 0 && tables.every(view => view.tabulator.initialized && !view._initializing
                                                         && !view._building);
    }""")


def filter_status(page, status: str, shown, tries: int = 3) -> None:
    """Pick ``status`` in the Runs page's filter until ``shown()`` (an ``expect``) passes. In a fresh-clone
    `make test` on a loaded 2-core machine, the table kept its 3 old rows for 60 s after the first pick although
    the page had finished building: the server's new data never reached the table. Picking again (through
    another status) sends it again; each try waits 15 s. Known, not fixed: see the Runs page in the closing note."""
    for attempt in range(tries):
        if attempt:
            page.get_by_label("status").select_option("all")
        page.get_by_label("status").select_option(status)
        try:
            shown()
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def wait_for_camera_format(page, figure, format: str) -> None:
    """Wait until ``figure``'s camera button saves ``format``: the switch goes to the server, which sends the
    figure's new config back."""
    figure.locator(".main-svg").first.wait_for(state="attached")
    page.wait_for_function("([div, format]) => div._context?.toImageButtonOptions?.format === format",
                           arg=[figure.element_handle(), format])


def test_every_page_loads_without_console_errors(app, page):
    from playwright.sync_api import expect

    url, _ = app
    routes = ["", *BUNDLED, "runs"]
    for route in routes:
        page.goto(f"{url}/{route}")
        expect(page.get_by_role("link", name="Runs").or_(page.get_by_text("Runs", exact=True)).first).to_be_visible()
        if route == "runs":
            expect(page.locator(".tabulator-row").first).to_be_visible()
        elif route:
            expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()
        else:
            for name in BUNDLED:
                expect(page.get_by_role("link", name=name).first).to_be_visible()
        page.wait_for_timeout(300)
        assert page.errors == [], f"/{route}: {page.errors}"


def test_an_optimizers_run_shows_live_plot_formatted_results_and_reaches_the_runs_page(app, page):
    from playwright.sync_api import expect

    url, _ = app
    page.goto(f"{url}/optimizers")
    page.get_by_label("Task").select_option("quadratic")
    steps = page.get_by_label("Steps", exact=True)
    steps.fill("60")
    steps.press("Enter")
    page.wait_for_timeout(300)  # the value reaches the server
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("status: finished")).to_be_visible()

    live = page.locator(".js-plotly-plot").first  # one figure: every optimizer's distance, the headline metric
    expect(live.locator(".scatterlayer .trace")).to_have_count(len(workbench.configure("optimizers").optimizers))
    expect(live.locator(".legendtext", has_text="adamw.distance")).to_be_visible()
    items = page.locator("table", has_text="state_bytes")
    expect(items).to_be_visible()
    state_bytes = items.locator("tbody tr").all_inner_texts()
    assert state_bytes and all(re.search(r"\d+(\.\d+)? (B|KiB|MiB)", row) for row in state_bytes), state_bytes
    assert not re.search(r"\d+\.\d{6}\b", items.inner_text()), "raw six-decimal floats in the results table"

    page.get_by_role("button", name="svg").click()  # the camera button now saves SVG
    wait_for_camera_format(page, live, "svg")
    live.hover()
    with page.expect_download() as download:
        live.locator(".modebar-btn[data-title^='Download plot']").click()
    assert download.value.suggested_filename == "optimizers-metrics.svg"

    page.goto(f"{url}/runs")
    newest = page.locator(".tabulator-row").first
    expect(newest).to_contain_text("optimizers")
    expect(newest).to_contain_text(re.compile(r"distance: adamw \d"))
    assert page.errors == []


def test_two_selected_runs_are_compared_and_the_last_opens_with_a_csv_download(app, page):
    from playwright.sync_api import expect

    url, _ = app
    page.goto(f"{url}/runs")
    rows = page.locator(".tabulator-row", has_text="distance: adamw")
    expect(rows.nth(1)).to_be_visible()
    wait_until_tables_take_updates(page)
    filter_status(page, "failed", lambda: expect(page.locator(".tabulator-row")).to_have_count(0, timeout=15_000))
    filter_status(page, "finished", lambda: expect(rows.nth(1)).to_be_visible(timeout=15_000))
    first = int(rows.nth(0).locator(".tabulator-cell[tabulator-field='run']").inner_text())
    rows.nth(0).locator("input[type='checkbox']").click()
    expect(page.get_by_text(f"Run {first}: optimizers, finished")).to_be_visible()  # one ticked: it opens
    rows.nth(1).locator("input[type='checkbox']").click()
    expect(page.get_by_text("2 runs compared")).to_be_visible()
    overlay = page.locator(".js-plotly-plot", has_text="during the runs")
    expect(overlay.locator(".scatterlayer .trace")).to_have_count(2)
    expect(page.locator(".js-plotly-plot .parcoords")).to_have_count(1)

    opened = int(rows.nth(1).locator(".tabulator-cell[tabulator-field='run']").inner_text())
    expect(page.get_by_text(f"Run {opened}: optimizers, finished")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download metrics (CSV)").click()
    assert download.value.suggested_filename == f"run-{opened}-metrics.csv"
    lines = open(download.value.path()).read().splitlines()
    assert lines[0] == "metric,step,value" and any(line.startswith("adamw.distance,final,") for line in lines)
    assert page.errors == []

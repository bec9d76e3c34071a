"""`workbench serve` in headless Debian Chromium: every page loads cleanly, a run launched from a page shows
its live plot and formatted results and appears on the Runs page, selected runs are compared, figures
save as SVG, a run's metrics download as CSV."""
from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys

import pytest
from support import free_port, stop_process, subprocess_env, wait_http

import workbench

# the app's experiment pages: the bundled experiments (workbench.experiments, the attribute, is the function)
BUNDLED = [m.name for m in pkgutil.iter_modules(importlib.import_module("workbench.experiments").__path__)]

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
QUADRATIC = {"task": "quadratic", "steps": 40, "optimizers": ["adamw", "lion"]}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The served app over a store holding two optimizers runs that differ by lr; yields (url, store path)."""
    root = tmp_path_factory.mktemp("app")
    db = root / "runs" / "workbench.db"
    for lr in (0.01, 0.05):
        workbench.run("optimizers", store=db, lr=lr, **QUADRATIC)
    port, log = free_port(), root / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port)], cwd=root,
                                  stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(WORKBENCH_DB=str(db)))
    try:
        wait_http(f"http://127.0.0.1:{port}/", server, log=log)
        yield f"http://127.0.0.1:{port}", db
    finally:
        stop_process(server)


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)  # a busy 2-core machine: a run, or the first import, takes seconds
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    page.close()


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
    page.wait_for_timeout(500)
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

    url, db = app
    page.goto(f"{url}/runs")
    rows = page.locator(".tabulator-row", has_text="distance: adamw")
    expect(rows.nth(1)).to_be_visible()
    page.get_by_label("status").select_option("failed")  # the filter: no failed run here
    expect(page.locator(".tabulator-row")).to_have_count(0)
    page.get_by_label("status").select_option("finished")
    expect(rows.nth(1)).to_be_visible()
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

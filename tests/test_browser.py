"""Real-browser tests: a served panel and JupyterLab, in headless Debian Chromium via Playwright.

Run with ``pytest -m browser tests/test_browser.py``. Never ``playwright install``: the browser is
Debian's ``/usr/bin/chromium``. ``WORKBENCH_SCREENSHOT=path.png`` saves the served panel after a run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from support import chromium_or_skip, free_port, served, stop_process, subprocess_env, wait_http

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TIMEOUT_MS = 60_000

# A toy experiment for the browser, with a live picture, importable by the served app and a kernel.
TOY_MODULE = textwrap.dedent('''
    import time
    import param
    from workbench.experiment import Event, Experiment, Result, register
    from workbench.panels import register_plot

    @register
    class BrowserToy(Experiment):
        """Toy for browser tests: x <- (1 - lr) x, loss = x^2 / 2."""

        name = param.String("browser_toy", constant=True)
        steps = param.Integer(40, bounds=(1, 1_000_000), doc="Steps.")
        lr = param.Number(0.1, bounds=(0, 1), inclusive_bounds=(False, True), doc="Step size.")
        delay = param.Number(0.02, bounds=(0, 1), doc="Seconds per step.")

        def run(self, progress, stop):
            x, step = 1.0, 0
            for step in range(1, self.steps + 1):
                if stop.is_set():
                    break
                x *= 1 - self.lr
                progress(Event(step, self.steps, {"loss": 0.5 * x * x}, payload={"x": x}))
                time.sleep(self.delay)
            return Result(metrics={"x": x, "steps_done": step})

    def toy_plot(event):
        return {"data": [{"type": "scatter", "mode": "markers", "x": [event.step], "y": [event.payload["x"]]}],
                "layout": {"title": {"text": f"x at step {event.step}"}}}

    register_plot("browser_toy", toy_plot)
''')


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("toy")
    (where / "browser_toy_module.py").write_text(TOY_MODULE)
    return where


def lightsb_available() -> bool:
    from workbench.experiment import experiments

    return "lightsb" in experiments()


# --- (a) a served panel --------------------------------------------------------------------------

def served_target() -> tuple[str, list[str], dict[str, str]]:
    """(experiment, serve CLI options, {'steps': long-run value}) — LightSB when it is there."""
    if lightsb_available():
        return "lightsb", ["-p", "steps=200"], {"steps": "100000"}
    return "browser_toy", ["--import", "browser_toy_module"], {"steps": "100000"}


def test_served_panel_run_and_stop(browser, toy_dir, tmp_path):
    from playwright.sync_api import expect

    from workbench.store import RunStore

    name, options, long_run = served_target()
    command = [sys.executable, "-m", "workbench.panels.serve", name, "--port", str(free_port()), *options]
    with served(command, tmp_path, tmp_path / "serve.log", WORKBENCH_DB=str(tmp_path / "runs.db"),
                PYTHONPATH=str(toy_dir)) as (_, url):
        page = browser.new_page(viewport={"width": 1300, "height": 1150})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)  # the printed URL, with its token
        run, stop = page.get_by_role("button", name="Run", exact=True), page.get_by_role("button", name="Stop", exact=True)
        expect(run).to_be_enabled()  # rendered: the websocket is connected
        expect(stop).to_be_disabled()
        picture = page.locator(".js-plotly-plot").nth(1)
        expect(picture).to_be_visible()
        before = picture.screenshot()

        run.click()
        expect(page.locator("progress")).to_have_attribute("value", "100", timeout=120_000)
        expect(page.get_by_text("status: finished")).to_be_visible()
        expect(run).to_be_enabled()
        expect(picture.locator(".scatterlayer .trace").first).to_be_attached()
        expect(page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer .trace").first).to_be_attached()
        assert changes(picture, before), "the live picture did not change"
        page.screenshot(path=os.environ.get("WORKBENCH_SCREENSHOT", str(tmp_path / "panel.png")))

        steps = page.get_by_label("Steps", exact=True)  # a long run, then Stop
        steps.fill(long_run["steps"])
        steps.press("Enter")
        page.wait_for_timeout(300)  # the value reaches the server
        run.click()
        expect(page.get_by_text("status: running")).to_be_visible()
        expect(stop).to_be_enabled()
        page.wait_for_timeout(500)
        stop.click()
        expect(page.get_by_text("stopped (Stop pressed)")).to_be_visible()  # before the final evaluation ends
        expect(run).to_be_enabled()
        page.close()
    runs = RunStore(tmp_path / "runs.db").list()
    assert [(r.experiment, r.status) for r in runs] == [(name, "finished"), (name, "stopped")]


def changes(element, before: bytes, timeout_s: float = 60) -> bool:
    """Whether ``element``'s screenshot differs from ``before`` within ``timeout_s`` (Plotly draws in frames)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if element.screenshot() != before:
            return True
        element.page.wait_for_timeout(200)
    return False


# --- (b) JupyterLab -----------------------------------------------------------------------------

TOY_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source":
         'import panel as pn\npn.extension("plotly", inline=True)\nimport browser_toy_module\n'
         "from workbench.panels import ExperimentPanel"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source":
         'ExperimentPanel("browser_toy", store="runs.db")'},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, toy_dir):
    """A JupyterLab (no token, news pop-up off, temporary config) over a copy of notebooks/."""
    chromium_or_skip()
    root = tmp_path_factory.mktemp("lab")
    notebook_dir = root / "notebooks"
    if NOTEBOOKS.is_dir():
        shutil.copytree(NOTEBOOKS, notebook_dir, ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
    notebook_dir.mkdir(exist_ok=True)
    shutil.copy(toy_dir / "browser_toy_module.py", notebook_dir)
    (notebook_dir / "browser_toy.ipynb").write_text(json.dumps(TOY_NOTEBOOK))
    settings = root / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    notebook_settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    notebook_settings.mkdir(parents=True)  # every cell in the DOM (no virtual scrolling), so all can be checked
    (notebook_settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, log = free_port(), root / "lab.log"
    env = subprocess_env(JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_DATA_DIR=str(root / "data"),
                         JUPYTER_RUNTIME_DIR=str(root / "runtime"), WORKBENCH_DB=str(root / "runs.db"),
                         PYTHONPATH=str(toy_dir))
    with log.open("w") as out:
        lab = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.token=",
             "--ServerApp.password=", f"--port={port}", f"--notebook-dir={notebook_dir}",
             f"--LabApp.user_settings_dir={root / 'settings'}", f"--LabApp.workspaces_dir={root / 'workspaces'}"],
            cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"http://localhost:{port}/api/status", lab, log=log)
        yield f"http://localhost:{port}", notebook_dir
    finally:
        stop_process(lab)


def run_all_cells(page, base: str, notebook: str, timeout_s: float):
    """Open ``notebook`` in a fresh layout, wait for its kernel, Run > Run All Cells, wait until every
    cell ran (failing early, with the error, when a cell raises: Run All stops there). Returns the
    notebook's panel (a locator) to look into."""
    from playwright.sync_api import expect

    page.goto(f"{base}/lab/tree/{notebook}?reset")  # ?reset: no tabs restored from an earlier test
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(panel).to_have_count(1)
    expect(page.get_by_role("tab", name=notebook).first).to_be_visible()
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()  # the kernel is connected
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")  # textContent: off-screen cells too
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline = time.monotonic() + timeout_s
    page.wait_for_timeout(1000)
    while time.monotonic() < deadline:
        ran = all(re.search(r"\[\d+\]", t) for t in prompts.all_text_contents())
        if idle.count() and (ran or error_outputs(panel)):
            break
        page.wait_for_timeout(1000)
    else:
        shot = Path(tempfile.mkdtemp(prefix="workbench-lab-")) / "timeout.png"
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"cells not run after {timeout_s} s: prompts {prompts.all_text_contents()}, "
                             f"errors {error_outputs(panel)}; screenshot {shot}")
    assert error_outputs(panel) == []
    assert all(re.search(r"\[\d+\]", t) for t in prompts.all_text_contents()), prompts.all_text_contents()
    return panel


def error_outputs(scope) -> list[str]:
    texts = scope.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_text_contents()
    return [t for t in texts if "Traceback" in t or "Error" in t]


def shutdown_kernels(base: str) -> None:
    """End every kernel session (frees the CPU for the next test)."""
    with urllib.request.urlopen(f"{base}/api/sessions", timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}", method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except OSError:
            pass


def test_jupyterlab_toy_panel_renders_and_runs(browser, jupyterlab):
    from playwright.sync_api import expect

    from workbench.store import RunStore

    url, notebook_dir = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        notebook = run_all_cells(page, url, "browser_toy.ipynb", 60)
        expect(notebook.locator(".jp-OutputArea-output [data-root-id]").first).to_be_attached()
        run = notebook.locator(".jp-OutputArea-output").get_by_role("button", name="Run", exact=True)
        expect(run).to_be_enabled()
        run.click()  # the periodic refresh works in the kernel too
        expect(notebook.get_by_text("step 40 / 40")).to_be_visible()
        expect(notebook.get_by_text("status: finished")).to_be_visible()
    finally:
        page.close()
        shutdown_kernels(url)
    assert [r.status for r in RunStore(notebook_dir / "runs.db").list()] == ["finished"]


def test_jupyterlab_lightsb_notebook(browser, jupyterlab):
    from playwright.sync_api import expect

    url, notebook_dir = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        notebook = run_all_cells(page, url, "lightsb.ipynb", 300)
        expect(notebook.locator(".jp-OutputArea-output [data-root-id]").first).to_be_attached()
        run = notebook.locator(".jp-OutputArea-output").get_by_role("button", name="Run", exact=True)
        expect(run, "the panel did not render; offline, Panel's JS must be inlined: "
                    "pn.extension('plotly', inline=True)").to_be_visible(timeout=30_000)
    finally:
        page.close()
        shutdown_kernels(url)

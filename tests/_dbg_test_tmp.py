import sys
sys.path.insert(0, "/work/main/tests")
from test_browser import *  # noqa

def test_debug(browser, jupyterlab):
    from playwright.sync_api import expect
    url, nd = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60000)
    try:
        run_all_cells(page, f"{url}/lab/tree/lightsb.ipynb", 300)
    except AssertionError as e:
        print("ERR", str(e)[:300])
    print("roots", page.locator(".jp-OutputArea-output [data-root-id]").count())
    print("run buttons", page.locator(".jp-OutputArea-output").get_by_role("button", name="Run", exact=True).count())
    b = page.locator(".jp-OutputArea-output").get_by_role("button", name="Run", exact=True)
    if b.count():
        b.first.scroll_into_view_if_needed(); page.wait_for_timeout(1500)
    page.screenshot(path="/tmp/pw/lsbnb.png")

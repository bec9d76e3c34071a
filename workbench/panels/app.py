"""The served workbench: a page per registered experiment, a Runs page, and an index linking them.

    workbench serve                       # prints http://127.0.0.1:5006/?token=... ; runs -> $WORKBENCH_DB
    workbench serve --port 8080 --import my_experiments

Pages are built from the registry, so a new method (or one registered by ``--import``) gets its page
without touching this module. Every browser session gets its own panels; closing a tab stops its run.
The store's folder is served under ``/files`` so that the Runs page links to executed notebooks.
"""
from __future__ import annotations

from typing import Callable

import panel as pn

from workbench.experiment import experiments
from workbench.panels.base import ExperimentPanel, first_paragraph
from workbench.panels.runs import RunsPage
from workbench.store import RunStore

FILES_URL = "/files"


def navigation(names: list[str], current: str) -> pn.pane.Markdown:
    links = [f"**{label}**" if route == current else f"[{label}](/{route})"
             for route, label in [("", "workbench"), *((n, n) for n in names), ("runs", "Runs")]]
    return pn.pane.Markdown(" · ".join(links), sizing_mode="stretch_width")


def index_page(names: list[str]) -> pn.viewable.Viewable:
    rows = [f"- [**{name}**](/{name}): {' '.join(first_paragraph(cls.__doc__).split())}"
            for name, cls in experiments().items() if name in names]
    return pn.pane.Markdown("## Experiments\n" + "\n".join(rows)
                            + "\n\n## [Runs](/runs)\nEvery recorded run: filter, compare, open, download.")


def pages(store: RunStore) -> dict[str, Callable[[], pn.viewable.Viewable]]:
    """{route: function building the page for one browser session}: "/" (index), one per experiment, "runs"."""
    names = list(experiments())

    def page(route: str, body: Callable[[], pn.viewable.Viewable]) -> Callable[[], pn.viewable.Viewable]:
        return lambda: pn.Column(navigation(names, route), body(), sizing_mode="stretch_width")

    def experiment_page(name: str) -> pn.viewable.Viewable:
        panel = ExperimentPanel(name, store=store)
        pn.state.on_session_destroyed(lambda _context: panel.stop())
        return panel

    routes = {"/": page("", lambda: index_page(names))}
    routes |= {name: page(name, lambda name=name: experiment_page(name)) for name in names}
    routes["runs"] = page("runs", lambda: RunsPage(store, files_url=FILES_URL))
    return routes

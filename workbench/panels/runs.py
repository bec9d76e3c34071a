"""The Runs page of the served app: every recorded run, filtered; runs selected to compare; one opened.

    RunsPage(RunStore("runs/workbench.db"), files_url="/files")

- **Table**: run, experiment, status, sweep, start, duration and the headline metrics, filtered by
  experiment, status and sweep (Refresh reads the store again). A run whose process is gone shows as
  ``died``, with the curves and metrics it had reported.
- **Selected runs** (tick two or more): the comparison views of :mod:`workbench.compare`: the table of
  varying parameters and metrics, parallel coordinates, each metric against each varying parameter,
  and one recorded curve overlaid across the runs.
- **The last run ticked**, whole: parameters, formatted final metrics, its curves with a metric picker,
  a link to its executed notebook (served under ``files_url`` when it lies under the store's folder),
  and its metrics as a CSV download.
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn

from workbench import compare
from workbench.experiment import headline_summary
from workbench.panels.base import FigureFormat, default_metrics, live_figure
from workbench.panels.format import format_value, results_tables
from workbench.store import STATUSES, RunRecord, RunStore

ALL = "all"
MAX_PARAMETER_PLOTS = 2  # metric-versus-parameter figures shown for a selection (the report has them all)


RUNS_COLUMNS = {"run": "int64", **dict.fromkeys(("experiment", "status", "sweep", "started", "duration", "headline"), "str")}


def runs_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """The table of runs: one row per run, headline metrics in one compact column. The columns' dtypes do not depend
    on the rows: an empty table (a filter that matches nothing) with an object "run" column made Panel's Tabulator
    rebuild its columns, and the data sent while it rebuilt was dropped, leaving the old rows on the page."""
    return pd.DataFrame([{
        "run": run.id, "experiment": run.experiment, "status": run.status, "sweep": run.sweep_id or "",
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started_at)),
        "duration": "" if run.duration_s is None else format_value("duration", run.duration_s),
        "headline": headline_summary(run.experiment, run.metrics)} for run in runs],
        columns=list(RUNS_COLUMNS)).astype(RUNS_COLUMNS)


def metrics_csv(run: RunRecord) -> str:
    """A run's metrics as CSV: one row per recorded curve point (metric, step, value), then the final
    values with step "final"."""
    rows = [(name, step, value) for name, curve in run.curves.items()
            for step, value in zip(curve["step"], curve["value"])]
    rows += [(name, "final", value) for name, value in run.metrics.items()]
    return pd.DataFrame(rows, columns=["metric", "step", "value"]).to_csv(index=False)


def shown(views, *args) -> list[Any]:
    """``views(*args)``, or an alert saying why they could not be drawn (the page stays usable)."""
    try:
        return views(*args)
    except Exception as error:
        return [pn.pane.Alert(f"could not draw this view: {type(error).__name__}: {error}", alert_type="danger")]


class RunsPage(pn.viewable.Viewer):
    """The runs of ``store``; ``files_url`` is where the app serves the store's folder (executed notebooks)."""

    def __init__(self, store: RunStore, files_url: str | None = None, **params):
        super().__init__(**params)
        self.store, self.files_url = store, files_url
        self.figure_format = FigureFormat()
        self.experiment = pn.widgets.Select(label="experiment", options=[ALL], width=180)
        self.status = pn.widgets.Select(label="status", options=[ALL, *STATUSES], width=140)
        self.sweep = pn.widgets.Select(label="sweep", options=[ALL], width=200)
        self.refresh_button = pn.widgets.Button(label="Refresh", width=100)
        self.table = pn.widgets.Tabulator(runs_frame([]), selectable="checkbox", disabled=True, show_index=False,
                                          pagination="local", page_size=15, sizing_mode="stretch_width")
        self.comparison = pn.Column(sizing_mode="stretch_width")
        self.detail = pn.Column(sizing_mode="stretch_width")
        self.runs: list[RunRecord] = []
        for widget in (self.experiment, self.status, self.sweep):
            widget.param.watch(lambda _event: self.show_table(), "value")
        self.refresh_button.on_click(lambda _event: self.reload())
        self.table.param.watch(lambda _event: self.show_selection(), "selection")
        self.layout = pn.Column(
            pn.pane.Markdown("## Runs\nTick runs to compare them; the last one ticked opens below."),
            pn.Row(self.experiment, self.status, self.sweep, self.refresh_button,
                   pn.Column(pn.pane.Markdown("save figures as", margin=(0, 5)), self.figure_format.widget)),
            self.table, self.comparison, self.detail, sizing_mode="stretch_width")
        self.reload()

    def __panel__(self):
        return self.layout

    # --- the table ------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the store again; keep the filters that still apply."""
        self.all_runs = self.store.list()
        self.experiment.options = [ALL, *sorted({run.experiment for run in self.all_runs})]
        self.sweep.options = [ALL, *sorted({run.sweep_id for run in self.all_runs if run.sweep_id})]
        self.show_table()

    def show_table(self) -> None:
        wanted = {"experiment": self.experiment.value, "status": self.status.value, "sweep_id": self.sweep.value}
        self.runs = [run for run in reversed(self.all_runs)  # newest first
                     if all(value == ALL or getattr(run, key) == value for key, value in wanted.items())]
        self.table.selection = []
        self.table.value = runs_frame(self.runs)

    @property
    def selected(self) -> list[RunRecord]:
        return [self.runs[i] for i in self.table.selection if i < len(self.runs)]

    # --- what the selection shows ---------------------------------------------------------------
    def show_selection(self) -> None:
        runs = self.selected
        self.figure_format.panes.clear()
        self.comparison.objects = shown(self.comparison_views, runs) if len(runs) >= 2 else []
        self.detail.objects = shown(self.run_views, runs[-1]) if runs else []

    def comparison_views(self, runs: list[RunRecord]) -> list[Any]:
        metrics = compare.chosen_metrics(runs)
        table = compare.comparison_table(runs, metrics).drop(columns=["notebook"])
        for key in table.columns.drop(["run", "experiment", "status", "sweep"]):
            table[key] = [format_value(key, v) for v in table[key]]
        views = [pn.pane.Markdown(f"### {len(runs)} runs compared"),
                 pn.pane.DataFrame(table, index=False, sizing_mode="stretch_width")]
        curve_names = [name for name in dict.fromkeys(k for run in runs for k in run.curves)]
        if curve_names:
            headline = tuple(pattern for patterns in compare.headlines(runs) for pattern in patterns)
            picker = pn.widgets.Select(label="curve", options=curve_names,
                                       value=default_metrics(curve_names, headline)[0], width=240)
            overlay = self.figure_format.pane(compare.curves_comparison(runs, picker.value), "runs-curves",
                                              sizing_mode="stretch_width")
            picker.param.watch(lambda event: setattr(overlay, "object", compare.curves_comparison(runs, event.new)),
                               "value")
            views += [picker, overlay]
        if metrics:
            views.append(self.figure_format.pane(compare.parallel_coordinates(runs, metrics), "runs-parallel",
                                                 sizing_mode="stretch_width"))
            parameters = [p for p in compare.varying_parameters(runs) if p != "seed"][:MAX_PARAMETER_PLOTS]
            views += [self.figure_format.pane(compare.metric_vs_parameter(runs, metrics[0], p), f"runs-{metrics[0]}-{p}",
                                              sizing_mode="stretch_width") for p in parameters]
        return views

    def run_views(self, run: RunRecord) -> list[Any]:
        header = (f"### Run {run.id}: {run.experiment}, {run.status}\nstarted "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.started_at))}"
                  + (f", {format_value('duration', run.duration_s)}" if run.duration_s is not None else "")
                  + f", device {run.device or '?'}, commit {(run.git_commit or '?')[:10]}"
                  + (" (dirty)" if run.git_dirty else "") + (f", sweep {run.sweep_id}" if run.sweep_id else ""))
        views: list[Any] = [pn.pane.Markdown(header + self.notebook_link(run))]
        if run.error:
            views.append(pn.pane.Alert(f"error: {run.error[-2000:]}", alert_type="danger"))
        params = pd.DataFrame({"parameter": list(run.params), "value": [format_value(k, v) for k, v in run.params.items()]})
        scalars, per_item = results_tables(run.metrics)
        views.append(pn.Row(pn.pane.DataFrame(params, index=False, width=320),
                            pn.pane.DataFrame(scalars, index=False, width=320), sizing_mode="stretch_width"))
        if not per_item.empty:
            views.append(pn.pane.DataFrame(per_item, index=False, sizing_mode="stretch_width"))
        if run.curves:
            names = list(run.curves)
            picker = pn.widgets.MultiChoice(label="curves", options=names,
                                            value=default_metrics(names, sum(compare.headlines([run]), ())),
                                            sizing_mode="stretch_width")
            figure = live_figure(run.curves, picker.value, f"run {run.id}: curves")
            pane = self.figure_format.pane(figure, f"run-{run.id}-curves", height=figure["layout"]["height"],
                                           sizing_mode="stretch_width")

            def redraw(event, pane=pane):
                figure = live_figure(run.curves, event.new, f"run {run.id}: curves")
                pane.height, pane.object = figure["layout"]["height"], figure

            picker.param.watch(redraw, "value")
            views += [picker, pane]
        views.append(pn.widgets.FileDownload(callback=lambda: io.StringIO(metrics_csv(run)),
                                             filename=f"run-{run.id}-metrics.csv", label="Download metrics (CSV)",
                                             width=260))
        return views

    def notebook_link(self, run: RunRecord) -> str:
        if not run.notebook:
            return ""
        path, root = Path(run.notebook), self.store.path.parent.resolve()
        if self.files_url and path.is_absolute() and path.resolve().is_relative_to(root) and path.exists():
            return f"\n\nexecuted notebook: [{path.name}]({self.files_url}/{path.resolve().relative_to(root).as_posix()})"
        return f"\n\nexecuted notebook: `{run.notebook}`"

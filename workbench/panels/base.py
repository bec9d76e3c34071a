"""A generic Panel view of any registered experiment: form, Run/Stop, progress, live plots.

    import panel as pn
    from workbench.panels import ExperimentPanel
    pn.extension("plotly", inline=True)   # inline: Bokeh/Panel JS from the package, not a CDN (offline)
    ExperimentPanel("lightsb")            # in a notebook cell; or .servable() in a served script

The form is ``pn.Param`` on a *working copy* of the experiment's parameters: same types, choices,
docs and slider ranges, but without hard bounds, so any typed value reaches the working copy and
is validated once, by :func:`workbench.experiment.configure`, when Run is pressed. A bad value is
shown as an alert naming the parameter, the value and what is allowed; nothing is run or recorded.

The run happens in a daemon worker thread calling :func:`workbench.runner.execute`. The worker
never touches widgets: its progress callback only appends to :class:`LiveState` under a lock.
Widgets are refreshed from that state by a periodic callback (``pn.state.add_periodic_callback``,
started when Run is pressed, stopped after the final refresh). It runs on the Bokeh server's event
loop with the document lock held in a served app, and on the kernel's asyncio loop in JupyterLab,
so widgets are only ever changed from the UI side. Stop sets the run's
``threading.Event``; the experiment's loop checks it every step and the run is recorded as stopped.

Headless use (tests): ``panel.run()``, ``panel.stop()``, ``panel.wait()`` (joins the worker and
refreshes the widgets), then read ``panel.status``, ``panel.progress.value``, ``panel.alert`` ...
"""
from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import panel as pn
import param

from workbench.experiment import AUTO, ConfigError, Event, Experiment, Result, configure, get, matches_headline
from workbench.panels.format import axis_of, results_tables, split_item
from workbench.panels.plots import plot_for
from workbench.store import RunStore

PlotFn = Callable[[Event], Any]
TERMINAL = ("finished", "stopped", "failed")
MAX_CURVE_POINTS = 2000  # per metric, drawn (every point is still recorded in the store)
STOPPING = "stopped (Stop pressed) — finishing the last step and the final evaluation"


@dataclass
class LiveState:
    """What the worker thread reports, read by the UI under ``lock``. Plain data, no widgets."""

    status: str = "idle"  # idle | running | finished | stopped | failed | invalid
    step: int = 0
    total: int = 0
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    event: Event | None = None  # the latest event (its payload feeds the live picture)
    events: int = 0  # events seen in this run, to notice new ones
    result: Result | None = None
    error: str = ""
    run_id: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self, status: str = "running") -> None:
        with self.lock:
            self.status, self.step, self.total, self.curves = status, 0, 0, {}
            self.event, self.events, self.result, self.error, self.run_id = None, 0, None, "", None

    def on_event(self, event: Event) -> None:
        """The progress callback, called from the worker thread: record, never draw."""
        with self.lock:
            self.step, self.total, self.event = int(event.step), int(event.total), event
            self.events += 1
            for key, value in event.metrics.items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue  # only scalars are curves
                curve = self.curves.setdefault(key, {"step": [], "value": []})
                curve["step"].append(int(event.step))
                curve["value"].append(value)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"status": self.status, "step": self.step, "total": self.total, "event": self.event,
                    "events": self.events, "result": self.result, "error": self.error, "run_id": self.run_id,
                    "curves": {k: {"step": list(c["step"]), "value": list(c["value"])} for k, c in self.curves.items()}}


def working_copy(cls: type[Experiment], values: dict[str, Any] | None = None) -> param.Parameterized:
    """A Parameterized holding the experiment's parameters without hard bounds (kept as slider
    ranges), so the form accepts any value of the right type and ``configure`` judges it on Run."""
    params = {}
    spec = cls.param.objects("existing")
    common = [k for k in Experiment.param if k in spec]  # seed, device: shown after the method's own
    for key in [k for k in spec if k not in common] + common:
        p = spec[key]
        if key == "name":
            continue
        q = copy.copy(p)
        if getattr(p, "bounds", None) is not None and hasattr(p, "get_soft_bounds"):
            q.softbounds = p.get_soft_bounds()
            q.bounds = None
        q.constant = q.readonly = False
        params[key] = q
    form_cls = type(f"{cls.__name__}Form", (param.Parameterized,), params)
    copy_ = form_cls(name=cls.name)
    if values:
        copy_.param.update(**{k: v for k, v in values.items() if k in params})
    return copy_


def first_paragraph(doc: str | None) -> str:
    """The docstring's first paragraph, without the parameter table param appends (ANSI-coloured)."""
    return (doc or "").split("\x1b")[0].strip().split("\n\n")[0]


def _widget_overrides(values: param.Parameterized) -> dict[str, Any]:
    """Typed inputs instead of sliders where a slider would be useless: optional numbers (empty means
    "auto"), optional choices (an "auto" option that means None), wide integer ranges (seeds, step counts) and numbers whose default sits in the first percent
    of the range (ε in [1e-3, 100], learning rates in (0, 10])."""
    widgets = {}
    for key, p in values.param.objects("existing").items():
        if isinstance(p, param.Selector) and p.allow_None:  # empty means "auto" here too, shown as such
            widgets[key] = {"type": pn.widgets.Select, "options": {AUTO: None, **{str(o): o for o in p.objects}}}
            continue
        if not isinstance(p, param.Number) or isinstance(p, param.Boolean):
            continue
        kind = pn.widgets.IntInput if isinstance(p, param.Integer) else pn.widgets.FloatInput
        lo, hi = p.get_soft_bounds()
        if p.allow_None:
            widgets[key] = {"type": kind, "placeholder": AUTO}
            continue
        if lo is None or hi is None:
            continue  # pn.Param already picks a typed input
        wide = hi - lo > 1000 if isinstance(p, param.Integer) else p.default - lo < 0.01 * (hi - lo)
        if wide:
            widgets[key] = {"type": kind, "start": lo, "end": hi}
    return widgets


def live_figure(curves: dict[str, dict[str, list]], names: list[str], title: str = "metrics") -> dict[str, Any]:
    """One Plotly figure (a plain dict: no validation cost) of the metrics ``names`` against step: metrics
    with the same unit or kind (:func:`axis_of`: every loss, every accuracy, bytes...) share a y axis,
    one axis per group stacked over the shared step axis, one legend entry per metric."""
    groups: dict[str, list[str]] = {}
    for name in (n for n in names if n in curves):
        groups.setdefault(axis_of(split_item(name)[1]), []).append(name)
    n, gap = max(len(groups), 1), 0.08
    height = (1 - gap * (n - 1)) / n
    data, layout = [], {
        "title": {"text": title}, "uirevision": "curve", "template": "plotly_white", "height": 160 + 220 * n,
        "legend": {"orientation": "h", "y": -0.12 if n == 1 else -0.06, "x": 0},
        "margin": {"l": 70, "r": 10, "t": 40, "b": 40},
        "xaxis": {"title": {"text": "step"}, "anchor": f"y{n}" if n > 1 else "y"}}
    for i, (axis_key, members) in enumerate(groups.items()):
        axis = "" if i == 0 else str(i + 1)
        for name in members:
            steps, values = curves[name]["step"], curves[name]["value"]
            stride = max(1, len(steps) // MAX_CURVE_POINTS)
            data.append({"type": "scatter", "mode": "lines+markers" if len(steps) <= 30 else "lines", "name": name,
                         "x": steps[::stride], "y": values[::stride], "xaxis": "x", "yaxis": f"y{axis}"})
        top = 1 - i * (height + gap)
        layout[f"yaxis{axis}"] = {"domain": [max(0.0, top - height), top], "title": {"text": axis_key}}
    return {"data": data, "layout": layout}


def default_metrics(names: list[str], headline: tuple[str, ...]) -> list[str]:
    """What the live plot shows until someone picks: the headline metrics reported so far, else the first."""
    chosen = [name for name in names if matches_headline(name, headline)]
    return chosen or names[:1]


class FigureFormat:
    """The PNG/SVG switch of the camera button ("download plot") of every figure pane it made."""

    def __init__(self):
        self.widget = pn.widgets.RadioButtonGroup(label="save figures as", options=["png", "svg"], value="png",
                                                  width=120)
        self.panes: list[tuple[pn.pane.Plotly, str]] = []
        self.widget.param.watch(lambda _event: self._apply(), "value")

    def pane(self, figure: Any, filename: str, **kwargs) -> pn.pane.Plotly:
        pane = pn.pane.Plotly(figure, config=self.config(filename), **kwargs)
        self.panes.append((pane, filename))
        return pane

    def config(self, filename: str) -> dict[str, Any]:
        return {"displaylogo": False, "toImageButtonOptions": {"format": self.widget.value, "filename": filename}}

    def _apply(self) -> None:
        for pane, filename in self.panes:
            pane.config = self.config(filename)
            pane.param.trigger("object")  # the browser applies a new config only when it draws again


def _placeholder(text: str) -> dict[str, Any]:
    return {"data": [], "layout": {
        "xaxis": {"visible": False}, "yaxis": {"visible": False}, "template": "plotly_white",
        "annotations": [{"text": text, "showarrow": False, "font": {"size": 14, "color": "#888"}}],
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10}}}


class ExperimentPanel(pn.viewable.Viewer):
    """A live view of experiment ``experiment_or_name`` (a registered name, an Experiment class or a
    configured instance whose values fill the form). ``plot(event) -> figure`` draws the method's
    picture from the latest event (default: the one registered for this experiment, if any);
    ``store`` (a RunStore or a path; default ``RunStore()``) records every run."""

    def __init__(self, experiment_or_name: str | type[Experiment] | Experiment, plot: PlotFn | None = None, *,
                 store: RunStore | str | os.PathLike | None = None, refresh_ms: int = 250,
                 plot_interval: float = 1.0, **params):
        super().__init__(**params)
        if isinstance(experiment_or_name, Experiment):
            self.experiment_cls, initial = type(experiment_or_name), experiment_or_name.params_dict()
        else:
            self.experiment_cls = get(experiment_or_name) if isinstance(experiment_or_name, str) else experiment_or_name
            initial = {}
        self.experiment_name = self.experiment_cls.name
        if plot is None:
            plot = plot_for(self.experiment_name)
        self.plot = plot
        self._store_arg = store
        self._store: RunStore | None = None
        self.refresh_ms, self.plot_interval = refresh_ms, plot_interval

        self.state = LiveState()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._callback = None  # the running periodic callback
        self._drawn: tuple[int, bool] = (-1, False)  # (events, done) at the last drawing
        self._picture_at = 0.0  # time of the last picture

        # --- widgets ----------------------------------------------------------------------------
        self.values = working_copy(self.experiment_cls, initial)
        self.form = pn.Param(self.values, show_name=False, widgets=_widget_overrides(self.values),
                             sizing_mode="stretch_width")
        self.run_button = pn.widgets.Button(label="Run", color="primary", width=120)
        self.stop_button = pn.widgets.Button(label="Stop", color="danger", width=120, disabled=True)
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.progress = pn.indicators.Progress(value=0, max=100, bar_color="primary", sizing_mode="stretch_width")
        self.step_text = pn.pane.Str("step 0 / 0", margin=(0, 10))
        self.status_text = pn.pane.Markdown("**status:** idle", margin=(0, 10))
        # Stop: the browser shows it at once, even while the server is busy drawing (the server says the same next)
        self.stop_button.js_on_click(args={"status": self.status_text}, code=(
            "cb_obj.disabled = true; status.text = '<p><strong>status:</strong> " + STOPPING + "</p>'"))
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.metrics_table = pn.pane.DataFrame(None, visible=False, index=False, sizing_mode="stretch_width")
        self.items_table = pn.pane.DataFrame(None, visible=False, index=False, sizing_mode="stretch_width")
        self.metric_picker = pn.widgets.MultiChoice(label="Live metrics (headline by default)", options=[], value=[],
                                                    sizing_mode="stretch_width")
        self.metric_picker.param.watch(self._on_pick, "value")
        self._picked = False  # True once someone chose metrics: refreshes no longer replace the choice
        self._setting_picker = False  # True while a refresh (not a person) sets the picker
        self.figure_format = FigureFormat()
        self.curve = self.figure_format.pane(_placeholder("press Run"), f"{self.experiment_name}-metrics",
                                             height=380, sizing_mode="stretch_width")
        self.picture = self.figure_format.pane(_placeholder("the picture appears during the run"),
                                               f"{self.experiment_name}-picture", height=450,
                                               sizing_mode="stretch_width", visible=plot is not None)
        doc = " ".join(first_paragraph(self.experiment_cls.__doc__).split())
        controls = pn.Column(
            pn.pane.Markdown(f"### {self.experiment_name}\n{doc}"), self.form,
            pn.Row(self.run_button, self.stop_button), self.progress, self.step_text, self.status_text,
            self.alert, self.metrics_table, width=340)
        figures = pn.Column(pn.Row(self.metric_picker, pn.Column(pn.pane.Markdown("save figures as", margin=(0, 5)),
                                                                  self.figure_format.widget)),
                            self.curve, self.items_table, self.picture, sizing_mode="stretch_width", min_width=480)
        self.layout = pn.Row(controls, figures, sizing_mode="stretch_width")

    def __panel__(self):
        return self.layout

    # --- state --------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.state.status

    @property
    def result(self) -> Result | None:
        return self.state.result

    @property
    def store(self) -> RunStore:
        if self._store is None:  # opened on first use; None is the default store (a panel records every run)
            given = self._store_arg
            self._store = given if isinstance(given, RunStore) else RunStore(given)
        return self._store

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def params(self) -> dict[str, Any]:
        """The form's current values."""
        return {k: v for k, v in self.values.param.values().items() if k != "name"}

    # --- actions ------------------------------------------------------------------------------
    def run(self) -> bool:
        """Validate the form and start a run in a worker thread; False (alert shown) when invalid."""
        if self.running:
            return False
        try:
            experiment = configure(self.experiment_cls, **self.params())
            experiment.torch_device  # a device that is not here fails now, not in the thread
        except ConfigError as error:
            self.state.reset("invalid")
            with self.state.lock:
                self.state.error = str(error)
            self.refresh()
            return False
        self.state.reset("running")
        self._stop_event = threading.Event()
        self._drawn, self._picture_at = (-1, False), 0.0
        self._thread = threading.Thread(target=self._work, args=(experiment, self._stop_event),
                                        name=f"workbench-{self.experiment_name}", daemon=True)
        self._thread.start()
        self.refresh()
        self._start_updates()
        return True

    def stop(self) -> None:
        """Stop the run: the status says "stopped" at once; the experiment finishes its current step and
        any final evaluation in the background, then is recorded stopped."""
        self._stop_event.set()
        with self.state.lock:
            if self.state.status == "running":
                self.state.status = "stopped"
        self._show_status(self.state.snapshot())  # the figures follow at the next refresh

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout``), refresh the widgets, return the status."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.refresh()
        return self.status

    def _work(self, experiment: Experiment, stop: threading.Event) -> None:
        from workbench.runner import execute

        try:
            result = execute(experiment, store=self.store, progress=self.state.on_event, stop=stop)
        except Exception as error:  # recorded as failed by the runner; shown, not raised
            with self.state.lock:
                self.state.status, self.state.error = "failed", f"run failed: {type(error).__name__}: {error}"
        else:
            with self.state.lock:
                self.state.status, self.state.result = result.status, result
                self.state.run_id = result.artifacts.get("run_id")

    # --- UI refresh ---------------------------------------------------------------------------
    def _start_updates(self) -> None:
        if self._callback is not None:
            self._callback.stop()
        # No-op without a running event loop (headless tests call refresh() themselves).
        self._callback = pn.state.add_periodic_callback(self._tick, period=self.refresh_ms)

    def _tick(self) -> None:
        # stop only once a refresh has drawn the ended worker's final status: whether it had ended is read before
        # drawing, as a worker ending during the refresh leaves Run drawn disabled (busy) for the next tick to redraw
        ended = not self.running
        drawn = self.refresh()
        if ended and drawn != "running" and self._callback is not None:
            self._callback.stop()
            self._callback = None

    def _on_pick(self, event) -> None:
        if self._setting_picker:
            return
        self._picked = True
        self._draw_curves(self.state.snapshot()["curves"])

    def _draw_curves(self, curves: dict[str, dict[str, list]]) -> None:
        """The live figure of the picked metrics (default: the headline ones reported so far)."""
        names = list(curves)
        if names != self.metric_picker.options:
            self._setting_picker = True
            kept = [name for name in self.metric_picker.value if name in names] if self._picked else []
            self._picked = bool(kept)
            self.metric_picker.options = names
            self.metric_picker.value = kept or default_metrics(names, self.experiment_cls.headline)
            self._setting_picker = False
        figure = live_figure(curves, self.metric_picker.value, f"{self.experiment_name}: live metrics")
        self.curve.height = figure["layout"]["height"]
        self.curve.object = figure

    def refresh(self) -> str:
        """Bring the widgets up to date with :attr:`state` (call from the UI's thread/loop); returns
        the status drawn."""
        s = self.state.snapshot()
        status = self._show_status(s)
        done = status in TERMINAL and not self.running  # the worker ended: its result (if any) is in the state
        if (s["events"], done) != self._drawn:
            self._drawn = (s["events"], done)
            if s["curves"]:
                self._draw_curves(s["curves"])
            self._draw_picture(s["event"], force=done)
        if done and s["result"] is not None:
            scalars, per_item = results_tables(s["result"].metrics)
            self.metrics_table.object, self.metrics_table.visible = scalars, not scalars.empty
            self.items_table.object, self.items_table.visible = per_item, not per_item.empty
        elif status in ("running", "invalid"):
            self.metrics_table.visible = self.items_table.visible = False
        return status

    def _show_status(self, s: dict[str, Any]) -> str:
        """Buttons, form, progress and status text from the snapshot ``s`` (cheap: no figure)."""
        status, busy = s["status"], self.running
        self.run_button.disabled = busy
        self.stop_button.disabled = status != "running"
        for widget in self.form.layout:
            if isinstance(widget, pn.widgets.Widget):
                widget.disabled = busy
        total = max(s["total"], 1)
        self.progress.value = 100 if status == "finished" and not busy else min(100, int(100 * s["step"] / total))
        self.step_text.object = f"step {s['step']} / {s['total']}"
        self.progress.bar_color = {"finished": "success", "stopped": "warning", "failed": "danger"}.get(status, "primary")
        label = {"stopped": "stopped (Stop pressed)", "invalid": "not started: invalid parameters"}.get(status, status)
        if status == "stopped" and busy:
            label = STOPPING
        if s["run_id"] is not None:
            label += f" — run {s['run_id']} in {self.store.path}"
        self.status_text.object = f"**status:** {label}"
        self.alert.object = s["error"]
        self.alert.visible = bool(s["error"])
        return status

    def _draw_picture(self, event: Event | None, force: bool = False) -> None:
        if self.plot is None or event is None or event.payload is None:
            return
        now = time.monotonic()
        if not force and now - self._picture_at < self.plot_interval:
            return
        self._picture_at = now
        try:
            figure = self.plot(event)
            height = figure.get("layout", {}).get("height") if isinstance(figure, dict) else figure.layout.height
            self.picture.height = int(height or self.picture.height)  # the figure's own: no squeezed subplot titles
            self.picture.object = figure
        except Exception as error:  # a broken picture must not break the run or the panel
            with self.state.lock:
                self.state.error = self.state.error or f"picture failed: {type(error).__name__}: {error}"

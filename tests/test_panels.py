"""Headless tests of the generic experiment panel: form, validation, run, stop, store records."""
import threading
import time
from types import SimpleNamespace

import param
import pytest
import torch

from workbench.experiment import Event, Experiment, Result, register
from workbench.panels import ExperimentPanel, plot_for


@register
class PanelToy(Experiment):
    """Toy for panel tests: x <- (1 - lr) x, reporting loss = x^2 / 2 every step."""

    name = param.String("panel_toy", constant=True)
    steps = param.Integer(20, bounds=(1, 1_000_000), doc="Steps.")
    lr = param.Number(0.1, bounds=(0, 1), inclusive_bounds=(False, True), doc="Step size.")
    delay = param.Number(0.0, bounds=(0, 1), doc="Seconds to sleep per step.")

    def run(self, progress, stop: threading.Event) -> Result:
        x, step = 1.0, 0
        for step in range(1, self.steps + 1):
            if stop.is_set():
                break
            x *= 1 - self.lr
            progress(Event(step, self.steps, {"loss": 0.5 * x * x, "x": x}, payload={"x": x}))
            time.sleep(self.delay)
        return Result(metrics={"x": x, "steps_done": step})


def toy_plot(event):
    return {"data": [{"type": "scatter", "x": [event.step], "y": [event.payload["x"]]}]}


@pytest.fixture
def panel(store):
    return ExperimentPanel("panel_toy", plot=toy_plot, store=store)


def test_form_is_built_from_the_parameter_spec(panel):
    widgets = {w.name: w for w in panel.form.layout if hasattr(w, "value")}
    assert {"Steps", "Lr", "Delay", "Seed", "Device"} <= set(widgets)
    assert widgets["Steps"].value == 20 and widgets["Lr"].value == 0.1 and widgets["Device"].value == "auto"
    widgets["Steps"].value = 7  # the form edits the working copy
    assert panel.params()["steps"] == 7
    assert panel.status == "idle" and not panel.run_button.disabled and panel.stop_button.disabled


def test_bad_value_shows_an_error_and_records_nothing(panel, store):
    panel.values.lr = -1.0  # the working copy takes it; Run judges it
    assert panel.run() is False
    assert panel.status == "invalid"
    assert panel.alert.visible and "'lr'" in panel.alert.object and "-1" in panel.alert.object
    assert "Traceback" not in panel.alert.object
    assert store.list() == []
    assert not panel.run_button.disabled


def test_run_completes_with_progress_100_and_is_recorded_finished(panel, store):
    panel.values.steps = 30
    assert panel.run() is True
    assert panel.wait(timeout=10) == "finished"
    assert panel.progress.value == 100 and panel.step_text.object == "step 30 / 30"
    assert not panel.alert.visible and not panel.run_button.disabled and panel.stop_button.disabled
    assert panel.metric_picker.options == ["loss", "x"] and panel.metric_picker.value == ["loss"]  # no headline: the first
    assert [trace["name"] for trace in panel.curve.object["data"]] == ["loss"]
    assert len(panel.curve.object["data"][0]["x"]) == 30
    panel.metric_picker.value = ["loss", "x"]  # picked: both, on two axes (a loss, and a plain number)
    assert [trace["name"] for trace in panel.curve.object["data"]] == ["loss", "x"]
    assert [panel.curve.object["layout"][a]["title"]["text"] for a in ("yaxis", "yaxis2")] == ["loss", "x"]
    assert panel.picture.object["data"][0]["x"] == [30]  # drawn from the last event
    assert panel.metrics_table.visible and set(panel.metrics_table.object["metric"]) == {"x", "steps_done"}
    assert panel.metrics_table.object.set_index("metric")["value"]["steps_done"] == "30"
    assert not panel.items_table.visible  # no per-item metrics
    [run] = store.list()
    assert run.status == "finished" and run.params["steps"] == 30 and run.metrics["steps_done"] == 30
    assert panel.status_text.object.endswith(f"run {run.id} in {store.path}")


def test_stop_ends_a_long_run_and_is_recorded_stopped(panel, store):
    panel.values.param.update(steps=1_000_000, delay=0.01)
    panel.run()
    deadline = time.monotonic() + 60
    while panel.state.step < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    panel.refresh()
    assert panel.status == "running" and panel.run_button.disabled and not panel.stop_button.disabled
    assert all(w.disabled for w in panel.form.layout if hasattr(w, "value"))
    panel.stop()
    assert "stopped (Stop pressed) — finishing" in panel.status_text.object  # at once, before the run ends
    assert panel.stop_button.disabled and panel.run_button.disabled
    assert panel.wait(timeout=60) == "stopped"  # a generous bound (10 000 s of steps were asked): no speed assumed
    assert "stopped" in panel.status_text.object and 0 <= panel.progress.value < 100
    [run] = store.list()
    assert run.status == "stopped" and 3 <= run.metrics["steps_done"] < 1_000_000
    assert not panel.run_button.disabled


def test_periodic_refresh_stops_only_after_drawing_a_final_status(panel):
    stops = []
    panel._callback = SimpleNamespace(stop=lambda: stops.append(1))
    panel.state.status = "running"
    panel._tick()
    assert stops == []
    panel.state.status = "finished"
    panel._tick()
    assert stops == [1] and panel._callback is None and "finished" in panel.status_text.object


@pytest.mark.parametrize("final", ["stopped", "finished"])
def test_a_worker_ending_during_a_refresh_gets_one_more_refresh(panel, final):
    """The worker sets its final status, then its thread ends, here while a refresh is drawing: that refresh drew
    Run disabled (the thread was alive), so the periodic callback must not stop before the next one."""
    thread = SimpleNamespace(alive=True)
    thread.is_alive = lambda: thread.alive
    panel._thread = thread
    panel.state.status = final
    stops = []
    panel._callback = SimpleNamespace(stop=lambda: stops.append(1))
    drawing = panel.refresh

    def refresh_while_the_worker_ends():
        drawn = drawing()
        thread.alive = False  # the thread ends just after this refresh read it alive
        return drawn

    panel.refresh = refresh_while_the_worker_ends
    ticks = 0
    while panel._callback is not None and ticks < 5:
        panel._tick()
        ticks += 1
    assert stops == [1] and ticks == 2
    assert not panel.run_button.disabled and final in panel.status_text.object  # Run is back


def test_a_failing_run_is_shown_and_recorded_failed(store):
    def broken(event):
        raise RuntimeError("no picture")

    panel = ExperimentPanel("toy_countdown", plot=broken, store=store)
    panel.values.mode = "fail"
    panel.run()
    assert panel.wait(timeout=10) == "failed"
    assert "toy failure" in panel.alert.object and panel.alert.visible
    assert [r.status for r in store.list()] == ["failed"]


def test_lightsb_plot_is_registered_and_draws_2d_and_projections():
    from workbench.panels.lightsb import lightsb_plot

    assert plot_for("lightsb") is lightsb_plot

    class FakeBridge:  # x -> x + 1, straight-line paths
        def sample(self, x0):
            return x0 + 1

        def sample_trajectory(self, x0, n_steps):
            t = torch.linspace(0, 1, n_steps + 1)[None, :, None]
            return x0[:, None] + t  # (B, T, D)

    for dim, traces in ((2, 3 + 8), (5, 2), (1, 3)):
        x0, x1 = torch.randn(64, dim), torch.randn(64, dim) + 1
        payload = {"model": FakeBridge(), "x0": x0, "x1": x1}
        fig = lightsb_plot(SimpleNamespace(step=3, total=10, payload=payload))
        assert len(fig.data) == traces and "step 3 / 10" in fig.layout.title.text


def test_lightsb_panel_rejects_a_negative_epsilon(store):
    from workbench.panels.lightsb import lightsb_plot

    panel = ExperimentPanel("lightsb", store=store)
    assert panel.plot is lightsb_plot
    assert {"epsilon", "dataset", "steps"} <= set(panel.params())
    panel.values.epsilon = -1
    assert panel.run() is False
    assert panel.alert.visible and "'epsilon' = -1" in panel.alert.object
    assert store.list() == []


def test_serve_rejects_a_bad_starting_value(capsys):
    from workbench.panels.serve import main

    assert main(["panel_toy", "-p", "lr=2"]) == 2
    assert "'lr'" in capsys.readouterr().err


def test_an_optional_choice_shows_auto_and_maps_it_to_none(tmp_path):
    """Koopman's ``koopman`` and ``forecast_loss`` are empty by default (the protocol's): the form says "auto", not
    the first choice, and picking a choice and "auto" again sets the value and None."""
    import panel as pn

    panel = ExperimentPanel("koopman", store=tmp_path / "runs.db")
    selects = {w.name: w for w in panel.form.select(pn.widgets.Select)}
    for label, key in (("Koopman", "koopman"), ("Forecast loss", "forecast_loss")):
        widget = selects[label]
        assert widget.value is None and list(widget.options)[0] == "auto" and getattr(panel.values, key) is None
    selects["Koopman"].value = "ridge"
    assert panel.values.koopman == "ridge"
    selects["Koopman"].value = None
    assert panel.values.koopman is None

"""The Runs page headless: the table with headline metrics, filters, comparison of selected runs, one run opened,
its metrics as CSV; and the app's pages built from the registry."""
import io

import pandas as pd
import panel as pn
import pytest

import workbench
from workbench.panels.app import pages
from workbench.panels.runs import RunsPage, metrics_csv, runs_frame


@pytest.fixture
def filled(store):
    """Two optimizers runs comparing different optimizers at different lr, and one failed toy run."""
    for lr, optimizers in ((0.01, ["adamw", "lion"]), (0.05, ["adamw", "sgd"])):
        workbench.run("optimizers", store=store, task="quadratic", steps=20, lr=lr, optimizers=optimizers)
    with pytest.raises(RuntimeError):
        workbench.run("toy_countdown", store=store, mode="fail")
    return store


def texts(views) -> str:
    return " ".join(str(getattr(view, "object", "")) for view in views)


def test_table_newest_first_with_headline_metrics_and_filters(filled):
    page = RunsPage(filled)
    frame = page.table.value
    assert list(frame["run"]) == [3, 2, 1] and list(frame["status"]) == ["failed", "finished", "finished"]
    assert frame["headline"][1].startswith("distance: adamw ") and "sgd" in frame["headline"][1]
    page.status.value = "finished"
    assert list(page.table.value["run"]) == [2, 1]
    page.experiment.value = "toy_countdown"
    assert page.table.value.empty
    page.status.value = "all"
    assert list(page.table.value["run"]) == [3]


def test_two_selected_runs_are_compared_and_the_last_opens(filled):
    page = RunsPage(filled)
    page.status.value = "finished"
    page.table.selection = [1]
    assert page.comparison.objects == [] and "Run 1: optimizers, finished" in texts(page.detail.objects)
    page.table.selection = [1, 0]
    assert not any(isinstance(view, pn.pane.Alert) for view in page.comparison.objects + page.detail.objects)
    assert "2 runs compared" in texts(page.comparison.objects)
    table = next(v.object for v in page.comparison.objects if isinstance(v, pn.pane.DataFrame))
    assert list(table["run"]) == [1, 2] and list(table["lr"]) == ["0.01", "0.05"]  # in the order ticked
    assert "adamw.distance" in table.columns  # the headline metric both runs report
    overlay = next(v.object for v in page.comparison.objects if isinstance(v, pn.pane.Plotly))
    assert [trace.name for trace in overlay.data] == ["run 1", "run 2"]
    assert "Run 2: optimizers, finished" in texts(page.detail.objects)


def test_a_failed_run_shows_its_error(filled):
    page = RunsPage(filled)
    page.table.selection = [0]
    assert any(isinstance(v, pn.pane.Alert) and "toy failure" in v.object for v in page.detail.objects)


def test_metrics_csv_holds_every_curve_point_and_the_final_values(filled):
    run = filled.load(1)
    frame = pd.read_csv(io.StringIO(metrics_csv(run)))
    assert list(frame.columns) == ["metric", "step", "value"]
    curve = frame[frame["metric"] == "adamw.loss"]
    assert list(curve["value"]) == pytest.approx(run.curves["adamw.loss"]["value"])
    final = frame[frame["step"] == "final"].set_index("metric")["value"]
    assert final["adamw.distance"] == pytest.approx(run.metrics["adamw.distance"])


def test_runs_frame_of_no_runs_has_the_columns_and_dtypes_of_a_full_one(store):
    assert list(runs_frame([]).columns) == ["run", "experiment", "status", "sweep", "started", "duration", "headline"]
    store.record("toy_countdown", {}, "finished", metrics={"x": 1.0})
    assert dict(runs_frame([]).dtypes) == dict(runs_frame(store.list()).dtypes)  # no column rebuild when filtered empty


def test_the_app_has_a_page_per_registered_experiment_and_the_runs_page(store):
    routes = pages(store)
    assert {"/", "runs", "lightsb", "optimizers", "toy_countdown"} <= set(routes)  # registered here: a page too

"""Numbers for people and the live figure's axes: units from metric names, per-item tables, shared axes."""
import math

import pytest

from workbench.panels.base import default_metrics, live_figure
from workbench.panels.format import axis_of, format_value, results_tables, split_item


@pytest.mark.parametrize("metric, value, text", [
    ("adamw.state_bytes", 341104.0, "333.1 KiB"), ("state_bytes", 512, "512 B"), ("x_bytes", 3 * 2**30, "3 GiB"),
    ("step_ms", 0.01234, "12.34 µs"), ("step_ms", 12.5, "12.5 ms"), ("iter_ms", 2500.0, "2.5 s"),
    ("time_per_epoch", 0.31, "310 ms"), ("seconds", 75.25, "75.25 s"),
    ("loss", 0.000123456, "0.0001235"), ("accuracy", 0.98765, "0.9877"), ("steps_done", 500.0, "500"),
    ("n_params", 123456.0, "123 456"), ("loss", math.nan, "nan"), ("lr", None, "auto"),
    ("optimizers", ["adamw", "lion"], "adamw, lion"), ("diagonal", True, "True"),
])
def test_values_are_formatted_for_people(metric, value, text):
    assert format_value(metric, value) == text


def test_per_item_metrics_become_a_row_per_item():
    scalars, items = results_tables({"steps_done": 500.0, "adamw.final_loss": 0.1234567, "adamw.state_bytes": 2048.0,
                                     "galore.final_loss": 0.2, "galore.state_bytes": 1024.0})
    assert scalars.to_dict("records") == [{"metric": "steps_done", "value": "500"}]
    assert items.to_dict("records") == [{"item": "adamw", "final_loss": "0.1235", "state_bytes": "2 KiB"},
                                        {"item": "galore", "final_loss": "0.2", "state_bytes": "1 KiB"}]
    assert results_tables({"loss": 1.0})[1].empty


def test_names_split_into_item_and_metric_and_share_axes_by_unit_or_kind():
    assert split_item("adamw.val_loss") == ("adamw", "val_loss") and split_item("loss") == (None, "loss")
    assert [axis_of(m) for m in ("val_loss", "loss_aim", "test_accuracy_bw", "state_bytes", "step_ms", "delta_R")] \
        == ["loss", "loss", "accuracy", "bytes", "ms", "delta_R"]


def test_the_live_figure_puts_agreeing_units_on_one_axis_with_a_legend_entry_each():
    curves = {name: {"step": [1, 2, 3], "value": [3.0, 2.0, 1.0]}
              for name in ("adamw.loss", "lion.loss", "adamw.val_loss", "adamw.test_accuracy", "lr")}
    figure = live_figure(curves, ["adamw.loss", "lion.loss", "adamw.val_loss", "adamw.test_accuracy", "missing"])
    assert [(t["name"], t["yaxis"]) for t in figure["data"]] == [
        ("adamw.loss", "y"), ("lion.loss", "y"), ("adamw.val_loss", "y"), ("adamw.test_accuracy", "y2")]
    top, bottom = figure["layout"]["yaxis"]["domain"], figure["layout"]["yaxis2"]["domain"]
    assert top[0] > bottom[1]  # stacked, not overlapping
    assert figure["layout"]["yaxis"]["title"]["text"] == "loss" and figure["layout"]["height"] == 160 + 2 * 220


def test_headline_metrics_are_shown_by_default():
    names = ["adamw.loss", "lion.loss", "adamw.test_accuracy", "lion.test_accuracy"]
    assert default_metrics(names, (".test_accuracy", ".val_loss")) == ["adamw.test_accuracy", "lion.test_accuracy"]
    assert default_metrics(names, ("cbw2_uvp",)) == ["adamw.loss"]  # no headline reported yet: the first

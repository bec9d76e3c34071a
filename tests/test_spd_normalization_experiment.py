"""The ``spd_normalization`` experiment through the protocol: cross-parameter validation, a short run with events
every 1 % of the steps, comparison variants, Stop, the live picture (tests/test_contract.py checks every parameter's
bounds and choices, from Python and the CLI)."""
import threading

import pytest

import workbench
from workbench.experiment import ConfigError, configure
from workbench.methods.spd import SPDNet, accuracy
from workbench.panels import plot_for


def test_epoch_selection_on_validation_needs_a_validation_split():
    with pytest.raises(ConfigError, match=r"'epoch_selection' = 'best_validation' needs a validation split; got "
                                          r"'validation' = 0.0, expected a fraction in \(0, 0.5\]"):
        configure("spd_normalization", epoch_selection="best_validation")
    with pytest.raises(ConfigError, match="parameter 'validation' = 0.7 is not allowed"):
        configure("spd_normalization", validation=0.7)


def test_best_validation_epoch_is_kept_and_reported_without_looking_at_the_test_half():
    result = workbench.run("spd_normalization", bn="bw", theta=1.0, compare=["none"], epochs=4, seed=2, lr=0.1,
                           validation=0.25, epoch_selection="best_validation")  # a large step: bw peaks before the end
    data = result.data
    assert result.metrics["bw.selected_epoch"] < 4  # so the kept weights differ from the last ones
    assert len(data.X_train) + len(data.X_val) == 898 and len(data.X_val) == 225
    for variant in ("bw", "none"):
        h = result.history[variant]
        best = max(range(4), key=lambda i: (h["validation_accuracy"][i], -i))  # the earliest best epoch
        assert result.metrics[f"{variant}.selected_epoch"] == h["epoch"][best]
        assert result.metrics[f"{variant}.validation_accuracy"] == h["validation_accuracy"][best]
        assert result.metrics[f"{variant}.test_accuracy"] == h["test_accuracy"][best]
        # the returned model carries the kept weights
        assert accuracy(result.models[variant], data.X_test, data.y_test) == h["test_accuracy"][best]
        assert result.curves[f"{variant}.validation_accuracy"]["value"] == h["validation_accuracy"]


def test_hidden_sizes_must_fit_the_digits_matrices():
    with pytest.raises(ConfigError, match=r"'hidden' = \[9, 6\] is not allowed; expected two sizes 8 >= h1 >= h2 >= 1"):
        configure("spd_normalization", hidden=[9, 6])
    assert configure("spd_normalization", hidden="8,4").hidden == [8, 4]


def test_short_run_reports_accuracy_curves_and_events_every_percent():
    events = []
    result = workbench.run("spd_normalization", bn="gbw", compare=["none"], epochs=1, progress=events.append)
    assert result.status == "finished" and isinstance(result.model, SPDNet)
    per_variant = {"test_accuracy", "train_accuracy", "loss", "selected_epoch", "time_per_epoch", "condition_before_bn",
                   "condition_after_bn"}
    assert set(result.metrics) == {f"{v}.{m}" for v in ("gbw", "none") for m in per_variant} | {"epochs_done"}
    assert result.metrics["gbw.test_accuracy"] > 0.3  # one epoch already learns something (chance: 0.1)
    # no BN: the probe's spectra are the same on both sides of where the BN would be
    assert result.metrics["none.condition_after_bn"] == result.metrics["none.condition_before_bn"]
    total = events[-1].total
    assert total == 2 * 29 and events[-1].step == total  # 29 batches of 32 per epoch, two variants
    steps = [e.step for e in events]
    assert max(b - a for a, b in zip([0] + steps, steps)) <= max(1, total // 100)  # at least every 1 %
    assert result.curves["gbw.test_accuracy"]["value"] == result.history["gbw"]["test_accuracy"]
    assert result.curves["none.test_accuracy"]["step"] == [total]  # reported at the end of none's epoch
    payload = events[-1].payload
    assert set(payload["curves"]) == {"gbw", "none"} and payload["spectra"]["after"]
    figure = plot_for("spd_normalization")(events[-1])
    assert len(figure.data) > 10


def test_same_seed_gives_the_same_run_and_compared_variants_match_single_runs():
    alone = workbench.run("spd_normalization", bn="none", compare=[], epochs=1, seed=3)
    compared = workbench.run("spd_normalization", bn="aim", compare=["none"], epochs=1, seed=3)
    assert compared.metrics["none.test_accuracy"] == alone.metrics["none.test_accuracy"]


def test_stop_flag_ends_the_run_early():
    stop, steps = threading.Event(), []

    def progress(event):
        steps.append(event.step)
        if event.step >= 5:
            stop.set()

    result = workbench.run("spd_normalization", compare=[], epochs=50, progress=progress, stop=stop)
    # events every 1 % of the steps (14), sooner on a slow machine (every half second): whenever the one that set
    # Stop came, no step follows it, and the epoch it cut short (29 steps an epoch) is evaluated
    stopped_at = next(step for step in steps if step >= 5)
    assert result.status == "stopped" and max(steps) == stopped_at
    assert result.metrics["epochs_done"] == -(-stopped_at // 29) == len(result.curves["gbw.test_accuracy"]["value"])


def test_a_variants_last_evaluation_is_reported_with_the_next_event_when_its_last_step_is_not_due():
    events = []
    result = workbench.run("spd_normalization", bn="gbw", compare=["none"], epochs=1, batch_size=8,
                           progress=events.append)
    assert events[-1].total == 2 * 113  # 112 batches of 8 and one of 2 per epoch; the cadence: every 2 steps
    # gbw's only epoch ends at step 113, where the cadence is not due (unless half a second passed): its accuracies
    # come with the next event, none's first, instead of being lost
    curve = result.curves["gbw.test_accuracy"]
    assert curve["value"] == result.history["gbw"]["test_accuracy"] and curve["step"][0] in (113, 114)


def test_the_panel_draws_test_and_validation_curves_per_variant():
    from types import SimpleNamespace

    from workbench.panels.spd_normalization import spd_normalization_plot
    curves = {"none": {"epoch": [1, 2], "test_accuracy": [0.5, 0.6], "validation_accuracy": [0.55, 0.65]},
              "gbw": {"epoch": [1], "test_accuracy": [0.7]}}  # no validation split
    figure = spd_normalization_plot(SimpleNamespace(payload={"curves": curves, "bn": "gbw"}, step=3, total=4))
    lines = {trace.name: trace for trace in figure.data if trace.xaxis == "x"}
    assert set(lines) == {"none", "none validation", "gbw"}
    assert list(lines["none validation"].y) == [0.55, 0.65] and lines["none validation"].line.dash == "dot"
    assert lines["none validation"].line.color == lines["none"].line.color != lines["gbw"].line.color
    assert list(lines["gbw"].y) == [0.7]


def test_metric_names_of_the_previous_release_are_read_under_the_new_ones():
    from workbench.experiment import current_metric_names

    stored = {"test_accuracy_none": 0.70, "validation_accuracy_aim": 0.80, "selected_epoch_lem": 3.0,
              "time_per_epoch_bw": 0.2, "loss_none": 1.1, "train_accuracy_gbw": 0.9, "test_accuracy": 0.75}
    assert current_metric_names("spd_normalization", stored) == {
        "none.test_accuracy": 0.70, "aim.validation_accuracy": 0.80, "lem.selected_epoch": 3.0,
        "bw.time_per_epoch": 0.2, "none.loss": 1.1, "gbw.train_accuracy": 0.9,
        "test_accuracy": 0.75}  # the chosen variant's were unsuffixed: which variant it was is a parameter, not a name

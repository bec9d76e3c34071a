"""The ``spd_normalization`` experiment through the protocol: validation, a short run with events every 1 % of the
steps, comparison variants, Stop, the live picture, and the CLI's exit code on a bad θ."""
import os
import subprocess
import sys
import threading

import pytest

import workbench
from workbench.experiment import ConfigError, configure
from workbench.experiments.spd_normalization import SPDNet, accuracy
from workbench.panels import plot_for


@pytest.mark.parametrize("key, value, fragment", [
    ("theta", 0, "spd_normalization: parameter 'theta' = 0 is not allowed; expected a number in (0, 10]"),
    ("theta", -0.5, "parameter 'theta' = -0.5 is not allowed"),
    ("bn", "batch", "parameter 'bn' = 'batch' is not allowed; expected one of 'none', 'aim', 'lem', 'bw', 'gbw'"),
    ("dataset", "mnist", "parameter 'dataset' = 'mnist' is not allowed; expected one of 'digits_region'"),
    ("compare", "aim,euclid", "parameter 'compare' = 'aim,euclid' is not allowed"),
    ("dispersion", "median", "parameter 'dispersion' = 'median' is not allowed"),
])
def test_bad_values_fail_before_any_work(key, value, fragment):
    with pytest.raises(ConfigError) as error:
        configure("spd_normalization", **{key: value})
    assert fragment in str(error.value)


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
    assert result.metrics["selected_epoch"] < 4  # so the kept weights differ from the last ones
    assert len(data.X_train) + len(data.X_val) == 898 and len(data.X_val) == 225
    for variant, suffix in (("bw", ""), ("none", "_none")):
        h = result.history[variant]
        best = max(range(4), key=lambda i: (h["validation_accuracy"][i], -i))  # the earliest best epoch
        assert result.metrics[f"selected_epoch{suffix}"] == h["epoch"][best]
        assert result.metrics[f"validation_accuracy{suffix}"] == h["validation_accuracy"][best]
        assert result.metrics[f"test_accuracy{suffix}"] == h["test_accuracy"][best]
        # the returned model carries the kept weights
        assert accuracy(result.models[variant], data.X_test, data.y_test) == h["test_accuracy"][best]
    assert result.curves["validation_accuracy"]["value"] == result.history["bw"]["validation_accuracy"]


def test_hidden_sizes_must_fit_the_digits_matrices():
    with pytest.raises(ConfigError, match=r"'hidden' = \[9, 6\] is not allowed; expected two sizes 8 >= h1 >= h2 >= 1"):
        configure("spd_normalization", hidden=[9, 6])
    assert configure("spd_normalization", hidden="8,4").hidden == [8, 4]


def test_short_run_reports_accuracy_curves_and_events_every_percent():
    events = []
    result = workbench.run("spd_normalization", bn="gbw", compare=["none"], epochs=1, progress=events.append)
    assert result.status == "finished" and isinstance(result.model, SPDNet)
    assert {"test_accuracy", "train_accuracy", "loss", "time_per_epoch", "test_accuracy_none", "time_per_epoch_none",
            "condition_before_bn", "condition_after_bn"} <= set(result.metrics)
    assert result.metrics["test_accuracy"] > 0.3  # one epoch already learns something (chance: 0.1)
    total = events[-1].total
    assert total == 2 * 29 and events[-1].step == total  # 29 batches of 32 per epoch, two variants
    steps = [e.step for e in events]
    assert max(b - a for a, b in zip([0] + steps, steps)) <= max(1, total // 100)  # at least every 1 %
    assert result.curves["test_accuracy"]["value"] == result.history["gbw"]["test_accuracy"]
    payload = events[-1].payload
    assert set(payload["curves"]) == {"gbw", "none"} and payload["spectra"]["after"]
    figure = plot_for("spd_normalization")(events[-1])
    assert len(figure.data) > 10


def test_same_seed_gives_the_same_run_and_compared_variants_match_single_runs():
    alone = workbench.run("spd_normalization", bn="none", epochs=1, seed=3)
    compared = workbench.run("spd_normalization", bn="aim", compare=["none"], epochs=1, seed=3)
    assert compared.metrics["test_accuracy_none"] == alone.metrics["test_accuracy"]


def test_stop_flag_ends_the_run_early():
    stop = threading.Event()

    def progress(event):
        if event.step >= 5:
            stop.set()

    result = workbench.run("spd_normalization", epochs=50, progress=progress, stop=stop)
    assert result.status == "stopped" and result.metrics["epochs_done"] <= 1


def test_cli_rejects_a_non_positive_theta(tmp_path):
    env = {**os.environ, "WORKBENCH_DB": str(tmp_path / "runs.db"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", "spd_normalization", "-p", "theta=0"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "'theta' = '0' is not allowed" in done.stderr


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

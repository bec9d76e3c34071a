"""The ``lightsb`` experiment through the protocol: validation, a short run, Stop, live payloads."""
import threading

import pytest

import workbench
from workbench.experiment import ConfigError, configure
from workbench.methods.lightsb import LightSB


def test_two_dimensional_toys_need_dim_two():
    with pytest.raises(ConfigError, match=r"'dim' = 3 is not allowed: dataset 'swiss_roll' is two-dimensional"):
        configure("lightsb", dataset="swiss_roll", dim=3)
    assert configure("lightsb", dataset="swiss_roll", dim=2).dim == 2


# the official benchmark's setting (the experiment's defaults are the notebook's Gaussian pair)
BENCHMARK = {"dataset": "mixture_benchmark", "dim": 2, "epsilon": 1.0, "n_components": 50, "batch_size": 128,
             "S_init": 1.0}


def test_short_run_returns_ground_truth_metrics_and_curves():
    events = []
    result = workbench.run("lightsb", **BENCHMARK, steps=200, progress=events.append)
    assert result.status == "finished"
    assert isinstance(result.model, LightSB)
    assert {"loss", "cbw2_uvp", "bw2_uvp", "kl", "steps_done"} <= set(result.metrics)
    assert result.metrics["steps_done"] == 200
    steps = [e.step for e in events]
    assert set(range(2, 201, 2)) <= set(steps) and steps == sorted(set(steps))  # every 1 % (and every 0.5 s: a
    # busy machine may add reports between them)
    assert result.curves["cbw2_uvp"]["step"] == list(range(20, 201, 20))
    # training helps: cBW2-UVP falls, and the KL estimate is small and non-negative up to noise
    curve = result.curves["cbw2_uvp"]["value"]
    assert curve[-1] < 0.05 * curve[0]
    assert -0.01 < result.metrics["kl"] < 0.2
    payload = events[-1].payload
    assert payload["model"] is result.model and payload["x0"].shape == payload["x1"].shape == (512, 2)


def test_gaussian_run_reports_closed_form_errors():
    result = workbench.run("lightsb", dataset="gaussian", dim=3, epsilon=1.0, S_init=1.0, n_components=1, diagonal=False,
                           steps=300, batch_size=512, lr=0.03)
    assert result.metrics["cond_mean_rel_error"] < 0.1
    assert result.metrics["cond_cov_rel_error"] < 0.1


def test_toy_run_has_no_ground_truth_metrics():
    result = workbench.run("lightsb", dataset="eight_gaussians", dim=2, steps=20, epsilon=0.1, batch_size=128, S_init=1.0)
    assert "cbw2_uvp" not in result.metrics and "bw2_uvp" in result.metrics


def test_stop_flag_ends_the_run_early():
    stop, stopped_at = threading.Event(), []

    def progress(event):
        if event.step >= 30 and not stop.is_set():
            stopped_at.append(event.step)
            stop.set()

    result = workbench.run("lightsb", steps=5000, progress=progress, stop=stop)
    assert result.status == "stopped"
    # events every 50 steps, or sooner on a slow machine (every half second): no step after the one that stopped it
    assert stopped_at and result.metrics["steps_done"] == stopped_at[0] <= 50


def test_payload_draws_with_the_live_plot():
    from workbench.panels.lightsb import lightsb_plot

    events = []
    workbench.run("lightsb", dataset="swiss_roll", dim=2, steps=10, progress=events.append)
    figure = lightsb_plot(events[-1])
    names = {trace.name for trace in figure.data}
    assert {"source x0", "target x1", "mapped x̂1", "SDE paths"} <= names


def test_automatic_components_and_covariances_follow_the_dataset():
    gaussian, benchmark = configure("lightsb"), configure("lightsb", dataset="mixture_benchmark", dim=2)
    assert (gaussian.components, gaussian.diagonal_S) == (1, False)  # exact: one full-covariance component
    assert (benchmark.components, benchmark.diagonal_S) == (50, True)  # the official benchmark setting
    chosen = configure("lightsb", n_components="7", diagonal="true")
    assert (chosen.components, chosen.diagonal_S) == (7, True)

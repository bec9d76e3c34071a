"""The ``koopman`` experiment through the protocol: validation (also through the CLI), short runs, metrics,
Stop, the live picture."""
import os
import subprocess
import sys
import threading

import pytest
import torch

import workbench
from workbench.experiment import ConfigError, configure
from workbench.methods.koopman import DMD, EDMD, KoopmanAutoencoder
from workbench.store import RunStore

TINY = dict(n_trajectories=12, n_test=2, n_steps=60, steps=40, horizon=8, baselines=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("params, fragment", [
    ({"latent_dim": 0}, "koopman: parameter 'latent_dim' = 0 is not allowed; expected an integer in [1, 512]"),
    ({"system": "rossler"}, "parameter 'system' = 'rossler' is not allowed; expected one of 'linear', 'pendulum'"),
    ({"gamma": -1}, "parameter 'gamma' = -1 is not allowed; expected a number in [0, 100]"),
    ({"tau": 0}, "parameter 'tau' = 0 is not allowed; expected a number in (0, 10]"),
    ({"observation": "pixels"}, "parameter 'observation' = 'pixels' is not allowed; expected one of 'state', 'lifted'"),
    ({"horizon": 250}, "parameter 'horizon' = 250 is not allowed: training windows of horizon + 1 = 251 snapshots "
                       "are longer than the trajectories (n_steps + 1 = 201); allowed: horizon <= n_steps"),
    ({"n_steps": 30}, "parameter 'n_steps' = 30 is not allowed: NRMSE@50 needs trajectories of at least 50 steps"),
    ({"horizon": 4}, "parameter 'k' = 3 is not allowed: InfoNCE needs windows of at least 2k + 1 = 7 snapshots, "
                     "but horizon + 1 = 5; allowed: k <= 2 (or alpha = 0)"),
    ({"n_test": 60}, "parameter 'n_test' = 60 is not allowed: it must be smaller than n_trajectories = 60"),
    ({"observation": "lifted", "poly_degree": 3}, "parameter 'poly_degree' = 3 is not allowed: 47905 monomials"),
])
def test_bad_settings_fail_before_any_work(params, fragment):
    with pytest.raises(ConfigError) as error:
        configure("koopman", **params)
    assert fragment in str(error.value)


def test_rules_that_do_not_apply_are_not_enforced():
    assert configure("koopman", horizon=4, alpha=0).horizon == 4  # no InfoNCE, no 2k + 1 rule
    assert configure("koopman", model="dmd", horizon=500).model == "dmd"  # no training windows
    assert configure("koopman", observation="lifted", poly_degree=3, baselines=False).poly_degree == 3


@pytest.mark.parametrize("override, fragments", [
    ("latent_dim=0", ["'latent_dim'", "0", "an integer in [1, 512]"]),
    ("horizon=500", ["'horizon' = 500", "longer than the trajectories", "horizon <= n_steps"]),
    ("system=rossler", ["'system'", "'rossler'", "one of 'linear', 'pendulum', 'van_der_pol', 'duffing', 'lorenz'"]),
])
def test_cli_exits_2_with_the_message_and_records_nothing(tmp_path, override, fragments):
    db = tmp_path / "r.db"
    env = {**os.environ, "WORKBENCH_DB": str(db), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", "koopman", "-p", override],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    for fragment in fragments:
        assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert not db.exists() or RunStore(db).list() == []


def test_short_run_reports_every_metric_and_an_event_every_percent():
    events = []
    result = workbench.run("koopman", **(TINY | {"baselines": True, "steps": 100, "rbf_centres": 20}),
                           progress=events.append)
    assert result.status == "finished" and isinstance(result.model, KoopmanAutoencoder)
    keys = {"nrmse@5", "nrmse@20", "nrmse@50", "effective_dimension", "spectral_radius", "steps_done",
            "loss", "rec", "pred", "nce", "consistency", "entropy", "d_eff"}
    keys |= {f"{prefix}_nrmse@{n}" for prefix in ("dmd", "edmd_poly", "edmd_rbf") for n in (5, 20, 50)}
    assert keys <= set(result.metrics), keys - set(result.metrics)
    assert [e.step for e in events] == list(range(1, 101))
    assert 1 <= result.metrics["effective_dimension"] <= 8
    assert result.curves["d_eff"]["step"] == list(range(1, 101))
    payload = events[-1].payload
    assert payload["model"] is result.model and len(payload["history"]["step"]) == 100
    assert set(result.baselines) == {"dmd", "edmd_poly", "edmd_rbf"}


def test_training_beats_the_untrained_model():
    untrained = workbench.run("koopman", **(TINY | {"steps": 1}))
    trained = workbench.run("koopman", **(TINY | {"steps": 300}))
    assert trained.metrics["nrmse@5"] < 0.5 * untrained.metrics["nrmse@5"]


def test_dmd_model_recovers_the_linear_eigenvalues():
    result = workbench.run("koopman", system="linear", model="dmd")
    assert isinstance(result.model, DMD)
    assert result.metrics["eigenvalue_error"] < 1e-8 and result.metrics["dmd_eigenvalue_error"] < 1e-8
    assert result.metrics["nrmse@50"] < 1e-8
    assert result.metrics["effective_dimension"] > 1


def test_edmd_model_and_ridge_koopman_run():
    edmd = workbench.run("koopman", model="edmd", edmd_dictionary="polynomial", baselines=False)
    assert isinstance(edmd.model, EDMD) and edmd.metrics["nrmse@5"] < 0.2
    ridge = workbench.run("koopman", koopman="ridge", **TINY)
    assert ridge.model.koopman == "ridge" and not torch.equal(ridge.model.K, torch.eye(8))


def test_lifted_observation_has_64_channels():
    result = workbench.run("koopman", observation="lifted", **TINY)
    assert result.data.train.shape[-1] == 64 and result.model.input_dim == 64


def test_stop_flag_ends_the_run_early():
    stop, stopped_at = threading.Event(), []

    def progress(event):
        if event.step >= 30 and not stop.is_set():
            stopped_at.append(event.step)
            stop.set()

    result = workbench.run("koopman", **(TINY | {"steps": 5000}), progress=progress, stop=stop)
    assert result.status == "stopped"
    # events every 50 steps, or sooner on a slow machine (every half second): no step after the one that stopped it
    assert stopped_at and result.metrics["steps_done"] == stopped_at[0] <= 50


def test_payload_draws_with_the_live_plot():
    from workbench.panels import plot_for
    from workbench.panels.koopman import figure_from_result, koopman_plot

    assert plot_for("koopman") is koopman_plot
    events = []
    result = workbench.run("koopman", system="linear", **TINY, progress=events.append)
    figure = koopman_plot(events[-1])
    names = {trace.name for trace in figure.data}
    assert {"rec", "pred", "d_eff = exp S", "true", "model", "λ(K)", "true e^{μ dt}", "latent"} <= names
    assert any(trace.type == "scatter3d" for trace in figure.data)
    assert {trace.name for trace in figure_from_result(result).data} >= {"λ(K)", "latent", "d_eff = exp S"}
    dmd_events = []
    workbench.run("koopman", model="dmd", n_steps=60, progress=dmd_events.append)
    assert "λ(K)" in {trace.name for trace in koopman_plot(dmd_events[-1]).data}

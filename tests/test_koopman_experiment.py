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

TINY = dict(n_trajectories=12, n_test=2, n_steps=60, steps=40, train_horizon=8, baselines=False)


@pytest.mark.parametrize("params, fragment", [
    ({"train_horizon": 250}, "parameter 'train_horizon' = 250 is not allowed: training windows of train_horizon + 1 "
                             "= 251 snapshots are longer than the trajectories (n_steps + 1 = 201); allowed: "
                             "train_horizon <= n_steps"),
    ({"protocol": "paper", "n_steps": 50, "k": 8}, "parameter 'k' = 8 is not allowed: InfoNCE needs windows of at "
                                                   "least 2k + 1 = 17 snapshots, but train_horizon + 1 = 16"),
    ({"n_steps": 30}, "parameter 'n_steps' = 30 is not allowed: NRMSE@50 needs trajectories of at least 50 steps"),
    ({"train_horizon": 4}, "parameter 'k' = 3 is not allowed: InfoNCE needs windows of at least 2k + 1 = 7 "
                           "snapshots, but train_horizon + 1 = 5; allowed: k <= 2 (or alpha = 0)"),
    ({"n_test": 60}, "parameter 'n_test' = 60 is not allowed: it must be smaller than n_trajectories = 60"),
    ({"observation": "lifted", "poly_degree": 3}, "parameter 'poly_degree' = 3 is not allowed: 47905 monomials"),
])
def test_bad_settings_fail_before_any_work(params, fragment):
    with pytest.raises(ConfigError) as error:
        configure("koopman", **params)
    assert fragment in str(error.value)


def test_rules_that_do_not_apply_are_not_enforced():
    assert configure("koopman", train_horizon=4, alpha=0).train_horizon == 4  # no InfoNCE, no 2k + 1 rule
    assert configure("koopman", model="dmd", train_horizon=500).model == "dmd"  # no training windows
    assert configure("koopman", observation="lifted", poly_degree=3, baselines=False).poly_degree == 3


@pytest.mark.parametrize("override, fragments", [
    ("train_horizon=500", ["'train_horizon' = 500", "longer than the trajectories", "train_horizon <= n_steps"]),
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


@pytest.mark.parametrize("protocol, expected", [
    ("scored_horizon", dict(train_horizon=50, forecast_loss="rollout_mean", rec_weight=1.0, beta=1.0, lr_step_epochs=0)),
    ("paper", dict(train_horizon=15, forecast_loss="one_step_sum", rec_weight=0.1, beta=0.0, lr_step_epochs=20)),
])
def test_a_protocol_fills_the_settings_left_empty_and_each_stays_overridable(protocol, expected):
    experiment = configure("koopman", protocol=protocol)
    assert {key: experiment.setting(key) for key in expected} == expected
    weights = experiment.loss_weights()
    assert (weights.beta, weights.forecast, weights.reconstruction) == (
        expected["beta"], expected["forecast_loss"], expected["rec_weight"])
    overridden = configure("koopman", protocol=protocol, train_horizon=20, beta=0.5, forecast_loss="rollout_mean")
    assert (overridden.setting("train_horizon"), overridden.loss_weights().beta,
            overridden.loss_weights().forecast) == (20, 0.5, "rollout_mean")


def test_the_paper_protocol_trains_on_16_snapshot_windows_with_the_step_lr(monkeypatch):
    """What reaches ``fit``: windows of train_horizon + 1 = 16 snapshots and StepLR every 20 epochs of
    ceil(windows / batch_size) steps."""
    from importlib import import_module

    module = import_module("workbench.labs.koopman")
    seen = {}
    real_fit = module.fit

    def spy(model, train_windows, weights, *args, **kwargs):
        seen.update(shape=tuple(train_windows.shape), weights=weights, lr_step=kwargs["lr_step"])
        return real_fit(model, train_windows, weights, *args, **kwargs)

    monkeypatch.setattr(module, "fit", spy)
    workbench.run("koopman", **(TINY | {"protocol": "paper", "train_horizon": None, "batch_size": 16}))
    windows_per_trajectory = 60 + 1 - 16 + 1  # n_steps + 1 snapshots, windows of 16
    assert seen["shape"] == (10 * windows_per_trajectory, 16, 2)
    assert seen["lr_step"] == 20 * -(-10 * windows_per_trajectory // 16)
    assert (seen["weights"].forecast, seen["weights"].reconstruction, seen["weights"].beta) == ("one_step_sum", 0.1, 0.0)


def test_short_run_reports_every_metric_per_item_and_an_event_every_percent():
    events = []
    result = workbench.run("koopman", **(TINY | {"baselines": True, "steps": 100, "rbf_centres": 20}),
                           progress=events.append)
    assert result.status == "finished" and isinstance(result.model, KoopmanAutoencoder)
    training = {"steps_done", "loss", "rec", "pred", "nce", "consistency", "entropy", "d_eff"}
    scores = {f"{item}.{metric}" for item in ("autoencoder", "dmd", "edmd_poly", "edmd_rbf")
              for metric in ("nrmse@5", "nrmse@20", "nrmse@50", "spectral_radius")}
    assert set(result.metrics) == training | scores | {"autoencoder.effective_dimension"}
    assert [e.step for e in events] == list(range(1, 101)) and {e.total for e in events} == {100}
    assert 1 <= result.metrics["autoencoder.effective_dimension"] <= 8
    assert result.curves["d_eff"]["step"] == list(range(1, 101))
    payload = events[-1].payload
    assert payload["model"] is result.model and len(payload["history"]["step"]) == 100
    assert set(result.baselines) == {"dmd", "edmd_poly", "edmd_rbf"}


def test_the_headline_has_a_row_per_item_and_old_metric_names_read_as_new(tmp_path):
    """Stored under the names of earlier releases ("nrmse@50" for the model, "dmd_nrmse@50" for a baseline), a run
    reads back under item.metric names, and the headline shows each item's NRMSE@50."""
    from workbench.experiment import headline_summary

    store = RunStore(tmp_path / "runs.db")
    old = {"nrmse@50": 0.35, "effective_dimension": 4.2, "dmd_nrmse@50": 1.6, "edmd_rbf_nrmse@50": 0.1,
           "edmd_poly_spectral_radius": 1.01, "loss": 0.02}
    run_id = store.record("koopman", {}, "finished", metrics=old, curves={"nrmse@50": {"step": [1], "value": [0.35]}})
    record = store.load(run_id)
    assert record.metrics == {"autoencoder.nrmse@50": 0.35, "autoencoder.effective_dimension": 4.2,
                              "dmd.nrmse@50": 1.6, "edmd_rbf.nrmse@50": 0.1, "edmd_poly.spectral_radius": 1.01,
                              "loss": 0.02}
    assert set(record.curves) == {"autoencoder.nrmse@50"}
    assert headline_summary("koopman", record.metrics) == (
        "nrmse@50: autoencoder 0.35, dmd 1.6, edmd_rbf 0.1; effective_dimension: autoencoder 4.2")


def test_training_beats_the_untrained_model():
    untrained = workbench.run("koopman", **(TINY | {"steps": 1}))
    trained = workbench.run("koopman", **(TINY | {"steps": 300}))
    assert trained.metrics["autoencoder.nrmse@5"] < 0.5 * untrained.metrics["autoencoder.nrmse@5"]


def test_dmd_model_recovers_the_linear_eigenvalues():
    events = []
    result = workbench.run("koopman", system="linear", model="dmd", progress=events.append)
    assert isinstance(result.model, DMD) and result.baselines["dmd"] is result.model
    assert result.metrics["dmd.eigenvalue_error"] < 1e-8 and result.metrics["edmd_poly.eigenvalue_error"] < 1e-8
    assert result.metrics["dmd.nrmse@50"] < 1e-8
    assert result.metrics["dmd.effective_dimension"] > 1
    assert not any(name.startswith("autoencoder.") for name in result.metrics)
    assert [(e.step, e.total) for e in events] == [(1, 1)] and events[0].metrics["dmd.nrmse@50"] < 1e-8


def test_edmd_model_and_ridge_koopman_run():
    edmd = workbench.run("koopman", model="edmd", edmd_dictionary="polynomial", baselines=False)
    assert isinstance(edmd.model, EDMD) and edmd.metrics["edmd_poly.nrmse@5"] < 0.2
    assert {name.split(".")[0] for name in edmd.metrics} == {"edmd_poly"}
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


def test_the_shipped_benchmark_holds_every_table_the_notebook_reads():
    """workbench/labs/koopman_benchmark.json, written by benchmarks/koopman.py --json: both protocols with the
    three models on the three cases, the whole α × γ grid of Fig. 6 and the β = 0 / noise variants, over seeds 0-2."""
    from workbench.labs.koopman import PROTOCOLS, benchmark_results

    results = benchmark_results()
    assert results["seeds"] == [0, 1, 2] and set(results["protocols"]) == set(PROTOCOLS)
    for cases in results["protocols"].values():
        assert set(cases) == {"pendulum, state", "pendulum, lifted", "van_der_pol, lifted"}
        for models in cases.values():
            assert set(models) == {"full", "plain", "InfoNCE alone"}
            assert all(len(m["autoencoder.nrmse@50 per seed"]) == 3 and 1 <= m["autoencoder.effective_dimension"] <= 8
                       for m in models.values())
    assert set(results["sweep"]) == {f"alpha={a}, gamma={g}" for a in range(5) for g in ("0", "0.5")}
    assert len(results["variants"]) == 4

"""The ``manifold_clustering`` experiment through the protocol: validation (and the CLI's exit 2), the data,
the baselines, a short run with its metrics and events, Stop, and the live picture."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import workbench
from workbench.experiment import ConfigError, configure
from workbench.experiments.manifold_clustering import (DATASETS, cluster_baseline, digit_augmenter, make_dataset,
                                                       run_baselines, self_expression_connectivity)
from workbench.methods import mlc

TINY = dict(n_samples=120, hidden=32, feature_dim=8, tcr_steps=20, mlc_steps=10, baselines=["kmeans", "spectral"])


@pytest.mark.parametrize("params, fragment", [
    ({"eta": 0}, "manifold_clustering: parameter 'eta' = 0 is not allowed; expected a number in (0, 100]"),
    ({"eta": -0.1}, "parameter 'eta' = -0.1 is not allowed"),
    ({"dataset": "cifar"}, "parameter 'dataset' = 'cifar' is not allowed; expected one of 'digits', 'manifolds'"),
    ({"dataset": "manifolds", "n_samples": 5, "n_clusters": 6},
     "parameter 'n_clusters' = 6 is not allowed with 5 samples; expected at most the number of samples"),
    ({"dataset": "moons", "n_clusters": 3}, "parameter 'n_clusters' = 3 is not allowed with dataset = 'moons'; expected 2"),
    ({"dataset": "digits", "n_clusters": 11}, "parameter 'n_clusters' = 11 is not allowed with dataset = 'digits'"),
    ({"eps": "abc"}, "parameter 'eps' = 'abc' is not allowed; expected a number in (0, 100]"),
])
def test_bad_settings_fail_before_any_work(params, fragment):
    with pytest.raises(ConfigError) as error:
        configure("manifold_clustering", **params)
    assert fragment in str(error.value)


@pytest.mark.parametrize("override, fragments", [
    (["eta=0"], ["'eta'", "0", "a number in (0, 100]"]),
    (["dataset=cifar"], ["'dataset'", "'cifar'", "one of 'digits'"]),
    (["dataset=subspaces", "n_samples=3", "n_clusters=4"], ["'n_clusters' = 4", "at most the number of samples"]),
])
def test_cli_exits_2_with_the_usual_message(tmp_path, override, fragments):
    env = {**os.environ, "WORKBENCH_DB": str(tmp_path / "r.db"), "OMP_NUM_THREADS": "1"}
    args = [a for item in override for a in ("-p", item)]
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", "manifold_clustering", *args],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    for fragment in fragments:
        assert fragment in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_are_seeded_and_labelled(name):
    k = 2 if name in ("moons", "circles") else 4
    X, y = make_dataset(name, 200, k, ambient_dim=16, manifold_dim=2, noise=0.05, seed=3)
    X2, y2 = make_dataset(name, 200, k, ambient_dim=16, manifold_dim=2, noise=0.05, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert X.shape[0] == y.shape[0] == 200 and X.dtype == np.float32
    assert sorted(np.unique(y)) == list(range(k)) and np.bincount(y).min() >= 200 // k - 1


def test_digits_subset_is_stratified_and_in_unit_range():
    X, y = make_dataset("digits", 300, 10, seed=0)
    assert X.shape == (300, 64) and 0 <= X.min() and X.max() <= 1
    assert np.bincount(y).tolist() == [30] * 10
    X, y = make_dataset("digits", 100_000, 3)
    assert len(y) == int((y < 3).sum()) and len(y) > 500  # all images of the classes 0, 1, 2


def test_digit_augmentation_is_small_and_identity_without_randomness():
    import torch

    X, _ = make_dataset("digits", 50, 10)
    x = torch.as_tensor(X)
    assert torch.allclose(digit_augmenter(0.0, max_degrees=0, max_shift=0)(x), x, atol=1e-5)
    moved = digit_augmenter(0.05, generator=torch.Generator().manual_seed(0))(x)
    assert moved.shape == x.shape and 0 < (moved - x).abs().mean() < 0.2


def test_manifolds_defeat_kmeans_but_not_subspace_clustering_on_subspaces():
    X, y = make_dataset("subspaces", 300, 3, ambient_dim=20, manifold_dim=3, noise=0.0, seed=0)
    assert mlc.clustering_accuracy(y, cluster_baseline("ssc", X, 3, ssc_kmax=5)) > 0.95
    assert mlc.clustering_accuracy(y, cluster_baseline("ensc", X, 3)) > 0.95
    assert mlc.clustering_accuracy(y, cluster_baseline("kmeans", X, 3)) < 0.8
    X, y = make_dataset("manifolds", 300, 3, ambient_dim=20, manifold_dim=1, noise=0.02, seed=0)
    table = run_baselines(X, y, 3, ["kmeans", "spectral"])
    assert table["kmeans"]["accuracy"] < 0.8 < table["spectral"]["accuracy"]  # one centre, curved clusters


def test_short_run_has_the_metrics_events_and_payloads():
    events = []
    result = workbench.run("manifold_clustering", dataset="manifolds", n_clusters=3, progress=events.append, **TINY)
    m = result.metrics
    assert result.status == "finished" and m["steps_done"] == 30
    for key in ("accuracy", "nmi", "kmeans_accuracy", "spectral_accuracy", "tcr_accuracy", "mlc_kmeans_accuracy",
                "tcr_spectral_nmi", "R", "R_c", "delta_R", "delta_R_init", "mlc_rank_per_cluster", "mlc_rank_global",
                "gamma_row_error", "gamma_col_error", "gamma_leak", "tcr_gamma_leak"):
        assert key in m and np.isfinite(m[key]), key
    assert 0 <= m["accuracy"] <= 1 and m["gamma_row_error"] < 1e-5 and 0 <= m["gamma_leak"] < 1
    assert m["R"] - m["R_c"] == pytest.approx(m["delta_R"], rel=1e-6)
    steps = [e.step for e in events]
    assert steps[:30] == list(range(1, 31))  # every 1 % of 30 steps: every step; then the final picture
    assert result.curves["mlc_delta_R"]["step"] == list(range(21, 31))
    curve = result.mlc_curve  # every MLC step, whatever the cadence of the events
    assert curve["step"] == list(range(21, 31)) and curve["delta_R"] == result.curves["mlc_delta_R"]["value"]
    assert curve["delta_R"][0] == m["delta_R_init"]
    assert np.allclose(np.subtract(curve["R"], curve["R_c"]), curve["delta_R"], rtol=1e-6)
    payload = events[0].payload
    assert payload["Z"].shape == (120, 8) and payload["Gamma"].shape == (120, 120) and payload["phase"] == "tcr"
    assert events[-1].payload["table"]["kmeans"].keys() == {"raw", "tcr", "mlc"}


def test_stop_ends_the_run_early():
    stop, stopped_at = threading.Event(), []

    def progress(event):
        if event.step >= 3 and not stop.is_set():
            stopped_at.append(event.step)
            stop.set()

    result = workbench.run("manifold_clustering", dataset="moons", n_clusters=2, progress=progress, stop=stop,
                           **(TINY | {"tcr_steps": 500}))
    # events every 5 of 510 steps, or sooner on a slow machine (every half second): no step after the one that stopped it
    assert result.status == "stopped" and stopped_at and result.metrics["steps_done"] == stopped_at[0] <= 5
    assert "accuracy" not in result.metrics and "kmeans_accuracy" in result.metrics


@pytest.mark.parametrize("name", ["circles", "subspaces", "digits"])
def test_every_dataset_runs_and_draws(name):
    from workbench.panels import plot_for

    events = []
    k = 2 if name == "circles" else 3
    workbench.run("manifold_clustering", dataset=name, n_clusters=k, progress=events.append,
                  **(TINY | {"tcr_steps": 5, "mlc_steps": 5}))
    figure = plot_for("manifold_clustering")(events[-1])
    assert len([t for t in figure.data if t.type == "heatmap"]) == 2
    assert any(t.type == "table" for t in figure.data)
    assert {"R", "R_c", "delta_R", "invariance"} <= {t.name for t in figure.data if t.type == "scatter"}


def test_panel_runs_headlessly_and_draws_the_live_picture(tmp_path):
    from workbench.panels import ExperimentPanel
    from workbench.store import RunStore

    store = RunStore(tmp_path / "runs.db")
    panel = ExperimentPanel("manifold_clustering", store=store)
    for key, value in (TINY | {"dataset": "moons", "n_clusters": 2}).items():
        setattr(panel.values, key, value)
    assert panel.run() is True
    assert panel.wait(timeout=120) == "finished"
    assert panel.progress.value == 100
    picture = panel.picture.object
    data = picture["data"] if isinstance(picture, dict) else picture.data
    kinds = [t["type"] if isinstance(t, dict) else t.type for t in data]
    assert kinds.count("heatmap") == 2 and "table" in kinds
    [run] = store.list()
    assert run.status == "finished" and "accuracy" in run.metrics and "kmeans_accuracy" in run.metrics
    panel.values.eta = 0.0  # Run judges the working copy: a bad η is an alert, nothing is recorded
    assert panel.run() is False and "'eta'" in panel.alert.object
    assert len(store.list()) == 1


def test_self_expression_connectivity_is_zero_for_split_clusters_and_m_over_m_minus_1_for_cliques():
    y = np.repeat([0, 1], 4)
    C = np.kron(np.eye(2), np.ones((4, 4)) - np.eye(4))  # two cliques of 4, no edge between them
    assert self_expression_connectivity(C, y) == pytest.approx(4 / 3)
    C[:2, 2:4] = C[2:4, :2] = C[4:6, 6:] = C[6:, 4:6] = 0  # each cluster falls apart into two pairs
    assert self_expression_connectivity(C, y) == pytest.approx(0, abs=1e-12)


def test_self_expressive_baselines_report_connectivity_and_leak():
    X, y = make_dataset("subspaces", 150, 3, ambient_dim=20, manifold_dim=3, noise=0.0, seed=0)
    table = run_baselines(X, y, 3, ["ssc", "ensc"])
    for scores in table.values():
        assert scores["accuracy"] > 0.95 and scores["leak"] < 1e-3 and scores["connectivity"] > 0

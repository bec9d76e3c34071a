"""The ``manifold_clustering`` experiment through the protocol: validation (and the CLI's exit 2), a short run with
its metrics and events, metric names of the release before, Stop, and the live picture. The data and the baselines
are tested with the method, in test_mlc.py."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import workbench
from workbench.experiment import ConfigError, configure

TINY = dict(n_samples=120, hidden=32, feature_dim=8, tcr_steps=20, mlc_steps=10, baselines=["kmeans", "spectral"])


@pytest.mark.parametrize("params, fragment", [
    ({"dataset": "manifolds", "n_samples": 5, "n_clusters": 6},
     "parameter 'n_clusters' = 6 is not allowed with 5 samples; expected at most the number of samples"),
    ({"dataset": "moons", "n_clusters": 3}, "parameter 'n_clusters' = 3 is not allowed with dataset = 'moons'; expected 2"),
    ({"dataset": "digits", "n_clusters": 11}, "parameter 'n_clusters' = 11 is not allowed with dataset = 'digits'"),
    ({"tcr_steps": 0, "mlc_steps": 0}, "parameter 'mlc_steps' = 0 is not allowed with tcr_steps = 0"),
])
def test_bad_settings_fail_before_any_work(params, fragment):
    with pytest.raises(ConfigError) as error:
        configure("manifold_clustering", **params)
    assert fragment in str(error.value)


@pytest.mark.parametrize("override, fragments", [
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


def test_short_run_has_the_metrics_events_and_payloads():
    events = []
    result = workbench.run("manifold_clustering", dataset="manifolds", n_clusters=3, progress=events.append, **TINY)
    m = result.metrics
    assert result.status == "finished" and m["steps_done"] == 30
    for key in ("mlc.accuracy", "mlc.nmi", "mlc.z_accuracy", "kmeans.accuracy", "spectral.accuracy", "tcr.accuracy",
                "kmeans.mlc_accuracy", "spectral.tcr_nmi", "mlc.R", "mlc.R_c", "mlc.delta_R", "tcr.delta_R",
                "mlc.rank_per_cluster", "mlc.rank_global", "tcr.rank_per_cluster", "mlc.gamma_row_error",
                "mlc.gamma_col_error", "mlc.gamma_diag", "mlc.leak", "tcr.leak"):
        assert key in m and np.isfinite(m[key]), key
    assert 0 <= m["mlc.accuracy"] <= 1 and m["mlc.gamma_row_error"] < 1e-5 and 0 <= m["mlc.leak"] < 1
    assert m["mlc.R"] - m["mlc.R_c"] == pytest.approx(m["mlc.delta_R"], rel=1e-6)
    assert [e.step for e in events] == list(range(1, 31))  # every 1 % of 30 steps: every step, the last with the end
    assert [set(e.metrics) for e in events] == ([{"tcr.train_R", "tcr.train_invariance"}] * 20
                                                + [{"mlc.train_R", "mlc.train_R_c", "mlc.train_delta_R"}] * 10)
    curves = result.curves
    assert curves["mlc.train_delta_R"]["step"] == list(range(21, 31))
    assert np.allclose(np.subtract(curves["mlc.train_R"]["value"], curves["mlc.train_R_c"]["value"]),
                       curves["mlc.train_delta_R"]["value"], rtol=1e-5)
    view = events[0].payload["view"]
    assert view.Z.shape == (120, 8) and view.Gamma.shape == (120, 120) and events[0].payload["phase"] == "tcr"
    last = events[-1].payload
    assert last["phase"] == "done" and last["table"]["kmeans"].keys() == {"raw", "tcr", "mlc"}
    assert np.array_equal(last["view"].labels, result.labels)  # all 120 samples drawn: the run's own labels


def test_old_metric_names_are_read_as_their_item_metric_names(tmp_path):
    from workbench.store import RunStore

    renamed = workbench.get("manifold_clustering").renamed_metrics
    old = {"accuracy": 0.9, "tcr_kmeans_accuracy": 0.5, "mlc_ensc_leak": 0.03, "ssc_connectivity": 0.1,
           "tcr_gamma_leak": 0.2, "delta_R_tcr": 17.0, "mlc_rank_per_cluster": 7.5, "mlc_z_accuracy": 0.8}
    assert {renamed[k] for k in old} == {"mlc.accuracy", "kmeans.tcr_accuracy", "ensc.mlc_leak", "ssc.connectivity",
                                         "tcr.leak", "tcr.delta_R", "mlc.rank_per_cluster", "mlc.z_accuracy"}
    assert len(set(renamed.values())) == len(renamed)  # no two old names read as one
    assert all("." in new and "." not in old_name for old_name, new in renamed.items())
    store = RunStore(tmp_path / "runs.db")
    run_id = store.record("manifold_clustering", {}, "finished", old,
                          curves={"mlc_delta_R": {"step": [21], "value": [3.0]}})
    run = store.load(run_id)
    assert run.metrics == {renamed[k]: v for k, v in old.items()}
    assert run.curves == {"mlc.train_delta_R": {"step": [21], "value": [3.0]}}


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
    assert "mlc.accuracy" not in result.metrics and "kmeans.accuracy" in result.metrics


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
    assert {"R (TCR)", "invariance (TCR)", "R (MLC)", "R_c (MLC)", "delta_R (MLC)"} <= {
        t.name for t in figure.data if t.type == "scatter"}


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
    assert run.status == "finished" and "mlc.accuracy" in run.metrics and "kmeans.accuracy" in run.metrics
    panel.values.eta = 0.0  # Run judges the working copy: a bad η is an alert, nothing is recorded
    assert panel.run() is False and "'eta'" in panel.alert.object
    assert len(store.list()) == 1

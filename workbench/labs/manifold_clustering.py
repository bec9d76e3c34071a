"""The ``manifold_clustering`` experiment: MLC (Ding et al., ICCV 2023) against classical clustering.

The data are :mod:`workbench.methods.mlc.data`'s (digits, curved manifolds, subspaces, moons, circles; the
defaults are the notebook's: 500 points on 5 curved surfaces in R^32, about a minute on one CPU thread;
``benchmarks/manifold_clustering.py`` also runs all 1797 digits). Training is :func:`workbench.methods.mlc.fit`: TCR
pre-training, the feature head copied into the cluster head, MLC with two augmented views. Labels: spectral
clustering on Γ. The baselines (:mod:`workbench.methods.mlc.baselines`: k-means, spectral with a 10-NN graph,
Gaussian mixture, Ward agglomerative, SSC-OMP, EnSC) run on the raw data, on Z_TCR and on Z_MLC.

Metrics, named ``item.metric``:

- ``mlc.*``, the trained model: ``accuracy`` / ``nmi`` (spectral clustering on Γ), ``z_accuracy`` (the same
  read-out on P(|Z Zᵀ|), the learned features through the initial cluster head's eyes), the objective's terms
  ``R``, ``R_c``, ``delta_R`` (clean data, batch norm in eval mode), Γ's ``gamma_row_error`` /
  ``gamma_col_error`` / ``gamma_diag`` and ``leak`` (its mass on other classes,
  :func:`~workbench.methods.mlc.membership_leak`), the features' numerical ranks (95 % energy) ``rank_global``
  and ``rank_per_cluster`` (the mean over ground-truth clusters);
- ``tcr.*``, right after pre-training and the one-shot initialisation (Γ₀ = P(|Z_TCR Z_TCRᵀ|)): ``accuracy``,
  ``nmi``, ``delta_R``, ``leak``, ``rank_global``, ``rank_per_cluster``;
- ``<baseline>.*`` for each baseline in ``baselines``: ``accuracy`` / ``nmi`` on the raw data, ``tcr_accuracy`` /
  ``tcr_nmi`` on Z_TCR, ``mlc_accuracy`` / ``mlc_nmi`` on Z_MLC; SSC-OMP and EnSC also the ``connectivity`` and
  ``leak`` of their codes, with the same prefixes;
- ``steps_done``, ``n_samples``.

Names of the release before (``accuracy``, ``tcr_kmeans_accuracy``, ``mlc_delta_R``, ...) are read as their
current ones (:attr:`ManifoldClustering.renamed_metrics`).

Events come on the :class:`~workbench.progress.Cadence` with ``fit``'s means of the objective's terms
(``tcr.train_R``, ``tcr.train_invariance``, ``mlc.train_R``, ``mlc.train_R_c``, ``mlc.train_delta_R``) and a
payload on up to 400 samples: ``view``, a :class:`~workbench.methods.mlc.ClusterView` of Z and Γ (Γ₀ during
pre-training), ``phase`` ("tcr", "mlc", "done"), ``history`` (the training curves so far, {name: {"step", "value"}})
and ``table`` ({row: {"raw" | "tcr" | "mlc": accuracy}}). The last step's event carries the final evaluation's
view and table. Artifacts: ``net`` (= ``model``), ``X``, ``y``, ``Z``, ``Gamma``, ``Z_tcr``, ``Gamma_tcr``,
``labels``, ``labels_tcr``, ``table`` and ``payload`` (the last event's).
"""
from __future__ import annotations

import threading

import numpy as np
import param
import torch

from workbench.experiment import ConfigError, Event, Experiment, Result, register
from workbench.methods import mlc

N_PLOT = 400  # samples drawn in the live picture
STAGES = ("tcr", "mlc")
TABLE_ROWS = {"mlc": "MLC (spectral on Γ)", "tcr": "TCR (spectral on Γ₀)"}  # the accuracy table's rows of MLC's read-out


def renamed_metrics() -> dict[str, str]:
    """{metric name before ``item.metric``: its name now}."""
    renamed = {"accuracy": "mlc.accuracy", "nmi": "mlc.nmi", "mlc_z_accuracy": "mlc.z_accuracy",
               "tcr_accuracy": "tcr.accuracy", "tcr_nmi": "tcr.nmi", "R": "mlc.R", "R_c": "mlc.R_c",
               "delta_R": "mlc.delta_R", "delta_R_tcr": "tcr.delta_R", "delta_R_init": "mlc.delta_R_init",
               "gamma_leak": "mlc.leak", "tcr_gamma_leak": "tcr.leak"}
    renamed |= {f"gamma_{key}": f"mlc.gamma_{key}" for key in ("row_error", "col_error", "diag")}
    renamed |= {f"{stage}_rank_{kind}": f"{stage}.rank_{kind}" for stage in STAGES for kind in ("global", "per_cluster")}
    renamed |= {"tcr_R": "tcr.train_R", "tcr_invariance": "tcr.train_invariance"}  # the training curves
    renamed |= {f"mlc_{term}": f"mlc.train_{term}" for term in ("R", "R_c", "delta_R")}
    for method in mlc.BASELINES:
        keys = ("accuracy", "nmi") + (("connectivity", "leak") if method in mlc.SELF_EXPRESSIVE else ())
        renamed |= {f"{method}_{key}": f"{method}.{key}" for key in keys}
        renamed |= {f"{stage}_{method}_{key}": f"{method}.{stage}_{key}" for stage in STAGES for key in keys}
    return renamed


@register
class ManifoldClustering(Experiment):
    """MLC (Ding, Tong, Chan, Dai, Ma, Haeffele, ICCV 2023): learn unit-norm features Z and a doubly stochastic
    membership Γ = Sinkhorn(|CCᵀ|) maximising R(Z) − R_c(Z, Γ), so each cluster becomes a low-dimensional
    linear subspace; compared with k-means, spectral, GMM, agglomerative, SSC-OMP and EnSC on raw and learned
    features."""

    name = param.String("manifold_clustering", constant=True)
    headline = ("mlc.accuracy", "mlc.nmi")
    renamed_metrics = renamed_metrics()
    tiny_params = {"dataset": "moons", "n_clusters": 2, "n_samples": 100, "hidden": 16, "feature_dim": 4,
                   "tcr_steps": 180, "mlc_steps": 20, "baselines": ["kmeans"]}

    dataset = param.Selector(default="manifolds", objects=list(mlc.DATASETS), doc=(
        "digits (sklearn's 8×8 digits, a stratified subset), manifolds (curved manifolds in R^D), subspaces "
        "(linear subspaces in R^D), moons, circles (2-D, two clusters)."))
    n_samples = param.Integer(500, bounds=(2, 100_000), doc=(
        "Samples in all (digits: a stratified subset of the 1797 images; all of them when larger)."))
    n_clusters = param.Integer(5, bounds=(1, 1000), doc=(
        "Clusters k (digits: the classes 0 … k−1, at most 10; moons and circles: 2)."))
    ambient_dim = param.Integer(32, bounds=(6, 4096), doc="manifolds / subspaces: the ambient dimension D.")
    manifold_dim = param.Integer(2, bounds=(1, 64), doc=(
        "manifolds: 1 (curves) or 2 (surfaces); subspaces: the dimension of each subspace."))
    noise = param.Number(0.05, bounds=(0, 10), doc=(
        "Data noise (manifolds / subspaces: per-coordinate σ; moons / circles: sklearn's noise)."))
    eps = param.Number(0.7, bounds=(0, 100), inclusive_bounds=(False, True), doc=(
        "ε of the coding rates (ε² = eps²; the note's digits run: ε² = 0.5; CPP's `eps` is ε²)."))
    eta = param.Number(0.15, bounds=(0, 100), inclusive_bounds=(False, True), doc=(
        "η, the entropy weight of the Sinkhorn membership: too small drifts Γ to a permutation (I), too large to "
        "11ᵀ/n. Γ = I is out of reach roughly when η ≳ 1/ln n (n samples per batch); grow η with d."))
    feature_dim = param.Integer(32, bounds=(2, 1024), doc="d, the feature size (the sphere S^{d−1}).")
    hidden = param.Integer(512, bounds=(8, 8192), doc="Width of the MLP backbone and heads.")
    tcr_steps = param.Integer(200, bounds=(0, 100_000), doc="TCR pre-training steps (Adam).")
    mlc_steps = param.Integer(25, bounds=(0, 100_000), doc=(
        "MLC steps (Adam) after the one-shot initialisation (measured: accuracy peaks early, then Γ localises "
        "while ΔR keeps rising)."))
    tcr_lr = param.Number(1e-3, bounds=(0, 10), inclusive_bounds=(False, True), doc=(
        "Adam learning rate of TCR pre-training."))
    mlc_lr = param.Number(1e-4, bounds=(0, 10), inclusive_bounds=(False, True), doc="Adam learning rate of MLC.")
    weight_decay = param.Number(1e-4, bounds=(0, 1), doc="Adam (L2) weight decay.")
    lam = param.Number(50.0, bounds=(0, 1e4), doc="λ, weight of the TCR invariance term between the two views.")
    sinkhorn_iters = param.Integer(5, bounds=(1, 1000), doc="Sinkhorn iterations (unrolled; CPP uses 5).")
    batch_size = param.Integer(None, allow_None=True, bounds=(1, 100_000), doc="Samples per step; auto = full batch.")
    augment_noise = param.Number(0.05, bounds=(0, 10), doc=(
        "Augmentation noise σ (digits: pixel noise beside ±12° rotations and ±1 px shifts; others: Gaussian jitter "
        "on the standardised data, where 0.05 is far below the spacing of neighbouring samples and lets MLC split "
        "the manifolds; benchmarks/manifold_clustering.py uses 1.5)."))
    baselines = param.ListSelector(default=list(mlc.BASELINES), objects=list(mlc.BASELINES), doc=(
        "Baselines run on raw X, Z_TCR and Z_MLC: k-means, spectral (10-NN graph), Gaussian mixture, Ward "
        "agglomerative, SSC-OMP, EnSC (the subspace-clustering ones are the slowest)."))
    ssc_kmax = param.Integer(3, bounds=(1, 100), doc=(
        "SSC-OMP: at most this many atoms per sample (3: the best of the MLC paper's grid on digits seeds 3–7)."))

    def validate(self) -> None:
        def fail(key, value, allowed):
            raise ConfigError(f"{self.name}: parameter {key!r} = {value!r} is not allowed with dataset = "
                              f"{self.dataset!r}; expected {allowed}")

        if self.dataset not in mlc.DATASETS:
            raise ConfigError(f"{self.name}: parameter 'dataset' = {self.dataset!r} is not allowed; expected one of "
                              + ", ".join(repr(d) for d in mlc.DATASETS))
        if self.dataset == "digits" and self.n_clusters > 10:
            fail("n_clusters", self.n_clusters, "at most 10 (the digit classes)")
        if self.dataset in ("moons", "circles") and self.n_clusters != 2:
            fail("n_clusters", self.n_clusters, "2")
        n = mlc.dataset_size(self.dataset, self.n_samples, self.n_clusters)
        if self.n_clusters > n:
            raise ConfigError(f"{self.name}: parameter 'n_clusters' = {self.n_clusters} is not allowed with "
                              f"{n} samples; expected at most the number of samples")
        if self.dataset == "manifolds" and self.manifold_dim > 2:
            fail("manifold_dim", self.manifold_dim, "1 (curves) or 2 (surfaces)")
        if self.dataset == "subspaces" and self.manifold_dim >= self.ambient_dim:
            fail("manifold_dim", self.manifold_dim, f"less than ambient_dim = {self.ambient_dim}")
        if self.batch_size is not None and self.batch_size < self.n_clusters:
            raise ConfigError(f"{self.name}: parameter 'batch_size' = {self.batch_size} is not allowed with "
                              f"n_clusters = {self.n_clusters}; expected 'auto' (full batch) or at least n_clusters")
        if self.tcr_steps + self.mlc_steps == 0:
            raise ConfigError(f"{self.name}: parameter 'mlc_steps' = 0 is not allowed with tcr_steps = 0; expected "
                              f"at least one training step in all")

    def run(self, progress, stop: threading.Event) -> Result:
        self.validate()
        device = self.torch_device
        X_np, y = mlc.training_data(self.dataset, self.n_samples, self.n_clusters, self.ambient_dim,
                                    self.manifold_dim, self.noise, self.seed)
        n, k = len(y), self.n_clusters
        generator = torch.Generator().manual_seed(self.seed)
        X = torch.as_tensor(X_np, device=device)  # (n, D)
        augment = mlc.augmenter(self.dataset, self.augment_noise, generator)
        raw = mlc.run_baselines(X_np, y, k, self.baselines, self.seed, self.ssc_kmax)
        table = {method: {"raw": scores["accuracy"]} for method, scores in raw.items()}  # {row: {column: accuracy}}

        torch.manual_seed(self.seed)
        net = mlc.MLCNet(X.shape[1], self.hidden, self.feature_dim).to(device)
        total = self.tcr_steps + self.mlc_steps
        shown = np.sort(np.random.default_rng(self.seed).permutation(n)[:N_PLOT])  # the samples drawn
        history: dict[str, dict[str, list]] = {}
        pretrained: dict[str, torch.Tensor] = {}
        final: dict[str, dict] = {}

        def payload(phase: str, labels: np.ndarray | None = None) -> dict:
            """The live picture's data: the drawn samples' Z and Γ (Γ₀ while pre-training) and what else it shows."""
            Z, Gamma = mlc.embed(net, X[shown], self.eta, self.sinkhorn_iters)  # (N_PLOT, d), (N_PLOT, N_PLOT)
            if phase == "tcr":  # the cluster head is not trained yet: show Γ₀ = P(|ZZᵀ|), what MLC starts from
                Gamma = mlc.membership(Z, self.eta, self.sinkhorn_iters)
            return {"view": mlc.ClusterView(Z, Gamma, k, y[shown], labels=labels, seed=self.seed), "phase": phase,
                    "history": history, "table": {row: dict(columns) for row, columns in table.items()}}

        def report(event: Event) -> None:
            for name, value in event.metrics.items():
                curve = history.setdefault(name, {"step": [], "value": []})
                curve["value"].append(value)
                curve["step"].append(event.step)  # last: a reader zipping the two sees complete points
            if event.step < total:
                event.payload = payload("tcr" if event.step <= self.tcr_steps else "mlc")
            else:  # the last step: the final evaluation, drawn with the run's own labels
                final.update(self.evaluate(net, X, y, pretrained["Z"], pretrained["Gamma"], table))
                event.payload = final["artifacts"]["payload"] = payload("done", final["artifacts"]["labels"][shown])
            progress(event)

        def on_pretrained(pretrained_net: mlc.MLCNet) -> None:
            pretrained["Z"], pretrained["Gamma"] = mlc.embed(pretrained_net, X, self.eta, self.sinkhorn_iters)

        steps_done = mlc.fit(net, X, augment, tcr_steps=self.tcr_steps, mlc_steps=self.mlc_steps, eps=self.eps,
                             eta=self.eta, lam=self.lam, tcr_lr=self.tcr_lr, mlc_lr=self.mlc_lr,
                             weight_decay=self.weight_decay, sinkhorn_iters=self.sinkhorn_iters,
                             batch_size=self.batch_size, generator=generator, callback=report, stop=stop.is_set,
                             on_pretrained=on_pretrained)
        metrics = {"steps_done": steps_done, "n_samples": n} | final.get("metrics", {})
        metrics |= {f"{method}.{key}": v for method, scores in raw.items() for key, v in scores.items()}
        metrics |= final.get("features", {})
        artifacts = {"net": net, "model": net, "X": X_np, "y": y, "table": table} | final.get("artifacts", {})
        return Result(metrics=metrics, artifacts=artifacts)  # stopped before the last step: no final evaluation

    def evaluate(self, net: mlc.MLCNet, X: torch.Tensor, y: np.ndarray, Z_tcr: torch.Tensor, Gamma_tcr: torch.Tensor,
                 table: dict[str, dict[str, float]]) -> dict[str, dict]:
        """The final evaluation of the trained ``net`` on the clean data X (n, D), against Z_TCR, Γ₀ kept right after
        pre-training: {"metrics": MLC's and TCR's own, "features": the baselines' on Z_TCR and Z_MLC, "artifacts"};
        fills ``table``'s "tcr" and "mlc" columns."""
        Z, Gamma = mlc.embed(net, X, self.eta, self.sinkhorn_iters)  # (n, d), (n, n)
        metrics, features, labels = {}, {}, {}
        for stage, Z_stage, Gamma_stage in (("mlc", Z, Gamma), ("tcr", Z_tcr, Gamma_tcr)):
            own, on_features, labels[stage] = self.stage_metrics(stage, Z_stage, Gamma_stage, y)
            metrics |= own
            features = on_features | features  # each baseline's Z_TCR metrics before its Z_MLC ones
            table[TABLE_ROWS[stage]] = {stage: own[f"{stage}.accuracy"]}
            for method in self.baselines:
                table[method][stage] = on_features[f"{method}.{stage}_accuracy"]
        labels_z = mlc.spectral_labels(mlc.membership(Z, self.eta, self.sinkhorn_iters), self.n_clusters, self.seed)
        metrics |= {"mlc.z_accuracy": mlc.clustering_accuracy(y, labels_z),
                    "mlc.R": mlc.coding_rate(Z, self.eps).item(),
                    "mlc.R_c": mlc.compressed_coding_rate(Z, Gamma, self.eps).item(),
                    "mlc.gamma_row_error": (Gamma.sum(1) - 1).abs().max().item(),
                    "mlc.gamma_col_error": (Gamma.sum(0) - 1).abs().max().item(),
                    "mlc.gamma_diag": Gamma.diagonal().mean().item()}
        artifacts = {"Z": Z.cpu(), "Gamma": Gamma.cpu(), "Z_tcr": Z_tcr.cpu(), "Gamma_tcr": Gamma_tcr.cpu(),
                     "labels": labels["mlc"], "labels_tcr": labels["tcr"]}
        return {"metrics": metrics, "features": features, "artifacts": artifacts}

    def stage_metrics(self, stage: str, Z: torch.Tensor, Gamma: torch.Tensor,
                      y: np.ndarray) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
        """After ``stage`` ("tcr" or "mlc"), with features Z (n, d) and membership Γ (n, n): (the stage's own
        metrics: spectral clustering on Γ, ΔR on clean data, Γ's leak, the ranks of Z; every baseline's metrics on
        Z; the labels of spectral clustering on Γ)."""
        labels = mlc.spectral_labels(Gamma, self.n_clusters, self.seed)
        features = Z.cpu().double().numpy()
        ranks = mlc.per_cluster_ranks(features, y)
        own = {f"{stage}.accuracy": mlc.clustering_accuracy(y, labels), f"{stage}.nmi": mlc.nmi(y, labels),
               f"{stage}.delta_R": mlc.rate_reduction(Z, Gamma, self.eps).item(),
               f"{stage}.leak": mlc.membership_leak(Gamma, y), f"{stage}.rank_global": mlc.numerical_rank(features),
               f"{stage}.rank_per_cluster": float(np.mean(list(ranks.values())))}
        scores = mlc.run_baselines(features, y, self.n_clusters, self.baselines, self.seed, self.ssc_kmax)
        on_features = {f"{method}.{stage}_{key}": v for method, values in scores.items() for key, v in values.items()}
        return own, on_features, labels


__all__ = ["ManifoldClustering", "renamed_metrics"]

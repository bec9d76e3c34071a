"""The ``manifold_clustering`` experiment: MLC (Ding et al., ICCV 2023) against classical clustering.

Datasets (rows are samples, labels are the ground-truth clusters):

- ``digits``: scikit-learn's bundled 8×8 digits (1797 images, 10 classes), pixels scaled to [0, 1]; a seeded
  stratified subset of ``n_samples`` images of the first ``n_clusters`` classes (the defaults: 600 images of
  all 10 classes, about 30 s on one CPU thread; the accuracy run in ``benchmarks/manifold_clustering.py``
  uses all 1797). Augmentations
  for training: rotation ±12°, shift ±1 px, Gaussian pixel noise σ = ``augment_noise`` (the note's 0.05).
- ``manifolds``: a seeded union of ``n_clusters`` curved ``manifold_dim``-dimensional manifolds (random
  trigonometric curves or tori-like surfaces in R⁶) each embedded in R^D by its own random orthonormal map,
  all through the same centre (so the clusters share a mean and k-means has no centroid to use), plus
  Gaussian noise ``noise``. Augmentation: Gaussian jitter ``augment_noise``.
- ``subspaces``: a union of ``n_clusters`` random ``manifold_dim``-dimensional linear subspaces of R^D with
  noise (what subspace clustering is built for).
- ``moons`` and ``circles``: scikit-learn's two-cluster 2-D toys with ``noise``.

Training (``workbench.methods.mlc.fit``): TCR pre-training, the feature head copied into the cluster head,
MLC with two augmented views. Labels: spectral clustering on Γ.

Metrics: ``accuracy`` / ``nmi`` (MLC, spectral clustering on Γ), ``tcr_accuracy`` / ``tcr_nmi`` (the same
read-out on Γ₀ = P(|Z_TCR Z_TCRᵀ|) right after pre-training), ``mlc_z_accuracy`` (the same read-out on
P(|Z_MLC Z_MLCᵀ|), the learned features through the initial cluster head's eyes); the objective's terms
``R``, ``R_c``, ``delta_R`` (clean data, batch norm in eval mode), ``delta_R_tcr`` (the same right after
the one-shot initialisation) and ``delta_R_init`` (the training objective at the first MLC step, on
augmented views); Γ's ``gamma_row_error`` / ``gamma_col_error`` / ``gamma_diag``, and ``gamma_leak`` /
``tcr_gamma_leak``, the mass of Γ / Γ₀ on other classes (:func:`workbench.methods.mlc.membership_leak`);
numerical ranks (95 % energy) ``{tcr,mlc}_rank_global`` / ``{tcr,mlc}_rank_per_cluster`` (mean over
ground-truth clusters); for each baseline b in ``baselines`` (k-means, spectral with a 10-NN graph, Gaussian
mixture, Ward agglomerative, SSC-OMP, EnSC) ``b_accuracy`` / ``b_nmi`` on the raw data, ``tcr_b_accuracy`` /
``tcr_b_nmi`` on Z_TCR and ``mlc_b_accuracy`` / ``mlc_b_nmi`` on Z_MLC; SSC-OMP and EnSC also ``…_connectivity``
and ``…_leak`` of their codes (:func:`run_baselines`).
Events come every 1 % of the steps (TCR and MLC steps together) with metrics ``{phase}_{term}`` and payload
{Z, Gamma, y, phase, history, table} on up to 400 samples: the live picture draws the objective's terms, Γ,
the features, their singular values and the accuracy table from it. Artifacts: ``net`` (= ``model``), ``X``,
``y``, ``Z``, ``Gamma``, ``Z_tcr``, ``Gamma_tcr``, ``labels``, ``labels_tcr``, ``table``, ``payload`` and
``mlc_curve`` ({"step", "R", "R_c", "delta_R"}: the training objective's terms at every MLC step, on augmented
views, where the events come every 1 %).
"""
from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import param
import torch
from torch.nn import functional as F

from workbench.cadence import Cadence
from workbench.experiment import ConfigError, Event, Experiment, Result, register
from workbench.methods import mlc

DATASETS = ("digits", "manifolds", "subspaces", "moons", "circles")
BASELINES = ("kmeans", "spectral", "gmm", "agglomerative", "ssc", "ensc")
N_PLOT = 400  # samples drawn in the live picture
DIGITS_TOTAL = 1797


# --- data ------------------------------------------------------------------------------------------------


def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a seeded subset of size n with the classes as balanced as the data allow, sorted."""
    classes = np.unique(y)
    per = [np.flatnonzero(y == c) for c in classes]
    take = np.zeros(len(classes), int)
    for i in range(n):  # round robin
        j = i % len(classes)
        while take[j] >= len(per[j]):
            j = (j + 1) % len(classes)
        take[j] += 1
    chosen = [rng.choice(idx, t, replace=False) for idx, t in zip(per, take)]
    return np.sort(np.concatenate(chosen))


def load_digits_subset(n_samples: int, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, 64) in [0, 1], y (n,)): a stratified seeded subset of the digits 0 … n_clusters − 1."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = digits.target < n_clusters
    X, y = digits.data[keep] / 16.0, digits.target[keep]
    if n_samples < len(y):
        index = _stratified(y, n_samples, np.random.default_rng(seed))
        X, y = X[index], y[index]
    return X.astype(np.float32), y


def _trig_manifold(n: int, manifold_dim: int, rng: np.random.Generator) -> np.ndarray:
    """n points on a random smooth closed curve (dim 1) or torus-like surface (dim 2) in R⁶, (n, 6)."""
    if manifold_dim == 1:
        t = rng.uniform(0, 2 * np.pi, n)
        phase, amp = rng.uniform(0, 2 * np.pi, 3), np.array([1.0, 0.6, 0.35]) * rng.uniform(0.8, 1.2, 3)
        cols = [c(m * t + p) * a for m, p, a in zip((1, 2, 3), phase, amp) for c in (np.cos, np.sin)]
    else:
        t, s = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
        amp = np.array([1.0, 0.7, 0.4]) * rng.uniform(0.8, 1.2, 3)
        cols = [c(u) * a for u, a in zip((t, s, t + s), amp) for c in (np.cos, np.sin)]
    return np.stack(cols, 1)  # (n, 6)


def make_manifolds(n_samples: int, n_clusters: int, ambient_dim: int, manifold_dim: int, noise: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A union of curved manifolds: cluster c is U_c f_c(t) + noise, f_c a random trigonometric curve or
    surface in R⁶ with zero mean, U_c (D, 6) a random orthonormal map (R^D needs D ≥ 6). (X (n, D), y (n,))."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_clusters, n_samples // n_clusters) + (np.arange(n_clusters) < n_samples % n_clusters)
    X, y = [], []
    for c, n_c in enumerate(sizes):
        U = np.linalg.qr(rng.standard_normal((ambient_dim, 6)))[0]  # (D, 6)
        X.append(_trig_manifold(n_c, manifold_dim, rng) @ U.T)
        y.append(np.full(n_c, c))
    X = np.concatenate(X) + noise * rng.standard_normal((n_samples, ambient_dim))
    return X.astype(np.float32), np.concatenate(y)


def make_subspaces(n_samples: int, n_clusters: int, ambient_dim: int, subspace_dim: int, noise: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A union of random linear subspaces: cluster c is U_c a + noise, a ~ N(0, I/r), U_c (D, r) orthonormal."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_clusters, n_samples // n_clusters) + (np.arange(n_clusters) < n_samples % n_clusters)
    X, y = [], []
    for c, n_c in enumerate(sizes):
        U = np.linalg.qr(rng.standard_normal((ambient_dim, subspace_dim)))[0]  # (D, r)
        X.append(rng.standard_normal((n_c, subspace_dim)) / math.sqrt(subspace_dim) @ U.T)
        y.append(np.full(n_c, c))
    X = np.concatenate(X) + noise * rng.standard_normal((n_samples, ambient_dim))
    return X.astype(np.float32), np.concatenate(y)


def make_dataset(name: str, n_samples: int, n_clusters: int, ambient_dim: int = 32, manifold_dim: int = 1,
                 noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, D) float32, y (n,) int) for any of :data:`DATASETS`."""
    if name == "digits":
        return load_digits_subset(n_samples, n_clusters, seed)
    if name == "manifolds":
        return make_manifolds(n_samples, n_clusters, ambient_dim, manifold_dim, noise, seed)
    if name == "subspaces":
        return make_subspaces(n_samples, n_clusters, ambient_dim, manifold_dim, noise, seed)
    from sklearn.datasets import make_circles, make_moons

    if name == "moons":
        X, y = make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        X, y = make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    else:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return X.astype(np.float32), y


def digit_augmenter(noise: float, max_degrees: float = 12.0, max_shift: float = 1.0,
                    generator: torch.Generator | None = None):
    """Augment flattened 8×8 digits (n, 64) in [0, 1]: a random rotation in ±max_degrees, a random shift in
    ±max_shift pixels (bilinear ``grid_sample``, zero padding) and Gaussian pixel noise σ = noise."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        u = torch.rand(n, 3, generator=generator).to(x.device) * 2 - 1  # (n, 3) in [−1, 1]
        angle = u[:, 0] * math.radians(max_degrees)
        shift = u[:, 1:] * max_shift * 2 / 8  # pixels -> normalised coordinates of an 8-px image
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (n, 2, 3)
        images = x.reshape(n, 1, 8, 8)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (n, 8, 8, 2)
        moved = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros").reshape(n, 64)
        return moved + noise * torch.randn(moved.shape, generator=generator).to(x.device)

    return augment


def jitter_augmenter(noise: float, generator: torch.Generator | None = None):
    """Augment vectors (n, D) by Gaussian jitter of standard deviation ``noise``."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        return x + noise * torch.randn(x.shape, generator=generator).to(x.device)

    return augment


# --- baselines ------------------------------------------------------------------------------------------


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """X (n, D) with every row scaled to unit l2 norm (self-expression codes directions, as MCR²'s sphere)."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def self_expressive_labels(C: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Labels from a self-expression matrix C (n, n) (row i codes sample i by the others), as
    ``ChongYou/subspace-clustering`` does: rows of C scaled to unit l2 norm, affinity |C| + |C|ᵀ, then
    normalised spectral clustering (:func:`workbench.methods.mlc.spectral_labels`)."""
    return mlc.spectral_labels(np.abs(_unit_rows(C)), n_clusters, seed)


def omp_self_expression(X: np.ndarray, k_max: int = 3) -> np.ndarray:
    """SSC-OMP's codes C (n, n) (You, Robinson, Vidal, CVPR 2016): each unit-normalised sample x_i is coded by
    at most ``k_max`` *other* samples, min_c ‖x_i − X c‖² s.t. ‖c‖₀ ≤ k_max, c_i = 0, with scikit-learn's
    ``orthogonal_mp``. Greedy: of several nearly collinear samples of one cluster it takes one, and once the
    cluster's few directions are used up the residual is coded by other clusters. k_max = 3: of the MLC paper's
    grid {3, 5, 10, 20} the best on Z_TCR and on Z_MLC on every one of digits seeds 3–7 (larger k_max codes the
    residual by other digits)."""
    from sklearn.linear_model import orthogonal_mp

    Xn = _unit_rows(X)  # (n, D)
    n = Xn.shape[0]
    C = np.zeros((n, n))
    k = min(k_max, Xn.shape[1], n - 1)
    everyone = np.arange(n)
    for i in range(n):
        others = everyone[everyone != i]
        C[i, others] = orthogonal_mp(Xn[others].T, Xn[i], n_nonzero_coefs=k)  # (n − 1,)
    return C


def elastic_net_self_expression(X: np.ndarray, gamma: float = 5.0, tau: float = 0.9) -> np.ndarray:
    """EnSC's codes C (n, n) (You, Li, Robinson, Vidal, CVPR 2016): each unit-normalised sample x_i is coded by
    the others, min_c τ‖c‖₁ + (1 − τ)/2 ‖c‖² + γ/2 ‖x_i − X c‖², c_i = 0 (``ChongYou/subspace-clustering`` with
    ``gamma_nz=False``), with scikit-learn's ``ElasticNet`` (its objective divided by γD: alpha = 1/(γD),
    l1_ratio = τ). The l2 part spreads the code over *groups* of correlated samples (the elastic net's grouping
    effect) where the l1 part alone takes one of them: it keeps a tight, low-rank cluster connected.

    Defaults γ = 5, τ = 0.9: from the MLC paper's grid γ ∈ {1, 5, 10, 50, 100} × τ ∈ {0.9, 0.95, 1}, the best
    mean accuracy over Z_TCR and Z_MLC together on digits seeds 3–7 (0.778; γ ∈ {1, 100}, run on seed 3, and
    τ = 1, run on seeds 3 and 4, had lower means there)."""
    from sklearn.linear_model import ElasticNet

    Xn = _unit_rows(X)  # (n, D)
    n, D = Xn.shape
    C = np.zeros((n, n))
    model = ElasticNet(alpha=1 / (gamma * D), l1_ratio=tau, fit_intercept=False, max_iter=200, tol=1e-4)
    everyone = np.arange(n)
    for i in range(n):
        others = everyone[everyone != i]
        C[i, others] = model.fit(Xn[others].T, Xn[i]).coef_  # (n − 1,)
    return C


def self_expression_connectivity(C: np.ndarray, labels) -> float:
    """How well each cluster's self-expression graph holds together (after You, Li, Robinson, Vidal, CVPR 2016):

        W = |C̃| + |C̃|ᵀ (C̃: rows of C at unit l2 norm),   c = median_k λ₂(I − D_k^{-1/2} W_k D_k^{-1/2}),

    W_k the subgraph of the samples labelled k, D_k its degrees, λ₂ the second-smallest eigenvalue of its
    normalised Laplacian (the EnSC paper takes the minimum over k, which is 0 for every code on digits). λ₂ = 0
    when the cluster's graph falls apart: spectral clustering may then cut inside that cluster rather than
    between clusters. The complete graph on m nodes gives m/(m − 1)."""
    from scipy.sparse.csgraph import laplacian

    A = np.abs(_unit_rows(np.asarray(C, float)))
    W = A + A.T  # (n, n)
    labels = np.asarray(labels)
    values = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if len(members) > 1:
            values.append(max(np.linalg.eigvalsh(laplacian(W[np.ix_(members, members)], normed=True))[1], 0.0))
    return float(np.median(values)) if values else 0.0


SELF_EXPRESSIVE = ("ssc", "ensc")


def self_expression(method: str, X: np.ndarray, ssc_kmax: int = 3) -> np.ndarray:
    """The codes C (n, n) of a self-expressive baseline: ``ssc`` (:func:`omp_self_expression`) or ``ensc``
    (:func:`elastic_net_self_expression` at its defaults); labels by :func:`self_expressive_labels`."""
    X = np.asarray(X, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EnSC's 200 coordinate-descent sweeps
        if method == "ssc":
            return omp_self_expression(X, ssc_kmax)
        return elastic_net_self_expression(X)


def cluster_baseline(method: str, X: np.ndarray, n_clusters: int, seed: int = 0, ssc_kmax: int = 3) -> np.ndarray:
    """Labels of one scikit-learn baseline on X (n, D), scikit-learn's warnings silenced."""
    X = np.asarray(X, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # disconnected graphs, EnSC's 200 coordinate-descent sweeps
        return _cluster_baseline(method, X, n_clusters, seed, ssc_kmax)


def _cluster_baseline(method: str, X: np.ndarray, n_clusters: int, seed: int, ssc_kmax: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
    from sklearn.mixture import GaussianMixture

    if method == "kmeans":
        return KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(X)
    if method == "spectral":
        n_neighbors = min(10, len(X) - 1)
        return SpectralClustering(n_clusters, affinity="nearest_neighbors", n_neighbors=n_neighbors,
                                  random_state=seed, n_init=10).fit_predict(X)
    if method == "gmm":
        return GaussianMixture(n_clusters, covariance_type="full", reg_covar=1e-3, random_state=seed).fit_predict(X)
    if method == "agglomerative":
        return AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(X)
    if method in SELF_EXPRESSIVE:
        return self_expressive_labels(self_expression(method, X, ssc_kmax), n_clusters, seed)
    raise ValueError(f"unknown baseline {method!r}; allowed: {', '.join(BASELINES)}")


def run_baselines(X: np.ndarray, y: np.ndarray, n_clusters: int, methods, seed: int = 0,
                  ssc_kmax: int = 3) -> dict[str, dict[str, float]]:
    """{method: {"accuracy", "nmi"}} for each baseline on X; the self-expressive ones (SSC-OMP, EnSC) also
    report their codes' ``connectivity`` (:func:`self_expression_connectivity`) and ``leak``, the mean
    fraction of a code's l1 mass on other classes (the subspace-preserving error,
    :func:`workbench.methods.mlc.membership_leak` of C)."""
    table = {}
    for method in methods:
        if method in SELF_EXPRESSIVE:
            C = self_expression(method, X, ssc_kmax)  # (n, n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a disconnected graph
                labels = self_expressive_labels(C, n_clusters, seed)
            extra = {"connectivity": self_expression_connectivity(C, y), "leak": mlc.membership_leak(C, y)}
        else:
            labels, extra = cluster_baseline(method, X, n_clusters, seed, ssc_kmax), {}
        table[method] = {"accuracy": mlc.clustering_accuracy(y, labels), "nmi": mlc.nmi(y, labels)} | extra
    return table


# --- the experiment ----------------------------------------------------------------------------------------


@register
class ManifoldClustering(Experiment):
    """MLC (Ding, Tong, Chan, Dai, Ma, Haeffele, ICCV 2023): learn unit-norm features Z and a doubly stochastic
    membership Γ = Sinkhorn(|CCᵀ|) maximising R(Z) − R_c(Z, Γ), so each cluster becomes a low-dimensional
    linear subspace; compared with k-means, spectral, GMM, agglomerative, SSC-OMP and EnSC on raw and learned
    features."""

    name = param.String("manifold_clustering", constant=True)
    headline = ("accuracy", "nmi")

    dataset = param.Selector(default="digits", objects=list(DATASETS), doc=(
        "digits (sklearn's 8×8 digits, a stratified subset), manifolds (curved manifolds in R^D), subspaces "
        "(linear subspaces in R^D), moons, circles (2-D, two clusters)."))
    n_samples = param.Integer(600, bounds=(2, 100_000), doc=(
        "Samples in all (digits: a stratified subset of the 1797 images; all of them when larger)."))
    n_clusters = param.Integer(10, bounds=(1, 1000), doc=(
        "Clusters k (digits: the classes 0 … k−1, at most 10; moons and circles: 2)."))
    ambient_dim = param.Integer(32, bounds=(6, 4096), doc="manifolds / subspaces: the ambient dimension D.")
    manifold_dim = param.Integer(1, bounds=(1, 64), doc=(
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
    baselines = param.ListSelector(default=list(BASELINES), objects=list(BASELINES), doc=(
        "Baselines run on raw X, Z_TCR and Z_MLC: k-means, spectral (10-NN graph), Gaussian mixture, Ward "
        "agglomerative, SSC-OMP, EnSC (the subspace-clustering ones are the slowest)."))
    ssc_kmax = param.Integer(3, bounds=(1, 100), doc=(
        "SSC-OMP: at most this many atoms per sample (3: the best of the MLC paper's grid on digits seeds 3–7)."))

    def validate(self) -> None:
        def fail(key, value, allowed):
            raise ConfigError(f"{self.name}: parameter {key!r} = {value!r} is not allowed with dataset = "
                              f"{self.dataset!r}; expected {allowed}")

        if self.dataset not in DATASETS:
            raise ConfigError(f"{self.name}: parameter 'dataset' = {self.dataset!r} is not allowed; expected one of "
                              + ", ".join(repr(d) for d in DATASETS))
        if self.dataset == "digits" and self.n_clusters > 10:
            fail("n_clusters", self.n_clusters, "at most 10 (the digit classes)")
        if self.dataset in ("moons", "circles") and self.n_clusters != 2:
            fail("n_clusters", self.n_clusters, "2")
        n = self.n_samples_used
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

    @property
    def n_samples_used(self) -> int:
        """The number of samples the dataset really has (digits: at most the images of the chosen classes)."""
        if self.dataset == "digits":
            from sklearn.datasets import load_digits

            available = int((load_digits().target < self.n_clusters).sum())
            return min(self.n_samples, available)
        return self.n_samples

    def run(self, progress, stop: threading.Event) -> Result:
        self.validate()
        device = self.torch_device
        X_np, y = make_dataset(self.dataset, self.n_samples, self.n_clusters, self.ambient_dim, self.manifold_dim,
                               self.noise, self.seed)
        if self.dataset != "digits":  # the MLP likes unit-scale inputs
            X_np = (X_np - X_np.mean(0)) / X_np.std()
        n, k = len(y), self.n_clusters
        generator = torch.Generator().manual_seed(self.seed)
        X = torch.as_tensor(X_np, device=device)  # (n, D)
        if self.dataset == "digits":
            augment = digit_augmenter(self.augment_noise, generator=generator)
        else:
            augment = jitter_augmenter(self.augment_noise, generator=generator)

        table: dict[str, dict[str, float]] = {}  # {row: {column: accuracy}} for the live picture
        raw = run_baselines(X_np, y, k, self.baselines, self.seed, self.ssc_kmax)
        for method, scores in raw.items():
            table.setdefault(method, {})["raw"] = scores["accuracy"]

        torch.manual_seed(self.seed)
        net = mlc.MLCNet(X.shape[1], self.hidden, self.feature_dim).to(device)
        total = self.tcr_steps + self.mlc_steps
        due = Cadence(total)
        plot_index = torch.as_tensor(np.sort(np.random.default_rng(self.seed).permutation(n)[:N_PLOT]), device=device)
        state: dict = {"tcr": None, "delta_R_init": float("nan")}
        history: dict[str, list] = {"step": [], "R": [], "R_c": [], "delta_R": [], "invariance": []}
        mlc_curve: dict[str, list] = {"step": [], "R": [], "R_c": [], "delta_R": []}  # every MLC step, not 1 %

        def snapshot(phase: str) -> dict:
            Z, Gamma = mlc.embed(net, X[plot_index], self.eta, self.sinkhorn_iters)  # (N_PLOT, d), (N_PLOT, N_PLOT)
            if phase == "tcr":  # the cluster head is not trained yet: show Γ₀ = P(|ZZᵀ|), what MLC starts from
                Gamma = mlc.membership(Z, self.eta, self.sinkhorn_iters)
            return {"Z": Z.cpu(), "Gamma": Gamma.cpu(), "y": y[plot_index.cpu().numpy()], "phase": phase,
                    "n_clusters": k, "eps": self.eps, "history": history,
                    "table": {m: dict(v) for m, v in table.items()}}

        def callback(step: int, phase: str, terms: dict[str, float]) -> None:
            if phase == "mlc":
                if math.isnan(state["delta_R_init"]):
                    state["delta_R_init"] = terms["delta_R"]
                for key in ("R", "R_c", "delta_R"):
                    mlc_curve[key].append(terms[key])
                mlc_curve["step"].append(step)
            if due(step):
                for key in ("R", "R_c", "delta_R", "invariance"):
                    history[key].append(terms.get(key))
                history["step"].append(step)  # last: a reader slicing by len(step) sees complete rows
                metrics = {f"{phase}_{key}": value for key, value in terms.items()}
                progress(Event(step, total, metrics, snapshot(phase)))

        def on_pretrained(pretrained: mlc.MLCNet) -> None:
            state["tcr"] = mlc.embed(pretrained, X, self.eta, self.sinkhorn_iters)

        steps_done = mlc.fit(net, X, augment, tcr_steps=self.tcr_steps, mlc_steps=self.mlc_steps, eps=self.eps,
                             eta=self.eta, lam=self.lam, tcr_lr=self.tcr_lr, mlc_lr=self.mlc_lr,
                             weight_decay=self.weight_decay, sinkhorn_iters=self.sinkhorn_iters,
                             batch_size=self.batch_size, generator=generator, callback=callback,
                             on_pretrained=on_pretrained, stop=stop.is_set)
        metrics: dict[str, float] = {"steps_done": steps_done, "n_samples": n}
        metrics |= {f"{m}_{key}": v for m, scores in raw.items() for key, v in scores.items()}
        if stop.is_set() or state["tcr"] is None:  # stopped during pre-training: only what is known
            return Result(metrics=metrics, artifacts={"net": net, "model": net, "X": X_np, "y": y, "table": table})

        Z_tcr, Gamma_tcr = state["tcr"]
        Z, Gamma = mlc.embed(net, X, self.eta, self.sinkhorn_iters)  # (n, d), (n, n)
        labels = mlc.spectral_labels(Gamma, k, self.seed)
        labels_tcr = mlc.spectral_labels(Gamma_tcr, k, self.seed)
        labels_z = mlc.spectral_labels(mlc.membership(Z, self.eta, self.sinkhorn_iters), k, self.seed)
        metrics |= {"accuracy": mlc.clustering_accuracy(y, labels), "nmi": mlc.nmi(y, labels),
                    "tcr_accuracy": mlc.clustering_accuracy(y, labels_tcr), "tcr_nmi": mlc.nmi(y, labels_tcr),
                    "mlc_z_accuracy": mlc.clustering_accuracy(y, labels_z)}
        table["MLC (spectral on Γ)"] = {"mlc": metrics["accuracy"]}
        table["TCR (spectral on Γ₀)"] = {"tcr": metrics["tcr_accuracy"]}
        R, Rc = mlc.coding_rate(Z, self.eps).item(), mlc.compressed_coding_rate(Z, Gamma, self.eps).item()
        metrics |= {"R": R, "R_c": Rc, "delta_R": R - Rc, "delta_R_init": state["delta_R_init"],
                    "delta_R_tcr": mlc.rate_reduction(Z_tcr, Gamma_tcr, self.eps).item(),
                    "gamma_row_error": (Gamma.sum(1) - 1).abs().max().item(),
                    "gamma_col_error": (Gamma.sum(0) - 1).abs().max().item(),
                    "gamma_diag": Gamma.diagonal().mean().item(),
                    "gamma_leak": mlc.membership_leak(Gamma, y), "tcr_gamma_leak": mlc.membership_leak(Gamma_tcr, y)}
        for tag, features in (("tcr", Z_tcr), ("mlc", Z)):
            features_np = features.cpu().double().numpy()
            ranks = mlc.per_cluster_ranks(features_np, y)
            metrics[f"{tag}_rank_global"] = mlc.numerical_rank(features_np)
            metrics[f"{tag}_rank_per_cluster"] = float(np.mean(list(ranks.values())))
            for method, scores in run_baselines(features_np, y, k, self.baselines, self.seed, self.ssc_kmax).items():
                table.setdefault(method, {})[tag] = scores["accuracy"]
                metrics |= {f"{tag}_{method}_{key}": v for key, v in scores.items()}

        payload = snapshot("done") | {"table": table}
        progress(Event(steps_done, total, {}, payload))
        artifacts = {"net": net, "model": net, "X": X_np, "y": y, "Z": Z.cpu(), "Gamma": Gamma.cpu(),
                     "Z_tcr": Z_tcr.cpu(), "Gamma_tcr": Gamma_tcr.cpu(), "labels": labels, "labels_tcr": labels_tcr,
                     "table": table, "payload": payload, "mlc_curve": mlc_curve}
        return Result(metrics=metrics, artifacts=artifacts)


__all__ = ["BASELINES", "DATASETS", "ManifoldClustering", "cluster_baseline", "elastic_net_self_expression",
           "make_dataset", "omp_self_expression", "run_baselines", "self_expression", "self_expression_connectivity"]

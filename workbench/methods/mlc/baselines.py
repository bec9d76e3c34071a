"""The classical clustering baselines MLC is compared with, on raw data or on learned features X (n, D).

k-means, spectral clustering on a 10-NN graph, a Gaussian mixture and Ward agglomerative clustering (scikit-learn),
and two self-expressive subspace-clustering methods: SSC-OMP (You, Robinson, Vidal, CVPR 2016) and EnSC (You, Li,
Robinson, Vidal, CVPR 2016), each coding every sample by the others and clustering the graph of the codes.
:func:`run_baselines` scores them against the ground truth (Hungarian accuracy, NMI; the codes' connectivity and
leak for the self-expressive ones).
"""
from __future__ import annotations

import warnings

import numpy as np

from workbench.methods.mlc import core

BASELINES = ("kmeans", "spectral", "gmm", "agglomerative", "ssc", "ensc")
SELF_EXPRESSIVE = ("ssc", "ensc")


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """X (n, D) with every row scaled to unit l2 norm (self-expression codes directions, as MCR²'s sphere)."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def self_expressive_labels(C: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Labels from a self-expression matrix C (n, n) (row i codes sample i by the others), as
    ``ChongYou/subspace-clustering`` does: rows of C scaled to unit l2 norm, affinity |C| + |C|ᵀ, then
    normalised spectral clustering (:func:`~workbench.methods.mlc.core.spectral_labels`)."""
    return core.spectral_labels(np.abs(_unit_rows(C)), n_clusters, seed)


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
    :func:`~workbench.methods.mlc.core.membership_leak` of C)."""
    table = {}
    for method in methods:
        if method in SELF_EXPRESSIVE:
            C = self_expression(method, X, ssc_kmax)  # (n, n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a disconnected graph
                labels = self_expressive_labels(C, n_clusters, seed)
            extra = {"connectivity": self_expression_connectivity(C, y), "leak": core.membership_leak(C, y)}
        else:
            labels, extra = cluster_baseline(method, X, n_clusters, seed, ssc_kmax), {}
        table[method] = {"accuracy": core.clustering_accuracy(y, labels), "nmi": core.nmi(y, labels)} | extra
    return table


__all__ = ["BASELINES", "SELF_EXPRESSIVE", "cluster_baseline", "elastic_net_self_expression", "omp_self_expression",
           "run_baselines", "self_expression", "self_expression_connectivity", "self_expressive_labels"]

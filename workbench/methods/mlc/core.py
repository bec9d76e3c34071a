"""MLC: Manifold Linearizing and Clustering with MCR² and a doubly stochastic membership.

Ding, Tong, Chan, Dai, Ma, Haeffele, "Unsupervised Manifold Linearizing and Clustering", ICCV 2023.
Coding rates from Yu, Chan, You, Song, Ma, "Learning Diverse and Discriminative Representations via the
Principle of Maximal Coding Rate Reduction" (MCR², NeurIPS 2020).

Rows of Z are samples: Z is (n, d) with unit-norm rows (the paper writes Z ∈ R^{d×n} with columns on the
sphere; the formulas below are the same ones transposed). **Convention: the MLC paper's, without MCR²'s
factor ½**:

    R(Z; ε)      = logdet(I_d + d/(n ε²) ZᵀZ)                                  (coding rate)
    R_c(Z, Γ; ε) = (1/n) Σ_j logdet(I_d + d/ε² Zᵀ Diag(Γ_j) Z)                  (compressed rate, MLC eq. 4)
    MLC:   max_θ  R(Z_θ; ε) − R_c(Z_θ, Γ_θ; ε),     Γ_θ = P_{Ω,η}(|C_θ C_θᵀ|)

with Γ ∈ Ω = {n×n doubly stochastic: rows and columns sum to 1}; Γ_j is row j. The reference code stand-in
``LeslieTrue/CPP`` (``loss/loss_fn.py``, the same group's follow-up, class ``MLCLoss``) keeps the ½ and
weights each row by tr(Γ_j); its ``eps`` is our ε² (hard-coded 0.1). Where they disagree this module
follows the MLC paper (no ½, the 1/n-weighted eq. 4 with rows summing to 1); ``eps`` here is ε, not ε².

Closed forms that the tests and the notebook check: uniform Γ = 11ᵀ/n gives R_c = R (ΔR = 0); Γ = I gives
R_c = log(1 + d/ε²); k orthogonal r-dimensional subspaces with n/k isotropic points each and the true
block Γ give ΔR = k r log(1 + d/(k r ε²)) − r log(1 + d/(r ε²)) (:func:`orthogonal_subspaces_gain`).

The membership P_{Ω,η}(K) is the entropic-OT (Sinkhorn) projection
    Γ = n · argmax_{P ≥ 0, P1 = 1/n, Pᵀ1 = 1/n} ⟨K, P⟩ + η H(P),
computed in the log domain (:func:`sinkhorn`). Without the entropy (η → 0) the maximiser is a permutation
matrix, and because the diagonal of |CCᵀ| is its largest entry, that permutation is I: every point its own
cluster. CPP's extra 0.5·0.05‖Γ‖_F² regulariser is *not* used (the MLC paper does not state it); CPP's
absolute-valued kernel |CCᵀ| is.

Training (paper §3): TCR pre-training of the features (eq. 5), the one-shot initialisation (the feature
head's weights copied into the cluster head so Γ₀ = P(|ZZᵀ|)), then MLC with A augmented views per sample:
Z = sphere-projected mean of the Z^(a), Γ = mean of the Γ^(a). Labels: spectral clustering on Γ.

Measured behaviour (``benchmarks/manifold_clustering.py`` and the notebook, CPU): R_c is concave in Γ and the
MLC objective has no notion of k, so from a Γ₀ made of local neighbourhoods (TCR features spread each manifold
over ~d/k dimensions, so |ZZᵀ| is local inside a manifold) MLC compresses small pieces: Γ's mass on other
clusters (:func:`membership_leak`) keeps falling while each manifold splits into weakly linked pieces, ΔR keeps
rising, and spectral clustering on Γ splits the manifolds (synthetic surfaces, jitter σ = 0.05: 1.0 after 25
MLC steps, 0.62–0.79 after 50). Augmentations large enough to overlap neighbouring samples (jitter σ = 1.5 on
the standardised data) slow this drift: ΔR levels off; closed curves gave 1.0, 1.0, 0.97 after 25 MLC steps and
1.0, 1.0, 0.77 after 100. Γ = I is out of reach roughly while e^{1/η} ≲ n (the diagonal of |CCᵀ| is 1, the other
entries ≥ 0), i.e. η ≳ 1/ln n for a batch of n; smaller η collapses faster.
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.methods.projection import principal_coordinates
from workbench.progress import Cadence, Event

# --- coding rates ---------------------------------------------------------------------------------


def logdet_spd(M: torch.Tensor) -> torch.Tensor:
    """log det M for symmetric positive definite M (..., d, d) -> (...), through a Cholesky factor
    (2 Σ log diag L): much cheaper to differentiate than ``torch.logdet`` over many small matrices."""
    L = torch.linalg.cholesky(M)  # (..., d, d)
    return 2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1)


def coding_rate(Z: torch.Tensor, eps: float) -> torch.Tensor:
    """R(Z; ε) = logdet(I + d/(n ε²) ZᵀZ) (MLC paper, no factor ½). Z (n, d) -> scalar.

    The rate (in nats) needed to code the n rows of Z up to distortion ε; largest when Z spreads
    isotropically over all d dimensions."""
    n, d = Z.shape
    I = torch.eye(d, dtype=Z.dtype, device=Z.device)
    return logdet_spd(I + d / (n * eps**2) * (Z.mT @ Z))  # (d, d) -> ()


def compressed_coding_rate(Z: torch.Tensor, Gamma: torch.Tensor, eps: float) -> torch.Tensor:
    """R_c(Z, Γ; ε) = (1/m) Σ_j logdet(I + d/ε² Zᵀ Diag(Γ_j) Z) (MLC eq. 4; m = n for square Γ).

    Z (n, d); Γ (m, n) with rows Γ_j summing to 1 (doubly stochastic when square). Each row is a soft
    "neighbourhood" of sample j, and R_c is the mean rate of coding each neighbourhood separately: small
    when every neighbourhood is a low-dimensional subspace. Zᵀ Diag(Γ_j) Z = Σ_i Γ_ji z_i z_iᵀ is one
    matrix product Γ @ vec(z_i z_iᵀ): O(m n d²) work, no (m, n, d) tensor."""
    n, d = Z.shape
    outer = (Z.unsqueeze(-1) * Z.unsqueeze(-2)).reshape(n, d * d)  # (n, d²): z_i z_iᵀ
    covs = (Gamma @ outer).reshape(-1, d, d)  # (m, d, d): Zᵀ Diag(Γ_j) Z
    I = torch.eye(d, dtype=Z.dtype, device=Z.device)
    return logdet_spd(I + d / eps**2 * covs).mean()  # (m,) -> ()


def rate_reduction(Z: torch.Tensor, Gamma: torch.Tensor, eps: float) -> torch.Tensor:
    """The MLC objective ΔR = R(Z; ε) − R_c(Z, Γ; ε), to be maximised. Z (n, d), Γ (n, n) -> scalar."""
    return coding_rate(Z, eps) - compressed_coding_rate(Z, Gamma, eps)


def orthogonal_subspaces_gain(d: int, k: int, r: int, eps: float) -> float:
    """Closed-form ΔR for k mutually orthogonal r-dimensional subspaces of R^d, n/k points each spread
    isotropically (Z_kᵀZ_k = (n/(k r)) P_k), with the true block membership Γ = blockdiag(11ᵀ k/n):

        R   = Σ_k logdet(I + d/(nε²) Z_kᵀZ_k) = k r log(1 + d/(k r ε²))
        R_c = log det(I + d/(ε² (n/k)) Z_kᵀZ_k) = r log(1 + d/(r ε²))       (the same for every row)."""
    return k * r * math.log1p(d / (k * r * eps**2)) - r * math.log1p(d / (r * eps**2))


# --- the doubly stochastic membership ---------------------------------------------------------------


def sinkhorn(K: torch.Tensor, eta: float, n_iter: int = 5) -> torch.Tensor:
    """Log-domain Sinkhorn: the entropic projection of a kernel K (m, n) onto the matrices with rows
    summing to 1 and columns summing to m/n (doubly stochastic when square):

        Γ = argmax_Γ ⟨K, Γ⟩ + η H(Γ)   ⇔   Γ_ij = exp(K_ij/η + f_i + g_j),
        g ← log(m/n) − logsumexp_i(K_ij/η + f_i),    f ← −logsumexp_j(K_ij/η + g_j).

    ``n_iter`` alternations starting from f = 0; the last update is the row one, so rows sum to 1 exactly
    and columns converge (CPP runs 5; ~1e-6 needs more, depending on η). This is CPP's
    ``model/sink_distance.py`` with marginals 1/n multiplied by n. Small η sharpens Γ towards a
    permutation matrix; large η spreads it towards 11ᵀ/n. Differentiable (unrolled)."""
    if not eta > 0:
        raise ValueError(f"sinkhorn: eta = {eta!r} is not allowed; expected a number > 0")
    m, n = K.shape
    logits = K / eta  # (m, n)
    f = torch.zeros(m, dtype=K.dtype, device=K.device)  # (m,)
    log_col = math.log(m / n)
    for _ in range(n_iter):
        g = log_col - torch.logsumexp(logits + f.unsqueeze(1), dim=0)  # (n,)
        f = -torch.logsumexp(logits + g.unsqueeze(0), dim=1)  # (m,)
    if n_iter == 0:
        f = -torch.logsumexp(logits, dim=1)
        g = torch.zeros(n, dtype=K.dtype, device=K.device)
    return torch.exp(logits + f.unsqueeze(1) + g.unsqueeze(0))  # (m, n)


def membership(C: torch.Tensor, eta: float, n_iter: int = 5) -> torch.Tensor:
    """Γ = P_{Ω,η}(|C Cᵀ|) for unit-norm cluster-head outputs C (n, d) -> (n, n)."""
    return sinkhorn((C @ C.mT).abs(), eta, n_iter)  # (n, n)


# --- network ------------------------------------------------------------------------------------------


def _head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, out))


class MLCNet(nn.Module):
    """Backbone (an MLP for vectors; the paper uses ResNet-18), a feature head and a cluster head of the
    same architecture, each ending in a projection onto the sphere S^{d−1}.

    Args:
        in_dim: D, the input dimension.
        hidden: width of every hidden layer (Linear, BatchNorm, ReLU).
        feature_dim: d, the feature dimension (η must grow with d: the note measured d = 64 failing at η = 0.1).
        depth: hidden layers in the backbone.
    """

    def __init__(self, in_dim: int, hidden: int = 512, feature_dim: int = 32, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            width = hidden
        self.backbone = nn.Sequential(*layers)
        self.feature_head = _head(hidden, feature_dim)
        self.cluster_head = _head(hidden, feature_dim)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Z = normalize(feature_head(backbone(x))): (n, D) -> (n, d)."""
        return F.normalize(self.feature_head(self.backbone(x)), dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z, C): unit-norm features and cluster-head outputs, both (n, d)."""
        h = self.backbone(x)  # (n, hidden)
        return F.normalize(self.feature_head(h), dim=-1), F.normalize(self.cluster_head(h), dim=-1)

    @torch.no_grad()
    def copy_feature_head_to_cluster_head(self) -> None:
        """The one-shot initialisation: cluster head ← feature head, so C = Z and Γ₀ = P_{Ω,η}(|ZZᵀ|)
        (CPP ``utils.update_pi_from_z``)."""
        self.cluster_head.load_state_dict(self.feature_head.state_dict())


# --- objectives -----------------------------------------------------------------------------------------


def tcr_objective(Z_views: list[torch.Tensor], eps: float, lam: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Total-coding-rate pre-training (MLC eq. 5, as in NMCE): maximise

        R(Z̄; ε) + λ (1/n) Σ_i mean_{a<b} ⟨z_i^(a), z_i^(b)⟩,    Z̄ = normalize(mean_a Z^(a)),

    the rate of the averaged views plus an invariance term between the views of each sample. The paper
    writes λ Σ_i |z_iᵀ z_i′|; the plain cosine (no absolute value, averaged rather than summed, so λ ≈ 50
    balances R at d = 32) is the variant the method note measured. Returns (loss to minimise, terms)."""
    Z_bar = F.normalize(torch.stack(Z_views).mean(0), dim=-1)  # (n, d)
    R = coding_rate(Z_bar, eps)
    pairs = [(a, b) for a in range(len(Z_views)) for b in range(a + 1, len(Z_views))]
    invariance = torch.stack([(Z_views[a] * Z_views[b]).sum(-1).mean() for a, b in pairs]).mean()
    loss = -(R + lam * invariance)
    return loss, {"R": R.item(), "invariance": invariance.item()}


def mlc_objective(Z_views: list[torch.Tensor], C_views: list[torch.Tensor], eps: float, eta: float,
                  n_iter: int) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
    """MLC with A augmented views: Z = normalize(mean_a Z^(a)), Γ = mean_a P_{Ω,η}(|C^(a) C^(a)ᵀ|),
    loss = −(R(Z; ε) − R_c(Z, Γ; ε)). Returns (loss, terms, Z (n, d), Γ (n, n)) (Z, Γ detached)."""
    Z = F.normalize(torch.stack(Z_views).mean(0), dim=-1)  # (n, d)
    Gamma = torch.stack([membership(C, eta, n_iter) for C in C_views]).mean(0)  # (n, n)
    R = coding_rate(Z, eps)
    Rc = compressed_coding_rate(Z, Gamma, eps)
    loss = -(R - Rc)
    return loss, {"R": R.item(), "R_c": Rc.item(), "delta_R": (R - Rc).item()}, Z.detach(), Gamma.detach()


# --- training ---------------------------------------------------------------------------------------------


def fit(net: MLCNet, X: torch.Tensor, augment: Callable[[torch.Tensor], torch.Tensor], *,
        tcr_steps: int, mlc_steps: int, eps: float, eta: float, lam: float = 50.0, n_views: int = 2,
        tcr_lr: float = 1e-3, mlc_lr: float = 1e-4, weight_decay: float = 1e-4, sinkhorn_iters: int = 5,
        batch_size: int | None = None, generator: torch.Generator | None = None,
        callback: Callable[[Event], None] | None = None, stop: Callable[[], bool] | None = None,
        cadence: Cadence | None = None, on_pretrained: Callable[[MLCNet], None] | None = None) -> int:
    """TCR pre-training (steps 1 … ``tcr_steps``), the one-shot copy of the feature head into the cluster head,
    then MLC training (the next ``mlc_steps`` steps).

    ``X`` (n, D) on the training device; ``augment(x)`` returns an augmented copy of a batch (n_b, D).
    Adam with (L2) weight decay on every parameter: ``tcr_lr`` for TCR, ``mlc_lr`` for MLC (the note's
    measured setup; the MLC appendix's LARS is unverified). ``batch_size=None`` trains full batch;
    otherwise each step draws a random batch (Γ is then n_b × n_b, as in the paper).

    ``callback(Event(step, tcr_steps + mlc_steps, means))`` whenever ``cadence(step)`` is due (default
    :class:`~workbench.progress.Cadence`: every 1 % of the steps, the last one and every half second), with the
    mean of each term of the objective being trained over its steps since the previous report, named
    ``"<phase>.train_<term>"``: ``tcr.train_R``, ``tcr.train_invariance`` (:func:`tcr_objective`) and
    ``mlc.train_R``, ``mlc.train_R_c``, ``mlc.train_delta_R`` (:func:`mlc_objective`; augmented views, batch
    norm in training mode). A report whose steps span both phases carries both phases' means.
    ``on_pretrained(net)`` is called once, right after the one-shot copy that ends pre-training (before the
    report of step ``tcr_steps``; at the start when ``tcr_steps`` is 0), e.g. to keep Z_TCR;
    ``stop()`` returning True ends training before the next step. Returns the number of steps taken."""
    n = X.shape[0]
    total = tcr_steps + mlc_steps
    cadence = cadence if cadence is not None else Cadence(total)

    def batch() -> torch.Tensor:
        if batch_size is None or batch_size >= n:
            return X
        index = torch.randperm(n, generator=generator)[:batch_size].to(X.device)
        return X[index]  # (n_b, D)

    def tcr_loss(x: torch.Tensor):
        return tcr_objective([net.features(augment(x)) for _ in range(n_views)], eps, lam)  # A × (n_b, d)

    def mlc_loss(x: torch.Tensor):
        outputs = [net(augment(x)) for _ in range(n_views)]  # A × ((n_b, d), (n_b, d))
        return mlc_objective([Z for Z, _ in outputs], [C for _, C in outputs], eps, eta, sinkhorn_iters)[:2]

    def adam(lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)

    def pretrained() -> torch.optim.Optimizer:
        """The one-shot initialisation, then MLC's own optimizer."""
        net.copy_feature_head_to_cluster_head()
        if on_pretrained is not None:
            on_pretrained(net)
        return adam(mlc_lr)

    net.train()
    optimizer = adam(tcr_lr) if tcr_steps > 0 else pretrained()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    step = 0
    while step < total and not (stop is not None and stop()):
        step += 1
        phase, loss_of = ("tcr", tcr_loss) if step <= tcr_steps else ("mlc", mlc_loss)
        loss, terms = loss_of(batch())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for term, value in terms.items():
            name = f"{phase}.train_{term}"
            sums[name], counts[name] = sums.get(name, 0.0) + value, counts.get(name, 0) + 1
        if step == tcr_steps:
            optimizer = pretrained()
        if callback is not None and cadence(step):
            callback(Event(step, total, {name: sums[name] / counts[name] for name in sums}))
            sums, counts = {}, {}
    return step


@torch.no_grad()
def embed(net: MLCNet, X: torch.Tensor, eta: float, sinkhorn_iters: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference on clean data, batch norm in eval mode: (Z (n, d), Γ (n, n) = P_{Ω,η}(|CCᵀ|))."""
    was_training = net.training
    net.eval()
    Z, C = net(X)
    net.train(was_training)
    return Z, membership(C, eta, sinkhorn_iters)


# --- labels and metrics -------------------------------------------------------------------------------------


def spectral_labels(affinity: torch.Tensor | np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Normalised spectral clustering (Ng, Jordan, Weiss, NIPS 2001) of a non-negative affinity A (n, n), e.g. Γ:

        W = (A + Aᵀ)/2,   L = I − D^{-1/2} W D^{-1/2},   U = the k eigenvectors of L with the smallest eigenvalues,
        u_i ← u_i / ‖u_i‖ (each row),   labels = k-means on the rows of U.

    This is the read-out of CPP's ``metrics/clustering.py`` (``normalize_embed=True``) and of
    ``ChongYou/subspace-clustering``. The row normalisation matters: scikit-learn's ``SpectralClustering``
    skips it: on the same Γ (digits, seeds 0, 1, 2) it gave 0.873, 0.893, 0.874, this read-out 0.939, 0.891, 0.941.
    The embedding is scikit-learn's ``spectral_embedding`` (its D^{-1/2} row scaling cancels in the row
    normalisation)."""
    from sklearn.cluster import KMeans
    from sklearn.manifold import spectral_embedding
    from sklearn.preprocessing import normalize

    A = affinity.detach().double().cpu().numpy() if isinstance(affinity, torch.Tensor) else np.asarray(affinity, float)
    W = 0.5 * (A + A.T)  # (n, n)
    U = spectral_embedding(W, n_components=n_clusters, drop_first=False, random_state=seed)  # (n, k)
    return KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(normalize(U))


def clustering_accuracy(y_true, y_pred) -> float:
    """ACC = max over one-to-one matchings of predicted to true labels of the fraction matched, by the
    Hungarian method (scipy ``linear_sum_assignment``) on the contingency matrix. Invariant to any
    relabelling of ``y_pred``; works when the numbers of clusters differ."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    counts = contingency_matrix(y_true, y_pred)  # (true classes, predicted clusters)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information (scikit-learn, arithmetic normalisation)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(y_true, y_pred))


def membership_leak(Gamma: torch.Tensor | np.ndarray, labels) -> float:
    """(1/n) Σ_j Σ_{i: y_i ≠ y_j} |Γ_ji| / Σ_i |Γ_ji|: the mean fraction of a row's mass on samples of another
    class (CPP ``metrics/clustering.py``'s "feature detection" error). 0 for a membership that never mixes classes,
    whatever its structure inside each class. Γ (n, n), labels (n,)."""
    G = torch.as_tensor(np.asarray(Gamma) if not isinstance(Gamma, torch.Tensor) else Gamma).double().abs().cpu()
    y = torch.as_tensor(np.asarray(labels))
    other = y[:, None] != y[None, :]  # (n, n)
    return float(((G * other).sum(1) / G.sum(1)).mean())


def numerical_rank(Z: torch.Tensor | np.ndarray, energy: float = 0.95) -> int:
    """The smallest r with Σ_{i≤r} σ_i² ≥ energy · Σ_i σ_i² (σ: singular values of Z, (n, d))."""
    Z = torch.as_tensor(np.asarray(Z) if not isinstance(Z, torch.Tensor) else Z).double().cpu()
    s2 = torch.linalg.svdvals(Z).square()  # (min(n, d),)
    cumulative = s2.cumsum(0) / s2.sum()
    return int((cumulative < energy - 1e-12).sum().item()) + 1


def per_cluster_ranks(Z, labels, energy: float = 0.95) -> dict[int, int]:
    """{label: numerical rank of the rows of Z with that label}."""
    Z = Z.detach().cpu() if isinstance(Z, torch.Tensor) else torch.as_tensor(np.asarray(Z))
    labels = np.asarray(labels)
    return {int(c): numerical_rank(Z[torch.as_tensor(labels == c)], energy) for c in np.unique(labels)}


class ClusterView:
    """What a picture of a clustering shows of features Z (n, d) and a membership Γ (n, n), each computed on first
    use: a training loop that sends a view with every report pays only for the views that are drawn.

    ``labels`` (n,): the given ones, else spectral clustering on Γ (:func:`spectral_labels`); ``order``: the
    samples sorted by label, then by ground truth ``y`` inside a label; ``cosine`` (n, n) = |ZZᵀ|;
    ``coordinates(k)``: Z on its first k principal axes (n, k); ``spectra``: {label: the singular values of its
    rows of Z over the largest}; ``accuracy``: the Hungarian accuracy of ``labels`` (None without ``y``)."""

    def __init__(self, Z, Gamma, n_clusters: int, y=None, labels=None, seed: int = 0):
        self.Z = _float64(Z)  # (n, d)
        self.Gamma = _float64(Gamma)  # (n, n)
        self.n_clusters, self.seed = int(n_clusters), seed
        self.y = None if y is None else np.asarray(y)
        self._labels = None if labels is None else np.asarray(labels)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        return self._labels if self._labels is not None else spectral_labels(self.Gamma, self.n_clusters, self.seed)

    @functools.cached_property
    def order(self) -> np.ndarray:
        return np.lexsort((self.labels,) if self.y is None else (self.y, self.labels))  # (n,)

    @functools.cached_property
    def cosine(self) -> np.ndarray:
        return np.abs(self.Z @ self.Z.T)  # (n, n)

    def coordinates(self, k: int = 2) -> np.ndarray:
        return principal_coordinates(self.Z, k)  # (n, k)

    @functools.cached_property
    def spectra(self) -> dict[int, np.ndarray]:
        values = {int(c): np.linalg.svd(self.Z[self.labels == c], compute_uv=False) for c in np.unique(self.labels)}
        return {c: s / s[0] for c, s in values.items()}

    @functools.cached_property
    def accuracy(self) -> float | None:
        return None if self.y is None else clustering_accuracy(self.y, self.labels)


def _float64(x) -> np.ndarray:
    """A tensor (any device) or array as a float64 numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def clone_net(net: MLCNet) -> MLCNet:
    """A deep copy (e.g. to keep the TCR features beside the MLC ones)."""
    return copy.deepcopy(net)

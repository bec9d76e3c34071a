"""Riemannian batch normalization of SPD matrices behind one interface: GBWBN and its baselines.

**GBWBN** (Wang, Jin, Chen, Luo, Wu, "Learning to Normalize on the SPD Manifold under Bures-Wasserstein Geometry",
CVPR 2025, arXiv 2504.00660; reconstructed from ``jjscc/GBWBN`` ``nn.BatchNormSPD``, method note §1). Parameters:
bias G (SPD), metric M (SPD), shift s > 0; constant θ > 0 (or learned), momentum, ε = 1e-5.

    1. deform      X̃_i = φ_M(X_i^θ) = M^{−½} X_i^θ M^{−½},   Ĝ = φ_M(G^θ)
    2. statistics  μ = BW-mean(X̃) (``n_iter`` fixed-point iterations, no gradient),
                   σ² = (1/N) Σ_i d²_BW(X̃_i, μ) / θ²          (dispersion around the batch mean)
    3. centre      Z_i = Exp_I(Γ_{μ→I}(Log_μ X̃_i))
    4. scale       Z'_i = Exp_I(k Log_I Z_i) = (I + k(Z_i^½ − I))²,   k = s / √(σ² + ε)
    5. bias        Y_i = Exp_Ĝ(Γ_{I→Ĝ}(Log_I Z'_i))
    6. undeform    out_i = (M^½ Y_i M^½)^{1/θ}

With an exact batch mean and every transported vector inside Exp_I's injectivity domain (θ small enough on
ill-conditioned data: method note §1 measures 0 % outside at θ = 0.25, 97 % at θ = 1 for κ ≈ 1e5), the output has
(θ)-GBW Fréchet mean G and dispersion s². ``metric="bw"`` is the same with M fixed at I.

Where this differs from the official code (method note §1, "Quirks ... do not copy"), and why:

- σ² is measured **around the batch mean μ** (the Fréchet variance that step 4 rescales); the official ``cal_var``
  measures it around I. That variant is ``dispersion="identity"``.
- ``running_mean`` and ``running_var`` are registered buffers (the official running mean is a plain attribute and
  the variance an (n,)-shaped ``nn.Parameter``); the variance is a scalar.
- The running mean is stored in the original, undeformed coordinates (the official one lives in φ_M coordinates
  although M is learned, so it goes stale whenever M moves); it is updated along the (θ)-GBW geodesic at the
  current M: R ← φ_M⁻¹(γ_BW(φ_M(R^θ), μ; momentum))^{1/θ}.
- s = exp(log s) is positive by construction (the official ``shift`` has no constraint).
- The bias transport gets the deformed Ĝ (the RResNet variant's ``pal2`` receives the undeformed weight).
- The mean runs ``n_iter`` iterations (default 3, the note's independent SPDNet measurement; the official code 1).
- A training batch of one matrix uses the running statistics instead of collapsing to G.
- Batch statistics are detached, as in the code (the paper may differ; unverified).

**Baselines.** ``metric="aim"``: Brooks et al., "Riemannian batch normalization for SPD neural networks",
NeurIPS 2019 (SPDNetBN): μ by ``n_iter`` Karcher-flow steps from the arithmetic mean (Brooks: 1), centre and
bias by congruence B^½ μ^{−½} X μ^{−½} B^½, running mean along the AIM geodesic, and no dispersion scaling by
default (``scale=True`` adds LieBN's AIM scaling Z ↦ Z^k). ``metric="lem"``: log-Euclidean RBN (Chen et al., LieBN,
ICLR 2024): log X − mean log X, scaled by k, plus log G, then exp. All variants apply the power deformation θ
(deform, normalise, undeform) and share bias G, shift s and the buffers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from workbench.kernels import spd_sqrt  # X^½, X^{−½}: Newton–Schulz on CUDA, eigh elsewhere
from workbench.methods.spd.geometry import (aim_distance, aim_geodesic, aim_mean, bw_distance, bw_exp,
                                            bw_exp_identity, bw_geodesic, bw_log, bw_log_identity, bw_mean,
                                            bw_transport_from_identity, bw_transport_to_identity, eye_like)
from workbench.methods.spd.layers import check_spd, spd_parameter
from workbench.methods.spd.matfun import expm, logm, powm, powm_learnable, sqrtm, sym

METRICS = ("gbw", "bw", "aim", "lem")
DISPERSIONS = ("mean", "identity")


def out_of_domain_fraction(X: torch.Tensor, theta: float = 1.0, M: torch.Tensor | None = None,
                           n_iter: int = 50, shift: float | None = None, eps: float = 1e-5) -> float:
    """The fraction of a batch whose centred tangent vector V_i = Γ_{μ→I}(Log_μ X̃_i) falls outside Exp_I's
    injectivity domain (I + V_i/2 not ≻ 0), with X̃ = φ_M(X^θ) and μ their BW mean: there centring folds and the
    normalised batch is no longer centred (method note §1: 97 % at θ = 1, 0 % at θ = 0.25 for κ ≈ 1e5).

    With ``shift`` = s, also the scaling step of :class:`SPDBatchNorm` (dispersion "mean"): a vector counts as outside
    when V_i or k V_i is, k = s / √(σ² + eps), σ² = (1/N) Σ_i d²_BW(X̃_i, μ) / θ². A learned s larger than σ can push
    in-domain vectors out, and Exp_I(k V_i) then folds: the output's mean and dispersion miss G and s².
    X (N, n, n) -> a number in [0, 1]."""
    with torch.no_grad():
        X_t = X if theta == 1 else powm(X, theta)
        if M is not None:
            _, M_ihalf = spd_sqrt.sqrt_and_invsqrt(M)
            X_t = sym(M_ihalf @ X_t @ M_ihalf)
        mu = bw_mean(X_t, n_iter=n_iter, tol=1e-12)
        V = bw_transport_to_identity(mu, bw_log(mu, X_t))  # (N, n, n)
        lowest = torch.linalg.eigvalsh(eye_like(V) + 0.5 * V)[..., 0]  # (N,)
        if shift is not None:
            var = bw_distance(X_t, mu, squared=True).mean() / theta**2
            k = shift / torch.sqrt(var + eps)
            lowest = torch.minimum(lowest, torch.linalg.eigvalsh(eye_like(V) + 0.5 * k * V)[..., 0])
        return float((lowest <= 0).double().mean())


class SPDBatchNorm(nn.Module):
    """Batch normalization of (B, n, n) SPD batches under the (θ)-GBW, BW, AIM or LEM geometry (see the module doc).

    Args:
        n: matrix size.
        metric: "gbw" | "bw" | "aim" | "lem".
        theta: power deformation θ > 0 (initial value when ``learn_theta``).
        momentum: running-statistics step in (0, 1].
        eps: added to the variance.
        n_iter: fixed-point (BW) or Karcher-flow (AIM) iterations for the batch mean.
        dispersion: "mean" (around the batch mean) or "identity" (the official code's around-I variant).
        learn_theta: learn θ = exp(log θ).
        learn_metric: "gbw" only: learn M (else M stays at its initial value).
        scale: rescale the dispersion to s²; default True except for "aim" (Brooks et al. do not).
        metric_init: initial M for "gbw" (default I).
        check_input: raise ValueError on a non-SPD input (one Cholesky per forward).
    """

    def __init__(self, n: int, metric: str = "gbw", theta: float = 1.0, momentum: float = 0.1, eps: float = 1e-5,
                 n_iter: int = 3, dispersion: str = "mean", learn_theta: bool = False, learn_metric: bool = True,
                 scale: bool | None = None, metric_init: torch.Tensor | None = None, check_input: bool = True):
        super().__init__()
        if metric not in METRICS:
            raise ValueError(f"SPDBatchNorm: metric = {metric!r} is not allowed; expected one of "
                             f"{', '.join(map(repr, METRICS))}")
        if not (isinstance(theta, (int, float)) and math.isfinite(theta) and theta > 0):
            raise ValueError(f"SPDBatchNorm: theta = {theta!r} is not allowed; expected a number > 0")
        if not 0 < momentum <= 1:
            raise ValueError(f"SPDBatchNorm: momentum = {momentum!r} is not allowed; expected a number in (0, 1]")
        if dispersion not in DISPERSIONS:
            raise ValueError(f"SPDBatchNorm: dispersion = {dispersion!r} is not allowed; expected 'mean' or 'identity'")
        if n < 1 or n_iter < 1:
            raise ValueError(f"SPDBatchNorm: n = {n!r}, n_iter = {n_iter!r}; both must be integers >= 1")
        self.n, self.metric, self.momentum, self.eps, self.n_iter = n, metric, float(momentum), float(eps), n_iter
        self.dispersion, self.check_input = dispersion, check_input
        self.scale = metric != "aim" if scale is None else bool(scale)
        self.learn_theta = learn_theta
        if learn_theta:
            self.log_theta = nn.Parameter(torch.tensor(math.log(theta)))
        else:
            self.theta_value = float(theta)
        self.bias = spd_parameter(n)  # G
        self.log_shift = nn.Parameter(torch.zeros(()))  # s = exp(log s) > 0
        if metric == "gbw":
            M0 = torch.eye(n) if metric_init is None else metric_init
            if learn_metric:
                self.metric_matrix = spd_parameter(n, M0)
            else:
                self.register_buffer("metric_matrix", M0.detach().clone())
        self.register_buffer("running_mean", torch.eye(n))
        self.register_buffer("running_var", torch.ones(()))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    # --- helpers -----------------------------------------------------------------------------------------
    @property
    def theta(self):
        """θ: a float, or a 0-d tensor when learned."""
        return self.log_theta.exp() if self.learn_theta else self.theta_value

    @property
    def shift(self) -> torch.Tensor:
        return self.log_shift.exp()

    def _power(self, X: torch.Tensor, p) -> torch.Tensor:
        if isinstance(p, torch.Tensor):
            return powm_learnable(X, p)
        return X if p == 1 else powm(X, p)

    def _congruences(self, like: torch.Tensor):
        """(M^½, M^{−½}) for gbw, else (None, None)."""
        if self.metric != "gbw":
            return None, None
        return spd_sqrt.sqrt_and_invsqrt(self.metric_matrix.to(like))

    @staticmethod
    def _phi(X, M_ihalf):
        return X if M_ihalf is None else sym(M_ihalf @ X @ M_ihalf)

    @staticmethod
    def _phi_inv(Y, M_half):
        return Y if M_half is None else sym(M_half @ Y @ M_half)

    def extra_repr(self) -> str:
        theta = "learned" if self.learn_theta else f"{self.theta_value:g}"
        return (f"{self.n}, metric={self.metric!r}, theta={theta}, momentum={self.momentum:g}, n_iter={self.n_iter}, "
                f"dispersion={self.dispersion!r}, scale={self.scale}")

    # --- forward -----------------------------------------------------------------------------------------
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """(B, n, n) SPD -> (B, n, n) SPD."""
        if X.shape[-2:] != (self.n, self.n):
            raise ValueError(f"SPDBatchNorm: input is {tuple(X.shape)}; expected (B, {self.n}, {self.n})")
        if self.check_input:
            check_spd(X, "SPDBatchNorm")
        use_batch = self.training and X.shape[0] > 1
        if self.metric == "lem":
            return self._forward_lem(X, use_batch)
        if self.metric == "aim":
            return self._forward_aim(X, use_batch)
        return self._forward_bw(X, use_batch)

    def _stat_update(self, new_mean_original: torch.Tensor, var: torch.Tensor) -> None:
        self.running_mean.copy_(new_mean_original.detach().to(self.running_mean))
        self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach().to(self.running_var))
        self.num_batches_tracked += 1

    def _forward_bw(self, X: torch.Tensor, use_batch: bool) -> torch.Tensor:
        theta = self.theta
        M_half, M_ihalf = self._congruences(X)  # (n, n) or None
        X_t = self._phi(self._power(X, theta), M_ihalf)  # (B, n, n)  X̃
        G_t = self._phi(self._power(self.bias.to(X), theta), M_ihalf)  # (n, n)  Ĝ
        theta_f = float(theta.detach()) if isinstance(theta, torch.Tensor) else float(theta)
        if use_batch:
            with torch.no_grad():  # batch statistics carry no gradient (as the official code)
                running_t = self._phi(self._power(self.running_mean.to(X), theta_f),
                                      None if M_ihalf is None else M_ihalf.detach())  # in φ_M(·^θ) coordinates
                mu = bw_mean(X_t.detach(), n_iter=self.n_iter, tol=0.0, anderson=0)  # (n, n), plain iterations
                centre = mu if self.dispersion == "mean" else eye_like(mu)
                var = bw_distance(X_t.detach(), centre, squared=True).mean() / theta_f**2  # scalar
                updated = bw_geodesic(running_t, mu, self.momentum)
                back = self._phi_inv(updated, None if M_half is None else M_half.detach())
                self._stat_update(self._power(back, 1 / theta_f), var)
        else:  # the running mean is a constant of the original space: its φ_M(·^θ) image depends on M and θ
            mu, var = self._phi(self._power(self.running_mean.to(X), theta), M_ihalf), self.running_var.to(X)
        V = bw_transport_to_identity(mu, bw_log(mu, X_t))  # (B, n, n) centred tangent vectors at I
        Z = bw_exp_identity(V)  # (B, n, n)
        if self.scale:
            k = self.shift / torch.sqrt(var + self.eps)
            V = k * bw_log_identity(Z)  # (B, n, n), = k·2(Z^½ − I)
        else:
            V = bw_log_identity(Z)
        Y = bw_exp(G_t, bw_transport_from_identity(G_t, V))  # (B, n, n)
        return self._power(self._phi_inv(Y, M_half), 1 / theta if isinstance(theta, torch.Tensor) else 1 / theta_f)

    def _forward_aim(self, X: torch.Tensor, use_batch: bool) -> torch.Tensor:
        theta = self.theta
        theta_f = float(theta.detach()) if isinstance(theta, torch.Tensor) else float(theta)
        X_t = self._power(X, theta)  # (B, n, n)
        G_t = self._power(self.bias.to(X), theta)  # (n, n)
        with torch.no_grad():
            running_t = self._power(self.running_mean.to(X), theta_f)
            if use_batch:
                mu = aim_mean(X_t.detach(), n_iter=self.n_iter, tol=0.0, adaptive=False)
                centre = mu if self.dispersion == "mean" else eye_like(mu)
                var = aim_distance(X_t.detach(), centre).pow(2).mean() / theta_f**2
                self._stat_update(self._power(aim_geodesic(running_t, mu, self.momentum), 1 / theta_f), var)
            else:
                mu, var = running_t, self.running_var.to(X)
            _, mu_ihalf = spd_sqrt.sqrt_and_invsqrt(mu)
        Z = sym(mu_ihalf @ X_t @ mu_ihalf)  # (B, n, n) centred at I
        if self.scale:  # Exp_I(k Log_I Z) = Z^k under AIM (LieBN)
            Z = expm(self.shift / torch.sqrt(var + self.eps) * logm(Z))
        G_half = sqrtm(G_t)
        Y = sym(G_half @ Z @ G_half)
        return self._power(Y, 1 / theta if isinstance(theta, torch.Tensor) else 1 / theta_f)

    def _forward_lem(self, X: torch.Tensor, use_batch: bool) -> torch.Tensor:
        theta = self.theta
        theta_f = float(theta.detach()) if isinstance(theta, torch.Tensor) else float(theta)
        L = theta * logm(X)  # (B, n, n), log X^θ
        with torch.no_grad():
            if use_batch:
                mean_log = L.detach().mean(0)  # (n, n)
                centre = mean_log if self.dispersion == "mean" else torch.zeros_like(mean_log)
                var = (L.detach() - centre).pow(2).sum((-2, -1)).mean() / theta_f**2
                running_log = logm(self.running_mean.to(X)) * theta_f
                updated = (1 - self.momentum) * running_log + self.momentum * mean_log
                self._stat_update(expm(updated / theta_f), var)
            else:
                mean_log, var = logm(self.running_mean.to(X)) * theta_f, self.running_var.to(X)
        centred = L - mean_log  # (B, n, n)
        if self.scale:
            centred = self.shift / torch.sqrt(var + self.eps) * centred
        return expm((centred + theta * logm(self.bias.to(X))) / theta)

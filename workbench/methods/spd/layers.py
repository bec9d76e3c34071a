"""SPDNet layers (Huang & Van Gool, "A Riemannian Network for SPD Matrix Learning", AAAI 2017) and SPD parameters.

- **BiMap** X ↦ Wᵀ X W with W ∈ St(n_in, n_out) (orthonormal columns): a ``geoopt.ManifoldParameter`` on
  ``geoopt.Stiefel``, trained with ``geoopt.optim.RiemannianAdam`` (gradient projected to the tangent space,
  retraction by QR / Cayley inside geoopt). **Difference from the official GBWBN SPDNet code**: there
  ``MixOptimizer`` has ``stiefel_optim.step()`` commented out, so BiMap weights never update (method note §1);
  here they do, and the tests check that W moves and stays orthonormal.
- **ReEig** X ↦ U max(ε, Λ) Uᵀ (ε absolute, or relative to λ_max with ``relative=True``). Its gradient goes through the
  Daleckii–Krein backward with f' on ties (:mod:`.matfun`), right where it clamps several eigenvalues to the same ε.
- **LogEig** X ↦ U log Λ Uᵀ; :func:`triu_vector` flattens a symmetric matrix to its n(n+1)/2 upper-triangular
  entries (off-diagonals × √2, so the Frobenius norm is kept) for the classifier.
- **SPD parameters** (bias G, metric M): ``geoopt.ManifoldParameter`` on ``geoopt.SymmetricPositiveDefinite``;
  RiemannianAdam's retraction x + u + ½ u x⁻¹ u keeps them SPD (the GBWBN RResNet variant's choice).
"""
from __future__ import annotations

import geoopt
import torch
from torch import nn

from workbench.methods.spd.matfun import clampm, logm


def check_spd(X: torch.Tensor, where: str) -> None:
    """Raise ValueError unless X is a (..., n, n) batch of symmetric positive-definite matrices
    (checked with a Cholesky factorisation; symmetry to 1e-5 relative)."""
    if X.dim() < 2 or X.shape[-1] != X.shape[-2]:
        raise ValueError(f"{where}: expected a batch of square matrices (..., n, n); got shape {tuple(X.shape)}")
    scale = X.abs().amax().clamp_min(torch.finfo(X.dtype).tiny)
    if not torch.isfinite(X).all():
        raise ValueError(f"{where}: the input has NaN or Inf entries; expected SPD matrices")
    if (X - X.mT).abs().amax() > 1e-5 * scale:
        raise ValueError(f"{where}: the input is not symmetric (max |X − Xᵀ| = {float((X - X.mT).abs().amax()):.3g}); "
                         f"expected SPD matrices")
    _, info = torch.linalg.cholesky_ex(0.5 * (X + X.mT))
    if (info != 0).any():
        bad = int((info != 0).sum())
        raise ValueError(f"{where}: {bad} of {info.numel()} input matrices are not positive definite "
                         f"(Cholesky failed); expected SPD matrices")


def spd_parameter(n: int, init: torch.Tensor | None = None, dtype=None) -> geoopt.ManifoldParameter:
    """An n×n SPD parameter (default: the identity) on geoopt's SPD manifold (AIM Riemannian gradient,
    retraction x + u + ½ u x⁻¹ u); train with ``geoopt.optim.RiemannianAdam``."""
    value = torch.eye(n, dtype=dtype or torch.get_default_dtype()) if init is None else init.detach().clone()
    return geoopt.ManifoldParameter(value, manifold=geoopt.SymmetricPositiveDefinite())


class BiMap(nn.Module):
    """X ↦ Wᵀ X W, W (n_in, n_out) with orthonormal columns (n_out ≤ n_in). (B, n_in, n_in) -> (B, n_out, n_out)."""

    def __init__(self, n_in: int, n_out: int, check_input: bool = False):
        super().__init__()
        if not 1 <= n_out <= n_in:
            raise ValueError(f"BiMap: n_out = {n_out} with n_in = {n_in} is not allowed; expected 1 <= n_out <= n_in")
        self.n_in, self.n_out, self.check_input = n_in, n_out, check_input
        Q, R = torch.linalg.qr(torch.randn(n_in, n_out))
        W = Q * torch.sign(torch.diagonal(R)).unsqueeze(0)  # (n_in, n_out), Haar-random orthonormal columns
        self.weight = geoopt.ManifoldParameter(W, manifold=geoopt.Stiefel())

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.check_input:
            check_spd(X, "BiMap")
        if X.shape[-1] != self.n_in:
            raise ValueError(f"BiMap: input is {X.shape[-2]}×{X.shape[-1]}; expected {self.n_in}×{self.n_in}")
        W = self.weight
        return W.mT @ X @ W  # (B, n_out, n_out)

    def extra_repr(self) -> str:
        return f"{self.n_in} -> {self.n_out}"


class ReEig(nn.Module):
    """X ↦ U max(ε, Λ) Uᵀ; ``relative=True`` uses ε · λ_max(X) per matrix. (B, n, n) -> (B, n, n)."""

    def __init__(self, eps: float = 1e-4, relative: bool = False):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"ReEig: eps = {eps!r} is not allowed; expected a number > 0")
        self.eps, self.relative = float(eps), relative

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.relative:
            with torch.no_grad():
                threshold = self.eps * torch.linalg.eigvalsh(X)[..., -1:]  # (B, 1)
            return clampm(X, threshold)
        return clampm(X, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}" + (", relative" if self.relative else "")


class LogEig(nn.Module):
    """X ↦ log X = U log Λ Uᵀ. (B, n, n) -> (B, n, n)."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return logm(X)


def triu_vector(S: torch.Tensor) -> torch.Tensor:
    """Upper-triangular entries of symmetric S, off-diagonals × √2 (so ‖v‖ = ‖S‖_F). (B, n, n) -> (B, n(n+1)/2)."""
    n = S.shape[-1]
    i, j = torch.triu_indices(n, n, device=S.device)
    scale = torch.where(i == j, 1.0, 2.0**0.5).to(S.dtype)
    return S[..., i, j] * scale

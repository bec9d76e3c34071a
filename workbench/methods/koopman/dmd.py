"""DMD and EDMD: the best linear map on the state, or on a fixed dictionary of observables, in least squares.

- exact DMD (Tu et al. 2014): Y ≈ X A on snapshot pairs (rows), with rank truncation, prediction through the
  modes and eigenvalues;
- EDMD (Williams, Kevrekidis, Rowley 2015): the same least squares on a dictionary ψ(x) (monomials, or Gaussian
  RBFs at k-means centres plus the state), ψ(Y) ≈ ψ(X) K, the state read back from its coordinates in ψ.

Torch, any device; row vectors throughout.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from workbench.methods.koopman.analysis import one_or_many_states
from workbench.methods.koopman.systems import pairs

BASELINES = ("dmd", "edmd_poly", "edmd_rbf")


@dataclass
class DMD:
    """Exact DMD of snapshot pairs (rows) Y ≈ X A: ``eigenvalues`` λ (r,), ``modes`` Φ (D, r) (complex), the
    reduced operator Ã (r, r) and the POD basis U (D, r). Prediction is modal: x_n = Σ_j b_j λ_jⁿ φ_j with
    b = Φ⁺ x_0."""

    eigenvalues: torch.Tensor
    modes: torch.Tensor
    reduced_operator: torch.Tensor
    basis: torch.Tensor

    @property
    def state_dim(self) -> int:
        return self.modes.shape[0]

    @torch.no_grad()
    @one_or_many_states
    def predict(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, D) -> (B, n_steps + 1, D) (real part; index 0 is x_0's projection on the modes)."""
        Phi = self.modes  # (D, r)
        b = x0.to(Phi.dtype) @ torch.linalg.pinv(Phi).T  # (B, r)
        powers = self.eigenvalues ** torch.arange(n_steps + 1, device=Phi.device).unsqueeze(-1)  # (n + 1, r)
        return torch.einsum("br,nr,dr->bnd", b, powers, Phi).real.to(x0.dtype)


def dmd(X: torch.Tensor, Y: torch.Tensor, rank: int | None = None) -> DMD:
    """Exact DMD (Tu et al. 2014) with snapshots as rows, X, Y (n, D), Y one step after X.

    In column form (X_c = Xᵀ): X_c = U Σ Vᴴ truncated to rank r, Ã = Uᴴ Y_c V Σ⁻¹, Ã W = W Λ and the exact
    modes Φ = Y_c V Σ⁻¹ W. ``rank=None`` keeps every singular value above 1e-12 · σ_max."""
    Xc, Yc = X.T, Y.T  # (D, n)
    U, s, Vh = torch.linalg.svd(Xc, full_matrices=False)  # (D, m), (m,), (m, n)
    r = int((s > 1e-12 * s[0]).sum()) if rank is None else min(int(rank), s.numel())
    U, s, V = U[:, :r], s[:r], Vh[:r].mH  # (D, r), (r,), (n, r)
    YV_inv_s = Yc @ V / s  # (D, r): Y_c V Σ⁻¹
    A_tilde = U.mH @ YV_inv_s  # (r, r)
    eigenvalues, W = torch.linalg.eig(A_tilde)  # (r,), (r, r)
    modes = YV_inv_s.to(W.dtype) @ W  # (D, r)
    return DMD(eigenvalues, modes, A_tilde, U)


def _lstsq(A: torch.Tensor, B: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """argmin_K ‖A K − B‖² (+ ridge ‖K‖²): (n, m), (n, p) -> (m, p). SVD-based (rank-deficient safe) on the CPU,
    the pseudo-inverse elsewhere (CUDA's lstsq assumes full rank)."""
    if ridge > 0:
        eye = torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
        return torch.linalg.solve(A.T @ A + ridge * eye, A.T @ B)
    if A.device.type == "cpu":
        return torch.linalg.lstsq(A, B, driver="gelsd").solution
    return torch.linalg.pinv(A) @ B


def polynomial_exponents(state_dim: int, degree: int) -> list[tuple[int, ...]]:
    """Monomials of degree 0..p as index tuples, in order: (), (0,), (1,), ..., (0, 0), (0, 1), ..."""
    return [c for p in range(degree + 1) for c in itertools.combinations_with_replacement(range(state_dim), p)]


def n_polynomial_features(state_dim: int, degree: int) -> int:
    """How many monomials of degree 0..p there are in D variables: C(D + p, p) (the length of ψ)."""
    return math.comb(state_dim + degree, degree)


class PolynomialDictionary:
    """ψ(x) = all monomials of x up to ``degree`` (1, x_i, x_i x_j, ...); the state is ψ's coordinates 1..D."""

    def __init__(self, state_dim: int, degree: int = 3):
        self.state_dim, self.degree = state_dim, degree
        self.exponents = polynomial_exponents(state_dim, degree)
        self.state_index = list(range(1, state_dim + 1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (n, D) -> (n, m)
        ones = torch.ones_like(x[:, :1])
        return torch.cat([x[:, list(e)].prod(dim=1, keepdim=True) if e else ones for e in self.exponents], dim=1)


def kmeans(x: torch.Tensor, k: int, n_iter: int = 50, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding, in torch (any device): (n, D) -> centres (k, D)."""
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    k = min(k, n)
    centres = x[torch.randint(n, (1,), generator=generator)]  # (1, D)
    d2 = torch.cdist(x, centres).square().squeeze(1)  # (n,)
    for _ in range(1, k):
        probabilities = (d2 / d2.sum()).cpu()
        nxt = x[torch.multinomial(probabilities, 1, generator=generator).to(x.device)]  # (1, D)
        centres = torch.cat([centres, nxt])
        d2 = torch.minimum(d2, torch.cdist(x, nxt).square().squeeze(1))
    for _ in range(n_iter):
        assign = torch.cdist(x, centres).argmin(dim=1)  # (n,)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).to(x.dtype)  # (k, 1)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        if torch.allclose(new, centres):
            break
        centres = new
    return centres


class RBFDictionary:
    """ψ(x) = (x, exp(−‖x − c_j‖² / σ²)_{j=1..k}): the state plus Gaussian RBFs at k-means centres of the
    training data, σ = the median distance between the centres (the method note's dictionary)."""

    def __init__(self, centres: torch.Tensor, width: float | None = None):
        self.centres = centres  # (k, D)
        self.state_dim = centres.shape[1]
        self.width = float(torch.pdist(centres).median()) if width is None else float(width)
        self.state_index = list(range(self.state_dim))

    @classmethod
    def fit(cls, x: torch.Tensor, n_centres: int = 100, seed: int = 0) -> "RBFDictionary":
        return cls(kmeans(x, n_centres, seed=seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (n, D) -> (n, D + k)
        rbf = torch.exp(-torch.cdist(x, self.centres).square() / self.width ** 2)  # (n, k)
        return torch.cat([x, rbf], dim=1)


@dataclass
class EDMD:
    """EDMD (Williams, Kevrekidis, Rowley 2015): ψ(Y) ≈ ψ(X) K in least squares, K (m, m) acting on rows.
    ``eigenvalues`` are K's; prediction rolls ψ forward, ψ_n = ψ(x_0) Kⁿ, and reads the state off ψ_n."""

    dictionary: Callable[[torch.Tensor], torch.Tensor]
    K: torch.Tensor

    @property
    def eigenvalues(self) -> torch.Tensor:
        return torch.linalg.eigvals(self.K)

    @property
    def state_dim(self) -> int:
        return self.dictionary.state_dim

    @torch.no_grad()
    @one_or_many_states
    def predict(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, D) -> (B, n_steps + 1, D)."""
        psi = self.dictionary(x0)  # (B, m)
        index = self.dictionary.state_index
        path = [psi[:, index]]
        for _ in range(n_steps):
            psi = psi @ self.K
            path.append(psi[:, index])
        return torch.stack(path, dim=1)


def edmd(X: torch.Tensor, Y: torch.Tensor, dictionary: Callable[[torch.Tensor], torch.Tensor],
         ridge: float = 0.0) -> EDMD:
    """Fit EDMD on snapshot pairs X, Y (n, D) with ``dictionary`` (:class:`PolynomialDictionary`,
    :class:`RBFDictionary`): K = argmin ‖ψ(X) K − ψ(Y)‖² (+ ridge ‖K‖²)."""
    return EDMD(dictionary, _lstsq(dictionary(X), dictionary(Y), ridge))


def fit_baselines(trajectories: torch.Tensor, names=BASELINES, rank: int | None = None, degree: int = 2,
                  n_centres: int = 100, seed: int = 0) -> dict[str, DMD | EDMD]:
    """The linear baselines ``names`` fitted on every snapshot pair of ``trajectories`` (N, T + 1, D):
    ``dmd`` (exact DMD at ``rank``), ``edmd_poly`` (EDMD on the monomials up to ``degree``), ``edmd_rbf`` (EDMD on
    the state plus Gaussian RBFs at ``n_centres`` k-means centres, seeded by ``seed``). Returns {name: model}."""
    unknown = set(names) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; allowed: {', '.join(BASELINES)}")
    X, Y = pairs(trajectories)  # (N·T, D) each
    fitted: dict[str, DMD | EDMD] = {}
    if "dmd" in names:
        fitted["dmd"] = dmd(X, Y, rank=rank)
    if "edmd_poly" in names:
        fitted["edmd_poly"] = edmd(X, Y, PolynomialDictionary(X.shape[1], degree))
    if "edmd_rbf" in names:
        fitted["edmd_rbf"] = edmd(X, Y, RBFDictionary.fit(X, n_centres, seed=seed))
    return fitted

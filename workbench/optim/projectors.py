"""Gradient subspaces shared by GaLore, DCT-AdamW, APOLLO and FRUGAL.

A gradient G ∈ R^{m×n} is compressed on its smaller side (GaLore's `proj_type='std'` rule):

    m ≥ n  ("right"):  R = G Pᵀ ∈ R^{m×r},   back(N) = N P,   P ∈ R^{r×n}
    m < n  ("left"):   R = Pᵀ G ∈ R^{r×n},   back(N) = P N,   P ∈ R^{m×r}

`refresh` chooses P from the current gradient; the kinds are

    svd         rows of Vᵀ / columns of U of the truncated SVD G = U S Vᵀ      GaLore (Zhao et al. 2024)
    dct         the r columns of the orthonormal DCT-II matrix Q with the     DCT-AdamW (arXiv 2505.17967)
                largest ℓ1 alignment ‖G Q[:, j]‖₁ (or ‖Q[:, j]ᵀ G‖₁); all n
                alignments at once by FFT (`dct3`), not by the product G Q
    random      entries N(0, 1/r), not orthonormal; seeded per parameter      APOLLO (Zhu et al. 2024)
    orthogonal  Q factor of a seeded Gaussian: a uniformly random subspace    FRUGAL's `proj_type='random'`
    randperm    r random coordinates (P = rows / columns of the identity)     FRUGAL's `proj_type='randperm'`

svd, dct, orthogonal and randperm give orthonormal P (P Pᵀ = I or Pᵀ P = I), so back(R) is the
orthogonal projection of G onto the subspace and G − back(R) its complement.

Everything lives in the optimizer's per-parameter state as tensors and ints, so a state_dict loads
with `torch.load(weights_only=True)`:

    "P"          (r, n) or (m, r) in G's dtype                 svd, random, orthogonal
    "dct_idx"    (r,) int32 column indices into Q              dct: Q itself is cached per (n, dtype, device)
    "coord_idx"  (r,) int64 coordinate indices                 randperm
    "seed"       int                                           random, orthogonal, randperm

Seeds follow APOLLO (`apollo_torch/random_projector.py`): draw with a fresh generator seeded with
state["seed"] on G's device, then advance state["seed"] to the last of 15 `randint(0, 2⁶³−1)` of a
CPU generator seeded with the old seed. A resumed run therefore draws the same subspaces as an
uninterrupted one, and no global RNG is touched.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import torch

KINDS = ("svd", "dct", "random", "orthogonal", "randperm")
SUBSPACE_KEYS = ("P", "dct_idx", "coord_idx")


def check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    """Raise ValueError unless value is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed: choose one of {allowed}")


def check_int(name: str, value: Any, low: int, high: float = math.inf, where: str = "") -> None:
    """Raise ValueError unless value is an integer in [low, high]; `where` says where `high` comes from."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name}={value!r} is not allowed{where}: choose an integer in [{low}, {high}]")


def check_rank(rank: Any, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless 1 ≤ rank ≤ min(m, n) for a matrix of this shape."""
    check_int("rank", rank, 1, min(shape), f" for a parameter of shape {tuple(shape)}")


def right_side(shape: tuple[int, ...]) -> bool:
    """GaLore's 'std' side rule: project the columns (R = G Pᵀ) when m ≥ n, the rows otherwise."""
    return shape[0] >= shape[1]


@functools.lru_cache(maxsize=None)
def dct_basis(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Orthonormal DCT-II matrix, one row per frequency k, cached per (n, dtype, device); do not modify it.

        Q[k, j] = √(2/n) · c_k · cos(π k (2j + 1) / (2n)),   c_0 = 1/√2, c_k = 1 otherwise

    Its columns are the basis vectors (DCT-AdamW's default `sim_type='matmul'`). Built in float64
    and rounded once to `dtype` (the reference builds it in float32: ~1e-7 apart).
    """
    k = torch.arange(n, dtype=torch.float64)[:, None]  # (n, 1)
    j = torch.arange(n, dtype=torch.float64)[None, :]  # (1, n)
    Q = math.sqrt(2 / n) * torch.cos(math.pi * k * (2 * j + 1) / (2 * n))  # (n, n)
    Q[0] *= math.sqrt(0.5)
    return Q.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=None)
def _dct3_tables(n: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Makhoul's twiddles a_k·e^{iπk/(2n)}, k ≤ n/2 (a_0 = √n, a_k = √(n/2)), and his output order."""
    k = torch.arange(n // 2 + 1, dtype=torch.float64)
    a = torch.full_like(k, math.sqrt(n / 2))
    a[0] = math.sqrt(n)
    twiddle = torch.polar(a, math.pi * k / (2 * n)).to(dtype=dtype.to_complex(), device=device)  # (n//2+1,)
    j = torch.arange(n)
    order = torch.empty(n, dtype=torch.long)
    order[0::2] = j[: (n + 1) // 2]
    order[1::2] = (n - 1 - j)[: n // 2]
    return twiddle, order.to(device)


def dct3(X: torch.Tensor, dim: int) -> torch.Tensor:
    """X Q (dim=1) or Qᵀ X (dim=0), Q = dct_basis(n): the orthonormal DCT-III along `dim`, by FFT.

    Makhoul (1980, IEEE TASSP 28(1)), inverse DCT with one real FFT of length n, O(n log n) per
    line instead of the product's O(n²); equal to the product up to rounding:

        W_k = a_k·x_k − i·a_{n−k}·x_{n−k}   (x_n = 0),   v = irfft(e^{iπk/(2n)}·W),   y_{2j} = v_j,  y_{2j+1} = v_{n−1−j}

    Computed in float32 at least; returns that dtype.
    """
    n, h = X.shape[dim], X.shape[dim] // 2 + 1
    work = torch.promote_types(X.dtype, torch.float32)
    twiddle, order = _dct3_tables(n, work, X.device)
    X = X.to(work)
    head = X.narrow(dim, 0, h)  # x_0 … x_{n/2}
    tail = torch.cat([torch.zeros_like(X.narrow(dim, 0, 1)), X.narrow(dim, n - h + 1, h - 1).flip(dim)], dim)  # x_n=0, x_{n−1}, …
    shape = [1] * X.ndim
    shape[dim] = h
    W = torch.complex(head, tail.neg_()).mul_(twiddle.view(shape))  # (…, n//2+1, …)
    return torch.fft.irfft(W, n=n, dim=dim).index_select(dim, order)


def next_seed(seed: int) -> int:
    """APOLLO's seed chain: the last of 15 draws of randint(0, 2⁶³ − 1) from a CPU generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, torch.iinfo(torch.int64).max, (15,), generator=generator)[-1].item()


def _generator(state: dict, device: torch.device) -> torch.Generator:
    """A generator on `device` seeded with state["seed"]; advances state["seed"] along the chain."""
    generator = torch.Generator(device=device).manual_seed(state["seed"])
    state["seed"] = next_seed(state["seed"])
    return generator


def refresh(G: torch.Tensor, state: dict, kind: str, rank: int) -> torch.Tensor:
    """Choose a rank-r subspace of `kind` for G, store it in `state`, and return R = project(G, state)."""
    check_choice("proj", kind, KINDS)
    check_rank(rank, G.shape)
    for key in SUBSPACE_KEYS:
        state.pop(key, None)
    m, n = G.shape
    right = right_side(G.shape)
    size = n if right else m  # the compressed side

    if kind == "dct":
        S = dct3(G, 1 if right else 0)  # (m, n) = G Q or Qᵀ G: coefficients of G in the basis
        score = torch.linalg.vector_norm(S, ord=1, dim=0 if right else 1)  # (size,)
        idx = torch.topk(score, rank, sorted=False).indices  # (r,)
        state["dct_idx"] = idx.to(torch.int32)
        return S.index_select(1 if right else 0, idx).to(G.dtype)  # the selected coefficients: no second product
    if kind == "randperm":
        # clone: a slice would keep all `size` indices of the permutation alive, not r
        state["coord_idx"] = torch.randperm(size, generator=_generator(state, G.device), device=G.device)[:rank].clone()
        return project(G, state)

    work = torch.promote_types(G.dtype, torch.float32)  # factorizations in float32 at least, as GaLore
    if kind == "svd":
        U, _, Vh = torch.linalg.svd(G.to(work), full_matrices=False)  # (m, k), (k, n)
        P = Vh[:rank] if right else U[:, :rank]
    elif kind == "random":
        shape = (rank, n) if right else (m, rank)
        P = torch.randn(shape, generator=_generator(state, G.device), device=G.device) / math.sqrt(rank)
    else:  # orthogonal
        A = torch.randn(size, rank, generator=_generator(state, G.device), device=G.device)  # (size, r)
        B = torch.linalg.qr(A.to(work)).Q  # (size, r), orthonormal columns
        P = B.T if right else B
    # a compact copy, so the state does not keep all of U or Vᵀ alive; it keeps LAPACK's column-major
    # order, so that the products round exactly as galore-torch's (which keeps the slice)
    state["P"] = torch.empty_like(P, dtype=G.dtype).copy_(P)
    return project(G, state)


def _dense(state: dict, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """P for the kinds that store it, else built from the cached DCT basis: Q[:, idx]ᵀ (right) or Q[:, idx] (left)."""
    if "P" in state:
        return state["P"]
    B = dct_basis(min(shape), dtype, device).index_select(1, state["dct_idx"])  # (size, r): Q[:, idx]
    return B.T if right_side(shape) else B


def project(G: torch.Tensor, state: dict) -> torch.Tensor:
    """R = G Pᵀ (m ≥ n) or Pᵀ G (m < n), in the subspace stored in `state`; (m, r) or (r, n)."""
    right = right_side(G.shape)
    if "coord_idx" in state:
        return G.index_select(1 if right else 0, state["coord_idx"])
    P = _dense(state, G.shape, G.dtype, G.device)
    return G @ P.T if right else P.T @ G


def project_back(N: torch.Tensor, state: dict, shape: tuple[int, ...]) -> torch.Tensor:
    """back(N) = N P (m ≥ n) or P N (m < n): a new (m, n) tensor."""
    right = right_side(shape)
    if "coord_idx" in state:
        return N.new_zeros(shape).index_copy_(1 if right else 0, state["coord_idx"], N)
    P = _dense(state, shape, N.dtype, N.device)
    return N @ P if right else P @ N

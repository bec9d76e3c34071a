"""DCT-AdamW: SVD-free low-rank Adam ("SVD-Free Low-Rank Adaptive Gradient Optimization for Large
Language Models", arXiv 2505.17967, 2025; conventions of the official
`IST-DASLab/ISTA-DASLab-Optimizers`@4c98e6e `fft_low_rank/dct_adamw.py`, `fft_projector.py`).

GaLore's SVD is replaced by a choice of r columns of a fixed orthonormal DCT-II basis Q (n×n,
n = min(m, n) of the matrix): the ones best aligned with the current gradient in ℓ1.

    at t = 1 and t ≡ 0 (mod T), T = update_proj_gap (default 1: every update):
        m ≥ n: S = G Q,  score_j = ‖S[:, j]‖₁;   m < n: S = Qᵀ G,  score_j = ‖S[j, :]‖₁
        idx = topk(score, r, sorted=False),  R = S[:, idx] or S[idx, :]
    otherwise R = G Q[:, idx] or Q[:, idx]ᵀ G
    W ← W·(1 − lr·λ)                                          (decay first, every parameter)
    m ← β1·m + (1 − β1)·R,   v ← β2·v + (1 − β2)·R²
    u = m / (√v + ε·√bc2)
    W ← W − lr·(√bc2/bc1)·back(u),   back(u) = u Q[:, idx]ᵀ or Q[:, idx] u

Only the r int32 indices are state; Q is cached per (n, dtype, device). A refresh needs all n
alignments, S = G Q: they come from Makhoul's FFT algorithm for the DCT-III (`projectors.dct3`,
O(mn log n)) instead of the reference's product (O(mn²); the same S up to rounding, ~1e-6 relative
in float32), so it costs about one tenth of a 2048² matrix product, and less than 1/100 of an SVD.
The moment slots are not remapped when idx changes (the reference's default,
`rotate_subspace=False`), so topk's unsorted order is kept as is.

Deliberate differences from the reference:
- Per-group keys `rank`, `update_proj_gap`, `scale` (default 1.0, not in the reference); groups
  with rank=None and non-matrix parameters get the same Adam unprojected. The reference projects
  every 2-D parameter below `max_shape` (32000) with one global rank and gap.
- One basis per matrix size, so layers of different shapes work; the reference builds one Q from
  the first parameter and right-projects two hard-coded wide shapes (512/1024 × 3584/4096); here
  the side rule is always GaLore's (m ≥ n: right).
- t and the bias correction count each parameter's own updates (the reference: one global step;
  equal when every parameter gets a gradient at every step).
- S by FFT (above); Q is built in float64 and rounded once (the reference: float32, up to 1.3e-6
  apart at n = 32); with the reference's Q and product the update is bit-identical. Full-Adam
  parameters use m/(√v + ε√bc2) directly (the reference computes 1/((√v + ε√bc2)/m)); p.grad is
  left untouched (the reference overwrites it). No `rotate_subspace`, error feedback, 'makhoul'
  similarity, Hadamard or random-QR bases, or distributed mode.
"""

from __future__ import annotations

from workbench.optim.subspace import SubspaceAdam


class DCTAdamW(SubspaceAdam):
    projections = ("dct",)
    eps_scaled = True
    decay_first = True
    refresh_offset = 0

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        rank: int | None = None,
        update_proj_gap: int = 1,
        scale: float = 1.0,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            rank=rank, update_proj_gap=update_proj_gap, scale=scale, proj="dct",
        )
        super().__init__(params, defaults)

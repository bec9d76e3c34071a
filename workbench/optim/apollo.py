"""APOLLO and APOLLO-Mini (Zhu et al. 2024, "APOLLO: SGD-like Memory, AdamW-level Performance",
arXiv 2412.05270; conventions of the official `zhuhanqing/APOLLO`@76b3472 `apollo_torch/apollo.py`,
`random_projector.py` = PyPI apollo-torch 1.0.3).

Adam runs in a random rank-r space only to estimate how much it would rescale each channel of
the gradient; the raw full-rank gradient is then rescaled, with no back-projection:

    every T = update_proj_gap updates (t = 1, T+1, …):  P ~ N(0, 1/r), seeded per parameter
        (m ≥ n: P r×n, R = G Pᵀ;  m < n: P m×r, R = Pᵀ G)
    m ← β1·m + (1 − β1)·R,   v ← β2·v + (1 − β2)·R²,   N = m / (√v + ε)
    channel:  s_i = ‖N_i‖ / (‖R_i‖ + 1e-8) over the rank axis, for each un-projected channel i
              (rows of G when m ≥ n, columns otherwise)
    tensor:   s = ‖N‖_F / (‖R‖_F + 1e-8)
    G̃ = G ⊙ s
    norm-growth limiter (Fira, arXiv 2410.01623), unless disable_nl:
        γ = max(‖G̃‖ / (‖G̃_prev‖ + 1e-8), 1.01) / 1.01,   G̃ ← G̃ / γ,   ‖G̃_prev‖ ← ‖G̃‖
    W ← W − lr·(√bc2/bc1)·√scale·G̃      (√scale applied before the limiter with scale_front)
    W ← W − lr·λ·W

APOLLO-Mini is rank 1, tensor-wise, scale 128 (README). Seeds: parameters numbered 1, 2, … over
all groups (frozen ones included) start with seed = their number, and the seed advances along
APOLLO's chain at each draw (`projectors.next_seed`), so the projections match apollo-torch's on
the same device. Defaults as apollo-torch (lr 1e-3, eps 1e-6, λ 0, random projection, channel
scaling); `update_proj_gap` 200 as the README; `scale` 1.0.

G̃ is never formed. Its norm comes from G's own norms, ‖G ⊙ s‖ = s·‖G‖ (tensor) or ‖s ⊙ (‖G_i‖)_i‖
(channel), and γ and √scale multiply the small s, so two passes touch full-size tensors: G's norm
and W ← W − α·G ⊙ (s·√scale/γ). apollo-torch forms G̃, divides it by γ (also when γ = 1) and
multiplies it by √scale, three more. The two agree to float rounding, not bit for bit: after the
20 steps of the method note's §9 check, max |Δp| ≤ 3.6e-7 (test).

Deliberate differences from apollo-torch:
- `scale_front` and `disable_nl` are per-group keys (apollo-torch: optimizer-wide arguments).
- Only 2-D parameters of a group with a rank are projected (apollo-torch projects every parameter
  of such a group); the others get the same Adam unprojected. No `correct_bias=False`.
- `rank` must satisfy 1 ≤ r ≤ min(m, n); the state is plain tensors and ints (weights_only=True).
- pytorch_optimizer.APOLLO is a different algorithm (it back-projects through the non-orthogonal
  P and applies `scale` twice); this class follows the official code.
"""

from __future__ import annotations

import math

import torch

from workbench.optim.projectors import check_choice, right_side
from workbench.optim.subspace import SubspaceAdam, adam_direction

SCALE_TYPES = ("channel", "tensor")


def scaling_factor(R: torch.Tensor, N: torch.Tensor, scale_type: str, right: bool) -> torch.Tensor:
    """APOLLO's s = ‖N‖ / (‖R‖ + 1e-8): per channel over the rank axis, (m, 1) when right else (1, n); or () per tensor."""
    if scale_type == "tensor":
        return torch.linalg.vector_norm(N) / (torch.linalg.vector_norm(R) + 1e-8)
    dim = 1 if right else 0
    return torch.linalg.vector_norm(N, dim=dim, keepdim=True) / (torch.linalg.vector_norm(R, dim=dim, keepdim=True) + 1e-8)


def scaled_norm(G: torch.Tensor, s: torch.Tensor, scale_type: str, right: bool) -> torch.Tensor:
    """‖G ⊙ s‖_F without forming G ⊙ s: s·‖G‖ (tensor), or ‖(s_i·‖G_i‖)_i‖ over the channels i."""
    if scale_type == "tensor":
        return s * torch.linalg.vector_norm(G)
    return torch.linalg.vector_norm(s * torch.linalg.vector_norm(G, dim=1 if right else 0, keepdim=True))


def norm_growth_divisor(norm: torch.Tensor, state: dict) -> torch.Tensor | float:
    """Fira's limiter: γ = max(‖G̃‖/(‖G̃_prev‖ + 1e-8), 1.01)/1.01, 1 on the first call; keeps ‖G̃‖/γ in state."""
    gamma = 1.0
    if "limiter_norm" in state:
        growth = norm / (state["limiter_norm"] + 1e-8)
        if growth >= 1.01:
            gamma = growth / 1.01
    state["limiter_norm"] = norm / gamma
    return gamma


class APOLLO(SubspaceAdam):
    projections = ("random", "svd")
    eps_scaled = False
    decay_first = False
    refresh_offset = 1

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        rank: int | None = None,
        update_proj_gap: int = 200,
        scale: float = 1.0,
        proj: str = "random",
        scale_type: str = "channel",
        scale_front: bool = False,
        disable_nl: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            rank=rank, update_proj_gap=update_proj_gap, scale=scale, proj=proj,
            scale_type=scale_type, scale_front=scale_front, disable_nl=disable_nl,
        )
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        check_choice("scale_type", group["scale_type"], SCALE_TYPES)

    def _low_rank_step(self, p, state, group):
        G, right = p.grad, right_side(p.grad.shape)  # (m, n)
        R, _ = self._project(G, state, group)  # (m, r) or (r, n)
        N, alpha = adam_direction(state, R, group["lr"], group["betas"], group["eps"], self.eps_scaled)
        s = scaling_factor(R, N, group["scale_type"], right)  # (), (m, 1) or (1, n)
        root_scale = math.sqrt(group["scale"])
        if group["scale_front"]:
            s = s * root_scale
        if not group["disable_nl"]:
            s = s / norm_growth_divisor(scaled_norm(G, s, group["scale_type"], right), state)
        if not group["scale_front"]:
            s = s * root_scale
        p.addcmul_(G, s.to(G.dtype), value=-alpha)  # W ← W − α·G ⊙ s


class APOLLOMini(APOLLO):
    """APOLLO-Mini: APOLLO with rank 1, tensor-wise scaling and scale 128 as defaults (README)."""

    def __init__(self, params, rank: int | None = 1, scale_type: str = "tensor", scale: float = 128.0, **kwargs):
        super().__init__(params, rank=rank, scale_type=scale_type, scale=scale, **kwargs)

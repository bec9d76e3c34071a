"""GaLore: Gradient Low-Rank Projection (Zhao et al. 2024, "GaLore: Memory-Efficient LLM Training by
Gradient Low-Rank Projection", arXiv 2403.03507, Algorithm 2; conventions of the official
`jiaweizzhao/GaLore`@2cc66f8 `galore_torch/adamw.py` + `galore_projector.py` = PyPI galore-torch 1.0).

For each matrix W ∈ R^{m×n} of a group with a `rank` r, with G its gradient:

    every T = update_proj_gap updates (t = 1, T+1, 2T+1, …):  P ← top-r singular vectors of G
        m ≥ n: P = Vᵀ[:r] (r×n), R = G Pᵀ;    m < n: P = U[:, :r] (m×r), R = Pᵀ G
    m ← β1·m + (1 − β1)·R,   v ← β2·v + (1 − β2)·R²          (m, v of R's shape: max(m,n)×r)
    N = m / (√v + ε)
    W ← W − lr·(√bc2/bc1)·scale·back(N),   back(N) = N P or P N
    W ← W − lr·λ·W                                            (decoupled decay, after the update)

The moments are neither reset nor rotated when P changes. Parameters that are not matrices, and
groups with rank=None, get the same Adam update unprojected. Defaults as galore-torch (lr 1e-3,
eps 1e-6, λ 0); `update_proj_gap` 200 and `scale` 1.0 as the README's 60M example and the CLI
(the README pre-trains with scale 0.25). With the same op order as galore-torch the parameters
agree bit for bit on CPU (`test_matches_the_official_package`; galore-torch is in the `test` extra).

Deliberate differences from galore-torch:
- Only the 'std' side rule; `proj` may also be 'dct', 'orthogonal' or 'randperm' (the other
  orthonormal subspaces of `projectors`), 'svd' is GaLore's. No Tucker projection of tensors with
  more than 2 dims: they get plain Adam. No `correct_bias=False`.
- `rank` must satisfy 1 ≤ r ≤ min(m, n) for every matrix of the group (galore-torch silently
  truncates); checked at construction.
- The state holds P as a plain tensor (plus ints), so `state_dict()` loads with weights_only=True;
  galore-torch stores a projector object. P is copied out of the SVD's Vᵀ rather than kept as a
  view (galore-torch's view keeps all of Vᵀ alive: twice the state for a square layer).
- The SVD runs in float32 or wider: float64 gradients are not rounded to float32 first.
"""

from __future__ import annotations

from workbench.optim.subspace import SubspaceAdam


class GaLoreAdamW(SubspaceAdam):
    projections = ("svd", "dct", "orthogonal", "randperm")
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
        proj: str = "svd",
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            rank=rank, update_proj_gap=update_proj_gap, scale=scale, proj=proj,
        )
        super().__init__(params, defaults)

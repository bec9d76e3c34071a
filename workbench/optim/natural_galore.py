"""Natural GaLore: a natural-gradient step in GaLore's subspace (Das 2024, "Natural GaLore: Accelerating
GaLore for memory-efficient LLM Training and Fine-tuning", arXiv 2410.16029; conventions of the official
`selfsupervised-ai/Natural-GaLore`@e23336d `code/natural_galore/subspace_adamw.py` +
`galore_projector_tensor.py`, `proj_type='natural_galore'`; method note §8).

For each matrix W ∈ R^{m×n} of a group with a `rank` r, with G its gradient:

    every T = update_proj_gap updates (t = 1, T+1, 2T+1, …):
        U_r, V_r ← top-r left and right singular vectors of G (the Tucker factors of a matrix), each
                   vector's entry of largest magnitude made positive
    R = U_rᵀ G V_r                                     (r×r: both sides are compressed)
    g = vec(R) ∈ R^k (k = r²);  H = [g_{t−s+1}, …, g_t] ∈ R^{k×s}, the last s = natural_history of them
    ĝ = (λI + H Hᵀ)⁻¹ g = g/λ − H (I + HᵀH/λ)⁻¹ Hᵀ g / λ²   (Woodbury: an s×s Cholesky solve, λ = damping)
    m ← β1·m + (1 − β1)·ĝ,   v ← β2·v + (1 − β2)·ĝ²,   N = m / (√v + ε)
    W ← W − lr·(√bc2/bc1)·scale·U_r N V_rᵀ
    W ← W − lr·λ_wd·W                                   (decoupled decay, after the update, as GaLore)

H Hᵀ/s is the empirical Fisher of the recent projected gradients, so ĝ preconditions g with its
(damped) inverse. H is a FIFO over updates and is kept across subspace changes, as are m and v.
Parameters that are not matrices, and groups with rank=None, get the same Adam on G, with no natural
gradient (as the official code). The formula takes g/λ − (a nearly equal term) in float32, so ĝ carries
a rounding error of about 2^-24·‖H‖²/λ relative; it is the official arithmetic, kept as is.

Given the same factors, the parameters agree bit for bit with a step-by-step rewrite of the official
update (tests/test_optim_galore_variants.py).

State per projected matrix: "U" (m×r), "V" (n×r), "history" (k×s', s' ≤ s, oldest column first),
"exp_avg", "exp_avg_sq" (r×r), "step" (int): plain tensors, so `state_dict()` loads with weights_only=True.
Defaults as the official class (lr 1e-3, betas (0.9, 0.999), ε 1e-6, λ_wd 0, natural_history 20,
damping 1e-3); update_proj_gap 200 and scale 1.0 as its command line; its C4 scripts use lr 0.01,
rank 128, scale 0.25.

Deliberate differences from the official code:
- The factors come from one truncated SVD of G. The official runs tensorly's `tucker` (HOOI: SVDs of
  both unfoldings, then at least three rounds of SVDs of G V and Gᵀ U, each sign-fixed by the largest
  entry of U); for a matrix that converges to the same singular subspaces with the same signs, to float
  rounding (float32: ~1e-5, checked against tensorly in the tests; whole runs drift apart from that, through
  Adam's sign-like first steps, so the update is cross-checked given the same factors). One SVD is also
  cheaper than HOOI's several. Only 2-D parameters are projected (the official
  Tucker-projects tensors of any order in the group, biases included, if put there); no `online_*`
  projections; the damping λ is a group key (official: 1e-3 hard-coded); no `correct_bias=False`,
  amsgrad, maximize.
- `rank` must satisfy 1 ≤ r ≤ min(m, n) (checked at construction); the SVD runs in float32 or wider
  (the official rounds float64 gradients to float32 for it).
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.optim.projectors import check_int, check_rank
from workbench.optim.subspace import SubspaceAdam, adam_direction


def leading_singular_vectors(G: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_r (m, r), V_r (n, r)): G's top-r singular vectors, each column's entry of largest |value| positive
    (tensorly's `svd_flip` convention), computed in float32 or wider and returned in G's dtype."""
    work = torch.promote_types(G.dtype, torch.float32)
    U, _, Vh = torch.linalg.svd(G.to(work), full_matrices=False)  # (m, k), (k, n)
    return _positive_peaks(U[:, :rank]).to(G.dtype), _positive_peaks(Vh[:rank].T).to(G.dtype)


def _positive_peaks(B: torch.Tensor) -> torch.Tensor:
    """B (d, r) with each column multiplied by the sign of its entry of largest magnitude; a new tensor."""
    peaks = B.gather(0, B.abs().argmax(dim=0, keepdim=True))  # (1, r)
    return B * torch.sign(peaks)


def natural_gradient(g: torch.Tensor, H: torch.Tensor, damping: float) -> torch.Tensor:
    """ĝ = (λI + H Hᵀ)⁻¹ g for g (k,) and H (k, s) by Woodbury, in the official code's op order."""
    inv = 1.0 / damping
    S = inv * torch.mm(H.t(), H)  # (s, s) = HᵀH/λ
    S.diagonal().add_(1.0)  # I + HᵀH/λ
    L = torch.linalg.cholesky(S)  # (s, s)
    c = torch.cholesky_solve(torch.mv(H.t(), g).unsqueeze(1), L).squeeze(1)  # (s,) = S⁻¹ Hᵀ g
    return inv * g - inv**2 * torch.mv(H, c)  # (k,)


class NaturalGaLoreAdamW(SubspaceAdam):
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
        natural_history: int = 20,
        damping: float = 1e-3,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, rank=rank,
            update_proj_gap=update_proj_gap, scale=scale, natural_history=natural_history, damping=damping,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        if group["rank"] is None:
            return
        check_int("update_proj_gap", group["update_proj_gap"], 1)
        check_int("natural_history", group["natural_history"], 1)
        for p in group["params"]:
            if p.ndim == 2:
                check_rank(group["rank"], p.shape)

    def _project_two_sided(self, G: torch.Tensor, state: dict, group: dict[str, Any]) -> torch.Tensor:
        """R = U_rᵀ G V_r (r, r), after new factors from G when they are due."""
        if self._due(state.get("step", 0) + 1, group):
            state["U"], state["V"] = leading_singular_vectors(G, group["rank"])
        return state["U"].T @ G @ state["V"]

    def _remember(self, g: torch.Tensor, state: dict, group: dict[str, Any]) -> torch.Tensor:
        """Append g (k,) to the FIFO history, dropping the oldest beyond natural_history; returns H (k, s')."""
        H = state.get("history", g.new_empty(g.numel(), 0))
        keep = max(H.shape[1] + 1 - group["natural_history"], 0)
        state["history"] = torch.cat([H[:, keep:], g[:, None]], dim=1)
        return state["history"]

    def _low_rank_step(self, p: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """W ← W − α·scale·U_r N V_rᵀ, N = Adam(ĝ), ĝ the damped natural gradient of R."""
        R = self._project_two_sided(p.grad, state, group)  # (r, r)
        g = R.reshape(-1)  # (k,)
        g_hat = natural_gradient(g, self._remember(g, state, group), group["damping"]).view_as(R)  # (r, r)
        N, alpha = adam_direction(state, g_hat, group["lr"], group["betas"], group["eps"], eps_scaled=False)
        back = state["U"] @ N @ state["V"].T  # (m, n)
        if group["scale"] != 1:
            back.mul_(group["scale"])
        p.add_(back, alpha=-alpha)

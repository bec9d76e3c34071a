"""FRUGAL: Full-Rank Updates with GrAdient spLitting (Zmushko, Beznosikov, Takáč, Horváth, ICML 2025,
arXiv 2411.07837; conventions of the fork `evseevgrv/SignSGD_GoldenGate`@29a446a
`frugal/{proj_optimizer_templates.py,adamw.py,galore_projector.py}`, the official code not reviewed).

The gradient is split into a subspace that gets state-full AdamW and a remainder that gets a
state-free update, so every direction moves (unlike GaLore) while only the subspace has moments:

    every T = update_proj_gap updates (t = 1, T+1, …): a new subspace P from G, r = round(density·k)
        (k = the compressed side, min(m, n)); with reset_statistics: m, v ← 0, Adam's t ← 0
    R = project(G)                                          (m×r or r×n)
    U_a = −lr_a·(√bc2/bc1)·back(N),   N = m / (√v + ε√bc2) = AdamW(R)
    E = G − back(R)                                         (the part of G outside the subspace)
    U_f = −lr_f·sign(E)  ('sign_sgd'),  −lr_f·E  ('sgd'),  0  ('no')
    W ← W·(1 − lr·λ) + U_a + U_f
    lr_a = lr·proj_params_lr_scale,   lr_f = lr_a·inactive_lr_scale

`proj` picks the subspace: 'svd' (GaLore's), 'orthogonal' (a random orthonormal one: the fork's
`proj_type='random'`), 'randperm' (random coordinates: columns when m ≥ n, rows otherwise),
'dct' (DCT-AdamW's) or 'block' (BAdam-style: round(density·#tensors) whole tensors of the group
get AdamW, chosen at each refresh in `block_order` 'random' or 'ascending' (a window of tensors
moving by its own length); the others get U_f with E = G, and their moments are freed). Groups
with density=None get plain AdamW. With density 1 and 'randperm' or 'block' every coordinate is
state-full and FRUGAL is AdamW (torch's eps convention, decay before the update).

Defaults as the fork: lr 1e-3, eps 1e-8, λ 0.01, gap 200, 'sign_sgd',
inactive_lr_scale 1.0 (the README uses 0.1 for fine-tuning), proj_params_lr_scale 1.0,
reset_statistics True; GaLore inside FRUGAL is reset_statistics=False, 'no',
proj_params_lr_scale 0.25.

Deliberate differences from the fork:
- Random choices (orthogonal, randperm, block order) use APOLLO's per-parameter (per-group for
  blocks) seed chain, not the global RNG, so a resumed run is identical to an uninterrupted one.
- The group key is `update_proj_gap` (the fork: `update_gap`), and groups are projected when
  `density` is set (the fork: `is_proj_params`, with density 0.25 by default; here None, so groups
  opt in); r and the number of active blocks are at least 1.
- Non-matrix parameters of a projected group (other than in 'block' mode) get plain AdamW with
  the group's lr; the fork would fail on them. The refresh count is per parameter (the fork
  counts the group's steps; equal when every parameter gets a gradient at every step).
- AdamW computes m/(√v + ε√bc2) with step lr·√bc2/bc1 (the fork: m/(√v/√bc2 + ε) times lr/bc1:
  equal in real arithmetic).
"""

from __future__ import annotations

import math

import torch

from workbench.optim.base import check_range
from workbench.optim.projectors import check_choice, next_seed, project_back
from workbench.optim.subspace import SubspaceAdam, adam_direction

UPDATE_RULES = ("sign_sgd", "sgd", "no")
BLOCK_ORDERS = ("random", "ascending")


def _forget_moments(state: dict) -> None:
    """Drop Adam's moments and count; `adam_direction` starts them again from zero."""
    for key in ("step", "exp_avg", "exp_avg_sq"):
        state.pop(key, None)


def _state_free(p: torch.Tensor, E: torch.Tensor, rule: str, lr: float) -> None:
    """W ← W − lr·sign(E) ('sign_sgd'), W − lr·E ('sgd'), or W ('no')."""
    if rule != "no":
        p.add_(E.sign() if rule == "sign_sgd" else E, alpha=-lr)


class FRUGAL(SubspaceAdam):
    subspace_key = "density"
    projections = ("svd", "orthogonal", "randperm", "dct", "block")
    eps_scaled = True
    decay_first = True
    refresh_offset = 1

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        density: float | None = None,
        update_proj_gap: int = 200,
        proj: str = "svd",
        reset_statistics: bool = True,
        inactive_update_rule: str = "sign_sgd",
        inactive_lr_scale: float = 1.0,
        proj_params_lr_scale: float = 1.0,
        block_order: str = "random",
        block_seed: int = 0,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            density=density, update_proj_gap=update_proj_gap, proj=proj,
            reset_statistics=reset_statistics, inactive_update_rule=inactive_update_rule,
            inactive_lr_scale=inactive_lr_scale, proj_params_lr_scale=proj_params_lr_scale,
            block_order=block_order, block_seed=block_seed,
        )
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_choice("inactive_update_rule", group["inactive_update_rule"], UPDATE_RULES)
        check_choice("block_order", group["block_order"], BLOCK_ORDERS)
        for key in ("inactive_lr_scale", "proj_params_lr_scale"):
            check_range(key, group[key], 0.0, math.inf)
        if group["density"] is not None:
            check_range("density", group["density"], 0.0, 1.0, low_in=False, high_in=True)
        super()._check_group(group)

    def _projected(self, group, p):
        return group["density"] is not None and (p.ndim == 2 or group["proj"] == "block")

    def _rank(self, group, shape):
        """r = round(density·k), k = the compressed side min(m, n); at least 1."""
        return max(1, round(group["density"] * min(shape)))

    def _begin_group(self, group):
        """'block': at group steps 1, T+1, … free every tensor's moments and give fresh zero moments to the chosen ones."""
        if group["density"] is None or group["proj"] != "block":
            return
        s = group.get("block_step", 0)
        group["block_step"] = s + 1
        if not self._due(s + 1, group):
            return
        params = group["params"]
        k = max(1, round(group["density"] * len(params)))
        if group["block_order"] == "random":
            generator = torch.Generator().manual_seed(group["block_seed"])
            group["block_seed"] = next_seed(group["block_seed"])
            active = set(torch.randperm(len(params), generator=generator)[:k].tolist())
        else:  # ascending
            start = s // group["update_proj_gap"] * k
            active = {(start + i) % len(params) for i in range(k)}
        for i, p in enumerate(params):
            state = self.state[p]
            _forget_moments(state)
            if i in active:
                state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)

    def _low_rank_step(self, p, state, group):
        G = p.grad  # (m, n), or any shape in 'block' mode
        lr_a = group["lr"] * group["proj_params_lr_scale"]
        lr_f = lr_a * group["inactive_lr_scale"]
        rule = group["inactive_update_rule"]
        if group["proj"] == "block":
            if "exp_avg" in state:
                self._full_step(p, state, group, lr_a)
            else:
                _state_free(p, G, rule, lr_f)
            return

        R, refreshed = self._project(G, state, group)  # (m, r) or (r, n)
        if refreshed and group["reset_statistics"]:
            _forget_moments(state)
        N, alpha = adam_direction(state, R, lr_a, group["betas"], group["eps"], self.eps_scaled)
        if rule != "no":  # E = G − back(R), skipped when unused
            _state_free(p, G - project_back(R, state, G.shape), rule, lr_f)
        p.add_(project_back(N, state, G.shape), alpha=-alpha)

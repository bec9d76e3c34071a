"""The loop shared by the subspace optimizers: GaLore, DCT-AdamW, APOLLO and FRUGAL.

In a param group whose subspace key (`rank`; FRUGAL: `density`) is not None, every 2-D parameter
keeps its Adam moments on a projected gradient R (see `projectors`); all other parameters (1-D,
3-D and up, or groups with the key None) get plain Adam in the same optimizer, through the same
`adam_direction`. The optimizers differ in a few conventions of their reference code, set here
as class attributes:

    eps_scaled      N = m / (√v + ε·√bc2)  (torch, DCT-AdamW, FRUGAL)  or  m / (√v + ε)  (GaLore, APOLLO)
    decay_first     W ← W·(1 − lr·λ) before the update (DCT-AdamW, FRUGAL)
                    or W ← W − lr·λ·W after it (GaLore, APOLLO); each in its reference's op order
    refresh_offset  new subspace at updates t = 1, T+1, 2T+1, … (1: GaLore, APOLLO, FRUGAL)
                    or t = 1, T, 2T, … (0: DCT-AdamW), T = update_proj_gap
    projections     the allowed values of the group key `proj`

t counts a parameter's updates (1-based, the current one included) and c = √bc2/bc1 with
bc1 = 1 − β1^t, bc2 = 1 − β2^t. The default projected step (GaLore, DCT-AdamW) is

    R = project(G);  N = Adam(R);  W ← W − lr·c·scale·back(N)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from workbench.optim.base import Optimizer
from workbench.optim.projectors import check_choice, check_int, check_rank, project, project_back, refresh


def adam_direction(
    state: dict, g: torch.Tensor, lr: float, betas: tuple[float, float], eps: float, eps_scaled: bool
) -> tuple[torch.Tensor, float]:
    """Advance Adam's moments of g in `state` and return (N, α), the step being W ← W − α·N.

        t ← t + 1
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        N = m / (√v + ε̂),   ε̂ = ε·√bc2 if eps_scaled else ε
        α = lr·√bc2 / bc1

    eps_scaled gives torch.optim.AdamW's m̂/(√v̂ + ε) exactly in real arithmetic. State keys:
    "step" (int), "exp_avg", "exp_avg_sq" (g's shape, created as zeros on first use).
    """
    beta1, beta2 = betas
    if "exp_avg" not in state:
        state["exp_avg"] = torch.zeros_like(g)
        state["exp_avg_sq"] = torch.zeros_like(g)
    t = state["step"] = state.get("step", 0) + 1
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.mul_(beta1).add_(g, alpha=1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
    N = v.sqrt().add_(eps * math.sqrt(bc2) if eps_scaled else eps)
    torch.div(m, N, out=N)
    return N, lr * math.sqrt(bc2) / bc1


class SubspaceAdam(Optimizer):
    """Base class; see the module docstring. Subclasses set the conventions and may override
    `_low_rank_step` (APOLLO, FRUGAL), `_rank` and `_begin_group` (FRUGAL)."""

    subspace_key = "rank"
    projections: tuple[str, ...] = ()
    eps_scaled = False
    decay_first = False
    refresh_offset = 1

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Fill defaults, check the group, and number its parameters for the seeds.

        Seeds follow APOLLO: parameters are numbered 1, 2, … over all groups in order (frozen
        ones included) and each trainable one starts with state["seed"] = its number.
        """
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_group(group)
        first = sum(len(g["params"]) for g in self.param_groups[:-1]) + 1
        for number, p in enumerate(group["params"], start=first):
            if p.requires_grad:
                self.state[p]["seed"] = number

    def _check_group(self, group: dict[str, Any]) -> None:
        """Checks beyond `base.check_group`'s ranges: `proj`, an integer gap, and the rank of every projected matrix."""
        if group[self.subspace_key] is None:
            return
        check_choice("proj", group["proj"], self.projections)
        check_int("update_proj_gap", group["update_proj_gap"], 1)
        for p in group["params"]:
            if p.ndim == 2 and self._projected(group, p):
                check_rank(self._rank(group, p.shape), p.shape)

    def _projected(self, group: dict[str, Any], p: torch.Tensor) -> bool:
        """Whether p takes the low-rank step: a matrix in a group with a subspace."""
        return group[self.subspace_key] is not None and p.ndim == 2

    def _rank(self, group: dict[str, Any], shape: tuple[int, ...]) -> int:
        return group["rank"]

    def _begin_group(self, group: dict[str, Any]) -> None:
        """Hook run once per group and step, before its parameters (FRUGAL's block choice)."""

    def _due(self, t: int, group: dict[str, Any]) -> bool:
        """A new subspace at update t: t = 1 or t − refresh_offset ≡ 0 (mod update_proj_gap)."""
        return t == 1 or (t - self.refresh_offset) % group["update_proj_gap"] == 0

    def _project(self, G: torch.Tensor, state: dict, group: dict[str, Any]) -> tuple[torch.Tensor, bool]:
        """R = project(G), after choosing a new subspace from G when one is due; returns (R, refreshed)."""
        if self._due(state.get("step", 0) + 1, group):
            return refresh(G, state, group["proj"], self._rank(group, G.shape)), True
        return project(G, state), False

    def _full_step(self, p: torch.Tensor, state: dict, group: dict[str, Any], lr: float) -> None:
        """Plain Adam: W ← W − α·N on the full gradient."""
        N, alpha = adam_direction(state, p.grad, lr, group["betas"], group["eps"], self.eps_scaled)
        p.add_(N, alpha=-alpha)

    def _low_rank_step(self, p: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """W ← W − α·scale·back(N), N = Adam(R), R = project(G) (GaLore, DCT-AdamW)."""
        G = p.grad  # (m, n)
        R, _ = self._project(G, state, group)  # (m, r) or (r, n)
        N, alpha = adam_direction(state, R, group["lr"], group["betas"], group["eps"], self.eps_scaled)
        back = project_back(N, state, G.shape)  # (m, n)
        if group["scale"] != 1:
            back.mul_(group["scale"])
        p.add_(back, alpha=-alpha)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group in self.param_groups:
            self._begin_group(group)
            lr, wd = group["lr"], group["weight_decay"]
            for _, p in self._with_grads([group]):
                state = self.state[p]
                if wd > 0 and self.decay_first:
                    p.mul_(1.0 - lr * wd)  # W ← W·(1 − lr·λ)
                if self._projected(group, p):
                    self._low_rank_step(p, state, group)
                else:
                    self._full_step(p, state, group, lr)
                if wd > 0 and not self.decay_first:
                    p.add_(p, alpha=-lr * wd)  # W ← W − lr·λ·W
        return loss

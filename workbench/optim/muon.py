"""Muon: MomentUm Orthogonalized by Newton–Schulz (Keller Jordan 2024, https://kellerjordan.github.io/posts/muon/;
Liu et al. 2025, "Muon is Scalable for LLM Training", arXiv 2502.16982; conventions of `torch.optim.Muon`
in torch 2.13).

For each matrix W ∈ R^{A×B} of a group with `use_muon` (hidden layers), with G its gradient:

    M ← μ·M + (1 − μ)·G                   momentum, an average (torch's and Keller Jordan's code; torch's docstring
                                          writes the sum μ·M + G)
    U = (1 − μ)·G + μ·M  (nesterov)  or  U = M
    O = NS₅(U) ≈ U⁰                       Newton–Schulz in bfloat16 (`newton_schulz`, form "muon")
    W ← W·(1 − lr·λ)                      decoupled weight decay, before the update
    W ← W − lr'·O,   lr' = lr·√max(1, A/B)   ("original", Keller Jordan's)
                 or  lr' = lr·0.2·√max(A, B)  ("match_rms_adamw", Moonshot's: the update's RMS matches AdamW's,
                                               so AdamW's lr and λ carry over)

The parameters of a group with use_muon=False (embeddings, heads, biases, norms: what Muon's authors
leave to AdamW) get torch.optim.AdamW's step in the same optimizer, with that group's lr and
weight_decay and the keys `adamw_betas`, `adamw_eps`:

    W ← W·(1 − lr·λ);   m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²;   W ← W − (lr/bc1)·m / (√v/√bc2 + ε)

Defaults as torch.optim.Muon (lr 1e-3, λ 0.1, μ 0.95, nesterov, NS (3.4445, −4.7750, 2.0315), 5 steps,
ε 1e-7, adjust_lr_fn None = "original"); AdamW's as torch.optim.AdamW ((0.9, 0.999), 1e-8). Both
paths follow torch's op order, so the parameters agree bit for bit with torch.optim.Muon on the
matrices plus torch.optim.AdamW(foreach=False) on the rest (test, the method note's §9 harness).

Deliberate differences from torch.optim.Muon:
- One optimizer for the whole model: groups with use_muon=False get AdamW (Keller Jordan's
  `MuonWithAuxAdam` has the same key; its AdamW defaults are (0.9, 0.95) and 1e-10, ours torch's).
  A group with use_muon=True still takes 2-D parameters only (checked at construction, as torch).
- `momentum` must lie in [0, 1) (torch accepts any μ ≥ 0); `ns_steps` is an integer in [1, 99].
- The Newton–Schulz input is not divided in place (torch's divides its bfloat16 copy, which for
  bfloat16 gradients is the momentum buffer itself when nesterov=False); no Tensor lr.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from workbench.optim.base import RANGES, Optimizer, check_range
from workbench.optim.newton_schulz import NS_COEFFICIENTS, newton_schulz
from workbench.optim.projectors import check_choice, check_int

ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """lr·√max(1, A/B) ("original", None) or lr·0.2·√max(A, B) ("match_rms_adamw") for an A×B matrix."""
    A, B = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return lr * (0.2 * math.sqrt(max(A, B)))
    return lr * math.sqrt(max(1, A / B))


def adamw_step_(
    p: torch.Tensor, state: dict, lr: float, betas: tuple[float, float], eps: float, weight_decay: float
) -> None:
    """torch.optim.AdamW's single-tensor step, in its op order (state: "step" int, "exp_avg", "exp_avg_sq")."""
    g, (beta1, beta2) = p.grad, betas
    if "exp_avg" not in state:
        state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
    t = state["step"] = state["step"] + 1
    m, v = state["exp_avg"], state["exp_avg_sq"]
    if weight_decay != 0:
        p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
    p.addcdiv_(m, denom, value=-(lr / (1 - beta1**t)))


class Muon(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        use_muon: bool = True,
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
    ):
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
            use_muon=use_muon, adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_int("ns_steps", group["ns_steps"], 1, 99)
        check_choice("adjust_lr_fn", group["adjust_lr_fn"], ADJUST_LR_FNS)
        if len(group["ns_coefficients"]) != 3:
            raise ValueError(f"ns_coefficients={group['ns_coefficients']!r} is not allowed: give three numbers (a, b, c)")
        for i, beta in enumerate(group["adamw_betas"]):
            check_range(f"adamw_betas[{i}]", beta, *RANGES["betas"])
        check_range("adamw_eps", group["adamw_eps"], *RANGES["eps"])
        if group["use_muon"]:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(
                        f"Muon updates matrices only, got a parameter of shape {tuple(p.shape)} in a group with "
                        "use_muon=True: put it in a group with use_muon=False (AdamW)"
                    )

    def _muon_step(self, p: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """M ← μ·M + (1 − μ)·G;  O = NS(nesterov ? (1 − μ)·G + μ·M : M);  W ← W·(1 − lr·λ) − lr'·O."""
        G, mu, lr = p.grad, group["momentum"], group["lr"]  # (A, B)
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(G)
        M = state["momentum_buffer"].lerp_(G, 1 - mu)
        U = G.lerp(M, mu) if group["nesterov"] else M
        O = newton_schulz(U, group["ns_steps"], group["ns_coefficients"], group["eps"], form="muon")  # (A, B) bfloat16
        p.mul_(1 - lr * group["weight_decay"])
        p.add_(O, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], p.shape))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group, p in self._with_grads():
            if group["use_muon"]:
                self._muon_step(p, self.state[p], group)
            else:
                adamw_step_(
                    p, self.state[p], group["lr"], group["adamw_betas"], group["adamw_eps"], group["weight_decay"]
                )
        return loss

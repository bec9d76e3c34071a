"""LAMB: layer-wise adaptive moments (You et al. 2020, "Large Batch Optimization for Deep Learning:
Training BERT in 76 minutes", arXiv 1904.00962, Algorithm 2), with one trust ratio per tensor.

Per parameter tensor W with gradient g, t = number of updates including this one:

    m ← β1·m + (1 − β1)·g
    v ← β2·v + (1 − β2)·g²
    m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)         (debias=True; m̂ = m, v̂ = v when False)
    r = m̂ / (√v̂ + ε)
    u = r + λ·W                                        (weight decay inside the update)
    ρ = φ(‖W‖) / ‖u‖                                   (ρ = 1 if φ(‖W‖) = 0 or ‖u‖ = 0)
    W ← W − lr · ρ · u

φ(x) = min(x, clamp_value) (clamp_value=None: φ = identity), norms are Frobenius norms of the
whole tensor. `adam=True` forces ρ = 1, which turns the step into W ← W − lr·(m̂/(√v̂+ε) + λW)
= W(1 − lr·λ) − lr·m̂/(√v̂+ε): torch.optim.AdamW's rule (torch.optim.Adam for λ = 0, debias=True).

Conventions (method note §7):
- debias defaults to True: the bias correction of the paper's final version (v5). torch-optimizer
  0.3.0 `Lamb` defaults to debias=False (paper v3); with debias=False this class is the same rule,
  with the same op order (its parameters agree bit for bit on CPU).
  With debias=True torch-optimizer instead scales lr by √(1−β2^t)/(1−β1^t) and keeps ε on √v,
  i.e. ε is effectively ε/√(1−β2^t); here ε sits on √v̂, as in torch.optim.Adam.
- clamp_value=10 as torch-optimizer (‖W‖ clipped to [0, 10]); the paper's φ clips to [γl, γu].
- pytorch_optimizer's `Lamb` differs (decay outside the ratio, ε in the ratio's denominator).
Defaults: lr 1e-3, betas (0.9, 0.999), ε 1e-6, λ 0.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from workbench.optim.base import Optimizer


class LAMB(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        clamp_value: float | None = 10.0,
        debias: bool = True,
        adam: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clamp_value=clamp_value, debias=debias, adam=adam
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group in self.param_groups:
            W = [p for p in group["params"] if p.grad is not None]
            if not W:
                continue
            for p in W:
                if not self.state[p]:
                    self.state[p].update(
                        step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p)
                    )
            g = [p.grad for p in W]
            m = [self.state[p]["exp_avg"] for p in W]
            v = [self.state[p]["exp_avg_sq"] for p in W]
            steps = [self.state[p]["step"] for p in W]
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]

            torch._foreach_add_(steps, 1.0)
            torch._foreach_mul_(m, beta1)
            torch._foreach_add_(m, g, alpha=1.0 - beta1)  # m ← β1·m + (1 − β1)·g
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, value=1.0 - beta2)  # v ← β2·v + (1 − β2)·g²

            denom = torch._foreach_sqrt(v)  # √v̂ + ε
            if group["debias"]:
                t = [s.item() for s in steps]
                torch._foreach_div_(denom, [math.sqrt(1.0 - beta2**ti) for ti in t])
            torch._foreach_add_(denom, eps)
            u = torch._foreach_div(m, denom)  # r = m̂ / (√v̂ + ε)
            if group["debias"]:
                torch._foreach_div_(u, [1.0 - beta1**ti for ti in t])
            if wd > 0:
                torch._foreach_add_(u, W, alpha=wd)  # u = r + λ·W

            if group["adam"]:
                rho = torch.ones(len(W))  # (k,)
            else:
                phi = torch.stack(torch._foreach_norm(W))  # (k,) ‖W‖ per tensor
                if group["clamp_value"] is not None:
                    phi = phi.clamp(max=group["clamp_value"])
                u_norm = torch.stack(torch._foreach_norm(u))  # (k,)
                rho = torch.where((phi > 0) & (u_norm > 0), phi / u_norm, 1.0)  # (k,) trust ratios
            for W_i, u_i, step_i in zip(W, u, (-lr * rho).tolist()):  # step sizes rounded to fp32, as torch-optimizer
                W_i.add_(u_i, alpha=step_i)  # W ← W − lr·ρ·u
        return loss

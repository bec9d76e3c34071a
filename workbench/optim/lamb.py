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
  With debias=True torch-optimizer's rule differs in more than where ε sits: it scales lr by
  √(1−β2^t)/(1−β1^t) *outside* the trust ratio (which therefore does not cancel it), adds λW to the
  un-debiased m/(√v+ε), and keeps ε on √v. Here ε sits on √v̂, as in torch.optim.Adam, and λW is added
  to m̂/(√v̂+ε). The two agree when torch-optimizer is given lr·bc1/√bc2, ε·√bc2 and λ·bc1/√bc2 at each
  step t (`test_lamb_debias_matches_torch_optimizer_with_its_hyperparameters_mapped`).
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
            (beta1, beta2), eps, wd = group["betas"], group["eps"], group["weight_decay"]
            # one tensor at a time, so its m, v, W and u stay in cache from one op to the next: foreach
            # over all tensors swept them all per op (four 2048² layers: 1.07x torch-optimizer's step, now 0.82x)
            for W in [p for p in group["params"] if p.grad is not None]:
                state, g = self.state[W], W.grad
                if not state:
                    state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(W), exp_avg_sq=torch.zeros_like(W))
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)  # m ← β1·m + (1 − β1)·g
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # v ← β2·v + (1 − β2)·g²

                denom = v.sqrt()  # √v̂ + ε
                if group["debias"]:
                    t = state["step"].item()
                    denom.div_(math.sqrt(1.0 - beta2**t))
                u = torch.div(m, denom.add_(eps), out=denom)  # r = m̂ / (√v̂ + ε)
                if group["debias"]:
                    u.div_(1.0 - beta1**t)
                if wd > 0:
                    u.add_(W, alpha=wd)  # u = r + λ·W
                W.add_(u, alpha=self._step_size(W, u, group))  # W ← W − lr·ρ·u
        return loss

    @staticmethod
    def _step_size(W: torch.Tensor, u: torch.Tensor, group: dict) -> float:
        """−lr·ρ with ρ = φ(‖W‖) / ‖u‖, rounded as torch-optimizer rounds it: the product in fp32;
        exactly −lr when ρ = 1 (either norm 0, or adam=True)."""
        if group["adam"]:
            return -group["lr"]
        phi, u_norm = torch.linalg.vector_norm(W), torch.linalg.vector_norm(u)
        if group["clamp_value"] is not None:
            phi.clamp_(max=group["clamp_value"])
        return (-group["lr"] * phi.div_(u_norm)).item() if phi > 0 and u_norm > 0 else -group["lr"]

"""Lion: EvoLved Sign Momentum (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
arXiv 2302.06675, Algorithm 2; conventions of lion-pytorch 0.2.5 `lion_pytorch/lion_pytorch.py`).

Per parameter W with gradient g and momentum m (one state tensor, zeros at the start):

    W ← W · (1 − lr·λ)                      decoupled weight decay
    c = β1·m + (1 − β1)·g                   interpolation
    W ← W − lr · sign(c)                    sign(0) = 0: every coordinate moves by exactly lr or 0
    m ← β2·m + (1 − β2)·g                   momentum, with the *second* beta

Defaults as lion-pytorch: lr 1e-4, betas (0.9, 0.99), λ = 0. The paper (§5) advises an lr 3-10x
smaller than AdamW's and a λ 3-10x larger (keep lr·λ), and betas (0.95, 0.98) if training is
unstable. `decoupled_weight_decay=True` divides λ by the group's initial lr (stored as the group
key "initial_lr", the key torch's LR schedulers use), so the decay per step is (lr/lr0)·λ and
follows the schedule without depending on its scale (lion-pytorch's option of the same name).

The step works on all parameters of a group at once (`workbench.kernels.lion.lion_step_`): one fused
Triton launch for CUDA tensors (where WORKBENCH_KERNELS and the kernel's self-check allow it, see
`workbench.kernels.selfcheck`), torch's `_foreach_*` ops otherwise. Either way a step reads no device
value on the host, and a CUDA graph can capture it after one eager step.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from workbench.kernels.lion import lion_step_
from workbench.optim.base import Optimizer


class Lion(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
    ):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("initial_lr", group["lr"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group in self.param_groups:
            W = [p for p in group["params"] if p.grad is not None]
            if not W:
                continue
            g = [p.grad for p in W]
            for p in W:
                if not self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
            m = [self.state[p]["exp_avg"] for p in W]
            wd = group["weight_decay"]
            if group["decoupled_weight_decay"]:
                wd = wd / group["initial_lr"]
            lion_step_(W, g, m, lr=group["lr"], betas=group["betas"], weight_decay=wd)
        return loss

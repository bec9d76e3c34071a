"""AdamW with 8-bit block-wise quantized moments (Dettmers et al. 2022, "8-bit Optimizers via
Block-wise Quantization", arXiv 2110.02861; the rule of bitsandbytes 0.50.2 `AdamW8bit`, method note §6).

Per parameter W with gradient g, t = number of updates including this one:

    m, v = deq(m_q, a_m), deq(v_q, a_v)           dequantize (signed map for m, unsigned for v)
    m ← β1·m + (1 − β1)·g                          fp32
    v ← β2·v + (1 − β2)·g²
    W ← W·(1 − lr·λ)                               decoupled weight decay
    W ← W − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
    (m_q, a_m), (v_q, a_v) = Q(m), Q(v)            re-quantize with fresh block absmax

Q and deq are `workbench.optim.quantization`: blocks of 256 consecutive elements of the flattened
state, one fp32 absmax per block, uint8 indices into the dynamic tree map. Parameters with fewer
than `min_8bit_size` = 4096 elements keep fp32 m and v (as bitsandbytes). The state is tensors only:
"step" (fp32 scalar), "exp_avg" / "exp_avg_sq" (uint8 codes of the parameter's shape, or fp32) and,
for 8-bit states, "exp_avg_absmax" / "exp_avg_sq_absmax" (fp32, one per block), so a state_dict
loads with torch.load(weights_only=True). Per parameter the 8-bit state is 2·N bytes plus
2·4·⌈N/256⌉ for the absmax: 0.254 of fp32 AdamW's 8·N.

`rounding` (group key): "nearest" (default) quantizes to the exact nearest code word; "bnb_lut"
copies bitsandbytes' CPU quantizer (a 65,536-point grid, see quantization.py) and then, with
fused=False, reproduces bitsandbytes' CPU AdamW8bit bit for bit, at the cost of coarser small
values (an exact 0 in m or v is stored as ≈2e-5·a). The two differ by about 0.5 % of the parameter movement after 20 steps
(method note §6); the CUDA kernel of bitsandbytes was not compared.
`fused` (constructor argument, as torch.optim's): True (default) runs the update of an 8-bit
state on a contiguous fp32 CPU parameter as one compiled pass per 256-block
(`workbench.kernels.adamw8bit_cpu`, same arithmetic, codes and absmax bit for bit; its square root is
the correctly rounded one, torch's CPU sqrt is not, so weights can differ by an ulp per step).
Everything else, and everything with fused=False, runs the torch ops below, on any device.
Defaults as bitsandbytes: lr 1e-3, betas (0.9, 0.999), ε 1e-8, λ 1e-2.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from workbench.optim.base import Optimizer
from workbench.optim.quantization import BLOCK, dequantize_blockwise, dynamic_map, quantize_blockwise


class AdamW8bit(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        min_8bit_size: int = 4096,
        rounding: str = "nearest",
        fused: bool = True,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, min_8bit_size=min_8bit_size, rounding=rounding
        )
        super().__init__(params, defaults)
        self.fused = fused
        self.code_m, self.code_v = dynamic_map(signed=True), dynamic_map(signed=False)  # (256,) each

    @staticmethod
    def _init_state(p: torch.Tensor, quantized: bool) -> dict:
        """Zero moments: fp32, or uint8 codes with absmax 0 (which decode to 0 whatever the code)."""
        zeros = functools.partial(torch.zeros, dtype=torch.float32, device=p.device)
        if not quantized:
            return dict(step=torch.tensor(0.0), exp_avg=zeros(p.shape), exp_avg_sq=zeros(p.shape))
        blocks = math.ceil(p.numel() / BLOCK)
        return dict(
            step=torch.tensor(0.0),
            exp_avg=zeros(p.shape, dtype=torch.uint8),
            exp_avg_sq=zeros(p.shape, dtype=torch.uint8),
            exp_avg_absmax=zeros(blocks),
            exp_avg_sq_absmax=zeros(blocks),
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(self._init_state(p, p.numel() >= group["min_8bit_size"]))
                quantized = "exp_avg_absmax" in state
                code_m, code_v = self.code_m.to(p.device), self.code_v.to(p.device)
                state["step"] += 1
                if quantized and self._runs_fused(p):
                    from workbench.kernels.adamw8bit_cpu import adamw8bit_update_  # imports numba: only when used

                    adamw8bit_update_(
                        p, p.grad, state, code_m, code_v, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd,
                        rounding=group["rounding"],
                    )
                    continue
                if quantized:
                    m = dequantize_blockwise(state["exp_avg"], state["exp_avg_absmax"], code_m)
                    v = dequantize_blockwise(state["exp_avg_sq"], state["exp_avg_sq_absmax"], code_v)
                else:
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                W = p if p.dtype == torch.float32 else p.float()
                g = p.grad.float()
                t = state["step"].item()
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)  # m ← β1·m + (1 − β1)·g
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # v ← β2·v + (1 − β2)·g²
                denom = v.sqrt().div_(math.sqrt(1.0 - beta2**t)).add_(eps)  # √v̂ + ε
                if wd > 0:
                    W.mul_(1.0 - lr * wd)  # W ← W(1 − lr·λ)
                W.addcdiv_(m, denom, value=-lr / (1.0 - beta1**t))  # W ← W − lr·m̂/(√v̂ + ε)
                if W is not p:
                    p.copy_(W)

                if quantized:
                    rounding = group["rounding"]
                    state["exp_avg"], state["exp_avg_absmax"] = quantize_blockwise(m, code_m, rounding=rounding)
                    state["exp_avg_sq"], state["exp_avg_sq_absmax"] = quantize_blockwise(v, code_v, rounding=rounding)
        return loss

    def _runs_fused(self, p: torch.Tensor) -> bool:
        """The compiled CPU pass applies: fused, and p and its gradient contiguous fp32 CPU tensors."""
        tensors = (p, p.grad)
        return self.fused and all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors)

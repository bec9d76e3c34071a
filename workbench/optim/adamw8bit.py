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
`fused` (constructor argument, as torch.optim's): True (default) runs the 8-bit states of a group's
dense parameters (fp32, bf16 or fp16) in one Triton launch (`workbench.kernels.adamw8bit_triton`) where
the switch WORKBENCH_KERNELS lets kernels run (CUDA by default) and the kernel passed its self-check
(`workbench.kernels.selfcheck`, with `_probe` below), and otherwise the update of an 8-bit state on a
contiguous fp32 CPU parameter as one compiled pass per 256-block (`workbench.kernels.adamw8bit_cpu`,
numba); both have the same arithmetic, codes and absmax bit for bit with the torch path (their square
root is the correctly rounded one, torch's CPU sqrt is not, so weights can differ by an ulp per step).
`_fused_pass` decides. Everything else, and everything with fused=False, runs the torch ops of
`adamw8bit_torch_`, on any device. The Triton pass keeps its states' step counters on the parameters'
device and counts them there, in one launch per group, so that a step reads no device value on the
host and a CUDA graph can capture it (after one step: see `workbench.kernels.multi_tensor`); the
other passes count on the host, so a step that sends a CUDA parameter to one of them refuses to be
captured (min_8bit_size=0 gives every parameter an 8-bit state).
Defaults as bitsandbytes: lr 1e-3, betas (0.9, 0.999), ε 1e-8, λ 1e-2.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from workbench.kernels import selfcheck
from workbench.optim.base import Optimizer
from workbench.optim.quantization import BLOCK, ROUNDINGS, dequantize_blockwise, dynamic_map, quantize_blockwise


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
        self.code_m, self.code_v = dynamic_map(signed=True), dynamic_map(signed=False)  # (256,) each, CPU
        self._code_books: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # their copies, per device

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
            hyper = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay", "rounding")}
            by_kernel = []  # parameters whose 8-bit state the Triton kernel updates, all in one launch below
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(self._init_state(p, p.numel() >= group["min_8bit_size"]))
                fused = self._fused_pass(p) if "exp_avg_absmax" in state else None
                if fused == "triton":
                    by_kernel.append(p)
                    continue
                if p.is_cuda and torch.cuda.is_current_stream_capturing():
                    raise RuntimeError(
                        f"AdamW8bit: a parameter of shape {tuple(p.shape)} takes a pass that counts its steps on the "
                        "host, which a CUDA graph would replay with the step count of its capture; a step can be "
                        "captured when the Triton kernel updates every parameter (8-bit states, min_8bit_size=0 for "
                        "small ones; dense float32, bfloat16 or float16 parameters and gradients; fused=True)")
                if state["step"].device.type != "cpu":  # a state_dict loaded onto the device: these passes read t
                    state["step"] = state["step"].cpu()  # on the host, so the counter lives there (one copy)
                state["step"] += 1
                code_m, code_v = self._code_books_on(p.device)
                if fused == "numba":
                    from workbench.kernels.adamw8bit_cpu import adamw8bit_update_  # imports numba: only when used

                    adamw8bit_update_(p, p.grad, state, code_m, code_v, **hyper)
                else:
                    adamw8bit_torch_(p, state, code_m, code_v, **hyper)
            if by_kernel:
                from workbench.kernels.adamw8bit_triton import adamw8bit_triton_  # imports triton: only when used

                states = [self.state[p] for p in by_kernel]
                torch._foreach_add_([s["step"] for s in states], 1.0)  # on the device after the first step
                adamw8bit_triton_(by_kernel, [p.grad for p in by_kernel], states, self.code_m, self.code_v, **hyper)
        return loss

    def _code_books_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The code books on `device`, copied there once (a copy from pageable memory waits for the device)."""
        if device not in self._code_books:
            self._code_books[device] = self.code_m.to(device), self.code_v.to(device)
        return self._code_books[device]

    def _fused_pass(self, p: torch.Tensor) -> str | None:
        """The pass that updates p's 8-bit state, decided here only: with fused=True, "triton" where the switch lets
        kernels run on p's device, p and its gradient are contiguous float32, bfloat16 or float16 and the kernel
        passed its self-check for p's dtype there; else "numba" for contiguous float32 CPU p and gradient; None
        otherwise: the torch ops of `adamw8bit_torch_`."""
        if not self.fused:
            return None
        if selfcheck.dense([p, p.grad]) and selfcheck.use_kernel("adamw8bit", p.dtype, p.device):
            return "triton"
        cpu = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in (p, p.grad))
        return "numba" if cpu else None


@selfcheck.probe("adamw8bit")
def _probe(dtype: torch.dtype, device: torch.device) -> None:
    """The self-check of the Triton pass: two steps of the kernel and of `adamw8bit_torch_` from the same 8-bit
    states, in both roundings, on tensors of 300 and 17 x 61 elements (partial 256-blocks, two chunks, one tensor
    with zero gradients: absmax 0), with the tolerances of tests/test_kernels_optim.py: codes and absmax bit for
    bit; W within steps·2^-23 relative (float32) or steps·eps (16-bit) and steps·4·2^-23·3·lr absolute, the
    rounding of √v/√(1 − β2^t) that torch's sqrt does not round correctly."""
    from workbench.kernels import adamw8bit_triton  # imports Triton: the kernel is about to run anyway

    gen = torch.Generator().manual_seed(0)
    shapes, steps = [(300,), (17, 61)], 2
    code_m, code_v = dynamic_map(signed=True), dynamic_map(signed=False)
    W0 = [torch.randn(shape, generator=gen).to(device, dtype) for shape in shapes]
    grads = [[(torch.randn(shape, generator=gen) * 10.0**-step * i).to(device, dtype) for i, shape in enumerate(shapes)]
             for step in range(steps)]
    for rounding in ROUNDINGS:
        hyper = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, rounding=rounding)
        W, W_ref = [w.clone() for w in W0], [w.clone() for w in W0]
        states, states_ref = ([AdamW8bit._init_state(w, quantized=True) for w in W0] for _ in range(2))
        for g in grads:
            for s, s_ref in zip(states, states_ref):
                s["step"] += 1
                s_ref["step"] += 1
            adamw8bit_triton.adamw8bit_triton_(W, g, states, code_m, code_v, **hyper)
            for p, s_ref, g_p in zip(W_ref, states_ref, g):
                p.grad = g_p
                adamw8bit_torch_(p, s_ref, code_m.to(device), code_v.to(device), **hyper)
        for s, s_ref in zip(states, states_ref):
            for key in ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax"):
                torch.testing.assert_close(s[key], s_ref[key], rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")
        rtol = steps * (2.0**-23 if dtype == torch.float32 else torch.finfo(dtype).eps)
        for w, w_ref in zip(W, W_ref):
            torch.testing.assert_close(w, w_ref, rtol=rtol, atol=steps * 4 * 2.0**-23 * 3 * hyper["lr"])


def adamw8bit_torch_(
    p: torch.Tensor,
    state: dict,
    code_m: torch.Tensor,
    code_v: torch.Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    rounding: str,
) -> None:
    """One update of p (in place) and its state (8-bit or fp32 moments, step t already counted) by torch ops,
    on any device: the reference of the fused passes."""
    beta1, beta2 = betas
    quantized = "exp_avg_absmax" in state
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
    if weight_decay > 0:
        W.mul_(1.0 - lr * weight_decay)  # W ← W(1 − lr·λ)
    W.addcdiv_(m, denom, value=-lr / (1.0 - beta1**t))  # W ← W − lr·m̂/(√v̂ + ε)
    if W is not p:
        p.copy_(W)
    if quantized:
        state["exp_avg"], state["exp_avg_absmax"] = quantize_blockwise(m, code_m, rounding=rounding)
        state["exp_avg_sq"], state["exp_avg_sq_absmax"] = quantize_blockwise(v, code_v, rounding=rounding)

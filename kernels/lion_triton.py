"""The Lion step (workbench.optim.Lion) over all tensors of a param group as a Triton kernel, one launch per group
and dtypes. Its plain-torch reference (torch's `_foreach_*` ops) and the dispatch `lion_step_`, which imports this
module only when the kernel runs, are `workbench.kernels.lion`.

Per element, with m the momentum and g the gradient (Chen et al. 2023, Algorithm 2):

    W ← W · (1 − lr·λ)                  decoupled weight decay
    c = β1·m + (1 − β1)·g               torch.lerp(m, g, w = 1 − β1): fma(w, g − m, m) if w < 0.5, else fma(w − 1, g − m, g)
    W ← W − lr · sign(c)
    m ← β2·m + (1 − β2)·g               torch.lerp(m, g, 1 − β2)

The kernel reads W, g, m once and writes W, m once (5 element accesses, the reference makes about 12). It
computes in float32 and rounds W after the decay, c, and the results to the tensors' own dtypes, where the
reference stores them, so its results equal the reference's bit for bit in float32, bfloat16 and float16
(tested); the launch disables Triton's mul+add contraction, so the only fused operations are the explicit fma
that torch's lerp performs as well.

The tables of addresses and chunks are built on the first step over a set of tensors and reused (`multi_tensor`),
and the hyperparameters are launch arguments: a step copies nothing to the device, and a CUDA graph can capture it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from workbench.kernels.multi_tensor import DTYPES, chunk_table, current, launches, pointer, tensor_table

BLOCK = 1024  # elements per program


@triton.jit
def _lerp(start, end, weight):
    """torch.lerp(start, end, weight) for a scalar weight, with its rounding (one fma)."""
    return tl.where(weight < 0.5, tl.fma(weight, end - start, start), tl.fma(weight - 1.0, end - start, end))


@triton.jit
def _lion_kernel(
    tensors, chunks, lr, one_minus_beta1, one_minus_beta2, decay,
    W_DTYPE: tl.constexpr, G_DTYPE: tl.constexpr, M_DTYPE: tl.constexpr, BLOCK: tl.constexpr,
):
    """BLOCK elements of one tensor: W ← W(1 − lr·λ) − lr·sign(lerp(m, g, 1 − β1)), m ← lerp(m, g, 1 − β2)."""
    tensor, start = tl.load(chunks + 2 * tl.program_id(0)), tl.load(chunks + 2 * tl.program_id(0) + 1)
    row = tensors + 4 * tensor  # (W, g, m, numel)
    W_ptr, g_ptr, m_ptr = pointer(row, 0, W_DTYPE), pointer(row, 1, G_DTYPE), pointer(row, 2, M_DTYPE)
    offsets = start + tl.arange(0, BLOCK)  # (BLOCK,)
    mask = offsets < tl.load(row + 3)
    W = tl.load(W_ptr + offsets, mask=mask).to(tl.float32)
    g = tl.load(g_ptr + offsets, mask=mask).to(tl.float32)
    m = tl.load(m_ptr + offsets, mask=mask).to(tl.float32)

    W = (W * decay).to(W_DTYPE).to(tl.float32)  # W ← W(1 − lr·λ)
    c = _lerp(m, g, one_minus_beta1).to(M_DTYPE).to(tl.float32)  # c = β1·m + (1 − β1)·g
    sign_c = tl.where(c > 0, 1.0, tl.where(c < 0, -1.0, 0.0))
    tl.store(W_ptr + offsets, (W + (-lr) * sign_c).to(W_DTYPE), mask=mask)  # W ← W − lr·sign(c)
    tl.store(m_ptr + offsets, _lerp(m, g, one_minus_beta2).to(M_DTYPE), mask=mask)  # m ← β2·m + (1 − β2)·g


def lion_triton_(
    W: list[torch.Tensor], g: list[torch.Tensor], m: list[torch.Tensor], *, lr: float, betas: tuple[float, float],
    weight_decay: float,
) -> None:
    """One Lion step by the kernel: one launch per device and (W, g, m) dtypes, every tensor dense (on CUDA, or on
    the CPU under the interpreter)."""
    beta1, beta2 = betas
    for (device, W_dtype, g_dtype, m_dtype), index in launches(W, g, m).items():
        tensors = tensor_table([[W[i], g[i], m[i], W[i].numel()] for i in index], device)  # (T, 4)
        chunks = chunk_table(tuple(W[i].numel() for i in index), BLOCK, device)  # (C, 2)
        with current(device):
            _lion_kernel[(chunks.shape[0],)](
                tensors, chunks, float(lr), 1.0 - beta1, 1.0 - beta2, 1.0 - lr * weight_decay,
                DTYPES[W_dtype], DTYPES[g_dtype], DTYPES[m_dtype], BLOCK, enable_fp_fusion=False,
            )


"""The AdamW8bit update of all 8-bit states of a param group in one Triton launch per device and dtypes, beside its
plain-torch reference `workbench.optim.adamw8bit.adamw8bit_torch_` (what AdamW8bit(fused=False) runs); the optimizer
picks it for dense CUDA parameters, after its self-check (`AdamW8bit._fused_pass`, `workbench.kernels.selfcheck`).

Each program takes ROWS blocks of B = 256 elements of one tensor, as a (ROWS, B) tile, and makes one pass over
memory: it reads W, g, the uint8 codes q_m, q_v and the block absmax a_m, a_v, and writes them back. In float32,
with the arithmetic and the order of the numba CPU pass (`workbench.kernels.adamw8bit_cpu`) and of the torch path:

    m = c_m[q_m]·a_m,   v = c_v[q_v]·a_v                               dequantize
    m = fma(g, 1 − β1, m·β1),   v = fma((1 − β2)·g, g, v·β2)           as torch's add_(alpha) / addcmul_
    W = W·(1 − lr·λ) + (−lr / (1 − β1^t))·m / (√v / √(1 − β2^t) + ε)  correctly rounded √ and /
    a = max|m| over the block, y = m·(1/a), q_m = nearest code to y    re-quantize (v likewise), tables of
                                                                       workbench.optim.quantization.lookup_tables

The two bias corrections depend on the step t, which the kernel reads from the state's "step" tensor (moved to the
parameter's device on first use), so that nothing the host computes changes from step to step: the tables of
addresses, of chunks and of the code books are built once per set of tensors (`multi_tensor`), the step reads no
device value on the host, and a CUDA graph can capture it (with the optimizer's on-device `step += 1`). Each
program computes them in float64, as the host computes them for the other passes (Python floats), and rounds them
to float32 once: √(1 − β2^t) and −lr / (1 − β1^t) with β^t = exp(t·log β), lr and log β passed as float64 bits.
exp(t·log β) is within a few float64 ulp of Python's β**t, which moves the float32 results only where the float64
value lies within ~1e-13 (relative) of a float32 rounding boundary, about once in a million steps (and then by an
ulp of the bias correction); in the tests' steps the results equal the numba pass's bit for bit.

The launch disables Triton's mul+add contraction (enable_fp_fusion=False), so only the explicit fma are fused.
So codes and absmax equal the torch path's bit for bit, and W equals the numba pass's (tested through the
interpreter). W differs from the torch path by the rounding of √v/√(1 − β2^t): torch's CPU sqrt is not always
correctly rounded, and on CUDA torch divides by a scalar as a multiplication by its reciprocal; that moves W by
an ulp of the update at most. The weights may be float32, bfloat16 or float16 (computed in float32, rounded to
nearest even once at the end, as the torch path's p.copy_), the gradient likewise.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from workbench.kernels.multi_tensor import (
    DTYPES, chunk_table, current, double, double_bits, launches, pointer, tensor_table, to_device,
)
from workbench.optim.quantization import BLOCK, CELL_OFFSET, CELL_SHIFT, lookup_tables

ROWS = 4  # blocks of BLOCK elements per program
STATE_KEYS = ("exp_avg", "exp_avg_absmax", "exp_avg_sq", "exp_avg_sq_absmax")  # q_m, a_m, q_v, a_v


@triton.jit
def _quantize(x, mask, table0, table1, NEAREST: tl.constexpr, CELL_SHIFT: tl.constexpr, CELL_OFFSET: tl.constexpr):
    """(ROWS, B) float32 -> uint8 codes (ROWS, B) and absmax (ROWS,); table0, table1 = first, threshold ("nearest")
    or lut, unused (bitsandbytes' grid): see workbench.optim.quantization."""
    absmax = tl.max(tl.where(mask, tl.abs(x), 0.0), axis=1)  # (ROWS,) a = max|x|
    inv = tl.where(absmax > 0, tl.div_rn(1.0, tl.where(absmax > 0, absmax, 1.0)), 0.0)  # (ROWS,) 1/a, 0 if a = 0
    y = x * inv[:, None]  # (ROWS, B) x/a ∈ [−1, 1]
    if NEAREST:
        cell = (y.to(tl.int32, bitcast=True) >> CELL_SHIFT) + CELL_OFFSET  # sign, exponent, top mantissa bits
        q = tl.load(table0 + cell, mask=mask) + (y > tl.load(table1 + cell, mask=mask)).to(tl.uint8)
    else:
        j = ((tl.clamp(y, -1.0, 1.0) + 1.0) * 0.5 * 65535.0 + 0.5).to(tl.int32)  # grid point
        q = tl.load(table0 + j, mask=mask)
    return q, absmax


@triton.jit(do_not_specialize=["lr", "log_beta1", "log_beta2"])  # float64 bits: one compilation for all values
def _adamw8bit_kernel(
    tensors, chunks, code_m, code_v, table_m0, table_m1, table_v0, table_v1,
    beta1, one_minus_beta1, beta2, one_minus_beta2, eps, decay, lr, log_beta1, log_beta2,
    W_DTYPE: tl.constexpr, G_DTYPE: tl.constexpr, NEAREST: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    CELL_SHIFT: tl.constexpr, CELL_OFFSET: tl.constexpr,
):
    """ROWS blocks of one tensor: dequantize m, v; the AdamW update of m, v, W; re-quantize m, v (module docstring)."""
    tensor, start = tl.load(chunks + 2 * tl.program_id(0)), tl.load(chunks + 2 * tl.program_id(0) + 1)
    row = tensors + 8 * tensor  # (W, g, q_m, a_m, q_v, a_v, numel, t)
    W_ptr, g_ptr = pointer(row, 0, W_DTYPE), pointer(row, 1, G_DTYPE)
    qm_ptr, am_ptr = pointer(row, 2, tl.uint8), pointer(row, 3, tl.float32)
    qv_ptr, av_ptr = pointer(row, 4, tl.uint8), pointer(row, 5, tl.float32)
    n, t = tl.load(row + 6), tl.load(pointer(row, 7, tl.float32)).to(tl.float64)
    bias2 = tl.sqrt(1.0 - tl.exp(t * double(log_beta2))).to(tl.float32)  # √(1 − β2^t), float64 √ correctly rounded
    step_size = (-double(lr) / (1.0 - tl.exp(t * double(log_beta1)))).to(tl.float32)  # −lr/(1 − β1^t)
    blocks = start // BLOCK + tl.arange(0, ROWS)  # (ROWS,)
    offsets = blocks[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]  # (ROWS, B)
    mask, block_mask = offsets < n, blocks * BLOCK < n

    a_m = tl.load(am_ptr + blocks, mask=block_mask)  # (ROWS,)
    a_v = tl.load(av_ptr + blocks, mask=block_mask)
    m = tl.load(code_m + tl.load(qm_ptr + offsets, mask=mask).to(tl.int32)) * a_m[:, None]  # (ROWS, B) dequantize
    v = tl.load(code_v + tl.load(qv_ptr + offsets, mask=mask).to(tl.int32)) * a_v[:, None]
    g = tl.load(g_ptr + offsets, mask=mask).to(tl.float32)
    W = tl.load(W_ptr + offsets, mask=mask).to(tl.float32)

    m = tl.fma(g, one_minus_beta1, m * beta1)  # m ← β1·m + (1 − β1)·g
    v = tl.fma(one_minus_beta2 * g, g, v * beta2)  # v ← β2·v + (1 − β2)·g²
    denom = tl.div_rn(tl.sqrt_rn(v), bias2) + eps  # √v̂ + ε
    W = W * decay + tl.div_rn(step_size * m, denom)  # W ← W(1 − lr·λ) − lr·m̂/(√v̂ + ε)
    tl.store(W_ptr + offsets, W.to(W_DTYPE), mask=mask)

    q_m, a_m = _quantize(m, mask, table_m0, table_m1, NEAREST, CELL_SHIFT, CELL_OFFSET)
    q_v, a_v = _quantize(v, mask, table_v0, table_v1, NEAREST, CELL_SHIFT, CELL_OFFSET)
    tl.store(qm_ptr + offsets, q_m, mask=mask)
    tl.store(qv_ptr + offsets, q_v, mask=mask)
    tl.store(am_ptr + blocks, a_m, mask=block_mask)
    tl.store(av_ptr + blocks, a_v, mask=block_mask)


@functools.lru_cache(maxsize=16)
def _code_tables(code_m: bytes, code_v: bytes, rounding: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The code books (float32 bytes) on `device` and the kernel's (table0, table1) of each: (first, threshold)
    for "nearest", (lut, lut) for "bnb_lut"; built once per code books, rounding and device."""
    codes = [torch.frombuffer(bytearray(code), dtype=torch.float32) for code in (code_m, code_v)]  # (256,) each
    tables = [lookup_tables(code, rounding, device) for code in codes]
    return (*(to_device(code, device) for code in codes),
            *(t for pair in tables for t in (pair if rounding == "nearest" else pair * 2)))


def _log(beta: float) -> float:
    """log β for β^t = exp(t·log β); −inf for β = 0, whose powers (t ≥ 1) are 0."""
    return math.log(beta) if beta > 0 else -math.inf


def adamw8bit_triton_(
    W: list[torch.Tensor],
    g: list[torch.Tensor],
    states: list[dict],
    code_m: torch.Tensor,
    code_v: torch.Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    rounding: str,
) -> None:
    """One AdamW8bit update of dense parameters W (in place; on CUDA, or CPU under the interpreter) and their 8-bit
    states (exp_avg / exp_avg_sq uint8 codes of W's shape, their absmax, step t already counted), one launch per
    device and (W, g) dtypes. A step counter not on its parameter's device is moved there (once: on the first step,
    or after a state_dict loaded elsewhere). The code books are best kept on the CPU (the optimizer's are): their
    values key the cached device tables, and reading a CUDA code book's values waits for the device."""
    beta1, beta2 = betas
    code_bytes = tuple(code.detach().float().cpu().numpy().tobytes() for code in (code_m, code_v))
    for (device, W_dtype, g_dtype), index in launches(W, g).items():
        for i in index:
            if states[i]["step"].device != device:
                states[i]["step"] = states[i]["step"].to(device, torch.float32)
        rows = [[W[i], g[i], *(states[i][k] for k in STATE_KEYS), W[i].numel(), states[i]["step"]] for i in index]
        tensors = tensor_table(rows, device)  # (T, 8)
        chunks = chunk_table(tuple(W[i].numel() for i in index), ROWS * BLOCK, device)  # (C, 2)
        with current(device):
            _adamw8bit_kernel[(chunks.shape[0],)](
                tensors, chunks, *_code_tables(*code_bytes, rounding, device),
                float(beta1), 1.0 - beta1, float(beta2), 1.0 - beta2, float(eps), 1.0 - lr * weight_decay,
                double_bits(lr), double_bits(_log(beta1)), double_bits(_log(beta2)),
                DTYPES[W_dtype], DTYPES[g_dtype], rounding == "nearest", ROWS, BLOCK, CELL_SHIFT, CELL_OFFSET,
                enable_fp_fusion=False,
            )

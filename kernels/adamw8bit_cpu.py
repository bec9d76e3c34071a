"""One fused CPU pass of the 8-bit AdamW update (numba), beside its plain-torch reference
`workbench.optim.adamw8bit.AdamW8bit` with `fused=False`.

The torch reference reads and writes every element about thirty times (a dequantize, nine
element-wise Adam ops, the quantizer's scaling, cell and table gathers, each a full pass over
memory). Here each block of B = 256 elements is dequantized, updated and re-quantized in one
sweep through L1, with the same float32 arithmetic in the same order:

    m = c_m[q_m]·a_m,   v = c_v[q_v]·a_v                               dequantize
    m = fma(g, 1 − β1, m·β1),   v = fma((1 − β2)·g, g, v·β2)           what torch's add_(alpha) / addcmul_ compute
    W = W·(1 − lr·λ) + (−lr / (1 − β1^t))·m / (√v / √(1 − β2^t) + ε)
    a = max|m| over the block, y = m·(1/a), q_m = nearest code to y    re-quantize (v likewise)

and the quantizer's tables are `workbench.optim.quantization.lookup_tables`, so codes and absmax
are those of the reference bit for bit (tested). One difference: √ here is the correctly rounded
IEEE square root, whereas torch's vectorized sqrt on CPU is off by one unit in the last place for
about a fifth of float32 inputs (measured on this machine, AVX2 and AVX-512 alike), so the weights
can differ from the reference by that much per step; moments, codes and absmax do not depend on it.

Blocks are independent: `adamw8bit_update_` splits them over torch.get_num_threads() threads
(the compiled loop releases the GIL). Compiled on first use and cached on disk (numba cache=True).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba.extending import intrinsic

from workbench.optim.quantization import BLOCK, CELL_OFFSET, CELL_SHIFT, in_pieces, lookup_tables

f32 = np.float32


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c with one rounding (LLVM's llvm.fma), as torch's vectorized add_(other, alpha) and addcmul_."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


# error_model="numpy": division by zero gives inf/nan as in torch instead of raising, which also
# lets LLVM vectorize the loops (the raise check blocks it).
kernel = numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")


@kernel
def _absmax_bits(x_bits, n):
    """max_i |x_i| as fp32 bits: the bits of |x| (sign cleared) order as the values do; a vectorizable integer max."""
    bits = np.int32(0)
    for i in range(n):
        bits = max(bits, x_bits[i] & np.int32(0x7FFFFFFF))
    return bits


@kernel
def _quantize_block(x, x_bits, n, absmax_bits, b, y, y_bits, first, threshold, lut, nearest, q):
    """Quantize x[:n] into q[:n] (nearest code, or bitsandbytes' grid) and absmax (bits) into absmax_bits[b]."""
    absmax_bits[b] = _absmax_bits(x_bits, n)
    absmax = absmax_bits.view(np.float32)[b]
    inv = f32(1.0) / absmax if absmax > 0 else f32(0.0)
    for i in range(n):
        y[i] = x[i] * inv
    if nearest:
        for i in range(n):
            cell = (y_bits[i] >> CELL_SHIFT) + CELL_OFFSET  # as quantization._cell_of
            q[i] = first[cell] + (y[i] > threshold[cell])
    else:
        for i in range(n):
            clamped = min(max(y[i], f32(-1.0)), f32(1.0))
            q[i] = lut[np.int32((clamped + f32(1.0)) * f32(0.5) * f32(65535.0) + f32(0.5))]


@kernel
def _update_blocks(
    W, g, m_codes, m_absmax, v_codes, v_absmax, code_m, code_v, tables_m, tables_v, nearest, scalars, first_block, end_block
):
    """Blocks [first_block, end_block) of the flat tensors, in place. scalars: float32
    (β1, 1 − β1, β2, 1 − β2, √(1 − β2^t), ε, 1 − lr·λ, −lr / (1 − β1^t))."""
    beta1, one_minus_beta1, beta2, one_minus_beta2, bias2, eps, decay, step_size = scalars
    first_m, threshold_m, lut_m = tables_m
    first_v, threshold_v, lut_v = tables_v
    m_absmax_bits, v_absmax_bits = m_absmax.view(np.int32), v_absmax.view(np.int32)
    m, v, y = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32)
    m_bits, v_bits, y_bits = m.view(np.int32), v.view(np.int32), y.view(np.int32)
    N = W.shape[0]
    for b in range(first_block, end_block):
        start = b * BLOCK
        n = min(BLOCK, N - start)
        Wb, gb, qm, qv = W[start : start + n], g[start : start + n], m_codes[start : start + n], v_codes[start : start + n]
        a_m, a_v = m_absmax[b], v_absmax[b]
        for i in range(n):
            m[i] = code_m[qm[i]]
            v[i] = code_v[qv[i]]
        for i in range(n):  # vectorized
            m[i] = _fma(gb[i], one_minus_beta1, m[i] * a_m * beta1)
            v[i] = _fma(one_minus_beta2 * gb[i], gb[i], v[i] * a_v * beta2)
            Wb[i] = Wb[i] * decay + (step_size * m[i]) / (np.sqrt(v[i]) / bias2 + eps)
        _quantize_block(m, m_bits, n, m_absmax_bits, b, y, y_bits, first_m, threshold_m, lut_m, nearest, qm)
        _quantize_block(v, v_bits, n, v_absmax_bits, b, y, y_bits, first_v, threshold_v, lut_v, nearest, qv)


def _numba_tables(code: torch.Tensor, rounding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, threshold, lut) as numpy arrays; the ones the rounding does not use are 1-element dummies."""
    tables = [t.numpy() for t in lookup_tables(code, rounding, "cpu")]
    if rounding == "nearest":
        return tables[0], tables[1], np.zeros(1, np.uint8)
    return np.zeros(1, np.uint8), np.zeros(1, np.float32), tables[0]


def adamw8bit_update_(
    W: torch.Tensor,
    grad: torch.Tensor,
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
    """One AdamW8bit update of a contiguous fp32 CPU parameter W (in place, as its 8-bit state in
    `state`: exp_avg / exp_avg_sq uint8 codes, their absmax, and step t already counted)."""
    beta1, beta2 = betas
    t = state["step"].item()
    scalars = tuple(
        f32(s)  # cast as torch casts a Python scalar for a float32 op
        for s in (
            beta1, 1.0 - beta1, beta2, 1.0 - beta2, math.sqrt(1.0 - beta2**t), eps,
            1.0 - lr * weight_decay, -lr / (1.0 - beta1**t),
        )
    )
    args = (
        W.detach().view(-1).numpy(),
        grad.view(-1).numpy(),
        state["exp_avg"].view(-1).numpy(),
        state["exp_avg_absmax"].numpy(),
        state["exp_avg_sq"].view(-1).numpy(),
        state["exp_avg_sq_absmax"].numpy(),
        code_m.numpy(),
        code_v.numpy(),
        _numba_tables(code_m, rounding),
        _numba_tables(code_v, rounding),
        rounding == "nearest",
        scalars,
    )
    blocks = state["exp_avg_absmax"].numel()
    in_pieces(blocks, lambda first, end: _update_blocks(*args, first, end), W.numel(), W.device)

"""LightSB's mixture log-sum-exp for diagonal S, fused in Triton: the kernels, their launchers and the autograd
Function. The plain-torch reference and the dispatch are `workbench.kernels.lightsb_lse`, which imports this module
(and so Triton) only when a kernel runs.

With diagonal S every log-term of LightSB (``workbench.methods.lightsb``) is an inner product of a
component's natural parameters η_k = (a_k, b_k, c_k) ∈ R^{2D+1} with the sufficient statistics
T(x) = (x ⊙ x, x, 1):

    ℓ_nk  = ⟨η_k, T(x_n)⟩ = Σ_d (a_kd x_nd² + b_kd x_nd) + c_k
    lse_n = log Σ_k exp ℓ_nk,        w_nk = exp(ℓ_nk − lse_n)

    log c_θ(x0):  a = s / 2ε,     b = r / ε,      c = log α                          (w: π_θ's weights)
    log v_θ(x1):  a = −1 / 2εs,   b = r / εs,     c = log α − ½ Σ_d log 2πεs − Σ_d r² / 2εs

Backward, with upstream g_n = ∂L/∂lse_n and p_nk = g_n w_nk:

    ∂L/∂x_n = 2 x_n ⊙ Σ_k p_nk a_k + Σ_k p_nk b_k,    ∂L/∂η_k = Σ_n p_nk T(x_n).

The kernels walk (BLOCK_N, BLOCK_K) tiles of ℓ (two ``tl.dot`` per BLOCK_D columns of D: x² against a, x
against b), keep a running max and sum per row (the online log-sum-exp), and recompute the tiles in the
backward from the saved lse, so neither the (N, K, D) products nor the (N, K) logits, nor T(x) (N, 2D+1),
reach memory; only the weights, when asked for, are written (N, K). The backward runs two kernels: one over
(row block, BLOCK_O columns of D) for ∂L/∂x (only when x needs it; training LightSB does not), one over
(K block, BLOCK_O columns of D, row split) for ∂L/∂η, its per-split partial sums added by torch
(deterministic, no atomics); each recomputes ℓ over all of D for its BLOCK_O columns.

Precision: inputs of any float dtype are read as float32 and everything is computed in float32; the
products use ``input_precision="tf32x3"`` (three TF32 tensor-core products, about float32 accuracy).
Plain TF32 is not enough: ℓ reaches |Σ_d x²/2εs| ~ 10³ at ε = s = 0.1, D = 64, and TF32's 2⁻¹¹ would
put errors of ~0.1 on logits that are exponentiated. The interpreter ignores the setting (numpy float32).

Tiles, chosen so that no launch spills (registers per thread and spill bytes from the cubins that
``workbench.kernels.compile_report`` compiles for sm_80, sm_90 and sm_100 at the benchmark's N = 65536,
K = 256, D = 64 and the experiment's N = 128, K = 50, D = 2). tf32x3 holds a high and a low TF32 part of
every operand in registers, so the products step through D 16 columns at a time, BLOCK_D = 16 (the smallest
``tl.dot`` depth), in every kernel and at every D: one 64-wide step (the tiles used at D ≥ 64 before) spilled
8.0-9.8 KB per thread on sm_80 and 0.2-1.6 KB on sm_90 at D = 64, and 32-wide steps spilled 248-760 bytes on
sm_80 and, in the gradients, 456-568 on sm_90 (8 warps, 2 stages).

    kernel   BLOCK_N × BLOCK_K   BLOCK_O
    forward  64 × 64             -              as before: its results are bit for bit the previous ones at D ≤ 16
    ∂L/∂x    32 × 64             16 if D ≤ 16,  rows are independent, so BLOCK_N moves no result; with 64 rows
                                 else 64        the 64 columns spilled 720 bytes on sm_80
    ∂L/∂η    64 × 32             as ∂L/∂x       components are independent, so BLOCK_K moves no result but the
                                                number of row splits (the same as before up to N = 64·⌊512/⌈K/32⌉⌋,
                                                16384 at K = 50); 64 × 64 spilled 8-288 bytes on sm_80 or sm_90
                                                at D ≤ 16 with each of six warp and stage counts

BLOCK_O = 16 up to D = 16 keeps the ∂ results of before there; beyond, 64 columns of D per program compute ℓ
once up to D = 64 (where 32 columns spilled 128 bytes on sm_80 and 64 spilled none).

Warps and stages, (num_warps, num_stages), timed on the GPU among these by ``workbench.kernels.tuning``
(registers per thread on sm_80 / sm_90 / sm_100 at D = 2 and at D = 64; no spills):

    forward, lse      (4, 1): 237/164/158, 168/164/132     (8, 1): 171/132/110, 176/126/96
    forward, weights  (8, 1): 255/185/116, 170/132/108     (4, 1): 255/252/246, 253/172/160
    ∂L/∂x             (8, 1): 226/229/225, 186/194/190     (8, 2): 230/231/230, 192/192/191
    ∂L/∂η             (8, 1): 252/204/216, 213/177/192     (8, 2): 253/209/255, 219/193/206

Left out for spilling somewhere: in the forward, Triton's default (4, 3), and (4, 2), (8, 2), (8, 3) (16-64
bytes at D = 2 on sm_80, or on sm_100); in the gradients, 4 warps with 64 columns (48-56 bytes).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from workbench.kernels.tuning import Tuned

PRECISION = "tf32x3"


class Blocks(NamedTuple):
    """A launch's tiles (each ≥ 16, the smallest ``tl.dot`` operand): n rows of x, k components, the step d of the
    products over D, and, in the gradient kernels, the o columns of D that a program writes."""
    n: int
    k: int
    d: int = 16
    o: int = 16


# the dispatch's tiles per kernel, with o = 16 if D ≤ 16, else 64 (the module docstring says why)
TILES = {"forward": Blocks(64, 64), "grad_x": Blocks(32, 64), "grad_eta": Blocks(64, 32)}
ETA_SPLIT_PROGRAMS = 512  # ∂L/∂η: row splits so that K-blocks × D-blocks × splits ≈ this many programs


# --- the kernels ----------------------------------------------------------------------------------------------

@triton.jit
def _logits_tile(x_ptr, eta_ptr, rows, ks, N, K, D, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    """ℓ for rows × ks: Σ_d (a_kd x_nd² + b_kd x_nd) + c_k, (BLOCK_N, BLOCK_K) float32; −inf where k ≥ K."""
    P = 2 * D + 1
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        x = tl.load(x_ptr + rows[:, None] * D + ds[None, :], mask=(rows[:, None] < N) & (ds[None, :] < D),
                    other=0.0).to(tl.float32)  # (BLOCK_N, BLOCK_D)
        at = eta_ptr + ks[None, :] * P + ds[:, None]  # a_kd at (d, k): (BLOCK_D, BLOCK_K)
        eta_mask = (ds[:, None] < D) & (ks[None, :] < K)
        a = tl.load(at, mask=eta_mask, other=0.0).to(tl.float32)
        b = tl.load(at + D, mask=eta_mask, other=0.0).to(tl.float32)
        acc = tl.dot(x * x, a, acc, input_precision=PRECISION)
        acc = tl.dot(x, b, acc, input_precision=PRECISION)
    c = tl.load(eta_ptr + ks * P + 2 * D, mask=ks < K, other=float("-inf")).to(tl.float32)  # (BLOCK_K,)
    return acc + c[None, :]


@triton.jit
def _forward_kernel(x_ptr, eta_ptr, lse_ptr, w_ptr, N, K, D, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    BLOCK_D: tl.constexpr, WEIGHTS: tl.constexpr, PRECISION: tl.constexpr):
    """One row block: lse by the online log-sum-exp over K blocks; then, if WEIGHTS, w = exp(ℓ − lse)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    m = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)  # running max
    total = tl.zeros((BLOCK_N,), dtype=tl.float32)  # running Σ exp(ℓ − m)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        logits = _logits_tile(x_ptr, eta_ptr, rows, ks, N, K, D, BLOCK_N, BLOCK_K, BLOCK_D, PRECISION)
        m_new = tl.maximum(m, tl.max(logits, axis=1))
        total = total * tl.exp(m - m_new) + tl.sum(tl.exp(logits - m_new[:, None]), axis=1)
        m = m_new
    lse = m + tl.log(total)
    tl.store(lse_ptr + rows, lse, mask=rows < N)
    if WEIGHTS:
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            logits = _logits_tile(x_ptr, eta_ptr, rows, ks, N, K, D, BLOCK_N, BLOCK_K, BLOCK_D, PRECISION)
            w = tl.exp(logits - lse[:, None])
            tl.store(w_ptr + rows[:, None] * K + ks[None, :], w.to(w_ptr.dtype.element_ty),
                     mask=(rows[:, None] < N) & (ks[None, :] < K))


@triton.jit
def _p_tile(x_ptr, eta_ptr, g_ptr, lse_ptr, rows, ks, N, K, D, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
            BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    """p_nk = g_n exp(ℓ_nk − lse_n) for rows × ks, 0 outside the matrix: (BLOCK_N, BLOCK_K) float32."""
    g = tl.load(g_ptr + rows, mask=rows < N, other=0.0).to(tl.float32)
    lse = tl.load(lse_ptr + rows, mask=rows < N, other=0.0)
    logits = _logits_tile(x_ptr, eta_ptr, rows, ks, N, K, D, BLOCK_N, BLOCK_K, BLOCK_D, PRECISION)
    p = g[:, None] * tl.exp(logits - lse[:, None])
    return tl.where((rows[:, None] < N) & (ks[None, :] < K), p, 0.0)


@triton.jit
def _grad_x_kernel(x_ptr, eta_ptr, g_ptr, lse_ptr, dx_ptr, N, K, D, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                   BLOCK_D: tl.constexpr, BLOCK_O: tl.constexpr, PRECISION: tl.constexpr):
    """One (row block, BLOCK_O columns of D): ∂L/∂x = 2 x ⊙ (p @ a) + p @ b, accumulated over K blocks."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    ds = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    P = 2 * D + 1
    p_a = tl.zeros((BLOCK_N, BLOCK_O), dtype=tl.float32)  # Σ_k p_nk a_kd
    p_b = tl.zeros((BLOCK_N, BLOCK_O), dtype=tl.float32)  # Σ_k p_nk b_kd
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        p = _p_tile(x_ptr, eta_ptr, g_ptr, lse_ptr, rows, ks, N, K, D, BLOCK_N, BLOCK_K, BLOCK_D, PRECISION)
        at = eta_ptr + ks[:, None] * P + ds[None, :]  # a_kd at (k, d): (BLOCK_K, BLOCK_O)
        eta_mask = (ks[:, None] < K) & (ds[None, :] < D)
        a = tl.load(at, mask=eta_mask, other=0.0).to(tl.float32)
        b = tl.load(at + D, mask=eta_mask, other=0.0).to(tl.float32)
        p_a = tl.dot(p, a, p_a, input_precision=PRECISION)
        p_b = tl.dot(p, b, p_b, input_precision=PRECISION)
    x_mask = (rows[:, None] < N) & (ds[None, :] < D)
    x = tl.load(x_ptr + rows[:, None] * D + ds[None, :], mask=x_mask, other=0.0).to(tl.float32)
    dx = 2 * x * p_a + p_b
    tl.store(dx_ptr + rows[:, None] * D + ds[None, :], dx.to(dx_ptr.dtype.element_ty), mask=x_mask)


@triton.jit
def _grad_eta_kernel(x_ptr, eta_ptr, g_ptr, lse_ptr, partial_ptr, N, K, D, SPLITS, BLOCK_N: tl.constexpr,
                     BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_O: tl.constexpr, PRECISION: tl.constexpr):
    """One (K block, BLOCK_O columns of D, row split): Σ_n p_nk (x_nd², x_nd, 1) over the split's row blocks, into
    partial[split] (SPLITS, K, 2D + 1); the first column block writes the Σ_n p_nk column."""
    ks = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    d_block = tl.program_id(1)
    ds = d_block * BLOCK_O + tl.arange(0, BLOCK_O)
    split = tl.program_id(2)
    P = 2 * D + 1
    p_x2 = tl.zeros((BLOCK_K, BLOCK_O), dtype=tl.float32)  # Σ_n p_nk x_nd²
    p_x = tl.zeros((BLOCK_K, BLOCK_O), dtype=tl.float32)  # Σ_n p_nk x_nd
    p_1 = tl.zeros((BLOCK_K,), dtype=tl.float32)  # Σ_n p_nk
    for n0 in range(split * BLOCK_N, N, SPLITS * BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        p = _p_tile(x_ptr, eta_ptr, g_ptr, lse_ptr, rows, ks, N, K, D, BLOCK_N, BLOCK_K, BLOCK_D, PRECISION)
        x = tl.load(x_ptr + rows[:, None] * D + ds[None, :], mask=(rows[:, None] < N) & (ds[None, :] < D),
                    other=0.0).to(tl.float32)  # (BLOCK_N, BLOCK_O)
        p_t = tl.trans(p)  # (BLOCK_K, BLOCK_N)
        p_x2 = tl.dot(p_t, x * x, p_x2, input_precision=PRECISION)
        p_x = tl.dot(p_t, x, p_x, input_precision=PRECISION)
        p_1 += tl.sum(p, axis=0)
    out = partial_ptr + split.to(tl.int64) * K * P + ks[:, None] * P + ds[None, :]
    mask = (ks[:, None] < K) & (ds[None, :] < D)
    tl.store(out, p_x2, mask=mask)
    tl.store(out + D, p_x, mask=mask)
    tl.store(partial_ptr + split.to(tl.int64) * K * P + ks * P + 2 * D, p_1, mask=(ks < K) & (d_block == 0))


# --- launch configurations: (num_warps, num_stages), none spilling on sm_80, sm_90, sm_100 (module docstring) ----

KEY = ["K", "D", "BLOCK_N", "BLOCK_K", "BLOCK_D", "BLOCK_O"]  # one tuning per shape and tiles (N, the batch, varies)
_forward_lse = Tuned(_forward_kernel, [(4, 1), (8, 1)], KEY)
_forward_weights = Tuned(_forward_kernel, [(8, 1), (4, 1)], KEY)
_grad_x = Tuned(_grad_x_kernel, [(8, 1), (8, 2)], KEY)
_grad_eta = Tuned(_grad_eta_kernel, [(8, 1), (8, 2)], KEY)


# --- launchers and autograd -------------------------------------------------------------------------------------

def _tiles(kernel: str, D: int, blocks: Blocks | None) -> Blocks:
    """`blocks` where given (the tests' small tiles), else the dispatch's tiles of `kernel` at dimension D."""
    return blocks or TILES[kernel]._replace(o=16 if D <= 16 else 64)


def _forward(x: torch.Tensor, eta: torch.Tensor, blocks: Blocks | None, weights: bool):
    """lse (N,) float32 and, if ``weights``, w (N, K) in x's dtype (else None)."""
    (N, D), K = x.shape, eta.shape[0]
    t = _tiles("forward", D, blocks)
    lse = torch.empty(N, dtype=torch.float32, device=x.device)
    w = torch.empty(N, K, dtype=x.dtype, device=x.device) if weights else None
    kernel = _forward_weights if weights else _forward_lse
    kernel[(triton.cdiv(N, t.n),)](x, eta, lse, w if weights else lse, N, K, D, BLOCK_N=t.n, BLOCK_K=t.k,
                                   BLOCK_D=t.d, WEIGHTS=weights, PRECISION=PRECISION)
    return lse, w


class MixtureLogSumExp(torch.autograd.Function):
    """lse_n = logsumexp_k ⟨η_k, T(x_n)⟩ by the Triton kernels, differentiable in x and η."""

    @staticmethod
    def forward(ctx, x, eta, blocks):
        x, eta = x.contiguous(), eta.contiguous()
        lse, _ = _forward(x, eta, blocks, weights=False)
        ctx.save_for_backward(x, eta, lse)
        ctx.blocks = blocks
        return lse.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, eta, lse = ctx.saved_tensors
        grad = grad.contiguous()
        (N, D), K = x.shape, eta.shape[0]
        dx = deta = None
        if ctx.needs_input_grad[0]:
            t = _tiles("grad_x", D, ctx.blocks)
            dx = torch.empty_like(x)
            _grad_x[(triton.cdiv(N, t.n), triton.cdiv(D, t.o))](x, eta, grad, lse, dx, N, K, D, BLOCK_N=t.n,
                                                                BLOCK_K=t.k, BLOCK_D=t.d, BLOCK_O=t.o,
                                                                PRECISION=PRECISION)
        if ctx.needs_input_grad[1]:
            t = _tiles("grad_eta", D, ctx.blocks)
            k_blocks, d_blocks = triton.cdiv(K, t.k), triton.cdiv(D, t.o)
            splits = max(1, min(triton.cdiv(N, t.n), ETA_SPLIT_PROGRAMS // (k_blocks * d_blocks)))
            partial = torch.empty(splits, K, 2 * D + 1, dtype=torch.float32, device=x.device)
            _grad_eta[(k_blocks, d_blocks, splits)](x, eta, grad, lse, partial, N, K, D, splits, BLOCK_N=t.n,
                                                    BLOCK_K=t.k, BLOCK_D=t.d, BLOCK_O=t.o, PRECISION=PRECISION)
            deta = partial.sum(0).to(eta.dtype)
        return dx, deta, None


def mixture_logsumexp_triton(x: torch.Tensor, eta: torch.Tensor, blocks: Blocks | None = None) -> torch.Tensor:
    """The kernel, on any device Triton runs on (CUDA, or CPU under TRITON_INTERPRET=1): (N, D), (K, 2D+1) -> (N,).
    ``blocks``: every kernel's tiles (default: the dispatch's, per kernel and D)."""
    return MixtureLogSumExp.apply(x, eta, blocks)


def mixture_weights_triton(x: torch.Tensor, eta: torch.Tensor, blocks: Blocks | None = None) -> torch.Tensor:
    """w = softmax_k ℓ by the kernel, no backward: (N, D), (K, 2D+1) -> (N, K) in x's dtype."""
    return _forward(x.contiguous(), eta.contiguous(), blocks, weights=True)[1]

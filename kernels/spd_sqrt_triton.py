"""X^½ and X^{−½} of batches of small SPD matrices (n ≤ 64) by the coupled Newton–Schulz iteration in
Triton. The reference and fallback (the eigendecomposition path) and the dispatch are
``workbench.kernels.spd_sqrt``, which imports this module only when the kernel runs.

Coupled Newton–Schulz (Higham, *Functions of Matrices*, SIAM 2008, ch. 6), after normalising by the Frobenius
norm so that the spectrum of A lies in (0, 1]:

    c = ‖X‖_F,   A = X / c,   Y_0 = A,   Z_0 = I
    T_k = ½ (3I − Z_k Y_k),   Y_{k+1} = Y_k T_k,   Z_{k+1} = T_k Z_k
    Y_k → A^½,   Z_k → A^{−½},   X^½ = √c Y_k,   X^{−½} = Z_k / √c

Each eigenvalue λ of A follows t_{k+1} = t_k (3 − t_k)² / 4 from t_0 = λ ≥ 1/(κ√n) (t_k = the eigenvalue
of Z_k Y_k): about ×9/4 per step while small, then quadratic. Stopping rule, on the residual
ρ_k = ‖I − Z_k Y_k‖_F (which the step computes anyway): stop when ρ_k ≤ TOL, or when ρ_k < STALL and
ρ_k > ρ_{k−1}/2 (the quadratic phase has reached float32's floor), or after MAX_ITER steps. That takes
6 (κ = 1) to 25 (κ = 10⁷) steps; 2.8 more per decade of κ.

Accuracy in float32 (the largest relative Frobenius error against float64 eigh of the same float32 input;
random eigenbases, log-spaced spectra, n = 16, 32, 64; the kernel through the interpreter and the same
iteration in torch agree):

    κ          10²       10⁴       10⁶       10⁷
    X^½        6e-7      4e-6      2e-5      6e-5      (float32 eigh: 1e-6, 1e-5, 2e-4, 3e-4)
    X^{−½}     1.5e-6    1e-4      5e-3      7e-2      (float32 eigh: 4e-6, 1e-3, 1e-1, 3e-1)
    final ρ    2e-6      2e-5      2e-4      4e-4

so up to κ ≈ 10⁷ Newton–Schulz in float32 is as accurate as float32 eigh or better. Beyond, the float32
matrix is not numerically SPD any more (λ_min below eps·λ_max) and the iteration diverges (ρ → inf or
nan); indefinite or non-finite inputs do the same. ``spd_sqrt.sqrt_and_invsqrt`` therefore accepts a matrix's
result only when ρ ≤ ACCEPT = 1e-3 and recomputes the others by eigh (with its eigenvalue floor).

The matrix products are exact float32 (``input_precision="ieee"``, FMA units), so the table above, measured
through the interpreter's float32 numpy products, holds on a GPU up to summation order (TF32, unit roundoff
2⁻¹¹, would floor ρ near 1e-3; tf32x3, 2⁻²² per product instead of 2⁻²⁴, would raise the floor). One program
per matrix, padded to BLOCK = max(16, next power of 2 ≥ n) (the smallest ``tl.dot``); the padding stays zero
through the iteration.

Launch, chosen so that nothing spills (registers per thread from the cubins that
``workbench.kernels.compile_report`` compiles for sm_80 / sm_90 / sm_100). Up to BLOCK = 32 the three
products of a step take Y, Z and T from the registers that hold them, with BLOCK/8 or BLOCK/4 warps, timed on
the GPU by ``workbench.kernels.tuning``: BLOCK = 16 with 2 or 4 warps, 64-80 / 64-72 / 64-76 registers
(n = 8, 16); BLOCK = 32 with 4 or 8 warps, 168 / 168 / 167 and 97 / 99 / 99 (n = 32). At BLOCK = 64 the
products' operands, converted out of those registers, spilled on sm_80 / sm_90 with 8 warps (the previous
launch: 255 registers, 256 / 232 bytes at n = 64, 336 / 312 at n = 50) and with 16 (984-1040 / 696). So there
each product first stores its two operands to the program's own two output matrices, in float32 (global
memory, which L1 and L2 keep close), and loads them back, between barriers of the program's threads
(``_product``): with 16 warps, 82 / 78 / 80 registers at n = 64 and 101 / 113 / 114 at n = 50. 8 warps also
fit on sm_80 and sm_90 (128 registers at n = 64, 204-216 at n = 50) but spill 16 bytes on sm_100; 4 warps
spill 104-1392 bytes on sm_80 and sm_90. A round trip through memory is exact, so the results are bit for bit
those of the register path (tested), and the outputs are float32 at any input dtype, rounded to it after the
kernel (to nearest even, as a conversion inside the kernel would).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from workbench.kernels.spd_sqrt_limits import MAX_N
from workbench.kernels.tuning import Tuned

PRECISION = "ieee"
MAX_ITER = 40  # enough for t_0 down to (4/9)^35 ≈ 5e-13, any float32 SPD matrix
TOL = 1e-6  # ρ at which the iteration stops early (the float32 floor is ~ 5e-7 at κ = 1)
STALL = 1e-2  # below this ρ the iteration is quadratic: ρ not halving means the floor is reached


@triton.jit
def _product(A, B, A_ptr, B_ptr, offsets, inside, THROUGH_MEMORY: tl.constexpr, PRECISION: tl.constexpr):
    """A @ B (BLOCK, BLOCK). THROUGH_MEMORY: A and B are first stored to the program's own two output matrices
    (float32, n × n at `offsets`, their padding left out) and loaded back, each between barriers of the program's
    threads, so that the product takes its operands from memory rather than from the registers that hold them
    (see "Launch" in the module docstring)."""
    if THROUGH_MEMORY:
        tl.store(A_ptr + offsets, A, mask=inside)
        tl.store(B_ptr + offsets, B, mask=inside)
        tl.debug_barrier()  # every thread's stores before any thread's loads
        A = tl.load(A_ptr + offsets, mask=inside, other=0.0)
        B = tl.load(B_ptr + offsets, mask=inside, other=0.0)
        tl.debug_barrier()  # every thread's loads before the next product's stores
    return tl.dot(A, B, input_precision=PRECISION)


@triton.jit
def _newton_schulz_kernel(X_ptr, S_ptr, S_inv_ptr, rho_ptr, n, MAX_ITER: tl.constexpr, TOL: tl.constexpr,
                          STALL: tl.constexpr, BLOCK: tl.constexpr, THROUGH_MEMORY: tl.constexpr,
                          PRECISION: tl.constexpr):
    """One matrix: X (n, n) -> X^½, X^{−½} (float32) and the final residual ρ."""
    i = tl.arange(0, BLOCK)[:, None]
    j = tl.arange(0, BLOCK)[None, :]
    inside = (i < n) & (j < n)
    offsets = tl.program_id(0).to(tl.int64) * n * n + i * n + j
    X = tl.load(X_ptr + offsets, mask=inside, other=0.0).to(tl.float32)
    X = 0.5 * (X + tl.trans(X))  # sym(X), as the eigh path
    c = tl.sqrt(tl.sum(tl.sum(X * X, axis=1), axis=0))  # ‖X‖_F
    eye = tl.where((i == j) & inside, 1.0, 0.0)
    Y = X / c  # (BLOCK, BLOCK)
    Z = eye
    R = eye - _product(Z, Y, S_inv_ptr, S_ptr, offsets, inside, THROUGH_MEMORY, PRECISION)  # I − Z Y
    rho = tl.sqrt(tl.sum(tl.sum(R * R, axis=1), axis=0))
    k = 0
    going = rho > TOL
    while going:
        T = eye + 0.5 * R  # ½ (3I − Z Y)
        Y = _product(Y, T, S_ptr, S_inv_ptr, offsets, inside, THROUGH_MEMORY, PRECISION)
        Z = _product(T, Z, S_ptr, S_inv_ptr, offsets, inside, THROUGH_MEMORY, PRECISION)
        R = eye - _product(Z, Y, S_inv_ptr, S_ptr, offsets, inside, THROUGH_MEMORY, PRECISION)
        rho_new = tl.sqrt(tl.sum(tl.sum(R * R, axis=1), axis=0))
        k += 1
        going = (rho_new > TOL) & ((rho_new >= STALL) | (rho_new < 0.5 * rho)) & (k < MAX_ITER)
        rho = rho_new
    root = tl.sqrt(c)
    tl.store(S_ptr + offsets, Y * root, mask=inside)
    tl.store(S_inv_ptr + offsets, Z / root, mask=inside)
    tl.store(rho_ptr + tl.program_id(0), rho)


# (num_warps, num_stages) per BLOCK, each spill-free for sm_80, sm_90 and sm_100 (module docstring); the loop
# loads nothing, so there is nothing for stages to pipeline
_KERNELS = {block: Tuned(_newton_schulz_kernel, configs, key=["n"])
            for block, configs in {16: [(2, 1), (4, 1)], 32: [(4, 1), (8, 1)], 64: [(16, 1)]}.items()}


def newton_schulz_triton(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel, on any device Triton runs on (CUDA, or CPU under TRITON_INTERPRET=1), no backward:
    X (..., n, n) with n ≤ 64, float32/16, bfloat16 -> (X^½, X^{−½}) in X's dtype and ρ (...,) float32."""
    n = X.shape[-1]
    if not 1 <= n <= MAX_N or X.shape[-2] != n:
        raise ValueError(f"newton_schulz_triton: X has shape {tuple(X.shape)}; "
                         f"expected (..., n, n) with 1 <= n <= {MAX_N}")
    batch = X.shape[:-2]
    X = X.reshape(-1, n, n).contiguous()  # (B, n, n)
    S = torch.empty(X.shape, dtype=torch.float32, device=X.device)  # float32: the products' memory when n > 32
    S_inv = torch.empty_like(S)
    rho = torch.empty(X.shape[0], dtype=torch.float32, device=X.device)
    block = max(16, triton.next_power_of_2(n))
    if X.shape[0]:
        _KERNELS[block][(X.shape[0],)](X, S, S_inv, rho, n, MAX_ITER=MAX_ITER, TOL=TOL, STALL=STALL, BLOCK=block,
                                       THROUGH_MEMORY=block > 32, PRECISION=PRECISION)
    S, S_inv = S.to(X.dtype), S_inv.to(X.dtype)
    return S.reshape(*batch, n, n), S_inv.reshape(*batch, n, n), rho.reshape(batch)

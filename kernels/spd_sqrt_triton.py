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
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from workbench.kernels.spd_sqrt import MAX_N

PRECISION = "ieee"
MAX_ITER = 40  # enough for t_0 down to (4/9)^35 ≈ 5e-13, any float32 SPD matrix
TOL = 1e-6  # ρ at which the iteration stops early (the float32 floor is ~ 5e-7 at κ = 1)
STALL = 1e-2  # below this ρ the iteration is quadratic: ρ not halving means the floor is reached


@triton.jit
def _newton_schulz_kernel(X_ptr, S_ptr, S_inv_ptr, rho_ptr, n, MAX_ITER: tl.constexpr, TOL: tl.constexpr,
                          STALL: tl.constexpr, BLOCK: tl.constexpr, PRECISION: tl.constexpr):
    """One matrix: X (n, n) -> X^½, X^{−½} (the input's dtype) and the final residual ρ (float32)."""
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
    R = eye - tl.dot(Z, Y, input_precision=PRECISION)  # I − Z Y
    rho = tl.sqrt(tl.sum(tl.sum(R * R, axis=1), axis=0))
    k = 0
    going = rho > TOL
    while going:
        T = eye + 0.5 * R  # ½ (3I − Z Y)
        Y = tl.dot(Y, T, input_precision=PRECISION)
        Z = tl.dot(T, Z, input_precision=PRECISION)
        R = eye - tl.dot(Z, Y, input_precision=PRECISION)
        rho_new = tl.sqrt(tl.sum(tl.sum(R * R, axis=1), axis=0))
        k += 1
        going = (rho_new > TOL) & ((rho_new >= STALL) | (rho_new < 0.5 * rho)) & (k < MAX_ITER)
        rho = rho_new
    root = tl.sqrt(c)
    tl.store(S_ptr + offsets, (Y * root).to(S_ptr.dtype.element_ty), mask=inside)
    tl.store(S_inv_ptr + offsets, (Z / root).to(S_inv_ptr.dtype.element_ty), mask=inside)
    tl.store(rho_ptr + tl.program_id(0), rho)


def newton_schulz_triton(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel, on any device Triton runs on (CUDA, or CPU under TRITON_INTERPRET=1), no backward:
    X (..., n, n) with n ≤ 64, float32/16, bfloat16 -> (X^½, X^{−½}) in X's dtype and ρ (...,) float32."""
    n = X.shape[-1]
    if not 1 <= n <= MAX_N or X.shape[-2] != n:
        raise ValueError(f"newton_schulz_triton: X has shape {tuple(X.shape)}; "
                         f"expected (..., n, n) with 1 <= n <= {MAX_N}")
    batch = X.shape[:-2]
    X = X.reshape(-1, n, n).contiguous()  # (B, n, n)
    S, S_inv = torch.empty_like(X), torch.empty_like(X)
    rho = torch.empty(X.shape[0], dtype=torch.float32, device=X.device)
    block = max(16, triton.next_power_of_2(n))
    if X.shape[0]:
        _newton_schulz_kernel[(X.shape[0],)](X, S, S_inv, rho, n, MAX_ITER, TOL, STALL, block, PRECISION,
                                             num_warps=block // 8)
    return S.reshape(*batch, n, n), S_inv.reshape(*batch, n, n), rho.reshape(batch)


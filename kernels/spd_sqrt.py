"""X^½ and X^{−½} of batches of SPD matrices: the eigendecomposition reference
(``workbench.methods.spd.matfun.sqrtm_invsqrtm``) and the dispatch, importable without Triton.

:func:`sqrt_and_invsqrt` runs the coupled Newton–Schulz kernel of ``workbench.kernels.spd_sqrt_triton`` (the
iteration, its stopping rule, its accuracy against eigh) when :func:`_use_kernel` says so, importing Triton only
then, and keeps eigh for the rest and for every matrix whose final residual ρ exceeds ACCEPT.
"""
from __future__ import annotations

import torch

from workbench.methods.spd.matfun import sqrtm_invsqrtm

ACCEPT = 1e-3  # the dispatch keeps a matrix's Newton–Schulz result only when its final ρ ≤ ACCEPT
MAX_N = 64  # the kernel's largest n (one program per matrix, padded to at most 64 x 64)


def sqrt_and_invsqrt_reference(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X^½, X^{−½}) from one eigh (differentiable, Daleckii–Krein), computed in at least float32 and
    returned in X's dtype. (..., n, n) -> 2 × (..., n, n)."""
    S, S_inv = sqrtm_invsqrtm(X.to(torch.promote_types(X.dtype, torch.float32)))
    return S.to(X.dtype), S_inv.to(X.dtype)


def _use_kernel(X: torch.Tensor) -> bool:
    """The one place that picks the kernel: a CUDA tensor in float32 or half precision (float64 keeps eigh's
    accuracy), n ≤ 64, and no autograd graph to build (the kernel has no backward)."""
    return (X.is_cuda and X.dtype in (torch.float32, torch.float16, torch.bfloat16) and X.shape[-1] <= MAX_N
            and not (torch.is_grad_enabled() and X.requires_grad))


def sqrt_and_invsqrt(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X^½, X^{−½}) of SPD matrices: Newton–Schulz on CUDA (see :func:`_use_kernel`), eigh elsewhere and for
    every matrix whose final residual exceeds ACCEPT (κ ≳ 10⁷ in float32, indefinite, non-finite; one host
    sync to find them). (..., n, n) -> 2 × (..., n, n)."""
    if not _use_kernel(X):
        return sqrt_and_invsqrt_reference(X)
    from workbench.kernels.spd_sqrt_triton import newton_schulz_triton  # imports Triton: only here

    S, S_inv, rho = newton_schulz_triton(X)
    rejected = ~(rho <= ACCEPT)  # nan-safe
    if rejected.any():
        S[rejected], S_inv[rejected] = sqrt_and_invsqrt_reference(X[rejected])
    return S, S_inv

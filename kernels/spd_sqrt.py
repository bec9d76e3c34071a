"""X^½ and X^{−½} of batches of SPD matrices: the eigendecomposition reference
(``workbench.methods.spd.matfun.sqrtm_invsqrtm``) and the dispatch, importable without Triton.

:func:`sqrt_and_invsqrt` runs the coupled Newton–Schulz kernel of ``workbench.kernels.spd_sqrt_triton`` (the
iteration, its stopping rule, its accuracy against eigh) when :func:`_use_kernel` says so (the kernel's own rules,
then the switch WORKBENCH_KERNELS and the self-check of ``workbench.kernels.selfcheck``, with :func:`_probe`),
importing Triton only then, and keeps eigh for the rest and for every matrix whose final residual ρ exceeds ACCEPT.
"""
from __future__ import annotations

import torch

from workbench.kernels import selfcheck
from workbench.kernels.spd_sqrt_limits import MAX_N
from workbench.methods.spd.matfun import sqrtm_invsqrtm

ACCEPT = 1e-3  # the dispatch keeps a matrix's Newton–Schulz result only when its final ρ ≤ ACCEPT


def sqrt_and_invsqrt_reference(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X^½, X^{−½}) from one eigh (differentiable, Daleckii–Krein), computed in at least float32 and
    returned in X's dtype. (..., n, n) -> 2 × (..., n, n)."""
    S, S_inv = sqrtm_invsqrtm(X.to(torch.promote_types(X.dtype, torch.float32)))
    return S.to(X.dtype), S_inv.to(X.dtype)


PROBE_NS = (5, 20, 64)  # the self-check's sizes: one of each padded block, 16, 32 and 64
HALF_TOL = {torch.float16: 1e-2, torch.bfloat16: 3e-2}  # tests/test_kernels_spd.py


@selfcheck.probe("spd_sqrt")
def _probe(dtype: torch.dtype, device: torch.device) -> None:
    """Newton–Schulz on two SPD matrices of κ = 10 (Haar eigenbases, log-spaced spectra) per size in PROBE_NS, with
    the tolerances of tests/test_kernels_spd.py: in float32, X^½ and X^{−½} to 1e-5 and 2e-6 relative Frobenius
    error against float64 eigh and the residual ρ ≤ ACCEPT; with half-precision inputs, both within HALF_TOL of
    float32 eigh of the same values."""
    from workbench.kernels.spd_sqrt_triton import newton_schulz_triton  # imports Triton: the kernel runs anyway

    gen = torch.Generator().manual_seed(0)
    for n in PROBE_NS:
        Q, _ = torch.linalg.qr(torch.randn(2, n, n, generator=gen, dtype=torch.float64))
        lam = 3.0 * torch.logspace(0, -1, n, dtype=torch.float64)
        X = ((Q * lam) @ Q.mT).to(device, dtype)  # (2, n, n)
        S, S_inv, rho = newton_schulz_triton(X)
        if dtype in HALF_TOL:
            tol = HALF_TOL[dtype]
            for A, A_ref in zip((S, S_inv), sqrt_and_invsqrt_reference(X)):
                torch.testing.assert_close(A.float(), A_ref.float(), rtol=tol, atol=tol)
            continue
        w, U = torch.linalg.eigh(X.double())
        for A, p, tol in ((S, 0.5, 1e-5), (S_inv, -0.5, 2e-6)):
            truth = (U * w.pow(p).unsqueeze(-2)) @ U.mT
            error = ((A.double() - truth).norm(dim=(-2, -1)) / truth.norm(dim=(-2, -1))).max().item()
            if not error < tol:
                raise AssertionError(f"n = {n}: X^{p} relative error {error:.2e}, allowed {tol:.0e}")
        if not (rho <= ACCEPT).all():
            raise AssertionError(f"n = {n}: residual ρ = {rho.tolist()}, allowed ≤ {ACCEPT}")


def _use_kernel(X: torch.Tensor) -> bool:
    """The one place that picks the kernel: a tensor in float32 or half precision (float64 keeps eigh's accuracy),
    n ≤ 64, no autograd graph to build (the kernel has no backward), on a device where the switch lets kernels run
    and with the kernel past its self-check for X's dtype there."""
    return (X.dtype in selfcheck.DTYPES and X.shape[-1] <= MAX_N
            and not (torch.is_grad_enabled() and X.requires_grad)
            and selfcheck.use_kernel("spd_sqrt", X.dtype, X.device))


def sqrt_and_invsqrt(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X^½, X^{−½}) of SPD matrices: Newton–Schulz where :func:`_use_kernel` allows it, eigh elsewhere and for
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

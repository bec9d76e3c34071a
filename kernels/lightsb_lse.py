"""LightSB's mixture log-sum-exp for diagonal S: the plain-torch reference and the dispatch, importable without Triton.

    ℓ_nk = ⟨η_k, T(x_n)⟩,   T(x) = (x ⊙ x, x, 1),   lse_n = log Σ_k exp ℓ_nk,   w_nk = exp(ℓ_nk − lse_n)

The reference is one (N, 2D+1) × (2D+1, K) product followed by torch's logsumexp or softmax. The fused Triton
kernels, with the equations of LightSB's η, of the backward, the tiling and the precision, are
``workbench.kernels.lightsb_lse_triton``.

Dispatch (:func:`mixture_logsumexp`, :func:`mixture_weights`): the kernel where :func:`_use_kernel` allows it
(float32 or half-precision operands, the switch WORKBENCH_KERNELS and the self-check of
``workbench.kernels.selfcheck``, with :func:`_probe`), the reference elsewhere; the Triton module is imported only
when a kernel runs, so the CPU path works without Triton. The weights kernel has no backward, so weights that
autograd must differentiate take the reference. float64 keeps the reference, as the kernels compute in float32.
"""
from __future__ import annotations

import math

import torch

from workbench.kernels import selfcheck


# --- the reference ------------------------------------------------------------------------------------------

def diagonal_statistics(x: torch.Tensor) -> torch.Tensor:
    """T(x) = (x ⊙ x, x, 1): (N, D) -> (N, 2D + 1)."""
    return torch.cat([x.square(), x, torch.ones_like(x[:, :1])], dim=1)


def logits_reference(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """ℓ_nk = ⟨η_k, T(x_n)⟩: x (N, D), η (K, 2D + 1) -> (N, K), one matrix product."""
    return diagonal_statistics(x) @ eta.T


def logsumexp_reference(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """lse_n = logsumexp_k ℓ_nk: (N, D), (K, 2D + 1) -> (N,)."""
    return torch.logsumexp(logits_reference(x, eta), dim=-1)


def weights_reference(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """w_nk = softmax_k ℓ_nk: (N, D), (K, 2D + 1) -> (N, K)."""
    return torch.softmax(logits_reference(x, eta), dim=-1)


# --- dispatch ------------------------------------------------------------------------------------------------------

# the self-check's shapes (N, K, D), irregular: one of each tiling the launchers choose (lightsb_lse_triton.TILES:
# 16 columns of D a program for D ≤ 16, 64 above; here two such blocks)
PROBE_SHAPES = ((37, 21, 5), (33, 17, 70))
HALF_TOL = {torch.float16: 2e-3, torch.bfloat16: 2e-2}  # relative, tests/test_kernels_lightsb.py


def _probe_problem(N: int, K: int, D: int, dtype: torch.dtype, device: torch.device):
    """x (N, D) and the η (K, 2D+1) of log v_θ for a random diagonal LightSB at ε = 0.5 (S_k's eigenvalues s and means
    r spread as in the tests): a = −1/2εs, b = r/εs, c = log α − ½ Σ_d log 2πεs − Σ_d r²/2εs."""
    gen = torch.Generator().manual_seed(N)
    epsilon = 0.5
    s = 0.5 * torch.exp(0.3 * torch.randn(K, D, generator=gen, dtype=torch.float64))
    r = torch.randn(K, D, generator=gen, dtype=torch.float64)
    log_alpha = torch.log_softmax(0.2 * torch.randn(K, generator=gen, dtype=torch.float64), 0)
    c = log_alpha - 0.5 * torch.log(2 * math.pi * epsilon * s).sum(1) - (r * r / (2 * epsilon * s)).sum(1)
    eta = torch.cat([-1 / (2 * epsilon * s), r / (epsilon * s), c[:, None]], dim=1)
    x = torch.randn(N, D, generator=gen, dtype=torch.float64)
    return x.to(device, dtype), eta.to(device, dtype)


@selfcheck.probe("lightsb_lse")
def _probe(dtype: torch.dtype, device: torch.device) -> None:
    """lse, the weights and both gradients of the kernels against the float64 reference of the same inputs, at
    PROBE_SHAPES, with the tolerances of tests/test_kernels_lightsb.py: in float32, lse to 1e-5, the weights to
    1e-4 relative and 1e-6 absolute, the gradients to 1e-4 relative and 1e-5·max(1, largest) absolute; with half
    precision inputs everything to HALF_TOL (the output's rounding; the tests hold lse and the weights to it)."""
    from workbench.kernels import lightsb_lse_triton as kernels  # imports Triton: the kernel is about to run anyway

    half = HALF_TOL.get(dtype)
    for N, K, D in PROBE_SHAPES:
        x, eta = _probe_problem(N, K, D, dtype, device)
        g = torch.randn(N, generator=torch.Generator().manual_seed(D), dtype=torch.float64).to(device, dtype)
        x64, eta64 = x.double().requires_grad_(), eta.double().requires_grad_()
        lse_ref = logsumexp_reference(x64, eta64)
        dx_ref, deta_ref = torch.autograd.grad(lse_ref, (x64, eta64), g.double())
        x, eta = x.requires_grad_(), eta.requires_grad_()
        lse = kernels.mixture_logsumexp_triton(x, eta)
        dx, deta = torch.autograd.grad(lse, (x, eta), g)
        weights = kernels.mixture_weights_triton(x.detach(), eta.detach())
        close = dict(rtol=half, atol=half) if half else dict(rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lse.double(), lse_ref.detach(), **close, msg=lambda m: f"lse: {m}")
        close = dict(rtol=half, atol=half / 10) if half else dict(rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(weights.double(), weights_reference(x64, eta64).detach(), **close,
                                   msg=lambda m: f"weights: {m}")
        for name, grad, ref in (("dx", dx, dx_ref), ("deta", deta, deta_ref)):
            scale = max(ref.abs().max().item(), 1.0)
            close = dict(rtol=half, atol=half * scale) if half else dict(rtol=1e-4, atol=1e-5 * scale)
            torch.testing.assert_close(grad.double(), ref, **close, msg=lambda m, name=name: f"{name}: {m}")


def _use_kernel(x: torch.Tensor, eta: torch.Tensor) -> bool:
    """The one place that picks the kernel: both operands float32 or half precision on one device where the switch
    lets kernels run, and the kernels past their self-check for x's dtype there."""
    return (x.dtype in selfcheck.DTYPES and eta.dtype in selfcheck.DTYPES and x.device == eta.device
            and selfcheck.use_kernel("lightsb_lse", x.dtype, x.device))


def mixture_logsumexp(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """logsumexp_k ⟨η_k, T(x_n)⟩, differentiable: the kernel where :func:`_use_kernel` allows it (CUDA, by default),
    the reference elsewhere. (N, D), (K, 2D+1) -> (N,)."""
    if _use_kernel(x, eta):
        from workbench.kernels.lightsb_lse_triton import mixture_logsumexp_triton  # imports Triton: only here

        return mixture_logsumexp_triton(x, eta)
    return logsumexp_reference(x, eta)


def mixture_weights(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """softmax_k ⟨η_k, T(x_n)⟩: the kernel where :func:`_use_kernel` allows it and autograd need not differentiate
    it, the reference otherwise. (N, D), (K, 2D+1) -> (N, K)."""
    graph = torch.is_grad_enabled() and (x.requires_grad or eta.requires_grad)
    if not graph and _use_kernel(x, eta):
        from workbench.kernels.lightsb_lse_triton import mixture_weights_triton  # imports Triton: only here

        return mixture_weights_triton(x, eta)
    return weights_reference(x, eta)

"""LightSB's mixture log-sum-exp for diagonal S: the plain-torch reference and the dispatch, importable without Triton.

    ℓ_nk = ⟨η_k, T(x_n)⟩,   T(x) = (x ⊙ x, x, 1),   lse_n = log Σ_k exp ℓ_nk,   w_nk = exp(ℓ_nk − lse_n)

The reference is one (N, 2D+1) × (2D+1, K) product followed by torch's logsumexp or softmax. The fused Triton
kernels, with the equations of LightSB's η, of the backward, the tiling and the precision, are
``workbench.kernels.lightsb_lse_triton``.

Dispatch (:func:`mixture_logsumexp`, :func:`mixture_weights`): the kernel for CUDA tensors, the reference
elsewhere, decided by :func:`_use_kernel`; the Triton module is imported there, only when a kernel runs, so the
CPU path works without Triton. The weights kernel has no backward, so weights that autograd must differentiate
take the reference.
"""
from __future__ import annotations

import torch


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

def _use_kernel(x: torch.Tensor, eta: torch.Tensor) -> bool:
    """The one place that picks the kernel: both operands on CUDA."""
    return x.is_cuda and eta.is_cuda


def mixture_logsumexp(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """logsumexp_k ⟨η_k, T(x_n)⟩, differentiable: the kernel on CUDA, the reference elsewhere.
    (N, D), (K, 2D+1) -> (N,)."""
    if _use_kernel(x, eta):
        from workbench.kernels.lightsb_lse_triton import mixture_logsumexp_triton  # imports Triton: only here

        return mixture_logsumexp_triton(x, eta)
    return logsumexp_reference(x, eta)


def mixture_weights(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """softmax_k ⟨η_k, T(x_n)⟩: the kernel on CUDA when autograd need not differentiate it, the reference
    otherwise. (N, D), (K, 2D+1) -> (N, K)."""
    graph = torch.is_grad_enabled() and (x.requires_grad or eta.requires_grad)
    if _use_kernel(x, eta) and not graph:
        from workbench.kernels.lightsb_lse_triton import mixture_weights_triton  # imports Triton: only here

        return mixture_weights_triton(x, eta)
    return weights_reference(x, eta)

"""The Lion step (workbench.optim.Lion) over all tensors of a param group: the plain-torch reference (torch's
`_foreach_*` ops), the kernel's self-check probe, and `lion_step_`, which runs the fused Triton kernel of
`workbench.kernels.lion_triton` (its equations and rounding there) where `_use_kernel` says so and the reference
otherwise. Triton is imported only when the kernel runs, so the CPU path works without it.
"""

from __future__ import annotations

import torch

from workbench.kernels import selfcheck


def lion_reference_(
    W: list[torch.Tensor], g: list[torch.Tensor], m: list[torch.Tensor], *, lr: float, betas: tuple[float, float],
    weight_decay: float,
) -> None:
    """One Lion step of the parameters W (in place) and their momenta m, with torch's foreach ops (any device)."""
    beta1, beta2 = betas
    if weight_decay > 0:
        torch._foreach_mul_(W, 1.0 - lr * weight_decay)  # W ← W(1 − lr·λ)
    c = torch._foreach_lerp(m, g, 1.0 - beta1)  # c = β1·m + (1 − β1)·g
    torch._foreach_sign_(c)
    torch._foreach_add_(W, c, alpha=-lr)  # W ← W − lr·sign(c)
    torch._foreach_lerp_(m, g, 1.0 - beta2)  # m ← β2·m + (1 − β2)·g


@selfcheck.probe("lion")
def _probe(dtype: torch.dtype, device: torch.device) -> None:
    """Two steps of the kernel and of the reference from the same tensors (3 and 1030 elements: a partial chunk, a
    whole and a partial one; lerp weights 1 − β1 < 0.5 and 1 − β2 > 0.5, both of torch.lerp's branches), with the
    tolerances of tests/test_kernels_optim.py: m bit for bit; W bit for bit in float32 and on CUDA, else within
    the rounding of alpha = −lr to the 16-bit dtype that torch's CPU foreach ops apply (steps·eps relative)."""
    from workbench.kernels import lion_triton  # imports Triton: the kernel is about to run anyway

    gen = torch.Generator().manual_seed(0)
    shapes, steps, hyper = [(3,), (1030,)], 2, dict(lr=1e-2, betas=(0.9, 0.4), weight_decay=0.1)

    def randn(scale: float) -> list[torch.Tensor]:
        return [(scale * torch.randn(shape, generator=gen)).to(device, dtype) for shape in shapes]

    W, m = randn(1.0), randn(0.1)
    W_ref, m_ref = [w.clone() for w in W], [v.clone() for v in m]
    for _ in range(steps):
        g = randn(1.0)
        lion_triton.lion_triton_(W, g, m, **hyper)
        lion_reference_(W_ref, g, m_ref, **hyper)
    tol = 0.0 if dtype == torch.float32 or device.type == "cuda" else steps * torch.finfo(dtype).eps
    for a, b in zip(m, m_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(W, W_ref):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * hyper["lr"])


def _use_kernel(tensors: list[torch.Tensor]) -> bool:
    """The one place that picks the kernel: every tensor contiguous and of a kernel dtype, and every (dtype, device)
    among them allowed by the switch and past its self-check (`workbench.kernels.selfcheck`)."""
    kinds = set(zip([t.dtype for t in tensors], [t.device for t in tensors]))
    return (all(selfcheck.triton_runs_on(device) for _, device in kinds) and selfcheck.dense(tensors)
            and all(selfcheck.passes("lion", dtype, device) for dtype, device in kinds))


def lion_step_(
    W: list[torch.Tensor], g: list[torch.Tensor], m: list[torch.Tensor], *, lr: float, betas: tuple[float, float],
    weight_decay: float,
) -> None:
    """One Lion step: the kernel where `_use_kernel` allows it, the reference otherwise."""
    if _use_kernel(W + g + m):
        from workbench.kernels.lion_triton import lion_triton_ as step  # imports Triton: only here
    else:
        step = lion_reference_
    step(W, g, m, lr=lr, betas=betas, weight_decay=weight_decay)

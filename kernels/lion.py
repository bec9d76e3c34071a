"""The Lion step (workbench.optim.Lion) over all tensors of a param group: the plain-torch reference (torch's
`_foreach_*` ops) and `lion_step_`, which runs the fused Triton kernel of `workbench.kernels.lion_triton` (its
equations and rounding there) for dense CUDA tensors and the reference otherwise. Triton is imported only when
the kernel runs, so the CPU path works without it.
"""

from __future__ import annotations

import torch


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


def _use_kernel(tensors: list[torch.Tensor]) -> bool:
    """The one place that picks the kernel: every tensor dense, on CUDA and of a kernel dtype (`multi_tensor.on_device`,
    which imports Triton, so it is asked only once every tensor is on CUDA)."""
    if not all(t.is_cuda for t in tensors):
        return False
    from workbench.kernels.multi_tensor import on_device  # imports Triton: only on CUDA

    return on_device(tensors)


def lion_step_(
    W: list[torch.Tensor], g: list[torch.Tensor], m: list[torch.Tensor], *, lr: float, betas: tuple[float, float],
    weight_decay: float,
) -> None:
    """One Lion step: the kernel when every tensor is a dense CUDA tensor of a kernel dtype, the reference otherwise."""
    if _use_kernel(W + g + m):
        from workbench.kernels.lion_triton import lion_triton_ as step  # imports Triton: only here
    else:
        step = lion_reference_
    step(W, g, m, lr=lr, betas=betas, weight_decay=weight_decay)

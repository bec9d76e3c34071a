"""Hot-path kernels, each beside the plain-torch reference it is tested against (installed as workbench.kernels).

A kernel family's plain module holds its reference and the one dispatch function (the kernel for CUDA tensors, the
reference otherwise) and imports without Triton; the Triton kernels live in its `_triton` module, which the dispatch
imports only when a kernel runs, so the CPU paths work where Triton is missing.

adamw8bit_cpu: the fused CPU pass of AdamW8bit (numba); its reference is AdamW8bit(fused=False).
adamw8bit_triton: the AdamW8bit update of a group's 8-bit states on CUDA in one launch (Triton); reference: the same;
    dispatch: AdamW8bit._fused_pass.
lion: the Lion step of a group's tensors: reference (torch's foreach ops) and dispatch, `lion_step_`.
lion_triton: its kernel, one launch per group.
multi_tensor: what the optimizer kernels share: tables of tensor addresses and of chunks, so that one launch covers
    many tensors, and `on_device`, the test their dispatches apply on CUDA (imports Triton).
lightsb_lse: LightSB's mixture log-sum-exp for diagonal S: reference (one product + logsumexp) and dispatch.
lightsb_lse_triton: its kernels, with backward.
spd_sqrt: X^½ and X^{−½} of batches of SPD matrices: reference (eigh) and dispatch.
spd_sqrt_triton: its kernel for n ≤ 64, by coupled Newton–Schulz.
"""

"""Hot-path kernels, each beside the plain-torch reference it is tested against (installed as workbench.kernels).

A kernel family's plain module holds its reference, the probe of its self-check and the one dispatch function (the
kernel where `selfcheck` allows it, by default for CUDA tensors, the reference otherwise) and imports without Triton;
the Triton kernels live in its `_triton` module, which the dispatch imports only when a kernel runs, so the CPU paths
work where Triton is missing.

selfcheck: whether a kernel runs: `dense` (the layout and dtypes the kernels take), the switch
    WORKBENCH_KERNELS=auto|torch|triton and the self-check on first use of each (kernel, dtype, device), which falls
    back to the reference, with a warning, where a kernel is wrong; `python -m workbench.kernels.selfcheck` runs
    every check (its command: selfcheck_report, which imports every family so that their checks register).

adamw8bit_cpu: the fused CPU pass of AdamW8bit (numba); its reference is AdamW8bit(fused=False).
adamw8bit_triton: the AdamW8bit update of a group's 8-bit states on CUDA in one launch (Triton); reference:
    workbench.optim.adamw8bit.adamw8bit_torch_; dispatch and probe: AdamW8bit._fused_pass, adamw8bit._probe.
lion: the Lion step of a group's tensors: reference (torch's foreach ops) and dispatch, `lion_step_`.
lion_triton: its kernel, one launch per group.
multi_tensor: what the optimizer kernels share: tables of tensor addresses and of chunks, so that one launch covers
    many tensors, built once per set of tensors (imports Triton).
lightsb_lse: LightSB's mixture log-sum-exp for diagonal S: reference (one product + logsumexp) and dispatch.
lightsb_lse_triton: its kernels, with backward.
spd_sqrt: X^½ and X^{−½} of batches of SPD matrices: reference (eigh) and dispatch.
spd_sqrt_triton: its kernel for n ≤ 64, by coupled Newton–Schulz.
spd_sqrt_limits: the kernel's largest n, which the dispatch and the kernel both read (imports without Triton).
tuning: `Tuned`, a kernel launched at tiles its launcher fixes and one of a few spill-free (warps, stages) pairs,
    autotuned on a GPU after dropping the pairs that spill there.
compile_report: every kernel compiled ahead of time for sm_80/sm_90/sm_100 on a CPU, with its registers, spills and
    shared memory (`python benchmarks/kernels.py --compile-only`).
"""

"""Whether a Triton kernel runs: the switch WORKBENCH_KERNELS and the self-check on first use. Imports without Triton.

Every kernel family registers its probe (`@probe("lion")`, beside its reference and dispatch); its dispatch applies
its own rules (dtypes, layout: `dense`; shapes, autograd) and asks `use_kernel(kernel, dtype, device)`, and runs
the torch reference when the answer is no. `python -m workbench.kernels.selfcheck` runs every probe on a device and
prints the verdicts (`workbench.kernels.selfcheck_report`; benchmarks/gpu_check.sh runs it on a GPU).

The switch, the environment variable WORKBENCH_KERNELS, read at every dispatch (one dictionary look-up), so that a
test or a notebook can change it:

    auto      (the default) the kernels on CUDA tensors
    torch     never the kernels: the torch references everywhere
    triton    the kernels wherever Triton runs: CUDA tensors, and CPU tensors when Triton's interpreter is on
              (TRITON_INTERPRET=1 before the kernels are imported), so that the dispatches and this self-check can
              be exercised on a machine without a GPU

Any other value raises a ValueError that names the variable, the value and the allowed values.

The self-check: the first time a process would run a kernel for a given (kernel, dtype, device), the family's probe
runs it beside its torch reference on a small input with irregular sizes, compared with the tolerances of the
family's tests, bit for bit where the tests require it, and raises on a mismatch. The verdict is kept for the rest of
the process. A failing probe, by a mismatch or any exception (a compile error on an architecture nobody has tested,
a launch failure), warns once with a KernelFallbackWarning that names the kernel, the dtype, the device's name and
compute capability, and the error; the dispatch then takes the reference for that (kernel, dtype, device), which
computes what WORKBENCH_KERNELS=torch computes. So a user never gets silently wrong numbers from a kernel on an
architecture where it was never run. A probe costs milliseconds of GPU time, once (and compiles the kernels, which
the first real call would do anyway).

CUDA graphs: a probe compares on the host, so it cannot run inside a capture. The first use must come before it,
as Triton's compilation must anyway (one eager call or optimizer step, the usual warm-up); a first use inside a
capture raises a RuntimeError that says so.
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Callable

import torch

VARIABLE = "WORKBENCH_KERNELS"
MODES = ("auto", "torch", "triton")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # the dtypes every kernel takes (float64 keeps the references)

Probe = Callable[[torch.dtype, torch.device], None]  # raises when the kernel and its reference disagree


class KernelFallbackWarning(RuntimeWarning):
    """A kernel failed its self-check: the torch reference runs in its place for the rest of the process."""


_probes: dict[str, Probe] = {}  # kernel -> its probe, registered by the family's module
_verdicts: dict[tuple[str, torch.dtype, torch.device], bool] = {}  # (kernel, dtype, device) -> passed
_lock = threading.Lock()  # one probe at a time: two threads reaching a new kernel together run it once


def probe(kernel: str) -> Callable[[Probe], Probe]:
    """Register the decorated function as the self-check probe of `kernel`."""

    def register(fn: Probe) -> Probe:
        _probes[kernel] = fn
        return fn

    return register


def registered() -> list[str]:
    """The kernels with a probe, sorted: those whose module has been imported."""
    return sorted(_probes)


def mode() -> str:
    """WORKBENCH_KERNELS, checked: one of MODES ("auto" when unset)."""
    value = os.environ.get(VARIABLE, "auto")
    if value not in MODES:
        raise ValueError(f"{VARIABLE}={value!r} is not allowed: choose one of {', '.join(MODES)}")
    return value


def dense(tensors: list[torch.Tensor]) -> bool:
    """Every tensor contiguous and of a kernel dtype: what the kernels take."""
    return all(t.dtype in DTYPES and t.is_contiguous() for t in tensors)


def triton_runs_on(device: torch.device) -> bool:
    """The switch: may kernels run on `device`? auto: CUDA; triton: CUDA, or the CPU under the interpreter;
    torch: nowhere."""
    chosen = mode()
    if chosen == "torch":
        return False
    if device.type == "cuda":
        return True
    return chosen == "triton" and device.type == "cpu" and interpreter_on()


def interpreter_on() -> bool:
    """Triton's interpreter is on (TRITON_INTERPRET, as Triton itself reads it); False where Triton is missing."""
    try:
        from triton import knobs
    except ImportError:
        return False
    return knobs.runtime.interpret


def use_kernel(kernel: str, dtype: torch.dtype, device: torch.device) -> bool:
    """The switch, then the self-check of (kernel, dtype, device), probed on the first call of the process."""
    return triton_runs_on(device) and passes(kernel, dtype, device)


def passes(kernel: str, dtype: torch.dtype, device: torch.device) -> bool:
    """The verdict of (kernel, dtype, device): its probe ran without raising, on the first call of the process."""
    key = (kernel, dtype, device)
    verdict = _verdicts.get(key)
    if verdict is None:
        with _lock:
            verdict = _verdicts.get(key)
            if verdict is None:
                verdict = _verdicts[key] = _run(kernel, dtype, device)
    return verdict


def _run(kernel: str, dtype: torch.dtype, device: torch.device) -> bool:
    """Run the probe with autograd on and autocast off, whatever the caller's context; warn once when it fails."""
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(f"workbench.kernels: the {kernel} kernel's self-check ({dtype}, {device}) cannot run inside "
                           "a CUDA graph capture: make one call (one optimizer step) before capturing")
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            _probes[kernel](dtype, device)
    except Exception as error:  # noqa: BLE001  whatever failed, the kernel is not to be trusted here
        warnings.warn(
            f"workbench.kernels: the {kernel} kernel failed its self-check for {dtype} on {describe(device)}: "
            f"{type(error).__name__}: {error}\nThe torch reference runs in its place for the rest of this process "
            f"(as with {VARIABLE}=torch).",
            KernelFallbackWarning, stacklevel=5,
        )
        return False
    return True


def describe(device: torch.device) -> str:
    """The device as a bug report needs it: its name and compute capability."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{device} ({torch.cuda.get_device_name(device)}, compute capability {major}.{minor})"
    return f"{device} (Triton's interpreter)"


if __name__ == "__main__":  # the command is a module of its own, which imports the families that import this one
    from workbench.kernels.selfcheck_report import main

    main()

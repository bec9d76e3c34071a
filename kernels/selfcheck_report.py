"""The kernels' self-checks as a command: every kernel family's probe on one device, in every dtype, as a Markdown
table (`workbench.kernels.selfcheck`), with exit status 1 if one fails; benchmarks/gpu_check.sh runs it on a GPU.

    python -m workbench.kernels.selfcheck [--device cuda|cpu]

A module of its own because it imports every family, so that their probes register, and each family imports
`selfcheck` for its switch and registry; `selfcheck` run as a script calls `main` here.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch

from workbench.kernels import lightsb_lse, lion, selfcheck, spd_sqrt  # noqa: F401  the families register their probes
from workbench.optim import adamw8bit  # noqa: F401


def main() -> None:
    """Every registered probe on one device, in every dtype: a Markdown table; exit status 1 if one fails."""
    parser = argparse.ArgumentParser(prog="python -m workbench.kernels.selfcheck",
                                     description="Run the kernels' self-checks and print their verdicts.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda (default where present), or cpu under TRITON_INTERPRET=1")
    device = torch.device(parser.parse_args().device)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    elif not selfcheck.interpreter_on():
        sys.exit(f"no kernel runs on {device} here: use a CUDA device (--device cuda), or set TRITON_INTERPRET=1 to "
                 "check the kernels through Triton's interpreter")
    print(f"Self-check on {selfcheck.describe(device)}\n")
    print("| kernel | dtype | verdict | seconds (with compilation) |\n|---|---|---|---|")
    failed = False
    for kernel in selfcheck.registered():
        for dtype in selfcheck.DTYPES:
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", selfcheck.KernelFallbackWarning)
                ok = selfcheck.passes(kernel, dtype, device)
            failed |= not ok
            verdict = "pass" if ok else "FAIL: " + " ".join(str(w.message) for w in caught).replace("\n", " ")
            print(f"| {kernel} | {str(dtype).removeprefix('torch.')} | {verdict} | {time.perf_counter() - start:.2f} |")
    sys.exit(1 if failed else 0)

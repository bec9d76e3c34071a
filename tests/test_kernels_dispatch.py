"""Triton is imported only when a kernel runs: the methods and optimizers import without it, and their CPU paths run
where it is missing (e.g. on macOS), also with WORKBENCH_KERNELS=triton (Triton runs nowhere there). Checked in a
fresh interpreter, since this one has imported Triton for the interpreter (conftest)."""
import subprocess
import sys

SCRIPT = """
import workbench.methods.lightsb, workbench.optim, workbench.methods.spd; import sys
assert 'triton' not in sys.modules, 'importing the methods and optimizers imported triton'

sys.modules['triton'] = None  # from here on `import triton` fails, as where it is not installed
import torch
from workbench.kernels.spd_sqrt import sqrt_and_invsqrt
from workbench.methods.lightsb import LightSB
from workbench.optim import Lion
model = LightSB(3, 4, epsilon=0.3)  # diagonal S: through the log-sum-exp dispatch
model.loss(torch.randn(8, 3), torch.randn(8, 3)).backward()
model.mixture_weights(torch.randn(8, 3))
Lion(model.parameters()).step()  # torch's Optimizer probes for triton itself (torch._dynamo), and copes
sqrt_and_invsqrt(torch.eye(3).expand(2, 3, 3))

import os
os.environ.update(WORKBENCH_KERNELS='triton', TRITON_INTERPRET='1')  # the kernels wherever Triton runs: nowhere here
model.loss(torch.randn(8, 3), torch.randn(8, 3)).backward()
Lion(model.parameters()).step()
sqrt_and_invsqrt(torch.eye(3).expand(2, 3, 3))
"""


def test_methods_and_optimizers_import_and_run_on_cpu_without_triton():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

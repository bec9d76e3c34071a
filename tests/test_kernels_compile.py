"""The Triton kernels compile for sm_80 and sm_90 without spilling (workbench.kernels.compile_report), on this CPU.

Compiling needs the kernels un-interpreted, and conftest turns Triton's interpreter on for this process before any
kernel is decorated; so the check runs in a fresh Python without TRITON_INTERPRET, with an empty Triton cache as on
a CI machine: the report's --quick check (22 compilations), then one kernel that spills on purpose, to show that
the check catches it; about 30 s of CPU in all. The tuned launch's pruning, which only a GPU runs, is tested here with
a stand-in kernel."""
import os
import subprocess
import sys
import warnings

import pytest
import triton

from workbench.kernels.tuning import Tuned

KERNELS = ["_forward_kernel", "_grad_x_kernel", "_grad_eta_kernel", "_newton_schulz_kernel", "_lion_kernel",
           "_adamw8bit_kernel"]

SCRIPT = '''
import sys

import torch
import triton
import triton.language as tl

from workbench.kernels import compile_report


@triton.jit
def hoard(x_ptr, BLOCK: tl.constexpr):
    """A (BLOCK, BLOCK) tile held whole across a sum: BLOCK² / 32 registers a thread in one warp, 512 at 128."""
    i = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + i[:, None] * BLOCK + i[None, :])
    tl.store(x_ptr + i[:, None] * BLOCK + i[None, :], x / tl.sum(tl.sum(x, axis=1), axis=0))


status = compile_report.main(["--quick"])  # sm_80 and sm_90
case = compile_report.Case("hoard", lambda: hoard[(1,)](torch.zeros(128, 128), BLOCK=128, num_warps=1), quick=True)
(row,) = compile_report.report([case], [80])
print("hoard:", "; ".join(row.problems))
sys.exit(status)
'''


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compile")
    (folder / "check.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(folder / "triton"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(folder / "check.py")], env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_every_kernel_compiles_for_sm80_and_sm90_without_spilling(check):
    summary = "\n".join(line for line in check.stdout.splitlines() if not line.startswith("|"))  # the table left out
    assert check.returncode == 0, summary + check.stderr[-4000:]
    rows = [line.split(" | ") for line in check.stdout.splitlines() if line.startswith("| _")]
    compiled = {(row[0].strip("| "), row[3]) for row in rows}
    assert compiled == {(kernel, arch) for kernel in KERNELS for arch in ("sm_80", "sm_90")}
    assert all(row[5] == "0" and row[-1].strip(" |") == "ok" for row in rows)


@pytest.mark.slow
def test_the_check_catches_a_kernel_that_spills(check):
    assert "hoard: spills" in check.stdout, check.stdout[-2000:] + check.stderr[-2000:]


class Kernel:
    """A stand-in for a JIT function whose compiled kernel spills `spills[num_warps]` bytes."""
    arg_names = ["x", "BLOCK"]
    __name__ = "stand_in"

    fn = staticmethod(lambda x, BLOCK: None)  # what triton.autotune unwraps to

    def __init__(self, spills):
        self.spills, self.warmed = spills, []

    def warmup(self, *args, grid, num_warps, num_stages, num_ctas, **kwargs):
        self.warmed.append((args, kwargs, num_warps))
        spills = self.spills[num_warps]

        class Compiled:
            n_spills = spills

            def _init_handles(self):
                pass
        return Compiled()


@pytest.mark.parametrize("spills, kept", [({4: 0, 8: 16, 16: 0}, [4, 16]), ({4: 32, 8: 16, 16: 64}, [8])])
def test_tuning_keeps_the_configurations_that_do_not_spill_on_the_device(spills, kept):
    kernel = Kernel(spills)
    tuned = Tuned(kernel, [(4, 1), (8, 2), (16, 1)], key=["x"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruned = tuned.spill_free(tuned.configs, {"x": 7}, grid=(3,), warmup=False, BLOCK=16)
    assert [config.num_warps for config in pruned] == kept
    assert all(isinstance(config, triton.Config) for config in pruned)
    assert kernel.warmed == [((7,), {"BLOCK": 16}, warps) for warps in (4, 8, 16)]  # compiled with the launch's args
    assert (len(caught) == 1 and "every configuration spills" in str(caught[0].message)) == (kept == [8])

"""What a GPU would see, seen on a CPU: every Triton kernel of workbench.kernels, at every launch configuration its
dispatch can choose for the benchmark shapes and for the shapes the methods use at their defaults, compiled ahead of
time for sm_80 (A100), sm_90 (H100) and sm_100 (B200, where this Triton targets it), with the registers, spill
bytes, shared memory and instruction count of each binary. No GPU, no network.

    python -m workbench.kernels.compile_report [--arch 80,90] [--quick]
    python benchmarks/kernels.py --compile-only [--quick]

How. Each case (`CASES`) calls the kernels' own launchers (`mixture_logsumexp_triton`, `newton_schulz_triton`,
`lion_triton_`, `adamw8bit_triton_`) on CPU tensors under `recording(arch)`: a stand-in driver reports the target
and runs nothing, and Triton's `jit_cache_hook` records each launch's specialization (argument types and
divisibility, constexprs, options) instead of compiling it. A kernel with several configurations (`tuning.Tuned`)
is "timed" by the stand-in's benchmarker, which only records, so every configuration it could choose is recorded.
Each distinct launch is then compiled for the target by Triton itself (`JITFunction.preload` of the recorded
specialization); `cuobjdump -res-usage`, from Triton's wheel, reads the registers and stack bytes per thread
(the stack holds what the registers could not: the spills), the instructions are counted from the binary's ELF
section, and the shared memory of a block is the binary's static part plus what Triton asks for at launch.

A launch fails the check when it does not compile, spills a byte, or needs more shared memory than a block of its
architecture can have; `main` exits 1 if one does. --quick, the check that tests/test_kernels_compile.py runs in
the default test suite: the cases marked quick (LightSB's benchmark and default shapes, SPD's largest block, the
optimizers), each tuned kernel at its first configuration only (the one the interpreter runs; on a GPU,
`tuning.Tuned` drops any other that spills there), for sm_80 and sm_90.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase
from triton.runtime.driver import driver

from workbench.kernels import tuning

SHARED_LIMIT = {80: 166912, 90: 232448, 100: 232448}  # bytes a block may use: 163 KiB (A100), 227 KiB (H100, B200)
CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


# --- the cases: the dispatches' launches at the benchmark shapes and at the methods' defaults ---------------------

@dataclasses.dataclass
class Case:
    name: str
    run: Callable[[], None]  # calls the launchers once
    quick: bool  # in the test suite's check


def _lightsb(N: int, K: int, D: int) -> Callable[[], None]:
    """The forward (log-sum-exp and weights) and both gradient kernels at (N, K, D)."""
    def run():
        from workbench.kernels.lightsb_lse_triton import mixture_logsumexp_triton, mixture_weights_triton

        x, eta = torch.zeros(N, D, requires_grad=True), torch.zeros(K, 2 * D + 1, requires_grad=True)
        torch.autograd.grad(mixture_logsumexp_triton(x, eta).sum(), (x, eta))
        mixture_weights_triton(x.detach(), eta.detach())
    return run


def _spd(n: int) -> Callable[[], None]:
    def run():
        from workbench.kernels.spd_sqrt_triton import newton_schulz_triton

        newton_schulz_triton(torch.eye(n).expand(2, n, n))
    return run


def _lion(dtype: torch.dtype) -> Callable[[], None]:
    """One launch: the kernel specializes on the dtypes only (tensors of any sizes share it)."""
    def run():
        from workbench.kernels.lion_triton import lion_triton_

        W, g, m = ([torch.zeros(300, dtype=dtype)] for _ in range(3))
        lion_triton_(W, g, m, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)
    return run


def _adamw8bit() -> None:
    """One launch with float32 weights and 8-bit states, AdamW8bit's defaults (rounding "nearest")."""
    from workbench.kernels.adamw8bit_triton import adamw8bit_triton_
    from workbench.optim import AdamW8bit
    from workbench.optim.quantization import dynamic_map

    W = [torch.zeros(4096)]
    states = [AdamW8bit._init_state(W[0], quantized=True)]
    adamw8bit_triton_(W, [torch.zeros(4096)], states, dynamic_map(signed=True), dynamic_map(signed=False), lr=1e-3,
                      betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, rounding="nearest")


CASES = [
    Case("LightSB N=65536 K=256 D=64 (benchmark)", _lightsb(65536, 256, 64), quick=True),
    Case("LightSB N=128 K=50 D=2 (experiment defaults)", _lightsb(128, 50, 2), quick=True),
    Case("LightSB N=4096 K=100 D=100 (D > 64, D % 16 > 0)", _lightsb(4096, 100, 100), quick=False),
    Case("SPD n=8 (spd_normalization's BN)", _spd(8), quick=False),
    Case("SPD n=16 (benchmark)", _spd(16), quick=False),
    Case("SPD n=32 (benchmark)", _spd(32), quick=False),
    Case("SPD n=50 (n > 32, n % 16 > 0)", _spd(50), quick=False),
    Case("SPD n=64 (the kernel's largest)", _spd(64), quick=True),
    Case("Lion float32", _lion(torch.float32), quick=True),
    Case("Lion bfloat16 (benchmark)", _lion(torch.bfloat16), quick=False),
    Case("AdamW8bit float32", _adamw8bit, quick=True),
]


# --- recording and compiling ----------------------------------------------------------------------------------------

class _StandIn(DriverBase):
    """A CUDA driver for `arch` that runs nothing: the JIT asks it for the target, device and stream; the
    autotuner's benchmarker reports equal times (so the first configuration wins), after launching each
    configuration once (recorded, not run) if `every_config`."""

    def __init__(self, arch: int, every_config: bool = True):
        super().__init__()
        self.arch, self.every_config = arch, every_config

    @classmethod
    def is_active(cls):
        return True

    def get_current_target(self):
        return GPUTarget("cuda", self.arch, 32)

    def get_current_device(self):
        return self.arch  # one JIT cache (binder, target) per architecture

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("cpu")

    def get_benchmarker(self):
        return _record_each

    def map_python_to_cpp_type(self, ty):
        raise NotImplementedError("the stand-in driver launches nothing")


def _record_each(kernel_call, quantiles, **_):
    """The stand-in's benchmarker. An autotuner keeps the first benchmarker it gets, so this one asks the driver
    that is active when it is called."""
    if driver.active.every_config:
        kernel_call()
    return [0.0] * len(quantiles)


@dataclasses.dataclass(frozen=True)
class Launch:
    kernel: object  # the JITFunction
    specialization: str  # Triton's JSON of signature, constexprs, attributes, options and target

    @property
    def configuration(self) -> str:
        """The tiles, dtypes and switches (constexprs) and the warps and stages of the launch."""
        data = json.loads(self.specialization)
        names = self.kernel.arg_names
        shown = [f"{names[key[0]]}={value}" for key, value in zip(data["constant_keys"], data["constant_vals"])
                 if isinstance(value, bool) or any(word in names[key[0]] for word in ("BLOCK", "DTYPE", "ROWS"))]
        options = data["options"]
        warps, stages = options["num_warps"], options["num_stages"]
        return f"{' '.join(shown)}, {warps} warps, {stages} stage{'s' * (stages != 1)}"


@contextlib.contextmanager
def _target(arch: int, every_config: bool = True) -> Iterator[None]:
    previous = driver._active  # None until Triton needed a driver
    driver.set_active(_StandIn(arch, every_config))
    try:
        yield
    finally:
        driver._active = previous


@contextlib.contextmanager
def recording(arch: int, every_config: bool = True) -> Iterator[list[Launch]]:
    """The launches that the code inside makes, for `arch`, each compiled and run never (their outputs stay
    uninitialised): with every configuration of a tuned kernel, or its first only (`every_config=False`)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("the compile report needs the compiler: run it without TRITON_INTERPRET=1")
    launches: list[Launch] = []

    def hook(*, fn, compile, is_manual_warmup, **_):
        if not is_manual_warmup:  # the prune's warm-ups: recorded when "timed"
            launches.append(Launch(fn.jit_function, compile["specialization_data"]))
        return True  # compiled: nothing

    previous, knobs.runtime.jit_cache_hook = knobs.runtime.jit_cache_hook, hook
    tuning.forget()  # so that each tuned kernel prunes and "times" its configurations for this architecture
    try:
        with _target(arch, every_config):
            yield launches
    finally:
        knobs.runtime.jit_cache_hook = previous
        tuning.forget()


@dataclasses.dataclass
class Row:
    kernel: str
    case: str
    configuration: str
    arch: int
    registers: int = 0
    spill: int = 0  # bytes per thread
    shared: int = 0  # bytes per block
    instructions: int = 0
    error: str = ""

    @property
    def problems(self) -> list[str]:
        if self.error:
            return [self.error]
        return ([f"spills {self.spill} bytes"] if self.spill else []) + (
            [f"needs {self.shared} bytes of shared memory, more than {SHARED_LIMIT[self.arch]}"]
            if self.shared > SHARED_LIMIT[self.arch] else [])


def _read_binary(cubin: bytes, name: str) -> tuple[int, int, int, int]:
    """Registers, stack bytes and static shared bytes per thread/block of kernel `name` in a cubin, and its
    instructions: the size of its ELF section .text.<name> over 16 bytes, the size of every instruction from sm_70 on
    (what `cuobjdump -sass` lists, in a hundredth of its time)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        usage = subprocess.run([CUOBJDUMP, "-res-usage", file.name], capture_output=True, text=True, check=True).stdout
    registers, stack, shared = (int(re.search(rf"\b{field}:(\d+)", usage).group(1))
                                for field in ("REG", "STACK", "SHARED"))
    return registers, stack, shared, _section_size(cubin, f".text.{name}") // 16


def _section_size(elf: bytes, wanted: str) -> int:
    """The size of an ELF64 section, by name."""
    (table,), (entry, count, names) = struct.unpack_from("<Q", elf, 0x28), struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, table + i * entry) for i in range(count)]  # name, ..., offset, size
    strings = headers[names][4]
    for name, *_, size in headers:
        if elf[strings + name:elf.index(b"\0", strings + name)].decode() == wanted:
            return size
    raise ValueError(f"no section {wanted} in the cubin")


def compile_launch(launch: Launch, arch: int, case: str) -> Row:
    row = Row(launch.kernel.__name__, case, launch.configuration, arch)
    try:
        with _target(arch):
            compiled = launch.kernel.preload(launch.specialization)
        # preload also caches the kernel for the stand-in device: drop it, or a later recording would launch it
        launch.kernel.device_caches[arch][0].pop(json.loads(launch.specialization)["key"])
        row.registers, row.spill, static_shared, row.instructions = _read_binary(compiled.asm["cubin"],
                                                                                 compiled.metadata.name)
        row.shared = static_shared + compiled.metadata.shared
    except Exception as error:  # noqa: BLE001  a compile error is a row of the report
        row.error = f"does not compile: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return row


@triton.jit
def _empty():
    pass


def can_target(arch: int) -> bool:
    """Whether this Triton compiles for `arch` (sm_100 needs its Blackwell ptxas)."""
    try:
        with _target(arch):
            triton.compile(triton.compiler.ASTSource(_empty, {}), target=GPUTarget("cuda", arch, 32))
    except Exception:  # noqa: BLE001  any failure means: not this architecture
        return False
    return True


def report(cases: list[Case], archs: list[int], every_config: bool = True,
           progress: Callable[[Row], None] = lambda row: None) -> list[Row]:
    """One row per distinct launch of `cases` and architecture."""
    rows = []
    for arch in archs:
        seen = set()
        for case in cases:
            with recording(arch, every_config) as launches:
                case.run()
            for launch in launches:
                if launch.specialization not in seen:
                    seen.add(launch.specialization)
                    rows.append(compile_launch(launch, arch, case.name))
                    progress(rows[-1])
    return rows


HEADER = ("| kernel | case | configuration | arch | registers | spill bytes | shared memory bytes (limit) "
          "| instructions | verdict |\n|---|---|---|---|---|---|---|---|---|")


def table_row(r: Row) -> str:
    return (f"| {r.kernel} | {r.case} | {r.configuration} | sm_{r.arch} | {r.registers} | {r.spill} "
            f"| {r.shared} ({SHARED_LIMIT[r.arch]}) | {r.instructions} | {'; '.join(r.problems) or 'ok'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="", help="comma-separated compute capabilities (default: 80, 90, and 100 "
                                                   "where this Triton targets it, but with --quick)")
    parser.add_argument("--quick", action="store_true", help="the test suite's check: the quick cases, each tuned "
                                                              "kernel at its first configuration")
    args = parser.parse_args(argv)
    archs = [int(a) for a in args.arch.split(",") if a] or [80, 90] + [100] * (not args.quick and can_target(100))
    if not set(archs) <= set(SHARED_LIMIT):
        parser.error(f"--arch {args.arch}: the report knows {', '.join(map(str, SHARED_LIMIT))}")
    cases = [case for case in CASES if case.quick or not args.quick]
    print(f"# Kernels compiled for {', '.join(f'sm_{a}' for a in archs)}: triton {triton.__version__}\n")
    print(HEADER)
    rows = report(cases, archs, every_config=not args.quick, progress=lambda row: print(table_row(row), flush=True))
    failed = [r for r in rows if r.problems]
    print(f"\n{len(rows)} launches, {len(failed)} failing" + "".join(
        f"\n- {r.kernel} ({r.configuration}) on sm_{r.arch}: {'; '.join(r.problems)}" for r in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

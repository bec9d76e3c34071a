"""The Triton kernels of workbench.kernels against torch eager and torch.compile of their references, on CUDA.

    .venv/bin/python benchmarks/kernels.py                    # every case
    .venv/bin/python benchmarks/kernels.py --only lion,adamw  # cases whose family or name contains a word
    .venv/bin/python benchmarks/kernels.py --quick            # a short GPU check: no torch.compile, 10 repeats
    .venv/bin/python benchmarks/kernels.py --compile-only     # no GPU: what each kernel compiles to (below)

--quick keeps the shapes, at which the kernels' targets are stated, and leaves out torch.compile, whose compilation
takes minutes, with 10 repeats after 2 warm-up calls (which include the kernels' own compilation and tuning).

--compile-only compiles every kernel, at every launch configuration its dispatch can choose for these cases' shapes
and for the methods' defaults, for sm_80, sm_90 and (where this Triton can) sm_100, on the CPU, and prints
registers, spill bytes, shared memory and instructions per launch; it exits 1 if one fails to compile, spills or
needs more shared memory than its architecture has (workbench.kernels.compile_report; with --quick, the test
suite's subset).

Each case times every implementation side by side in one process on the same inputs: the median of --repeats
calls timed with CUDA events, the calls in a new random order per repeat, after --warmup calls (which also
compile). A memory-bound case states the bytes one call must move at least (each input read once, each output
written once) and its row shows bytes / time against the device's device-to-device copy bandwidth measured here
(a large tensor copied, read + write bytes / time); a compute-bound case states its FLOPs, against the measured
fp32 matmul rate. "x eager" is the eager reference's time over the row's. Without CUDA the script says so and
exits 0.

A case is a function Bench -> rows registered with @case, in a section per kernel family; it builds its inputs
once and returns `bench.compare(...)`.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Row:
    family: str
    case: str
    impl: str
    seconds: float
    eager_seconds: float
    rate: float  # bytes/s or FLOP/s
    peak: float  # measured copy bandwidth or matmul rate, same unit
    unit: str  # "GB/s" or "TFLOP/s"


@dataclass
class Bench:
    repeats: int
    warmup: int
    leave_out: set[str] = field(default_factory=set)  # implementations not run (--quick: "compile")
    copy_bandwidth: float = 0.0  # bytes/s, measured
    matmul_rate: float = 0.0  # FLOP/s, measured
    notes: list[str] = field(default_factory=list)  # implementations that failed, and why

    def median_seconds(self, fns: list[Callable[[], object]]) -> list[float]:
        """Median CUDA-event time of each fn, the fns called in a new random order every repeat."""
        for _ in range(self.warmup):
            for fn in fns:
                fn()
        times: list[list[float]] = [[] for _ in fns]
        order, shuffle = list(range(len(fns))), random.Random(0).shuffle
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in fns]
        for _ in range(self.repeats):
            shuffle(order)
            for k in order:
                start, end = events[k]
                start.record()
                fns[k]()
                end.record()
                end.synchronize()
                times[k].append(start.elapsed_time(end) / 1e3)
        return [statistics.median(t) for t in times]

    def compare(self, family: str, case: str, impls: dict[str, Callable[[], object]], *,
                bytes_moved: float | None = None, flops: float | None = None) -> list[Row]:
        """Rows of each implementation (one of them named "eager"), with bytes_moved or flops per call. One that
        raises on its first call (torch.compile can) gets no row, and the error goes to `notes`."""
        impls = {name: fn for name, fn in impls.items()
                 if name not in self.leave_out and self.runs(f"{family}, {case}, {name}", fn)}
        seconds = dict(zip(impls, self.median_seconds(list(impls.values()))))
        if bytes_moved:
            work, peak, unit = bytes_moved, self.copy_bandwidth, "GB/s"
        else:
            work, peak, unit = flops, self.matmul_rate, "TFLOP/s"
        return [Row(family, case, impl, s, seconds["eager"], work / s, peak, unit) for impl, s in seconds.items()]

    def runs(self, name: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except Exception as error:
            self.notes.append(f"{name}: {type(error).__name__}: {str(error)[:200]}")
            return False
        return True

    def measure_peaks(self, copy_bytes: int = 2**30, n: int = 8192) -> None:
        """Device-to-device copy bandwidth (a copy_bytes tensor, read + write) and fp32 matmul rate (n x n x n)."""
        x = torch.empty(copy_bytes // 4, device="cuda")
        y = torch.empty_like(x)
        (t_copy,) = self.median_seconds([lambda: y.copy_(x)])
        self.copy_bandwidth = 2 * copy_bytes / t_copy
        a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        (t_mm,) = self.median_seconds([lambda: a @ b])
        self.matmul_rate = 2 * n**3 / t_mm


CASES: list[Callable[[Bench], list[Row]]] = []


def case(fn: Callable[[Bench], list[Row]]) -> Callable[[Bench], list[Row]]:
    """Register a case (run in definition order)."""
    CASES.append(fn)
    return fn


# ---------------------------------------------------------------- fused optimizer steps (Lion, AdamW8bit)


def gpt2_shapes() -> list[tuple[int, ...]]:
    """The 148 parameter shapes of GPT-2 small (124.4M parameters): embeddings, 12 blocks of attention and MLP
    weights and biases, layer norms; from 768 to 38.6M elements."""
    d, blocks = 768, []
    for _ in range(12):
        blocks += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return [(50257, d), (1024, d), *blocks, (d,), (d,)]


def filled(shapes: list[tuple[int, ...]], dtype: torch.dtype, scale: float = 1.0) -> list[torch.Tensor]:
    return [scale * torch.randn(s, device="cuda", dtype=dtype) for s in shapes]


@case
def lion_step(bench: Bench) -> list[Row]:
    """One Lion step of GPT-2 small's 148 tensors (124M elements), float32 and bfloat16. Bytes: W, g, m read and
    W, m written, 5 accesses per element."""
    from workbench.kernels.lion import lion_reference_
    from workbench.kernels.lion_triton import lion_triton_

    rows, compiled = [], torch.compile(lion_reference_)
    hyper = dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)
    for dtype in (torch.float32, torch.bfloat16):
        shapes = gpt2_shapes()
        impls = {}
        for name, step in (("triton", lion_triton_), ("eager", lion_reference_), ("compile", compiled)):
            W, g, m = filled(shapes, dtype), filled(shapes, dtype), filled(shapes, dtype, 0.01)
            impls[name] = lambda step=step, W=W, g=g, m=m: step(W, g, m, **hyper)
        n = sum(math.prod(s) for s in shapes)
        rows += bench.compare("optimizer step", f"Lion, GPT-2 small ({n / 1e6:.0f}M), {str(dtype)[6:]}", impls,
                              bytes_moved=5 * n * dtype.itemsize)
    return rows


@case
@torch.no_grad()  # as in the optimizer's step
def adamw8bit_step(bench: Bench) -> list[Row]:
    """One AdamW8bit step of GPT-2 small's tensors with 8-bit states (≥ 4096 elements: the 50 weight matrices,
    124M elements), float32 weights and gradients, states from a few real steps. Bytes: W, g, both codes read,
    W and codes written, both absmax read and written, 16 + 16/256 per element. The torch path ("eager", what
    AdamW8bit(fused=False) runs) goes tensor by tensor; "compile" is torch.compile of that loop."""
    from workbench.kernels.adamw8bit_triton import adamw8bit_triton_
    from workbench.optim import AdamW8bit
    from workbench.optim.adamw8bit import adamw8bit_torch_
    from workbench.optim.quantization import dynamic_map

    shapes = [s for s in gpt2_shapes() if math.prod(s) >= 4096]
    code_m, code_v = dynamic_map(signed=True).cuda(), dynamic_map(signed=False).cuda()
    hyper = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, rounding="nearest")

    def torch_path(W: list[torch.Tensor], states: list[dict]) -> None:
        for p, state in zip(W, states):
            adamw8bit_torch_(p, state, code_m, code_v, **hyper)

    compiled, impls = torch.compile(torch_path), {}
    for name in ("triton", "eager", "compile"):
        W = [torch.nn.Parameter(w) for w in filled(shapes, torch.float32, 0.02)]
        states = [AdamW8bit._init_state(p, quantized=True) for p in W]
        for p, state in zip(W, states):
            p.grad = 1e-3 * torch.randn_like(p)
            for _ in range(3):  # nonzero moments
                state["step"] += 1
                adamw8bit_torch_(p, state, code_m, code_v, **hyper)
        if name == "triton":
            impls[name] = lambda W=W, states=states: adamw8bit_triton_(W, [p.grad for p in W], states, code_m, code_v,
                                                                       **hyper)
        else:
            impls[name] = lambda f=torch_path if name == "eager" else compiled, W=W, states=states: f(W, states)
    n = sum(math.prod(s) for s in shapes)
    return bench.compare("optimizer step", f"AdamW8bit, GPT-2 small 8-bit states ({n / 1e6:.0f}M), float32", impls,
                         bytes_moved=n * (16 + 16 / 256))


# ---------------------------------------------------------------- LightSB mixture log-sum-exp, SPD square roots

@case
def lightsb_logsumexp(bench: Bench) -> list[Row]:
    """LightSB's log v_θ terms at N = 65536, K = 256, D = 64: forward, and forward + backward to η (training).
    FLOPs: the reference's products, 2·N·K·(2D+1) forward and as many for ∂L/∂η."""
    from workbench.kernels.lightsb_lse import logsumexp_reference
    from workbench.kernels.lightsb_lse_triton import mixture_logsumexp_triton

    N, K, D = 65536, 256, 64
    x = torch.randn(N, D, device="cuda")
    s = torch.rand(K, D, device="cuda") + 0.5  # S_k's eigenvalues, ε = 1
    r = torch.randn(K, D, device="cuda")
    eta = torch.cat([-0.5 / s, r / s, -(r * r / s).sum(-1, keepdim=True) / 2], dim=1).requires_grad_()  # (K, 2D+1)
    g = torch.full((N,), 1 / N, device="cuda")
    compiled = torch.compile(logsumexp_reference)
    impls = {"triton": mixture_logsumexp_triton, "eager": logsumexp_reference, "compile": compiled}
    flops = 2 * N * K * (2 * D + 1)
    rows = bench.compare("lightsb lse", f"forward N={N} K={K} D={D}",
                         {name: lambda f=f: f(x, eta.detach()) for name, f in impls.items()}, flops=flops)
    return rows + bench.compare("lightsb lse", f"fwd+bwd(η) N={N} K={K} D={D}",
                                {name: lambda f=f: torch.autograd.grad(f(x, eta), eta, g) for name, f in impls.items()},
                                flops=2 * flops)


@case
def spd_sqrt(bench: Bench) -> list[Row]:
    """(X^½, X^{−½}) of 4096 SPD matrices of n = 16 and 32 (Wishart, κ ~ 10³): Newton–Schulz through the dispatch
    (with its residual check) against eigh. Bytes: X read once, two results written."""
    from workbench.kernels.spd_sqrt import sqrt_and_invsqrt, sqrt_and_invsqrt_reference

    rows, batch = [], 4096
    compiled = torch.compile(sqrt_and_invsqrt_reference)
    for n in (16, 32):
        A = torch.randn(batch, n, 2 * n, device="cuda")
        X = A @ A.mT / (2 * n) + 1e-3 * torch.eye(n, device="cuda")  # (batch, n, n)
        impls = {"newton-schulz": sqrt_and_invsqrt, "eager": sqrt_and_invsqrt_reference, "compile": compiled}
        rows += bench.compare("spd sqrt", f"{batch} x {n}x{n}", {name: lambda f=f: f(X) for name, f in impls.items()},
                              bytes_moved=3 * X.numel() * 4)
    return rows


# ----------------------------------------------------------------


def print_table(rows: list[Row], bench: Bench) -> None:
    print(f"copy bandwidth {bench.copy_bandwidth / 1e9:.0f} GB/s, fp32 matmul {bench.matmul_rate / 1e12:.1f} TFLOP/s\n")
    print("| family | case | implementation | median | x eager | achieved | % of peak |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        scale = 1e9 if r.unit == "GB/s" else 1e12
        print(f"| {r.family} | {r.case} | {r.impl} | {r.seconds * 1e3:.3f} ms | {r.eager_seconds / r.seconds:.2f} "
              f"| {r.rate / scale:.0f} {r.unit} | {100 * r.rate / r.peak:.0f} % |")
    print("".join(f"\n- failed: {note}" for note in bench.notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, help="timed calls per implementation (median; 50, 10 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed calls first, which also compile (5, 2 with --quick)")
    parser.add_argument("--only", default="", help="comma-separated words; run the cases whose name contains one")
    parser.add_argument("--quick", action="store_true", help="no torch.compile, 10 repeats after 2 warm-up calls")
    parser.add_argument("--compile-only", action="store_true", help="compile the kernels for sm_80/90/100 on the "
                        "CPU and report registers, spills, shared memory; exit 1 on a failure (no GPU needed)")
    args = parser.parse_args()
    if args.compile_only:
        from workbench.kernels import compile_report

        sys.exit(compile_report.main(["--quick"] * args.quick))
    if not torch.cuda.is_available():
        print("No CUDA device: the kernel benchmarks need one (the kernels are tested on CPU by the interpreter).")
        return
    import triton

    repeats, warmup = (10, 2) if args.quick else (50, 5)
    bench = Bench(repeats if args.repeats is None else args.repeats, warmup if args.warmup is None else args.warmup,
                  leave_out={"compile"} if args.quick else set())
    bench.measure_peaks()
    versions = f"torch {torch.__version__}, triton {triton.__version__}"
    print(f"# Kernel benchmarks: {torch.cuda.get_device_name()}, {versions}\n")
    words = [w.lower() for w in args.only.split(",") if w]
    rows = [row for case in CASES if not words or any(w in case.__name__.lower() for w in words) for row in case(bench)]
    print_table(rows, bench)


if __name__ == "__main__":
    main()

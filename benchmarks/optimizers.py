"""Step time and state memory of the workbench optimizers, side by side with torch AdamW and the
reference packages, printed as markdown tables (method note, last section).

    python benchmarks/optimizers.py                       # sizes 512,1024,2048, 30 steps, CPU
    python benchmarks/optimizers.py --sizes 512 --steps 10

Setup per size n: four bias-free nn.Linear(n, n) weights, fp32, fixed gradients,
`optimizer.step()` alone, median of --steps steps after --warmup steps, torch.set_num_threads(--threads).
Ratios are to torch.optim.AdamW(foreach=True) and to the reference package run on the same
configuration in the same process (timings on a shared CPU drift by ±30 % between runs; compare
only within one run). "refresh" is the median step with update_proj_gap = 1, i.e. a new
subspace every step (the plain step uses a gap longer than the run). The reference packages are
optional (`pip install 'workbench[test]'`, which `make test` installs); a missing one is reported and skipped.

glibc's allocator page-faults on large temporaries unless told otherwise: the script re-executes
itself with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 when they are unset,
so every optimizer runs under the same setting.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184"}
if __name__ == "__main__" and any(k not in os.environ for k in MALLOC_ENV):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

import torch  # noqa: E402

from workbench.optim import (  # noqa: E402
    APOLLO,
    FRUGAL,
    LAMB,
    AdamW8bit,
    APOLLOMini,
    DCTAdamW,
    GaLoreAdamW,
    Lion,
    optimizer_state_bytes,
)
from workbench.optim.projectors import dct_basis, refresh  # noqa: E402

NO_REFRESH = 10**9  # an update_proj_gap longer than any run: only the first update refreshes


def optional(module: str):
    """The module, or None when the reference package is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


galore_torch, apollo_torch = optional("galore_torch"), optional("apollo_torch")
lion_pytorch, torch_optimizer = optional("lion_pytorch"), optional("torch_optimizer")
bitsandbytes = optional("bitsandbytes")

Factory = Callable[[list, int, int], torch.optim.Optimizer]  # (params, n, update_proj_gap) -> optimizer


@dataclass
class Config:
    name: str
    ours: Factory
    reference: Factory | None  # None: its package is not installed (or not published)
    reference_name: str
    refreshes: bool = False


LR = 1e-3
APOLLO_REF_KEYS = dict(proj="random", proj_type="std", scale_front=False, disable_nl=False)


def configs() -> list[Config]:
    """Each workbench optimizer and, where its package is installed, the reference on the same setting."""
    return [
        Config(
            "GaLoreAdamW rank n/4",
            lambda ps, n, gap: GaLoreAdamW(ps, lr=LR, rank=n // 4, update_proj_gap=gap, scale=1.0),
            galore_torch and (lambda ps, n, gap: galore_torch.GaLoreAdamW(
                [dict(params=ps, rank=n // 4, update_proj_gap=gap, scale=1.0, proj_type="std")], lr=LR)),
            "galore-torch",
            refreshes=True,
        ),
        Config(
            "DCTAdamW rank n/4",
            lambda ps, n, gap: DCTAdamW(ps, lr=LR, rank=n // 4, update_proj_gap=gap),
            None,
            "ista-daslab-optimizers (git only)",
            refreshes=True,
        ),
        Config(
            "APOLLO rank n/4, channel",
            lambda ps, n, gap: APOLLO(ps, lr=LR, rank=n // 4, update_proj_gap=gap, scale_type="channel", scale=1.0),
            apollo_torch and (lambda ps, n, gap: apollo_torch.APOLLOAdamW(
                [dict(params=ps, rank=n // 4, update_proj_gap=gap, scale_type="channel", scale=1.0, **APOLLO_REF_KEYS)],
                lr=LR)),
            "apollo-torch",
            refreshes=True,
        ),
        Config(
            "APOLLO-Mini rank 1, tensor, scale 128",
            lambda ps, n, gap: APOLLOMini(ps, lr=LR, rank=1, update_proj_gap=gap, scale_type="tensor", scale=128.0),
            apollo_torch and (lambda ps, n, gap: apollo_torch.APOLLOAdamW(
                [dict(params=ps, rank=1, update_proj_gap=gap, scale_type="tensor", scale=128.0, **APOLLO_REF_KEYS)],
                lr=LR)),
            "apollo-torch",
            refreshes=True,
        ),
        Config(
            "FRUGAL density 1/4, SVD",
            lambda ps, n, gap: FRUGAL(ps, lr=LR, density=0.25, update_proj_gap=gap),
            None,
            "FRUGAL (git only)",
        ),
        Config(
            "Lion",
            lambda ps, n, gap: Lion(ps, lr=LR),
            lion_pytorch and (lambda ps, n, gap: lion_pytorch.Lion(ps, lr=LR)),
            "lion-pytorch",
        ),
        Config(
            "LAMB debias=False",
            lambda ps, n, gap: LAMB(ps, lr=LR, debias=False),
            torch_optimizer and (lambda ps, n, gap: torch_optimizer.Lamb(ps, lr=LR, debias=False)),
            "torch-optimizer",
        ),
    ] + [
        Config(
            f"AdamW8bit{'' if fused else ' fused=False (torch ops)'}",
            lambda ps, n, gap, fused=fused: AdamW8bit(ps, lr=LR, fused=fused),
            bitsandbytes and (lambda ps, n, gap: bitsandbytes.optim.AdamW8bit(ps, lr=LR)),
            "bitsandbytes",
        )
        for fused in (True, False)
    ]


def make_params(n: int, device: str) -> list[torch.nn.Parameter]:
    """Weights of four bias-free nn.Linear(n, n), each with a fixed gradient (seeded)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.nn.Linear(n, n, bias=False).weight.detach().to(device)) for _ in range(4)]
    for p in params:
        p.grad = 1e-3 * torch.randn_like(p)
    return params


def median_seconds(fns: list[Callable[[], object]], repeats: int, warmup: int, device: str) -> list[float]:
    """Median wall time of each fn, the fns called in turn (so load drift hits all of them alike),
    in a new random order every repeat, so that no fn always runs right after the same other one
    and inherits the caches it left dirty (with a fixed order, ratios of the memory-bound steps
    moved by up to 20 % at these sizes)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    order, shuffle = list(range(len(fns))), random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for k in order:
            sync()
            start = time.perf_counter()
            fns[k]()
            sync()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def build(factory: Factory | None, n: int, gap: int, device: str, errors: list[str], name: str):
    """The optimizer over fresh parameters, or None (no package, or it fails here: the reason goes to `errors`)."""
    if factory is None:
        return None
    try:
        optimizer = factory(make_params(n, device), n, gap)
        optimizer.step()
        return optimizer
    except Exception as error:  # a reference package that does not run here (e.g. CUDA-only code)
        errors.append(f"{name}: {type(error).__name__}: {str(error)[:100]}")
        return None


def adamw(ps: list, n: int, gap: int) -> torch.optim.Optimizer:
    return torch.optim.AdamW(ps, lr=LR, foreach=True)


def step_times(c: Config, n: int, gap: int, repeats: int, warmup: int, device: str, errors: list[str], baseline=True):
    """Median step seconds and state bytes of "adamw" (if baseline), "ours" and "ref", for those that run."""
    factories = {"adamw": adamw if baseline else None, "ours": c.ours, "ref": c.reference}
    names = {"adamw": "torch AdamW", "ours": c.name, "ref": c.reference_name}
    built = {k: build(f, n, gap, device, errors, names[k]) for k, f in factories.items()}
    live = {k: o for k, o in built.items() if o is not None}
    times = dict(zip(live, median_seconds([o.step for o in live.values()], repeats, warmup, device)))
    return times, {k: optimizer_state_bytes(o) for k, o in live.items()}


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a / b:.2f}"


def fmt_s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def step_table(n: int, args) -> None:
    print(f"\n### Four {n}x{n} weights: step time and state, ratios to AdamW(foreach) and to the reference\n")
    print("| optimizer | step | x AdamW | x reference | refresh step (gap 1): ours / reference "
          "| state MiB | state x AdamW | state x reference | reference |")
    print("|---|---|---|---|---|---|---|---|---|")
    errors: list[str] = []
    for c in configs():
        if args.only and not any(word.lower() in c.name.lower() for word in args.only.split(",")):
            continue
        t, b = step_times(c, n, NO_REFRESH, args.steps, args.warmup, args.device, errors)
        refresh = "–"
        if c.refreshes:
            r, _ = step_times(c, n, 1, args.refresh_steps, 1, args.device, [], baseline=False)
            refresh = f"{fmt_s(r.get('ours'))} / {fmt_s(r.get('ref'))}"
        reference = c.reference_name if c.reference else f"{c.reference_name}: not installed"
        print(f"| {c.name} | {fmt_s(t.get('ours'))} | {ratio(t.get('ours'), t['adamw'])} "
              f"| {ratio(t.get('ours'), t.get('ref'))} | {refresh} | {b.get('ours', 0) / 2**20:.2f} "
              f"| {ratio(b.get('ours'), b['adamw'])} | {ratio(b.get('ours'), b.get('ref'))} | {reference} |")
    print(f"\nAdamW(foreach=True): step {fmt_s(t['adamw'])} (last row's run), state {b['adamw'] / 2**20:.1f} MiB.")
    errors.append(f"DCTAdamW also reads a cached {n}x{n} DCT basis ({n * n * 4 / 2**20:.0f} MiB fp32, one per size, "
                  "shared by all optimizers) that is not part of its state bytes.")
    print("\n".join(f"- {note}" for note in errors))


def refresh_table(shapes: list[tuple[int, int]], args) -> None:
    print(f"\n### Projector refresh: SVD vs DCT selection, median of {args.refresh_repeats}\n")
    print("| gradient | rank | torch.linalg.svd | refresh 'svd' | refresh 'dct' | dct / svd | build DCT basis once |")
    print("|---|---|---|---|---|---|---|")
    for m, n in shapes:
        G, r = torch.randn(m, n, device=args.device), min(m, n) // 4
        t_svd, t_rsvd, t_rdct, t_basis = median_seconds(
            [
                lambda: torch.linalg.svd(G, full_matrices=False),
                lambda: refresh(G, {}, "svd", r),
                lambda: refresh(G, {}, "dct", r),
                lambda: dct_basis.__wrapped__(min(m, n), G.dtype, G.device),  # uncached
            ],
            args.refresh_repeats,
            1,
            args.device,
        )
        print(f"| {m}x{n} | {r} | {fmt_s(t_svd)} | {fmt_s(t_rsvd)} | {fmt_s(t_rdct)} "
              f"| {t_rdct / t_rsvd:.3f} | {fmt_s(t_basis)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,1024,2048", help="comma-separated n of the n x n layers")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per optimizer (median)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--refresh-steps", type=int, default=3, help="timed steps with update_proj_gap = 1")
    parser.add_argument("--refresh-repeats", type=int, default=10, help="repeats of each projector refresh")
    parser.add_argument("--refresh-shapes", default="2048x2048,1024x4096")
    parser.add_argument("--only", default="", help="comma-separated parts of optimizer names to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    versions = {m.__name__: getattr(m, "__version__", "") for m in (torch, bitsandbytes) if m}
    print(f"# Optimizer benchmark ({args.device}, {args.threads} threads; {versions}; "
          f"{' '.join(f'{k}={os.environ.get(k)}' for k in MALLOC_ENV)})")
    for n in [int(s) for s in args.sizes.split(",")]:
        step_table(n, args)
    shapes = [tuple(int(d) for d in s.split("x")) for s in args.refresh_shapes.split(",") if s]
    if shapes:
        refresh_table(shapes, args)


if __name__ == "__main__":
    main()

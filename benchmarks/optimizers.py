"""Step time and state memory of the workbench optimizers, side by side with torch AdamW and the
reference packages, printed as markdown tables (method note, last section).

    python benchmarks/optimizers.py                       # sizes 512,1024,2048, 30 steps, CPU
    python benchmarks/optimizers.py --sizes 512 --steps 10
    python benchmarks/optimizers.py --task digits --seeds 0,1,2   # test accuracy on digits, no timing
    python benchmarks/optimizers.py --zo-memory                   # forward passes and peak memory of a step

Setup per size n: four bias-free nn.Linear(n, n) weights, fp32, fixed gradients,
`optimizer.step()` alone, median of --steps steps after --warmup steps, torch.set_num_threads(--threads).
Ratios are to torch.optim.AdamW(foreach=True) and to the reference package run on the same
configuration in the same process (timings on a shared CPU drift by ±30 % between runs; compare
only within one run). "refresh" is the median step with update_proj_gap = 1, i.e. a new
subspace every step (the plain step uses a gap longer than the run). The reference packages are
optional (`pip install 'workbench[test]'`, which `make test` installs); a missing one is reported and skipped.
COSMOS, Natural GaLore and MeZO have no package: their reference is the step-by-step transcription of the
official code that the tests check against (tests/test_optim_*.py), and Q-GaLore's is q-galore-torch through
the tests' shim for the current bitsandbytes. The zeroth-order optimizers step with a closure: one forward pass
of the four layers on a fixed batch of 64 (their "x AdamW" compares two forward passes and an update with
AdamW's update alone).

`--task digits` trains the lab's MLP on sklearn's digits (the lab's defaults: 500 steps, batch 32, cosine, each
optimizer's default lr) with every first-order optimizer, and the zeroth-order ones for --zo-steps steps at
batch 64 (two forward passes a step, the same cosine schedule) on the MLP with --zo-depth hidden w x w layers
after the first (default 0: one hidden layer, 9 610 weights against the lab's 42 634; SPSA's variance grows
with the number of weights, and on the lab's three-hidden-layer MLP MeZO at a constant lr of 3e-3 diverged within
10 000 steps at all three seeds; `--zo-depth 2` runs it there), at each seed; it prints test accuracy. `--zo-memory` measures, with
torch.profiler's memory events on CPU, the peak memory a training step allocates on top of the model and
its optimizer state, for AdamW (forward, backward, step) against the zeroth-order ones (two forward passes and
the update), on the lab's MLP at width --zo-width and batch 64.

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
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184"}
if __name__ == "__main__" and any(k not in os.environ for k in MALLOC_ENV):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

import torch  # noqa: E402

from workbench.optim import (  # noqa: E402
    APOLLO,
    COSMOS,
    FRUGAL,
    LAMB,
    SOAP,
    AdamW8bit,
    APOLLOMini,
    BAdam,
    DCTAdamW,
    GaLoreAdamW,
    Lion,
    MeZO,
    Muon,
    NaturalGaLoreAdamW,
    QGaLoreAdamW8bit,
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
bitsandbytes, pytorch_optimizer, badam = optional("bitsandbytes"), optional("pytorch_optimizer"), optional("badam")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' transcribed references
cosmos_reference, galore_variants = optional("test_optim_muon_soap_cosmos"), optional("test_optim_galore_variants")
mezo_reference = optional("test_optim_zeroth_order")

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
    ] + seeds_configs()


def seeds_configs() -> list[Config]:
    """The optimizers of the seeds' papers added after the first lab: Muon, SOAP, COSMOS, Q-GaLore, Natural GaLore,
    BAdam and MeZO, each at its reference's defaults but lr (and rank n/4 where it has one)."""
    tucker = galore_variants and galore_variants.svd_tucker_factors
    q_galore_keys = dict(proj_type="std", quant=True, quant_n_bit=4, quant_group_size=256, cos_threshold=0.4, gamma_proj=2,
                         queue_size=5)
    return [
        Config(
            "Muon, Newton-Schulz 5 steps",
            lambda ps, n, gap: Muon(ps, lr=LR),
            lambda ps, n, gap: torch.optim.Muon(ps, lr=LR),
            "torch.optim.Muon",
        ),
        Config(
            "SOAP, precondition_frequency = gap",
            lambda ps, n, gap: SOAP(ps, lr=LR, precondition_frequency=gap),
            pytorch_optimizer and (lambda ps, n, gap: pytorch_optimizer.SOAP(ps, lr=LR, precondition_frequency=gap)),
            "pytorch-optimizer",
            refreshes=True,
        ),
        Config(
            "COSMOS rank n/4",
            lambda ps, n, gap: COSMOS(ps, lr=LR, rank=n // 4),
            cosmos_reference and (lambda ps, n, gap: cosmos_reference.TranscribedCOSMOS(
                ps, **{**cosmos_reference.COSMOS_DEFAULTS, "lr": LR, "rank": n // 4})),
            "official COSMOS, transcribed (tests)",
        ),
        Config(
            "Q-GaLore rank n/4, INT4 P, 8-bit Adam",
            lambda ps, n, gap: QGaLoreAdamW8bit(ps, lr=LR, rank=n // 4, update_proj_gap=gap),
            galore_variants and (lambda ps, n, gap: galore_variants.QGaLoreOnCurrentBitsandbytes(
                [dict(params=ps, rank=n // 4, update_proj_gap=gap, scale=0.25, **q_galore_keys)], lr=LR)),
            "q-galore-torch (tests' shim)",
            refreshes=True,
        ),
        Config(
            "Natural GaLore rank n/4, history 20",
            lambda ps, n, gap: NaturalGaLoreAdamW(ps, lr=LR, rank=n // 4, update_proj_gap=gap),
            galore_variants and (lambda ps, n, gap: galore_variants.NaturalGaLoreReference(
                [dict(params=ps, rank=n // 4, update_proj_gap=gap, scale=1.0, natural_history=20)], lr=LR,
                weight_decay=0.0, factors_of=tucker)),
            "official Natural GaLore, transcribed (tests; SVD factors)",
            refreshes=True,
        ),
        Config(
            "BAdam, a block per weight, no switch",
            lambda ps, n, gap: BAdam([{"params": [p]} for p in ps], lr=LR, switch_block_every=NO_REFRESH),
            badam and (lambda ps, n, gap: badam.BlockOptimizer(
                torch.optim.AdamW(ps, lr=LR), [(f"{i}.weight", p) for i, p in enumerate(ps)],
                block_prefix_list=[[f"{i}."] for i in range(len(ps))], switch_block_every=NO_REFRESH, verbose=0)),
            "badam",
        ),
        Config(
            "MeZO (2 forward passes + update)",
            lambda ps, n, gap: MeZO(ps, lr=LR),
            mezo_reference and (lambda ps, n, gap: OfficialMeZO(ps, lr=LR)),
            "official MeZO, transcribed (tests)",
        ),
    ]


class OfficialMeZO:
    """princeton-nlp/MeZO's `zo_step` + `zo_update` as the tests transcribe them (out-of-place perturbations, as
    the official code): a closure-stepped stand-in for a reference optimizer."""

    zeroth_order = True

    def __init__(self, params: list, lr: float, zo_eps: float = 1e-3):
        self.param_groups, self.state, self.defaults = [{"params": list(params)}], {}, {}
        self.named = [(f"{i}.weight", p) for i, p in enumerate(params)]
        self.lr, self.zo_eps, self.seed = lr, zo_eps, 0

    def step(self, closure):
        self.seed += 1
        return mezo_reference.official_mezo_step(self.named, closure, self.seed, self.lr, self.zo_eps, 0.0)


@lru_cache(maxsize=None)
def fixed_batch(n: int, device: str) -> torch.Tensor:
    return torch.randn(64, n, generator=torch.Generator().manual_seed(1)).to(device)


def stepper(optimizer, params: list) -> Callable[[], object]:
    """One step: the gradients made once are put back first (badam clears them, as it hands them to its Adam), and
    a zeroth-order optimizer gets a closure, one forward pass of the four layers on a fixed batch."""
    grads = [p.grad for p in params]
    if getattr(optimizer, "zeroth_order", False):
        x = fixed_batch(params[0].shape[1], str(params[0].device))

        def closure():
            h = x
            for W in params:
                h = h @ W.T
            return h.square().mean()

        return lambda: optimizer.step(closure)

    def step():
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()

    return step


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
    """(optimizer, its step) over fresh parameters, after one step, or None (no package, or it fails here: the
    reason goes to `errors`)."""
    if factory is None:
        return None
    try:
        params = make_params(n, device)
        optimizer = factory(params, n, gap)
        step = stepper(optimizer, params)
        step()
        return optimizer, step
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
    live = {k: b for k, b in built.items() if b is not None}
    times = dict(zip(live, median_seconds([step for _, step in live.values()], repeats, warmup, device)))
    return times, {k: optimizer_state_bytes(o) for k, (o, _) in live.items() if hasattr(o, "param_groups")}


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


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
        if c.refreshes and args.refresh_steps:
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


FIRST_ORDER = ["adamw", "muon", "soap", "cosmos", "q_galore", "natural_galore", "badam"]
ZEROTH_ORDER = ["mezo", "sparse_mezo", "zo_sgd", "zo_adam"]


def digits_table(args) -> None:
    """Test accuracy on digits per seed: the first-order optimizers at the lab's defaults, the zeroth-order ones
    for --zo-steps steps of batch 64 (2 forward passes each), in two lab runs per seed."""
    import workbench

    seeds = [int(s) for s in args.seeds.split(",")]
    accuracy: dict[str, list[float]] = {}
    steps = {}
    for seed in seeds:
        first = workbench.run("optimizers", task="digits", optimizers=FIRST_ORDER, seed=seed, progress=True).metrics
        zo = workbench.run("optimizers", task="digits", optimizers=ZEROTH_ORDER, seed=seed, steps=args.zo_steps,
                           batch_size=64, mlp_depth=args.zo_depth, progress=True).metrics
        for name, metrics in [(n, first) for n in FIRST_ORDER] + [(n, zo) for n in ZEROTH_ORDER]:
            accuracy.setdefault(name, []).append(metrics[f"{name}.test_accuracy"])
            steps[name] = (int(metrics["steps_done"]), metrics[f"{name}.lr"])
    lab = workbench.configure("optimizers")  # the defaults both runs keep
    print(f"\n### Digits: test accuracy, seeds {args.seeds}\n")
    print("| optimizer | MLP | steps | forward passes | lr | " + " | ".join(f"seed {s}" for s in seeds)
          + " | min | goal |")
    print("|---|---|---|---|---|" + "---|" * len(seeds) + "---|---|")
    for name, values in accuracy.items():
        n_steps, lr = steps[name]
        zeroth_order = name in ZEROTH_ORDER
        passes = 2 * n_steps if zeroth_order else n_steps
        depth = args.zo_depth if zeroth_order else lab.mlp_depth
        layers = "64-" + f"{lab.mlp_width}-" * (1 + depth) + "10"  # the lab's default width
        goal = ("≥ 0.90 within 20 000 forward passes" if name == "mezo" else "–" if zeroth_order else "≥ 0.96")
        print(f"| {name} | {layers} | {n_steps} | {passes} | {lr:g} | " + " | ".join(f"{v:.3f}" for v in values)
              + f" | {min(values):.3f} | {goal} |")


def zo_memory_table(args) -> None:
    """Forward passes per step and the peak memory of one step (the third: states exist), each optimizer on its own
    copy of the lab's digits MLP at width --zo-width and batch 64 (`workbench.methods.side_by_side.step_memory`)."""
    from workbench.methods.optim_tasks import DigitsTask, default_lr, make_optimizer
    from workbench.methods.side_by_side import step_memory, train_step

    task = DigitsTask(0, 64, args.zo_width)
    batch = task.batch()
    rows = {}
    for name in ["adamw"] + ZEROTH_ORDER:
        torch.manual_seed(0)
        model = task.model()
        optimizer = make_optimizer(name, model.parameters(), lr=default_lr(name, "digits"), seed=0)
        for _ in range(2):
            train_step(task, model, optimizer, batch)
        rows[name] = step_memory(task, model, optimizer, batch)
    adamw = rows["adamw"]
    print(f"\n### Memory of one training step, digits MLP width {args.zo_width}, batch 64 (torch.profiler, CPU)\n")
    print("| optimizer | forward passes | backward | model MiB | state MiB | allocated during the step MiB "
          "| peak MiB | peak x AdamW | saved against AdamW ≥ gradients + the AdamW state it does not keep |")
    print("|---|---|---|---|---|---|---|---|---|")
    mib = 2**20
    for name, row in rows.items():
        saved = adamw["peak_bytes"] - row["peak_bytes"]
        claim = adamw["model_bytes"] + adamw["state_bytes"] - row["state_bytes"]  # fp32 gradients: the model's size
        check = "–" if name == "adamw" else f"{saved / mib:.2f} ≥ {claim / mib:.2f}: {'yes' if saved >= claim else 'NO'}"
        print(f"| {name} | {row['forward_passes']} | {'yes' if row['backward'] else 'no'} | {row['model_bytes'] / mib:.2f} "
              f"| {row['state_bytes'] / mib:.2f} | {row['step_bytes'] / mib:.2f} | {row['peak_bytes'] / mib:.2f} "
              f"| {row['peak_bytes'] / adamw['peak_bytes']:.2f} | {check} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,1024,2048", help="comma-separated n of the n x n layers")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per optimizer (median)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--refresh-steps", type=int, default=3, help="timed steps with update_proj_gap = 1 (0: none)")
    parser.add_argument("--refresh-repeats", type=int, default=10, help="repeats of each projector refresh")
    parser.add_argument("--refresh-shapes", default="2048x2048,1024x4096")
    parser.add_argument("--only", default="", help="comma-separated parts of optimizer names to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--task", choices=["digits"], help="digits: test accuracy of the lab's MLP (no step timing)")
    parser.add_argument("--seeds", default="0,1,2", help="--task digits: comma-separated seeds")
    parser.add_argument("--zo-steps", type=int, default=10_000, help="--task digits: steps of the zeroth-order ones")
    parser.add_argument("--zo-depth", type=int, default=0, help=(
        "--task digits: the zeroth-order ones' MLP, hidden w x w layers after the first (the lab's: 2)"))
    parser.add_argument("--zo-memory", action="store_true", help="forward passes and peak memory of a step only")
    parser.add_argument("--zo-width", type=int, default=1024, help="--zo-memory: width of the digits MLP")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.task == "digits":
        return digits_table(args)
    if args.zo_memory:
        return zo_memory_table(args)
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None  # q-galore-torch calls it in every step
    if galore_variants:
        galore_variants.tensorly.set_backend("pytorch")  # the Natural GaLore reference's multi_mode_dot
    warnings.filterwarnings("ignore", message="BAdam expect model to be loaded in fp16/bf16")  # fp32 on purpose
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

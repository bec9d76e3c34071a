"""Tasks for comparing optimizers, and :func:`make_optimizer`, the one place that builds them.

Importable without any UI. Four tasks, one protocol (``loss(model, batch)``, ``batch(step)``,
``evaluate(model)``):

- ``quadratic`` / ``rosenbrock``: 2-D test functions; the "model" is the point x ∈ R² itself
  (:class:`Point2D`), so every optimizer's trajectory can be drawn on the contour plot.

      quadratic   f(x) = ½ (x − x*)ᵀ A (x − x*),  A = R(30°) diag(1, 20) R(30°)ᵀ,  x* = (1, 1), f* = 0
      rosenbrock  f(x, y) = (1 − x)² + 100 (y − x²)²,                             x* = (1, 1), f* = 0

- ``digits``: an MLP (embed → body → head) on scikit-learn's bundled 8×8 digits, standardized with
  the training set's statistics, train/test split fixed by the seed (75 / 25 %).
- ``lm``: a character-level GPT-style transformer on the Python standard library's own source
  (sorted ``*.py`` files at the top of ``sysconfig.get_paths()['stdlib']``, concatenated up to
  ``corpus_chars`` characters; first 90 % train, last 10 % validation). The corpus depends on the
  Python version that runs it.

Parameter groups (the GaLore convention, ``torchrun_main.py``): the 2-D weights of the
``nn.Linear`` layers inside ``model.body`` are *projected* (they carry the group keys ``rank``,
``update_proj_gap``, ``scale``); embeddings, heads, biases and norms go to a *plain* group, which
the projected optimizers update with full AdamW inside the same optimizer.
"""
from __future__ import annotations

import functools
import math
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

# --- the optimizers ---------------------------------------------------------------------------

OPTIMIZERS = ("adamw", "sgd", "galore", "dct", "apollo", "apollo_mini", "frugal", "lion", "adamw8bit", "lamb",
              "adamw_frozen", "muon", "soap", "cosmos", "q_galore", "natural_galore", "badam", "mezo", "sparse_mezo",
              "zo_sgd", "zo_adam")
PROJECTED = ("galore", "dct", "apollo", "apollo_mini", "frugal", "q_galore", "natural_galore")
ZEROTH_ORDER = ("mezo", "sparse_mezo", "zo_sgd", "zo_adam")
TASKS = ("quadratic", "rosenbrock", "digits", "lm")

# Default learning rates, one table per task: when the experiment's ``lr`` is auto (None), each optimizer
# runs at its own entry for the task (an lr set by hand applies to every optimizer). How they were
# chosen (this 2-core CPU, cosine schedule, the task's default batch 32): on the 2-D functions, a
# sweep per update rule for reaching x*; on digits, grids around {1e-3, 3e-3, 1e-2} on seeds 0-2
# at 500 steps (every optimizer ≥ 95 % test accuracy); on the lm, {1e-3, 3e-3, 6e-3, 1e-2} at 300
# and 1000 steps on seed 0 (AdamW's best is 3e-3). Note that the lm lrs were picked on the same
# validation loss the experiment reports. What follows from the methods:
# - Lion 3-10x below AdamW (Chen et al. 2023, §5): every coordinate moves by exactly lr.
# - GaLore, DCT-AdamW, APOLLO(-Mini) update only r of n directions (orthonormal back-projection: the
#   update's norm is about √(r/n) of AdamW's), so they take larger lrs, as their papers do (GaLore
#   and APOLLO READMEs: lr 0.01 where AdamW uses 1e-3); GaLore's scale 0.25 shrinks its step again.
# - FRUGAL moves every direction (AdamW on the subspace, signSGD on the rest): AdamW's lr.
# - 8-bit AdamW is AdamW with quantized states: AdamW's lr.
# - LAMB's trust ratio makes lr a relative step size (‖ΔW‖ ≈ lr·‖W‖).
# - adamw_frozen, the control of the projected optimizers, is AdamW on the plain group: AdamW's lr.
# On the 2-D functions the projected optimizers see a vector, not a matrix: they are plain AdamW there.
# The seeds' later optimizers (Muon, SOAP, COSMOS, Q-GaLore, Natural GaLore, BAdam and the zeroth-order family) have
# a default on digits only, measured on seeds 0-2 at 500 steps (worst seed: SOAP 0.980, COSMOS 0.976, Q-GaLore
# 0.973, Natural GaLore 0.967, BAdam 0.967, Muon 0.967); the zeroth-order ones need about 10 000 steps there (MeZO
# at 3e-3: 0.911 on seed 0). On the other tasks give them an lr.
DEFAULT_LR: dict[str, dict[str, float]] = {
    "quadratic": {"adamw": 0.3, "sgd": 0.02, "galore": 0.3, "dct": 0.3, "apollo": 0.3, "apollo_mini": 0.3,
                  "frugal": 0.3, "lion": 0.1, "adamw8bit": 0.3, "lamb": 0.05, "adamw_frozen": 0.3},
    "rosenbrock": {"adamw": 0.3, "sgd": 1.5e-3, "galore": 0.3, "dct": 0.3, "apollo": 0.3,
                   "apollo_mini": 0.3, "frugal": 0.3, "lion": 0.02, "adamw8bit": 0.3, "lamb": 0.05, "adamw_frozen": 0.3},
    "digits": {"adamw": 3e-3, "sgd": 0.05, "galore": 1e-2, "dct": 1e-2, "apollo": 1e-2, "apollo_mini": 1e-2,
               "frugal": 3e-3, "lion": 5e-4, "adamw8bit": 3e-3, "lamb": 1e-2, "adamw_frozen": 3e-3,
               "muon": 3e-3, "soap": 3e-3, "cosmos": 1e-2, "q_galore": 1e-2, "natural_galore": 1e-2, "badam": 5e-3,
               "mezo": 3e-3, "sparse_mezo": 5e-3, "zo_sgd": 3e-4, "zo_adam": 1e-3},
    "lm": {"adamw": 3e-3, "sgd": 0.1, "galore": 3e-2, "dct": 1e-2, "apollo": 1e-2, "apollo_mini": 1e-2,
           "frugal": 3e-3, "lion": 1e-3, "adamw8bit": 3e-3, "lamb": 1e-2, "adamw_frozen": 3e-3},
}
# Default ``scale`` of the projected optimizers, used when the experiment's ``scale`` is auto (None):
# GaLore 0.25 (README, 60M model), APOLLO 1 (README, channel-wise), APOLLO-Mini 128 (README,
# tensor-wise, rank 1), DCT-AdamW and FRUGAL have no scale in their papers (1 = none).
DEFAULT_SCALE = {"galore": 0.25, "dct": 1.0, "apollo": 1.0, "apollo_mini": 128.0, "frugal": 1.0, "q_galore": 0.25,
                 "natural_galore": 0.25}


def default_lr(name: str, task: str) -> float:
    """The documented default learning rate of optimizer ``name`` on ``task`` (see DEFAULT_LR); a ValueError
    naming both when there is none."""
    if name not in DEFAULT_LR[task]:
        raise ValueError(f"{name!r} has no default lr on task {task!r} (only on "
                         f"{', '.join(t for t, lrs in DEFAULT_LR.items() if name in lrs)}): set lr")
    return DEFAULT_LR[task][name]


def split_parameters(params) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(projected, plain) trainable parameters.

    ``params`` is an ``nn.Module`` (projected = weights of the ``nn.Linear`` layers inside
    ``module.body``; a module without ``body`` has none), a ``(projected, plain)`` pair, or an
    iterable of tensors (all plain). Order follows ``module.parameters()``.
    """
    if isinstance(params, nn.Module):
        body = getattr(params, "body", None)
        chosen = set()
        if isinstance(body, nn.Module):
            chosen = {id(m.weight) for m in body.modules() if isinstance(m, nn.Linear)}
        trainable = [p for p in params.parameters() if p.requires_grad]
        return [p for p in trainable if id(p) in chosen], [p for p in trainable if id(p) not in chosen]
    if isinstance(params, tuple) and len(params) == 2 and all(isinstance(x, (list, tuple)) for x in params):
        return list(params[0]), list(params[1])
    return [], list(params)


def projection_rank(shape: torch.Size, rank: int | None, rank_fraction: float) -> int:
    """``rank``, or round(rank_fraction · min(m, n)) when it is None; at least 1, at most min(m, n)."""
    side = min(shape)
    r = rank if rank is not None else round(rank_fraction * side)
    return int(min(max(r, 1), side))


def badam_blocks(params) -> list[dict]:
    """BAdam's blocks: one param group per module that holds trainable parameters of its own (a layer), in model
    order, the last one (the head) trained at every step when there are several (``always_active``, badam's
    ``active_modules``: without it one digits seed of three stopped at 0.94); a plain list of tensors is one block."""
    if not isinstance(params, nn.Module):
        return [{"params": list(params)}]
    layers = [[p for p in module.parameters(recurse=False) if p.requires_grad] for module in params.modules()]
    blocks = [{"params": layer} for layer in layers if layer]
    if len(blocks) > 1:
        blocks[-1]["always_active"] = True
    return blocks


def make_optimizer(name: str, params, lr: float, rank: int | None = None, update_proj_gap: int = 50,
                   scale: float | None = None, weight_decay: float = 0.0, rank_fraction: float = 0.25,
                   seed: int = 0) -> torch.optim.Optimizer:
    """Build optimizer ``name`` (one of :data:`OPTIMIZERS`) over ``params`` with the right groups.

    ``params``: see :func:`split_parameters`. Projected optimizers (:data:`PROJECTED`) get one group
    per distinct rank, with keys ``rank`` (``rank``, or ``rank_fraction`` · min(m, n) when rank is None;
    APOLLO-Mini: 1), ``update_proj_gap`` and ``scale`` (None → :data:`DEFAULT_SCALE`), plus one plain
    group with ``rank=None``; FRUGAL's groups carry ``density`` = rank / min(m, n) instead of rank
    and scale. The others get all parameters in one group. ``weight_decay`` applies to every group (decoupled, as each
    method defines it). ``adamw`` is ``torch.optim.AdamW`` (the reference), ``sgd`` is
    ``torch.optim.SGD`` with momentum 0.9; ``adamw_frozen`` is the control of the projected
    optimizers: AdamW on the plain group only, so the matrices they would project never move (a
    projected optimizer that does not beat it has not learned through its projected matrices).
    ``muon`` orthogonalizes the updates of the projected matrices and runs AdamW on the rest, in one optimizer;
    ``cosmos`` gets the projected groups' ranks (the rest: its AdamW branch); ``soap`` takes every parameter;
    ``badam`` trains one block (:func:`badam_blocks`) at a time; the zeroth-order ones (:data:`ZEROTH_ORDER`, seeded
    with ``seed``; ``zo_sgd`` with momentum 0.9, as ``sgd``) take ``step(closure)``.
    The rest come from :mod:`workbench.optim`.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    projected, plain = split_parameters(params)
    everything = projected + plain
    if name == "adamw":
        return torch.optim.AdamW(everything, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(everything, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw_frozen":
        return torch.optim.AdamW(plain, lr=lr, weight_decay=weight_decay)

    from workbench import optim

    if name == "lion":
        return optim.Lion(everything, lr=lr, weight_decay=weight_decay)
    if name == "adamw8bit":
        return optim.AdamW8bit(everything, lr=lr, weight_decay=weight_decay)
    if name == "lamb":
        return optim.LAMB(everything, lr=lr, weight_decay=weight_decay)
    if name == "soap":
        return optim.SOAP(everything, lr=lr, weight_decay=weight_decay)
    if name == "muon":
        groups = [{"params": ps, "use_muon": use} for ps, use in ((projected, True), (plain, False)) if ps]
        return optim.Muon(groups, lr=lr, weight_decay=weight_decay)
    if name == "badam":
        return optim.BAdam(badam_blocks(params), lr=lr, weight_decay=weight_decay)
    if name in ZEROTH_ORDER:
        cls = {"mezo": optim.MeZO, "sparse_mezo": optim.SparseMeZO, "zo_sgd": optim.ZOSGD, "zo_adam": optim.ZOAdam}[name]
        return cls(everything, lr=lr, weight_decay=weight_decay, seed=seed, **({"momentum": 0.9} if name == "zo_sgd" else {}))

    # projected: one group per rank (FRUGAL: per density), then the plain group (AdamW inside the
    # same optimizer: its subspace key is None, overriding a constructor default such as APOLLO-Mini's rank 1)
    by_rank: dict[int, list[torch.Tensor]] = {}
    for p in projected:
        r = 1 if name == "apollo_mini" else projection_rank(p.shape, rank, rank_fraction)  # APOLLO-Mini: rank 1
        by_rank.setdefault(r, []).append(p)
    if name == "frugal":  # FRUGAL's subspace key is the density r / min(m, n); no scale
        by_density: dict[float, list[torch.Tensor]] = {}
        for p in projected:
            density = rank_fraction if rank is None else projection_rank(p.shape, rank, rank_fraction) / min(p.shape)
            by_density.setdefault(density, []).append(p)
        groups = [{"params": ps, "density": d, "update_proj_gap": update_proj_gap} for d, ps in by_density.items()]
        if plain:
            groups.append({"params": plain, "density": None})
        return optim.FRUGAL(groups, lr=lr, weight_decay=weight_decay)
    if name == "cosmos":  # its subspace is the rank; no refresh gap, no scale
        groups = [{"params": ps, "rank": r} for r, ps in by_rank.items()] + ([{"params": plain, "rank": None}] if plain else [])
        return optim.COSMOS(groups, lr=lr, weight_decay=weight_decay)
    scale = scale if scale is not None else DEFAULT_SCALE[name]
    extra = {"galore": {"proj": "svd"}, "dct": {}, "apollo": {"proj": "random", "scale_type": "channel"},
             "apollo_mini": {"proj": "random", "scale_type": "tensor"}, "q_galore": {}, "natural_galore": {}}[name]
    groups = [{"params": ps, "rank": r, "update_proj_gap": update_proj_gap, "scale": scale, **extra}
              for r, ps in by_rank.items()]
    if name == "q_galore":  # INT4 groups of 256 entries of P (r·min(m, n)) where they tile it, else one per row
        for group in groups:
            tiles = all(group["rank"] * min(p.shape) % 256 == 0 for p in group["params"])
            group["quant_group_size"] = 256 if tiles else None
    if plain:
        groups.append({"params": plain, "rank": None})
    cls = {"galore": optim.GaLoreAdamW, "dct": optim.DCTAdamW, "apollo": optim.APOLLO, "apollo_mini": optim.APOLLOMini,
           "q_galore": optim.QGaLoreAdamW8bit, "natural_galore": optim.NaturalGaLoreAdamW}[name]
    return cls(groups, lr=lr, weight_decay=weight_decay)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps (``workbench.optim.optimizer_state_bytes``)."""
    from workbench.optim import optimizer_state_bytes

    return int(optimizer_state_bytes(optimizer))


def lr_factor(step: int, total: int, schedule: str) -> float:
    """Multiplier of the base lr at 1-based ``step``: constant 1, or cosine from 1 (step 1) to 0.

        cosine:  η_t = η · ½ (1 + cos(π (t − 1) / T))
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - 1) / max(total, 1)))
    raise ValueError(f"unknown schedule {schedule!r}; allowed: 'constant', 'cosine'")


# --- 2-D test functions -----------------------------------------------------------------------

_ANGLE = math.pi / 6
_R = torch.tensor([[math.cos(_ANGLE), -math.sin(_ANGLE)], [math.sin(_ANGLE), math.cos(_ANGLE)]], dtype=torch.float64)
QUADRATIC_A = _R @ torch.diag(torch.tensor([1.0, 20.0], dtype=torch.float64)) @ _R.T  # condition number 20


def quadratic(xy: torch.Tensor) -> torch.Tensor:
    """f(x) = ½ (x − x*)ᵀ A (x − x*), x* = (1, 1); ``xy`` (..., 2) → (...)."""
    d = xy - 1.0  # (..., 2)
    A = QUADRATIC_A.to(xy.dtype).to(xy.device)
    return 0.5 * torch.einsum("...i,ij,...j->...", d, A, d)


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    """f(x, y) = (1 − x)² + 100 (y − x²)², minimum 0 at (1, 1); ``xy`` (..., 2) → (...)."""
    x, y = xy[..., 0], xy[..., 1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


@dataclass(frozen=True)
class Function2D:
    f: callable
    minimum: tuple[float, float]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    default_steps: int


FUNCTIONS = {
    "quadratic": Function2D(quadratic, (1.0, 1.0), (-2.0, 3.0), (-3.0, 3.5), (-1.5, 4.0), 300),
    "rosenbrock": Function2D(rosenbrock, (1.0, 1.0), (-1.2, 1.0), (-2.0, 2.0), (-1.0, 3.0), 1000),
}


class Point2D(nn.Module):
    """The "model" of a 2-D task: the point x ∈ R² (a vector, so every optimizer treats it as a
    plain, non-projected parameter)."""

    def __init__(self, start: tuple[float, float]):
        super().__init__()
        self.x = nn.Parameter(torch.tensor(start, dtype=torch.float32))  # (2,)


def grid(name: str, n: int = 120) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xs (n,), ys (n,), f on the grid (n, n), rows = y) for contour plots of a 2-D task."""
    fn = FUNCTIONS[name]
    xs = torch.linspace(*fn.xlim, n, dtype=torch.float64)
    ys = torch.linspace(*fn.ylim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")  # (n, n) each, rows = y
    return xs, ys, fn.f(torch.stack([X, Y], dim=-1))


# --- digits MLP -------------------------------------------------------------------------------

class MLP(nn.Module):
    """x (B, 64) → embed Linear(64, w) → body [Linear(w, w), GELU] × depth → head Linear(w, 10)."""

    def __init__(self, d_in: int = 64, width: int = 128, depth: int = 2, n_classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(d_in, width)
        self.body = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.GELU())])
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 64) → (B, 10)
        return self.head(self.body(F.gelu(self.embed(x))))


def load_digits_split(seed: int, test_fraction: float = 0.25, device="cpu"):
    """(X_train, y_train, X_test, y_test): sklearn's digits (1797 × 64), a seeded random split,
    standardized with the training set's mean and std (constant pixels keep std 1)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = torch.tensor(data.data, dtype=torch.float32)  # (1797, 64)
    y = torch.tensor(data.target, dtype=torch.long)  # (1797,)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(X))
    test, train = order[:n_test], order[n_test:]
    mean, std = X[train].mean(0), X[train].std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    X = (X - mean) / std
    return X[train].to(device), y[train].to(device), X[test].to(device), y[test].to(device)


# --- character-level transformer LM -----------------------------------------------------------

class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 × (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """A small GPT: token + position embeddings → body (n_layers blocks) → LayerNorm → head."""

    def __init__(self, vocab_size: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, context: int = 64):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.body = nn.ModuleList([Block(d_model, n_heads) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        for module in self.modules():  # GPT-2 initialization
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) → logits (B, T, V)
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, D)
        for block in self.body:
            x = block(x)
        return self.head(self.ln_f(x))


def stdlib_files() -> list[Path]:
    """The sorted ``*.py`` files at the top of the standard library directory."""
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


@functools.lru_cache(maxsize=4)
def stdlib_corpus(max_chars: int) -> str:
    """The standard library's own source: sorted ``*.py`` files concatenated, up to ``max_chars``."""
    parts, n = [], 0
    for path in stdlib_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        n += len(text)
        if n >= max_chars:
            break
    return "".join(parts)[:max_chars]


class CharCorpus:
    """A character vocabulary over ``text`` and the encoded train (first 90 %) / validation split."""

    def __init__(self, text: str, val_fraction: float = 0.1):
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        data = torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        n_val = int(val_fraction * len(data))
        self.train, self.val = data[: len(data) - n_val], data[len(data) - n_val:]

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.stoi[c] for c in text if c in self.stoi], dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def lm_batch(data: torch.Tensor, batch_size: int, context: int, generator: torch.Generator):
    """Random windows: (inputs (B, T), targets (B, T)) with targets shifted by one character."""
    starts = torch.randint(0, len(data) - context - 1, (batch_size,), generator=generator)
    offsets = torch.arange(context + 1)
    windows = data[starts[:, None] + offsets]  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def generate(model: CharTransformer, corpus: CharCorpus, prompt: str, n_chars: int = 200,
             temperature: float = 0.8, seed: int = 0) -> str:
    """Sample ``n_chars`` characters after ``prompt`` (own generator: the global RNG is untouched)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    idx = corpus.encode(prompt).to(device)[None]  # (1, T)
    for _ in range(n_chars):
        logits = model(idx[:, -model.context:])[:, -1] / temperature  # (1, V)
        idx = torch.cat([idx, torch.multinomial(F.softmax(logits, -1), 1, generator=generator)], dim=1)
    return corpus.decode(idx[0].tolist())


# --- tasks: one protocol for the training loop ------------------------------------------------

class Task:
    """``model()`` builds the initial model (call after seeding); ``batch()`` draws the next batch
    (shared by every optimizer at a step); ``loss(model, batch)``; ``evaluate(model)`` → metrics
    (``final_loss`` and the task's own); ``probe(model)`` → the periodic metric (``eval_name``)."""

    eval_name: str | None = None
    default_steps: int = 300

    def batch(self):
        return None

    def probe(self, model: nn.Module) -> float:
        return self.evaluate(model)[self.eval_name]


class Task2D(Task):
    def __init__(self, name: str):
        self.name, self.fn = name, FUNCTIONS[name]
        self.default_steps = self.fn.default_steps

    def model(self) -> Point2D:
        return Point2D(self.fn.start)

    def loss(self, model: Point2D, batch=None) -> torch.Tensor:
        return self.fn.f(model.x)

    @torch.no_grad()
    def evaluate(self, model: Point2D) -> dict[str, float]:
        x_star = torch.tensor(self.fn.minimum, dtype=model.x.dtype)
        return {"final_loss": float(self.fn.f(model.x)), "distance": float((model.x - x_star).norm()),
                "x": float(model.x[0]), "y": float(model.x[1])}


class DigitsTask(Task):
    eval_name = "test_accuracy"
    default_steps = 500

    def __init__(self, seed: int, batch_size: int = 64, width: int = 128, depth: int = 2, device="cpu"):
        self.X, self.y, self.X_test, self.y_test = load_digits_split(seed, device=device)
        self.batch_size, self.width, self.depth, self.device = min(batch_size, len(self.X)), width, depth, device
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._order, self._at = torch.empty(0, dtype=torch.long), 0

    def model(self) -> MLP:
        return MLP(self.X.shape[1], self.width, self.depth).to(self.device)

    def batch(self):
        """The next minibatch of a reshuffled-every-epoch pass over the training set."""
        if self._at + self.batch_size > len(self._order):
            self._order, self._at = torch.randperm(len(self.X), generator=self.generator), 0
        idx = self._order[self._at: self._at + self.batch_size].to(self.device)
        self._at += self.batch_size
        return self.X[idx], self.y[idx]

    def loss(self, model: MLP, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    @torch.no_grad()
    def probe(self, model: MLP) -> float:
        return float((model(self.X_test).argmax(-1) == self.y_test).float().mean())

    @torch.no_grad()
    def evaluate(self, model: MLP) -> dict[str, float]:
        train_logits, test_logits = model(self.X), model(self.X_test)
        return {"final_loss": float(F.cross_entropy(train_logits, self.y)),
                "train_accuracy": float((train_logits.argmax(-1) == self.y).float().mean()),
                "test_loss": float(F.cross_entropy(test_logits, self.y_test)),
                "test_accuracy": float((test_logits.argmax(-1) == self.y_test).float().mean())}


class LMTask(Task):
    eval_name = "val_loss"
    default_steps = 300

    def __init__(self, seed: int, batch_size: int = 32, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 context: int = 64, corpus_chars: int = 1_000_000, eval_batches: int = 8, device="cpu"):
        self.corpus = CharCorpus(stdlib_corpus(corpus_chars))
        if len(self.corpus.val) <= context + 1:
            raise ValueError(f"corpus_chars = {corpus_chars} leaves {len(self.corpus.val)} validation characters, "
                             f"fewer than context + 2 = {context + 2}")
        self.batch_size, self.context, self.device = batch_size, context, device
        self.shape = dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, context=context)
        self.generator = torch.Generator().manual_seed(seed + 1)
        # fixed evaluation windows (the same for every optimizer and every evaluation)
        fixed = torch.Generator().manual_seed(seed + 2)
        self.eval_train = [lm_batch(self.corpus.train, batch_size, context, fixed) for _ in range(eval_batches)]
        self.eval_val = [lm_batch(self.corpus.val, batch_size, context, fixed) for _ in range(eval_batches)]

    def model(self) -> CharTransformer:
        return CharTransformer(self.corpus.vocab_size, **self.shape).to(self.device)

    def batch(self):
        x, y = lm_batch(self.corpus.train, self.batch_size, self.context, self.generator)
        return x.to(self.device), y.to(self.device)

    def loss(self, model: CharTransformer, batch) -> torch.Tensor:
        x, y = batch  # (B, T), (B, T)
        logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def mean_loss(self, model: CharTransformer, batches) -> float:
        return sum(float(self.loss(model, (x.to(self.device), y.to(self.device)))) for x, y in batches) / len(batches)

    def probe(self, model: CharTransformer) -> float:
        return self.mean_loss(model, self.eval_val)

    def evaluate(self, model: CharTransformer) -> dict[str, float]:
        return {"final_loss": self.mean_loss(model, self.eval_train), "val_loss": self.mean_loss(model, self.eval_val)}

"""Zeroth-order optimizers: MeZO, Sparse MeZO, ZO-SGD and ZO-Adam. They need the loss, never a gradient.

The estimate is MeZO's two-sided SPSA (Malladi et al. 2023, "Fine-Tuning Language Models with Just
Forward Passes", arXiv 2305.17333, Algorithm 1; official code princeton-nlp/MeZO@552cb1b
`large_models/trainer.py`: `zo_step`, `zo_perturb_parameters`, `zo_update`). Per step, with a fresh seed s:

    z ~ N(0, I), one tensor per parameter, drawn in order from a generator seeded with s
    θ ← θ + ε·z;   ℓ+ = f(θ)                     forward pass 1
    θ ← θ − 2ε·z;  ℓ− = f(θ)                     forward pass 2
    θ ← θ + ε·z                                  back to θ_t (up to rounding, below)
    g = (ℓ+ − ℓ−) / (2ε)                         a scalar, the projected gradient: ĝ = g·z estimates ∇f
    z regenerated from s once more, and θ updated with ĝ:

    MeZO      θ ← θ − lr·(g·z + λ·θ)                                  the official `zo_update`, its op order
    ZO-SGD    d = g·z + λ·θ;  b ← μ·b + d (b = d at t = 1, no b at μ = 0);  θ ← θ − lr·b
    ZO-Adam   d = g·z + λ·θ;  m ← lerp(m, d, 1 − β1);  v ← β2·v + (1 − β2)·d²;
              θ ← θ − (lr/bc1)·m / (√v/√bc2 + eps),  bc_i = 1 − β_i^t

ZO-SGD and ZO-Adam are the baselines of Zhang et al. 2024 ("Revisiting Zeroth-Order Optimization for
Memory-Efficient LLM Fine-Tuning: A Benchmark", arXiv 2402.11592; ZO-Bench/ZO-LLM@bf210fa
`zo-bench/trainer.py` `zo_step`): the same estimate handed to `torch.optim.SGD` / `torch.optim.Adam` as
`param.grad = g·z`, one parameter at a time. Their updates here follow those two classes' single-tensor
op order (λ is their coupled L2 term, `grad.add(param, alpha=λ)`), so a run equals ZO-Bench's bit for bit.

Sparse MeZO (Liu et al. 2024, "Sparse MeZO: Less Parameters for Better Performance in Zeroth-Order LLM
Fine-Tuning", arXiv 2402.15751) perturbs and updates only small weights: z ← m ⊙ z with the mask
m = [|θ_t| ≤ h] taken from the weights at the start of each step (the paper's dynamic mask) and a
threshold h per tensor (the paper's per-layer threshold, set by the sparsity from the weights that
fine-tuning starts from): the (n − ⌊sparsity·n⌋)-th smallest |θ| at the tensor's first step, kept in
state["threshold"], so sparsity 0.8 perturbs the 20 % smallest. Weight decay, where set, still acts
on the whole tensor. Any of the four optimizers takes the group key `sparsity` (None: dense);
`SparseMeZO` is MeZO with a default. The official code (NUS-HPC-AI-Lab/SparseMeZO) was not available
to read: this follows the paper's description, and h fixed at the first step is our reading of it.

Memory: the optimizer keeps no copy of the parameters. A step holds one z (one parameter's size) at a
time and, in the update, a temporary of that size (MeZO's λ·θ when λ > 0; ZO-Adam's denominator);
MeZO and ZO-SGD with μ = 0 keep no tensor in their state,
ZO-SGD with μ > 0 keeps b, ZO-Adam m and v. Sparse MeZO keeps each masked tensor's mask (1 byte an
element) from the first perturbation to the update, since the perturbed weights no longer tell which
were small; the paper's forward-pass mask would need a modified forward, which a closure cannot give.
Restoring θ in place is exact only up to rounding: fl(fl(fl(θ + εz) − 2εz) + εz) may differ from θ
by an ulp, and since fl(θ + εz) does not determine θ when |εz| is above θ's ulp, no copy-free scheme
can do better (the official code rounds the same way).

Interface: `step(closure)` as `torch.optim.LBFGS` takes it. The closure runs one forward pass and
returns the loss (a tensor or a float); `step` calls it `forward_passes` = 2 times, under
`torch.no_grad()`, and returns ℓ+ (as the official `zo_step` returns loss1). No `.grad` is read or
written. The state of the first parameter also holds the optimizer's own counters, as LBFGS does:
"step", "seed" (the next step's), "func_evals" (forward passes so far) and "projected_grad" (the last g).

Deliberate differences from the official code:
- Seeds: the official draws s = np.random.randint(10⁹) from numpy's global generator and reseeds torch's
  global one; here s_1 = `seed` and s_{t+1} = `projectors.next_seed(s_t)` (APOLLO's chain), and z comes
  from a `torch.Generator` per step and device, so the global generators are untouched and a resumed run
  continues the same chain. Given the same s, z is the same numbers as `torch.manual_seed(s)` then
  `torch.normal` gives (checked on CPU).
- Weight decay by param group (`weight_decay` per group) instead of by name (the official skips names
  containing "bias", "layer_norm" or "layernorm"): put those in a group with weight_decay=0. z is drawn
  over the groups' parameters in order (the official: `model.named_parameters()` order); parameters
  with requires_grad=False are skipped, as there.
- The closure decides the model's mode: the official switches to `model.eval()` (dropout off) and runs
  under `torch.inference_mode()`; here the forward passes run under `torch.no_grad()`.
- Two-sided estimates with one z per step only (the official asserts q = 1, as ZO-Bench's `zo_step`).
- ε (`zo_eps`) must be the same in every group: g divides one loss difference by 2ε.

Defaults: MeZO as `large_models/mezo.sh` (lr 1e-5, ε 1e-3, λ 0); ZO-SGD and ZO-Adam as the torch
classes ZO-Bench builds (lr 1e-3; Adam betas (0.9, 0.999), eps 1e-8) with ZO-Bench's ε 1e-3; Sparse
MeZO sparsity 0.8 (the paper's range 0.5-0.8).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from workbench.optim.base import Optimizer
from workbench.optim.projectors import check_int, next_seed


def magnitude_threshold(p: torch.Tensor, sparsity: float) -> float:
    """h: the k-th smallest |θ| of p, k = n − ⌊sparsity·n⌋, so that [|θ| ≤ h] keeps the k smallest (and ties)."""
    n = p.numel()
    k = max(1, n - int(sparsity * n))
    return torch.kthvalue(p.detach().abs().flatten(), k).values.item()


class ZerothOrder(Optimizer):
    """The SPSA step shared by the four optimizers (see the module docstring); subclasses give `_update`."""

    forward_passes = 2  # closure calls per step
    zeroth_order = True  # step(closure) with no gradient: training loops skip the backward pass

    def __init__(self, params, defaults: dict[str, Any], seed: int = 0):
        check_int("seed", seed, 0, 2**63 - 1)
        self.seed = seed
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        eps, first = self.param_groups[-1]["zo_eps"], self.param_groups[0]["zo_eps"]
        if eps != first:
            raise ValueError(f"zo_eps={eps!r} in param group {len(self.param_groups) - 1} is not allowed: "
                             f"every group must share the first group's zo_eps={first!r}")

    def _trainable(self) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    yield group, p

    def _masks(self) -> dict[torch.Tensor, torch.Tensor]:
        """Sparse MeZO: for each parameter of a group with a sparsity, the coordinates left alone, |θ_t| > h."""
        frozen = {}
        for group, p in self._trainable():
            if group["sparsity"] is not None:
                state = self.state[p]
                if "threshold" not in state:
                    state["threshold"] = magnitude_threshold(p, group["sparsity"])
                frozen[p] = p.abs() > state["threshold"]
        return frozen

    def _directions(self, seed: int, frozen: dict) -> Iterator[tuple[dict[str, Any], torch.Tensor, torch.Tensor]]:
        """(group, θ, z) for every trainable parameter, z ~ N(0, I) regenerated from `seed`, masked where frozen."""
        generators: dict[torch.device, torch.Generator] = {}
        for group, p in self._trainable():
            if p.device not in generators:
                generators[p.device] = torch.Generator(device=p.device).manual_seed(seed)
            z = torch.normal(0.0, 1.0, size=p.shape, generator=generators[p.device], device=p.device, dtype=p.dtype)
            if p in frozen:
                z.masked_fill_(frozen[p], 0.0)
            yield group, p, z

    def _perturb(self, seed: int, scale: int, frozen: dict) -> None:
        """θ ← θ + scale·ε·z, in the official op order: (scale·z)·ε, then the sum."""
        for group, p, z in self._directions(seed, frozen):
            if scale != 1:
                z.mul_(scale)
            p.add_(z.mul_(group["zo_eps"]))

    def _update(self, p: torch.Tensor, z: torch.Tensor, g: float, group: dict[str, Any], t: int) -> None:
        """Update θ = p with the estimate ĝ = g·z at step t (z is p's direction and may be overwritten)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        """One SPSA step: the closure at θ + εz and θ − εz, θ restored, then `_update`; returns ℓ+."""
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure: a function that runs one forward pass and "
                             f"returns the loss (the torch.optim.LBFGS interface); it is called {self.forward_passes} "
                             "times a step, under torch.no_grad()")
        counters = self.state[self.param_groups[0]["params"][0]]
        s, t = counters.get("seed", self.seed), counters.get("step", 0) + 1
        eps = self.param_groups[0]["zo_eps"]
        frozen = self._masks()

        self._perturb(s, 1, frozen)
        loss_plus = closure()
        self._perturb(s, -2, frozen)
        loss_minus = closure()
        self._perturb(s, 1, frozen)
        g = float((loss_plus - loss_minus) / (2 * eps))  # tensors: the official's fp32 ops, then .item()

        for group, p, z in self._directions(s, frozen):
            self._update(p, z, g, group, t)
        counters.update(step=t, seed=next_seed(s), projected_grad=g,
                        func_evals=counters.get("func_evals", 0) + self.forward_passes)
        return loss_plus


class MeZO(ZerothOrder):
    """MeZO: θ ← θ − lr·(g·z + λ·θ). Group keys lr, zo_eps, weight_decay, sparsity (None: dense)."""

    def __init__(self, params, lr: float = 1e-5, zo_eps: float = 1e-3, weight_decay: float = 0.0,
                 sparsity: float | None = None, seed: int = 0):
        defaults = dict(lr=lr, zo_eps=zo_eps, weight_decay=weight_decay, sparsity=sparsity)
        super().__init__(params, defaults, seed)

    def _update(self, p, z, g, group, t):
        d = z.mul_(g)  # g·z
        if group["weight_decay"] != 0:
            d.add_(p * group["weight_decay"])  # g·z + λ·θ
        p.sub_(d.mul_(group["lr"]))


class SparseMeZO(MeZO):
    """Sparse MeZO: MeZO on the small weights, [|θ_t| ≤ h], of each tensor (see the module docstring)."""

    def __init__(self, params, lr: float = 1e-5, zo_eps: float = 1e-3, weight_decay: float = 0.0,
                 sparsity: float | None = 0.8, seed: int = 0):
        super().__init__(params, lr=lr, zo_eps=zo_eps, weight_decay=weight_decay, sparsity=sparsity, seed=seed)


class ZOSGD(ZerothOrder):
    """ZO-SGD: torch.optim.SGD's step (dampening 0, no Nesterov) on d = g·z + λ·θ. Group keys lr, zo_eps,
    momentum, weight_decay, sparsity. State: "momentum_buffer" per parameter when momentum > 0."""

    def __init__(self, params, lr: float = 1e-3, zo_eps: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, sparsity: float | None = None, seed: int = 0):
        defaults = dict(lr=lr, zo_eps=zo_eps, momentum=momentum, weight_decay=weight_decay, sparsity=sparsity)
        super().__init__(params, defaults, seed)

    def _update(self, p, z, g, group, t):
        d = z.mul_(g)
        if group["weight_decay"] != 0:
            d.add_(p, alpha=group["weight_decay"])
        if group["momentum"] != 0:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = d.clone()
            else:
                state["momentum_buffer"].mul_(group["momentum"]).add_(d)
            d = state["momentum_buffer"]
        p.add_(d, alpha=-group["lr"])


class ZOAdam(ZerothOrder):
    """ZO-Adam: torch.optim.Adam's step on d = g·z + λ·θ. Group keys lr, zo_eps, betas, eps, weight_decay,
    sparsity. State: "exp_avg" and "exp_avg_sq" per parameter; t is the optimizer's step count."""

    def __init__(self, params, lr: float = 1e-3, zo_eps: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, sparsity: float | None = None, seed: int = 0):
        defaults = dict(lr=lr, zo_eps=zo_eps, betas=betas, eps=eps, weight_decay=weight_decay, sparsity=sparsity)
        super().__init__(params, defaults, seed)

    def _update(self, p, z, g, group, t):
        (beta1, beta2), state = group["betas"], self.state[p]
        d = z.mul_(g)
        if group["weight_decay"] != 0:
            d.add_(p, alpha=group["weight_decay"])
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(d, 1 - beta1)
        v.mul_(beta2).addcmul_(d, d, value=1 - beta2)
        bc1, bc2 = 1 - beta1**t, 1 - beta2**t
        denom = v.sqrt().div_(bc2**0.5).add_(group["eps"])  # torch.optim.Adam's ops, one temporary
        p.addcdiv_(m, denom, value=-(group["lr"] / bc1))

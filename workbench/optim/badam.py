"""BAdam: block coordinate descent with Adam (Luo et al. 2024, "BAdam: A Memory Efficient Full Parameter
Optimization Method for Large Language Models", arXiv 2404.02827; conventions of the official
`Ledzy/BAdam`@bf989dc `src/badam/block_optim.py` `BlockOptimizer` = PyPI badam 1.4, wrapping torch.optim.AdamW).

The parameters are cut into D blocks, here one per param group (a layer, say). Only one block is
trained at a time, for K = switch_block_every steps, with AdamW started afresh:

    active block b:  for each W in b, with g its gradient and t the updates since b became active
        W ← W·(1 − lr·λ)
        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²            (m, v start at 0 when b starts)
        W ← W − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)       (torch.optim.AdamW's own function)
    after K steps: every moment is dropped, the next block becomes the active one

The other blocks keep no state and get `requires_grad=False` (and `.grad` None), so a backward pass
computes no gradient for them; the active ones get True (the schedule owns the flag of every parameter
it holds). Memory: the model plus the active block's gradient, moments and, for parameters not in
float32, a float32 master copy (state "master"; badam keeps one for every active parameter, fp32 ones
included). Groups with `always_active=True` (badam's `active_modules`) are updated at every step, their
moments dropped at each switch as well.

Block order (`switch_mode`, blocks numbered in the order of their groups, always-active ones left out):
"descending" (default: from the last block down), "ascending", "random" (a `torch.randperm` of the blocks,
drawn from the global RNG, used up, then drawn again: badam's random reshuffling, with its draws at the
same moments) or "fixed" (`start_block`, or block 0, only). `start_block` overrides the first block.
Switch timing as badam 1.4: after step s (counted from 1) when (s + 1) % K == 0, so the first block
gets K − 1 steps and every later one K. With the same blocks, order and timing the parameters agree
with badam's bit for bit (tests/test_optim_galore_variants.py).

Defaults: lr, betas, ε, λ of torch.optim.AdamW (1e-3, (0.9, 0.999), 1e-8, 1e-2); switch_block_every 50
and switch_mode "descending" as badam's BlockOptimizer (its README uses "random").
`state_dict()` also holds the block schedule ("blocks": step count, current and next block, the rest of a
random order), so a run resumes with the same blocks (the global RNG of later random orders is the
caller's to save); it loads with `torch.load(weights_only=True)`.

Deliberate differences from badam 1.4:
- Blocks are param groups, not lists of name prefixes (badam infers transformer layers from names).
- lr, betas, ε and λ are per group. badam copies group 0's lr to all, and gives every active parameter the
  base optimizer's default λ: its group meant to exempt biases from decay is overwritten by those defaults.
- The schedule is saved in the state_dict (badam's state_dict is the base optimizer's: only the active
  block's moments, and a resumed run starts the block order over). "random" with `start_block`, and
  "fixed" without, work (badam: AttributeError).
- No DeepSpeed ZeRO-3 path, no LoRA mode, no verbose printing; `.grad` is left in place after a step
  (badam sets it to None).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.optim.adam import adam

from workbench.optim.base import Optimizer
from workbench.optim.projectors import check_choice, check_int

SWITCH_MODES = ("descending", "ascending", "random", "fixed")


class BAdam(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        switch_block_every: int = 50,
        switch_mode: str = "descending",
        start_block: int | None = None,
        always_active: bool = False,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, always_active=always_active)
        super().__init__(params, defaults)
        check_int("switch_block_every", switch_block_every, 1)
        check_choice("switch_mode", switch_mode, SWITCH_MODES)
        self.switch_block_every, self.switch_mode = switch_block_every, switch_mode
        blocks = len(self._blocks())
        if blocks == 0:
            raise ValueError("BAdam needs a block to train: every param group has always_active=True")
        if start_block is not None:
            check_int("start_block", start_block, 0, blocks - 1, f" with {blocks} blocks")
        self._step_count, self._order = 0, []
        self._current = start_block if start_block is not None else self._first_block(blocks)
        self._next = self._following(self._current)
        self._activate()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        always = self.param_groups[-1]["always_active"]
        if not isinstance(always, bool):
            raise ValueError(f"always_active={always!r} is not allowed: choose True or False")

    def _blocks(self) -> list[dict[str, Any]]:
        """The param groups that take turns, in order."""
        return [group for group in self.param_groups if not group["always_active"]]

    def _first_block(self, blocks: int) -> int:
        """The block trained first: the last, the first, or (random) one popped from a fresh order."""
        if self.switch_mode == "random":
            self._order = torch.randperm(blocks).tolist()
            return self._order.pop()
        return blocks - 1 if self.switch_mode == "descending" else 0

    def _following(self, block: int) -> int:
        """The block after `block` (badam's `_update_active_block_idx`, run one switch ahead as badam does)."""
        blocks = len(self._blocks())
        if self.switch_mode == "random":
            if not self._order:
                self._order = torch.randperm(blocks).tolist()
            return self._order.pop()
        step = {"ascending": 1, "descending": -1, "fixed": 0}[self.switch_mode]
        return (block + step) % blocks

    def _active(self, group: dict[str, Any]) -> bool:
        return group["always_active"] or group is self._blocks()[self._current]

    def _activate(self) -> None:
        """Gradients for the active groups only: requires_grad on, off (and .grad None) elsewhere."""
        for group in self.param_groups:
            active = self._active(group)
            for p in group["params"]:
                p.requires_grad_(active)
                if not active:
                    p.grad = None

    def _switch(self) -> None:
        """Drop every moment and make the next block the active one."""
        self.state.clear()
        self._current = self._next
        self._next = self._following(self._current)
        self._activate()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group in self.param_groups:
            if self._active(group):
                self._adamw(group)
        self._step_count += 1
        if (self._step_count + 1) % self.switch_block_every == 0:
            self._switch()
        return loss

    def _adamw(self, group: dict[str, Any]) -> None:
        """torch.optim.AdamW's update (its functional form) on the group's parameters that have a gradient;
        parameters not in float32 are updated through their float32 master copies."""
        params = [p for _, p in self._with_grads([group])]
        if not params:
            return
        for p in params:
            state = self.state[p]
            if not state:
                master = p if p.dtype == torch.float32 else p.float()
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(master, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(master, memory_format=torch.preserve_format)
                if master is not p:
                    state["master"] = master
        states = [self.state[p] for p in params]
        masters = [state.get("master", p) for p, state in zip(params, states)]
        beta1, beta2 = group["betas"]
        adam(
            masters, [p.grad.to(m.dtype) for p, m in zip(params, masters)],
            [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [], [s["step"] for s in states],
            decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )
        for p, master in zip(params, masters):
            if master is not p:
                p.copy_(master)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["blocks"] = {"step": self._step_count, "current": self._current, "next": self._next, "order": list(self._order)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        blocks = state_dict.pop("blocks")
        super().load_state_dict(state_dict)
        self._step_count, self._current, self._next = blocks["step"], blocks["current"], blocks["next"]
        self._order = list(blocks["order"])
        self._activate()

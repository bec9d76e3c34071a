"""Several optimizers trained side by side: one initial model, one copy per optimizer, the same batches, in lockstep.

Step t of every optimizer runs before step t + 1 of any, on the batch the task draws for step t, so the live
curves grow together and Stop ends them all at the same step. The lr of step t is the base lr times the schedule's
factor (:func:`workbench.methods.optim_tasks.lr_factor`).

A first-order optimizer takes ``loss.backward()`` then ``step()``. A zeroth-order one (``zeroth_order = True``, the
closure interface of ``torch.optim.LBFGS``) takes ``step(closure)``: it calls ``closure()`` for each forward pass,
under ``torch.no_grad()``, and returns the loss; nothing is differentiated.

:class:`SideBySide` keeps, per optimizer, every step's training loss and every evaluation (``curves``), the 2-D
tasks' trajectories, the state bytes after the first step and the wall time of ``step()`` alone (``step_s``) and of
the whole iteration (``iter_s``). :meth:`SideBySide.fit` reports on the :class:`~workbench.progress.Cadence`
``Event(step, total, {"<opt>.loss": mean since the previous report, "<opt>.<eval_name>": latest evaluation})``;
an evaluation made between two reports is sent with the next one.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch

from workbench.methods.optim_tasks import Task, Task2D, lr_factor, state_bytes
from workbench.progress import Cadence, Event


class SideBySide:
    """``optimizers`` ({name: a function of the model's copy that builds its optimizer}) trained on ``task``."""

    def __init__(self, task: Task, initial: torch.nn.Module, optimizers: dict[str, Callable], sync=None):
        self.task, self.names = task, list(optimizers)
        self.models = {n: copy.deepcopy(initial) for n in self.names}
        self.optimizers = {n: build(self.models[n]) for n, build in optimizers.items()}
        self.base_lrs = {n: [g["lr"] for g in self.optimizers[n].param_groups] for n in self.names}
        self.eval_name = "distance" if isinstance(task, Task2D) else task.eval_name
        self.sync = sync or (lambda: None)
        # live state (lists only grow: a reader in another thread may slice them at any time)
        self.curves = {n: {"step": [], "loss": [], "eval_step": [], "eval": []} for n in self.names}
        self.trajectories = ({n: [[float(v) for v in self.models[n].x.detach()]] for n in self.names}
                             if isinstance(task, Task2D) else None)
        self.step_s = {n: 0.0 for n in self.names}
        self.iter_s = {n: 0.0 for n in self.names}
        self.memory = {n: 0 for n in self.names}
        self.done = 0

    def fit(self, total: int, schedule: str = "cosine", eval_every: int | None = None,
            callback: Callable[[Event], None] | None = None, stop: Callable[[], bool] | None = None,
            cadence: Cadence | None = None) -> int:
        """Train every optimizer ``total`` steps (fewer when ``stop()`` turns True); returns the steps taken."""
        eval_every = eval_every or max(1, total // 10)
        cadence = cadence if cadence is not None else Cadence(total)
        running, count, evaluations = {n: 0.0 for n in self.names}, 0, {}
        for step in range(1, total + 1):
            if stop is not None and stop():
                break
            batch = self.task.batch()
            factor = lr_factor(step, total, schedule)
            for n in self.names:
                running[n] += self.step(n, batch, factor, step)
            self.done, count = step, count + 1
            if step == 1:
                self.memory = {n: state_bytes(self.optimizers[n]) for n in self.names}  # states exist after step 1
            if (step % eval_every == 0 or step == total) and not (stop is not None and stop()):
                evaluations = self.evaluate(step)  # after Stop: no more work
            if callback is not None and cadence(step):
                metrics = {f"{n}.loss": running[n] / count for n in self.names} | evaluations
                callback(Event(step, total, metrics))
                running, count, evaluations = {n: 0.0 for n in self.names}, 0, {}
        return self.done

    def step(self, name: str, batch, factor: float, step: int) -> float:
        """One step of optimizer ``name`` on ``batch`` at lr factor ``factor``; the batch's training loss."""
        model, optimizer, task = self.models[name], self.optimizers[name], self.task
        for group, base in zip(optimizer.param_groups, self.base_lrs[name]):
            group["lr"] = base * factor
        self.sync()
        t0 = time.perf_counter()
        loss, t1 = train_step(task, model, optimizer, batch, self.sync)
        self.sync()
        t2 = time.perf_counter()
        self.step_s[name] += t2 - t1
        self.iter_s[name] += t2 - t0
        value = loss.item()
        self.curves[name]["step"].append(step)
        self.curves[name]["loss"].append(value)
        if self.trajectories is not None:
            self.trajectories[name].append([float(v) for v in model.x.detach()])
        return value

    def evaluate(self, step: int) -> dict[str, float]:
        """The periodic evaluation of every model (``<opt>.<eval_name>``), appended to the curves."""
        values = {}
        for n in self.names:
            value = (self.task.evaluate(self.models[n])["distance"] if self.trajectories is not None
                     else self.task.probe(self.models[n]))
            self.curves[n]["eval_step"].append(step)
            self.curves[n]["eval"].append(value)
            values[f"{n}.{self.eval_name}"] = value
        return values


def train_step(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch,
               sync: Callable[[], None] = lambda: None) -> tuple[torch.Tensor, float]:
    """One step on ``batch``: (the batch's loss, ``time.perf_counter()`` when the update began). A first-order
    optimizer gets ``backward()`` then ``step()``; a zeroth-order one ``step(closure)``, whose forward passes are
    its update, so its update begins with the step."""
    if getattr(optimizer, "zeroth_order", False):
        start = time.perf_counter()
        return optimizer.step(lambda: task.loss(model, batch)), start
    loss = task.loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sync()
    start = time.perf_counter()
    optimizer.step()
    return loss, start


def step_memory(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch) -> dict[str, float]:
    """What one training step of ``optimizer`` on ``batch`` costs in memory, measured (run it after a first step,
    so that the state exists): ``forward_passes``, ``backward`` (1 or 0), ``model_bytes``, ``state_bytes``,
    ``step_bytes`` (the peak allocated during the step, :func:`workbench.optim.memory.peak_step_bytes`) and
    ``peak_bytes`` = model + state + step (the parameters' gradients are freed before the step starts)."""
    from workbench.optim.memory import peak_step_bytes

    passes = []
    hook = model.register_forward_hook(lambda *args: passes.append(1))
    try:
        during = peak_step_bytes(lambda: train_step(task, model, optimizer, batch))
    finally:
        hook.remove()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    state = state_bytes(optimizer)
    return {"forward_passes": len(passes), "backward": 0 if getattr(optimizer, "zeroth_order", False) else 1,
            "model_bytes": model_bytes, "state_bytes": state, "step_bytes": during,
            "peak_bytes": model_bytes + state + during}

"""Optimizers side by side: the same model from the same seed, trained by each chosen optimizer.

Every optimizer trains its own copy of one initial model on the *same* batches, in lockstep (step t
of every optimizer, then step t + 1), so the live curves grow together and Stop ends them all at
the same step. Per optimizer the result holds (metric names ``<opt>.<metric>``):

- curves ``<opt>.loss`` (training loss of the step's batch) and, every ``eval_every`` steps,
  ``<opt>.test_accuracy`` (digits) or ``<opt>.val_loss`` (lm) or ``<opt>.distance`` (2-D tasks);
- final ``<opt>.final_loss`` (the whole training set for digits, fixed training windows for lm,
  f(x) for 2-D tasks), ``<opt>.test_accuracy`` / ``<opt>.train_accuracy`` / ``<opt>.test_loss``
  (digits), ``<opt>.val_loss`` (lm), ``<opt>.distance`` = ‖x − x*‖ (2-D tasks);
- ``<opt>.state_bytes`` (bytes of every tensor the optimizer keeps), ``<opt>.step_ms`` (mean
  wall time of ``optimizer.step()`` alone, projector refreshes included) and ``<opt>.iter_ms``
  (forward + backward + step).

Artifacts: ``models`` ({opt: trained model}), ``optimizers`` ({opt: optimizer}), ``lrs`` (the lr
each optimizer used), ``trajectories`` (2-D tasks: {opt: (steps + 1, 2) array}), ``task`` (the task
object: data, corpus). The tasks and :func:`make_optimizer` live in
:mod:`workbench.methods.optim_tasks`.
"""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import param

from workbench.experiment import ConfigError, Event, Experiment, Result, register
from workbench.methods.optim_tasks import (
    DEFAULT_LR, OPTIMIZERS, TASKS, DigitsTask, LMTask, Task2D, default_lr, lr_factor, make_optimizer, state_bytes,
)

DEFAULT_OPTIMIZERS = ["adamw", "galore", "apollo_mini", "lion", "adamw8bit"]


@register
class Optimizers(Experiment):
    """Train the same model from the same seed with several optimizers; compare loss, metrics, state memory and step time."""

    name = param.String("optimizers", constant=True)
    headline = (".test_accuracy", ".val_loss", ".distance")  # digits, lm, the 2-D functions

    task = param.Selector(default="digits", objects=list(TASKS), doc=(
        "quadratic / rosenbrock: 2-D test functions with trajectories; digits: an MLP on sklearn's digits; "
        "lm: a character-level transformer on the Python standard library's source."))
    optimizers = param.ListSelector(default=list(DEFAULT_OPTIMIZERS), objects=list(OPTIMIZERS), doc=(
        "Optimizers to compare (adamw = torch.optim.AdamW, the reference; sgd = SGD with momentum 0.9)."))
    steps = param.Integer(None, allow_None=True, bounds=(1, 1_000_000), doc=(
        "Training steps per optimizer; auto = the task's default (quadratic 300, rosenbrock 1000, digits 500, lm 300)."))
    lr = param.Number(None, allow_None=True, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Learning rate of every optimizer; auto = each optimizer's documented default for the task "
        "(workbench.methods.optim_tasks.DEFAULT_LR)."))
    schedule = param.Selector(default="cosine", objects=["cosine", "constant"], doc=(
        "Learning-rate schedule: cosine from lr (step 1) to 0 (step steps + 1), or constant."))
    weight_decay = param.Number(0.0, bounds=(0, None), doc="Decoupled weight decay of every optimizer.")
    rank = param.Integer(None, allow_None=True, bounds=(1, 65_536), doc=(
        "Rank of the projected optimizers (galore, dct, apollo, frugal); auto = rank_fraction × min(m, n) per matrix. "
        "APOLLO-Mini is always rank 1."))
    rank_fraction = param.Number(0.25, bounds=(0, 1), inclusive_bounds=(False, True), doc=(
        "Rank as a fraction of each projected matrix's smaller side, used when rank is auto."))
    update_proj_gap = param.Integer(50, bounds=(1, 1_000_000), doc="Steps between projector refreshes.")
    scale = param.Number(None, allow_None=True, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Scale of the projected update; auto = each optimizer's default (GaLore 0.25, APOLLO 1, APOLLO-Mini 128, DCT 1, FRUGAL 1)."))
    batch_size = param.Integer(32, bounds=(1, 65_536), doc="Minibatch size (digits: images; lm: sequences).")
    eval_every = param.Integer(None, allow_None=True, bounds=(1, 1_000_000), doc=(
        "Evaluate (test accuracy, validation loss, distance to the minimum) every this many steps; auto = 10 times per run."))
    mlp_width = param.Integer(128, bounds=(4, 8192), doc="digits: width of the MLP.")
    d_model = param.Integer(64, bounds=(8, 8192), doc="lm: model width.")
    n_layers = param.Integer(2, bounds=(1, 96), doc="lm: transformer blocks.")
    n_heads = param.Integer(4, bounds=(1, 128), doc="lm: attention heads (must divide d_model).")
    context = param.Integer(64, bounds=(4, 8192), doc="lm: context length in characters.")
    corpus_chars = param.Integer(1_000_000, bounds=(10_000, 100_000_000), doc=(
        "lm: characters of standard-library source to read (90 % train, 10 % validation)."))
    eval_batches = param.Integer(8, bounds=(1, 1000), doc="lm: fixed batches per evaluation.")

    def validate(self) -> None:
        if not self.optimizers:
            raise ConfigError(f"{self.name}: parameter 'optimizers' = [] is not allowed; expected a non-empty list "
                              f"of {', '.join(repr(o) for o in OPTIMIZERS)}")
        if len(set(self.optimizers)) != len(self.optimizers):
            raise ConfigError(f"{self.name}: parameter 'optimizers' = {self.optimizers!r} is not allowed; "
                              f"expected each optimizer at most once")
        if self.task == "lm" and self.d_model % self.n_heads:
            raise ConfigError(f"{self.name}: parameter 'n_heads' = {self.n_heads} is not allowed with d_model = "
                              f"{self.d_model}; expected a divisor of d_model")

    # --- pieces -------------------------------------------------------------------------------
    def make_task(self, device):
        if self.task in ("quadratic", "rosenbrock"):
            return Task2D(self.task)
        if self.task == "digits":
            return DigitsTask(self.seed, self.batch_size, self.mlp_width, device=device)
        return LMTask(self.seed, self.batch_size, self.d_model, self.n_layers, self.n_heads, self.context,
                      self.corpus_chars, self.eval_batches, device=device)

    def lr_of(self, name: str) -> float:
        return self.lr if self.lr is not None else default_lr(name, self.task)

    # --- the loop -----------------------------------------------------------------------------
    def run(self, progress, stop: threading.Event) -> Result:
        import torch

        device = self.torch_device
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        task = self.make_task(device)
        total = self.steps or task.default_steps
        eval_every = self.eval_every or max(1, total // 10)
        two_d = isinstance(task, Task2D)
        eval_name = "distance" if two_d else task.eval_name

        torch.manual_seed(self.seed)
        initial = task.model()
        names = list(self.optimizers)
        models = {n: copy.deepcopy(initial) for n in names}
        lrs = {n: self.lr_of(n) for n in names}
        optimizers = {n: make_optimizer(n, models[n], lrs[n], rank=self.rank, update_proj_gap=self.update_proj_gap,
                                        scale=self.scale, weight_decay=self.weight_decay,
                                        rank_fraction=self.rank_fraction) for n in names}
        base_lrs = {n: [g["lr"] for g in optimizers[n].param_groups] for n in names}
        n_params = sum(p.numel() for p in initial.parameters())

        # live state (lists only grow: a reader in another thread may slice them at any time)
        curves = {n: {"step": [], "loss": [], "eval_step": [], "eval": []} for n in names}
        trajectories = {n: [[float(v) for v in models[n].x.detach()]] for n in names} if two_d else None
        step_s = {n: 0.0 for n in names}
        iter_s = {n: 0.0 for n in names}
        memory = {n: 0 for n in names}
        done, payload = 0, None

        for step in range(1, total + 1):
            if stop.is_set():
                break
            batch = task.batch()
            factor = lr_factor(step, total, self.schedule)
            metrics = {}
            for n in names:
                model, optimizer = models[n], optimizers[n]
                for group, base in zip(optimizer.param_groups, base_lrs[n]):
                    group["lr"] = base * factor
                sync()
                t0 = time.perf_counter()
                loss = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                sync()
                t1 = time.perf_counter()
                optimizer.step()
                sync()
                t2 = time.perf_counter()
                step_s[n] += t2 - t1
                iter_s[n] += t2 - t0
                value = loss.item()
                curves[n]["step"].append(step)
                curves[n]["loss"].append(value)
                metrics[f"{n}.loss"] = value
                if two_d:
                    trajectories[n].append([float(v) for v in model.x.detach()])
            done = step
            if step == 1:
                memory = {n: state_bytes(optimizers[n]) for n in names}  # states exist after the first step
            if (step % eval_every == 0 or step == total) and not stop.is_set():  # after Stop: no more work
                for n in names:
                    value = task.evaluate(models[n])["distance"] if two_d else task.probe(models[n])
                    curves[n]["eval_step"].append(step)
                    curves[n]["eval"].append(value)
                    metrics[f"{n}.{eval_name}"] = value
            payload = {
                "task": self.task, "optimizers": names, "curves": curves, "eval_name": eval_name,
                "state_bytes": dict(memory), "lrs": dict(lrs), "n_params": n_params,
                "step_ms": {n: 1000 * step_s[n] / step for n in names},
                "iter_ms": {n: 1000 * iter_s[n] / step for n in names},
            }
            if two_d:
                payload["trajectories"] = trajectories
            progress(Event(step, total, metrics, payload))

        # final metrics (after a Stop: only what is already known, so Stop ends within a second)
        metrics: dict[str, float] = {"steps_done": done, "n_params": n_params}
        for n in names:
            if stop.is_set():
                final = {"final_loss": curves[n]["loss"][-1] if curves[n]["loss"] else float("nan")}
                if curves[n]["eval"]:
                    final[eval_name] = curves[n]["eval"][-1]
            else:
                final = task.evaluate(models[n])
                memory[n] = state_bytes(optimizers[n])
            for key, value in final.items():
                metrics[f"{n}.{key}"] = value
            metrics[f"{n}.state_bytes"] = memory[n]
            metrics[f"{n}.step_ms"] = 1000 * step_s[n] / max(done, 1)
            metrics[f"{n}.iter_ms"] = 1000 * iter_s[n] / max(done, 1)
            metrics[f"{n}.lr"] = lrs[n]
        if done:
            payload["state_bytes"] = dict(memory)
        artifacts = {"models": models, "optimizers": optimizers, "lrs": lrs, "task": task, "n_params": n_params,
                     "model": models[names[0]], "payload": payload if done else None}
        if two_d:
            artifacts["trajectories"] = {n: np.asarray(t) for n, t in trajectories.items()}
        return Result(metrics=metrics, artifacts=artifacts)


__all__ = ["DEFAULT_LR", "DEFAULT_OPTIMIZERS", "Optimizers"]

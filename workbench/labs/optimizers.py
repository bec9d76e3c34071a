"""Optimizers side by side: the same model from the same seed, trained by each chosen optimizer.

Every optimizer trains its own copy of one initial model on the *same* batches, in lockstep
(:class:`workbench.methods.side_by_side.SideBySide`), so the live curves grow together and Stop ends them all at
the same step. Per optimizer the result holds (metric names ``<opt>.<metric>``):

- curves ``<opt>.loss`` (mean training loss since the previous report, on the Cadence; every step's loss is in the
  payload's ``curves``) and, every ``eval_every`` steps, ``<opt>.test_accuracy`` (digits) or ``<opt>.val_loss`` (lm)
  or ``<opt>.distance`` (2-D tasks);
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

import functools
import threading

import numpy as np
import param

from workbench.experiment import ConfigError, Event, Experiment, Result, register
from workbench.methods.optim_tasks import (
    DEFAULT_LR, OPTIMIZERS, TASKS, DigitsTask, LMTask, Task2D, default_lr, make_optimizer, state_bytes,
)
from workbench.methods.side_by_side import SideBySide

# every optimizer of the lab, and adamw_frozen: the control of the projected ones (the notebook's comparison)
DEFAULT_OPTIMIZERS = ["adamw", "galore", "dct", "apollo", "apollo_mini", "frugal", "lion", "adamw8bit", "lamb",
                      "adamw_frozen"]


@register
class Optimizers(Experiment):
    """Train the same model from the same seed with several optimizers; compare loss, metrics, state memory and step time."""

    name = param.String("optimizers", constant=True)
    headline = (".test_accuracy", ".val_loss", ".distance")  # digits, lm, the 2-D functions
    tiny_params = {"task": "quadratic", "optimizers": ["adamw", "lion"], "steps": 200}

    task = param.Selector(default="digits", objects=list(TASKS), doc=(
        "quadratic / rosenbrock: 2-D test functions with trajectories; digits: an MLP on sklearn's digits; "
        "lm: a character-level transformer on the Python standard library's source."))
    optimizers = param.ListSelector(default=list(DEFAULT_OPTIMIZERS), objects=list(OPTIMIZERS), doc=(
        "Optimizers to compare (adamw = torch.optim.AdamW, the reference; sgd = SGD with momentum 0.9; mezo, "
        "sparse_mezo, zo_sgd, zo_adam: zeroth order, two forward passes and no backward per step)."))
    steps = param.Integer(None, allow_None=True, bounds=(1, 1_000_000), doc=(
        "Training steps per optimizer; auto = the task's default (quadratic 300, rosenbrock 1000, digits 500, lm 300)."))
    lr = param.Number(None, allow_None=True, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Learning rate of every optimizer; auto = each optimizer's documented default for the task "
        "(workbench.methods.optim_tasks.DEFAULT_LR)."))
    schedule = param.Selector(default="cosine", objects=["cosine", "constant"], doc=(
        "Learning-rate schedule: cosine from lr (step 1) to 0 (step steps + 1), or constant."))
    weight_decay = param.Number(0.0, bounds=(0, None), doc="Decoupled weight decay of every optimizer.")
    rank = param.Integer(None, allow_None=True, bounds=(1, 65_536), doc=(
        "Rank of the projected optimizers (galore, dct, apollo, frugal, q_galore, natural_galore, cosmos); auto = "
        "rank_fraction × min(m, n) per matrix. "
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
    mlp_depth = param.Integer(2, bounds=(0, 64), doc=(
        "digits: hidden Linear(w, w) layers after the first (0 = one hidden layer)."))
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
        if self.lr is None:
            for name in self.optimizers:
                try:
                    default_lr(name, self.task)
                except ValueError as error:
                    raise ConfigError(f"{self.name}: parameter 'lr' = auto is not allowed with optimizers = "
                                      f"{self.optimizers!r} on task {self.task!r}: {error}") from None
        if self.task == "lm" and self.d_model % self.n_heads:
            raise ConfigError(f"{self.name}: parameter 'n_heads' = {self.n_heads} is not allowed with d_model = "
                              f"{self.d_model}; expected a divisor of d_model")

    # --- pieces -------------------------------------------------------------------------------
    def task_for(self, device):
        """The method's task (workbench.methods.optim_tasks) that the parameters name, its data on ``device``."""
        if self.task in ("quadratic", "rosenbrock"):
            return Task2D(self.task)
        if self.task == "digits":
            return DigitsTask(self.seed, self.batch_size, self.mlp_width, self.mlp_depth, device=device)
        return LMTask(self.seed, self.batch_size, self.d_model, self.n_layers, self.n_heads, self.context,
                      self.corpus_chars, self.eval_batches, device=device)

    def lr_of(self, name: str) -> float:
        return self.lr if self.lr is not None else default_lr(name, self.task)

    def optimizer(self, name: str, params):
        """Optimizer ``name`` over ``params`` (a model, or what :func:`make_optimizer` takes) with these parameters'
        lr, rank, projector gap, scale, weight decay and seed, as the run builds it."""
        return make_optimizer(name, params, lr=self.lr_of(name), rank=self.rank, update_proj_gap=self.update_proj_gap,
                              scale=self.scale, weight_decay=self.weight_decay, rank_fraction=self.rank_fraction,
                              seed=self.seed)

    # --- the run ------------------------------------------------------------------------------
    def run(self, progress, stop: threading.Event) -> Result:
        import torch

        device = self.torch_device
        task = self.task_for(device)
        total = self.steps or task.default_steps
        torch.manual_seed(self.seed)
        initial = task.model()
        lrs = {n: self.lr_of(n) for n in self.optimizers}
        race = SideBySide(task, initial, {n: functools.partial(self.optimizer, n) for n in self.optimizers},
                          sync=torch.cuda.synchronize if device.type == "cuda" else None)
        n_params = sum(p.numel() for p in initial.parameters())

        def live_payload() -> dict:
            payload = {"task": self.task, "optimizers": race.names, "curves": race.curves,
                       "eval_name": race.eval_name, "state_bytes": dict(race.memory), "lrs": dict(lrs),
                       "n_params": n_params, "step_ms": {n: 1000 * race.step_s[n] / race.done for n in race.names},
                       "iter_ms": {n: 1000 * race.iter_s[n] / race.done for n in race.names}}
            if race.trajectories is not None:
                payload["trajectories"] = race.trajectories
            return payload

        def report(event: Event) -> None:
            event.payload = live_payload()
            progress(event)

        done = race.fit(total, self.schedule, self.eval_every, callback=report, stop=stop.is_set)
        return Result(metrics=self.final_metrics(race, stop.is_set(), n_params),
                      artifacts=self.artifacts(race, lrs, n_params, live_payload() if done else None))

    def final_metrics(self, race: SideBySide, stopped: bool, n_params: int) -> dict[str, float]:
        """``<opt>.<metric>`` of every optimizer; after a Stop only what is already known, so Stop ends in a second."""
        metrics: dict[str, float] = {"steps_done": race.done, "n_params": n_params}
        for n in race.names:
            curves = race.curves[n]
            if stopped:
                final = {"final_loss": curves["loss"][-1] if curves["loss"] else float("nan")}
                if curves["eval"]:
                    final[race.eval_name] = curves["eval"][-1]
            else:
                final = race.task.evaluate(race.models[n])
                race.memory[n] = state_bytes(race.optimizers[n])
            for key, value in final.items():
                metrics[f"{n}.{key}"] = value
            metrics[f"{n}.state_bytes"] = race.memory[n]
            metrics[f"{n}.step_ms"] = 1000 * race.step_s[n] / max(race.done, 1)
            metrics[f"{n}.iter_ms"] = 1000 * race.iter_s[n] / max(race.done, 1)
            metrics[f"{n}.lr"] = self.lr_of(n)
        return metrics

    @staticmethod
    def artifacts(race: SideBySide, lrs: dict, n_params: int, payload: dict | None) -> dict:
        artifacts = {"models": race.models, "optimizers": race.optimizers, "lrs": lrs, "task": race.task,
                     "n_params": n_params, "model": race.models[race.names[0]], "payload": payload}
        if race.trajectories is not None:
            artifacts["trajectories"] = {n: np.asarray(t) for n, t in race.trajectories.items()}
        return artifacts


__all__ = ["DEFAULT_LR", "DEFAULT_OPTIMIZERS", "Optimizers"]

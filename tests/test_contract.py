"""The experiment contract: one list of checks that every experiment passes, after scikit-learn's
``parametrize_with_checks``.

Each check is a function ``check(subject, bench)`` that fails with an AssertionError naming the experiment and what
it broke. :func:`test_contract` runs every check over every bundled experiment (``workbench.experiments()``, the
modules of ``workbench/labs/``) and over :class:`Descent`, a toy registered here as a method added next year would
be: a lab added later gets every check without writing one. The runs are made at the experiment's ``tiny_params``
(about a second each), on one torch thread, with the Cadence's clock frozen (:func:`frozen_cadence_clock`), so what
is checked never depends on the machine's speed; one tiny run per experiment is shared by the checks that only read
it, made by whichever asks first.

The toy has no notebook of its own and no entry in ``tests/notebook_cases.py``: its :class:`Subject` carries the
``parameters`` cell of its notebook (written into the test's folder and read back as a bundled notebook is) and
its two breakages, so the same checks run on it and nothing is skipped. :func:`test_a_broken_toy_fails_the_check`
shows that every check can fail, on toys broken one way each (Stop ignored, every step reported, a bound not
enforced, a non-finite headline, an old-style metric name, a notebook default that differs, ...).
"""
from __future__ import annotations

import ast
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator
from unittest import mock

import nbformat
import param
import pytest
import torch

import workbench
from notebook_cases import MUTATIONS, Mutation
from workbench import experiment as experiment_module
from workbench import progress as progress_module
from workbench.experiment import (ConfigError, Event, Experiment, Result, configure, describe_allowed,
                                  matches_headline, one_thread_on_cpu, register)
from workbench.panels.plots import PLOTS, plot_for, register_plot
from workbench.progress import Cadence
from workbench.runner import NOTEBOOKS_DIR, execute
from workbench.store import RunRecord, RunStore

MIN_STEPS = 200  # a tiny run's total steps: from 200 on, the 1 % cadence (every 2nd step) differs from every step
STOP_CPU_SECONDS = 1.0  # CPU time a run may spend after the event that follows Stop (see check_stop_ends_the_run)
NOT_A_CHOICE = "not-a-choice"
TIMING = re.compile(r"_ms\b|seconds|time_per_")  # wall-clock measurements: they differ between any two runs


class NotLiteral:
    """The value of a notebook variable that is not a plain literal."""

    def __repr__(self) -> str:
        return "<not a plain literal>"


NOT_LITERAL = NotLiteral()


# --- what is checked ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """An experiment under the contract, with its breakages (``tests/notebook_cases.py``) and, for a toy without
    a notebook, the ``parameters`` cell of the notebook it would have."""

    experiment: type[Experiment]
    breakages: tuple[Mutation, ...]
    notebook_cell: str | None = None  # None: the experiment's notebooks/<name>.ipynb

    @property
    def name(self) -> str:
        return self.experiment.name

    def notebook(self, folder: Path) -> Path:
        """Its notebook: ``notebooks/<name>.ipynb``, or the toy's, written into ``folder``."""
        if self.notebook_cell is None:
            return NOTEBOOKS_DIR / f"{self.name}.ipynb"
        path = folder / f"{self.name}.ipynb"
        configure = f"experiment = workbench.configure_from_namespace({self.name!r}, globals())"
        cells = [nbformat.v4.new_markdown_cell(f"# {self.name}"),
                 nbformat.v4.new_code_cell(self.notebook_cell, metadata={"tags": ["parameters"]}),
                 nbformat.v4.new_code_cell(configure)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))
        return path


@dataclass
class TinyRun:
    """A finished tiny run: its result, the events it reported, and its record as the store reads it back."""

    result: Result
    events: list[Event]
    record: RunRecord


@dataclass
class TinyRuns:
    """One tiny run per experiment, recorded in a store of its own, made by whichever check asks first (so no
    check depends on another having run before it)."""

    folder: Path
    done: dict[type, TinyRun] = field(default_factory=dict)

    def __call__(self, subject: Subject) -> TinyRun:
        if subject.experiment not in self.done:
            store, events = RunStore(self.folder / "runs.db"), []
            result = run_tiny(subject, progress=events.append, store=store)
            self.done[subject.experiment] = TinyRun(result, events, store.load(result.artifacts["run_id"]))
        return self.done[subject.experiment]


@dataclass
class Bench:
    """What a check works with: the shared tiny runs and a folder of its own."""

    runs: TinyRuns
    folder: Path


@contextmanager
def frozen_cadence_clock() -> Iterator[None]:
    """Stop the Cadence's clock: no half second ever passes, so a run reports on its step schedule alone, as it
    would on an infinitely fast machine, and two runs report at the same steps."""
    with mock.patch.object(progress_module, "time", SimpleNamespace(monotonic=lambda: 0.0)):
        yield


def run_tiny(subject: Subject, progress: Callable[[Event], None] | None = None,
             stop: threading.Event | None = None, store: RunStore | None = None) -> Result:
    """A run of the experiment at its ``tiny_params`` (recorded in ``store`` when given), on one torch thread,
    the Cadence's clock frozen."""
    experiment = configure(subject.experiment, **subject.experiment.tiny_params)
    with frozen_cadence_clock(), one_thread_on_cpu(torch.device("cpu")):
        return execute(experiment, store=store, progress=progress, stop=stop)


def own_parameters(cls: type[Experiment]) -> dict[str, param.Parameter]:
    """The parameters an experiment declares itself (not Experiment's seed and device)."""
    return {k: p for k, p in cls.param.objects("existing").items() if k not in Experiment.param}


def parameters(cls: type[Experiment]) -> dict[str, param.Parameter]:
    """Every parameter of an experiment, its own and Experiment's (seed, device), without param's name."""
    return {k: p for k, p in cls.param.objects("existing").items() if k != "name"}


def outside_bounds(p: param.Number) -> Iterator[float]:
    """A value just outside each finite bound: the bound itself where it is excluded, else the nearest integer
    (Integer) or float (Number) beyond it."""
    lo, hi = p.bounds if p.bounds is not None else (None, None)
    lo_included, hi_included = p.inclusive_bounds
    integer = isinstance(p, param.Integer)
    if lo is not None:
        yield (lo - 1 if integer else math.nextafter(lo, -math.inf)) if lo_included else lo
    if hi is not None:
        yield (hi + 1 if integer else math.nextafter(hi, math.inf)) if hi_included else hi


def bad_values(p: param.Parameter) -> list[Any]:
    """Values ``p`` must refuse: just outside each bound, a choice not among its objects, a value of a wrong type."""
    if isinstance(p, param.ListSelector):
        return [[*p.objects[:1], NOT_A_CHOICE], 3.5]
    if isinstance(p, param.Selector):
        return [NOT_A_CHOICE]
    if isinstance(p, param.Boolean):
        return ["maybe"]
    if isinstance(p, param.Integer):
        return [*outside_bounds(p), 1.5, "abc"]
    if isinstance(p, param.Number):
        return [*outside_bounds(p), "abc"]
    if isinstance(p, (param.List, param.String)):
        return [3.5]
    raise AssertionError(f"the contract knows no bad value of a {type(p).__name__} parameter: teach bad_values()")


def refusal(cls: type[Experiment], key: str, value: Any) -> str | None:
    """The ConfigError message with which ``configure`` refuses ``key = value``, or None when it accepts it."""
    try:
        configure(cls, **{key: value})
    except ConfigError as error:
        return str(error)
    return None


def cli_text(value: Any) -> str:
    """``value`` as typed after ``-p key=`` (lists comma-separated, floats exactly)."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


IMPORT_THEN_CLI = ("import importlib, sys, workbench\n"
                   "folder, module, cls = sys.argv[1:4]\n"
                   "sys.path.insert(0, folder)\n"
                   "workbench.register(getattr(importlib.import_module(module), cls))\n"
                   "from workbench.cli import main\n"
                   "sys.exit(main(sys.argv[4:]))")


def workbench_command(cls: type[Experiment], *args: str) -> list[str]:
    """``workbench ARGS`` in a fresh process; an experiment defined outside ``workbench.labs`` (this module's toys)
    is imported and registered first, as a plug-in would be."""
    if cls.__module__.startswith("workbench.labs."):
        return [sys.executable, "-m", "workbench.cli", *args]
    folder = str(Path(sys.modules[cls.__module__].__file__).parent)
    return [sys.executable, "-c", IMPORT_THEN_CLI, folder, cls.__module__, cls.__qualname__, *args]


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, in nested dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def differences(a: dict, b: dict) -> dict[str, tuple]:
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if not same(a.get(k), b.get(k))}


def timeless(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not TIMING.search(k)}


def parameters_cell(path: Path) -> dict[str, Any]:
    """The variables of the notebook's cell tagged ``parameters``, {name: value} (NOT_LITERAL where the value is
    not a plain literal), read with Python's parser."""
    notebook = nbformat.read(str(path), as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters'; expected one"
    declared = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                declared[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                declared[node.targets[0].id] = NOT_LITERAL
    return declared


def choices(cls: type[Experiment]) -> set[str]:
    """The string choices of an experiment's own Selector and ListSelector parameters (its items, when a metric is
    kept per optimizer, variant or baseline)."""
    return {o for p in own_parameters(cls).values() if isinstance(p, param.Selector) for o in p.objects
            if isinstance(o, str)}


def has_data(trace: Any) -> bool:
    data = trace if isinstance(trace, dict) else trace.to_plotly_json()
    arrays = [data.get(key) for key in ("x", "y", "z", "values", "r")] + [(data.get("cells") or {}).get("values")]
    return any(array is not None and len(array) > 0 for array in arrays)


# --- the checks ---------------------------------------------------------------------------------------------


def check_bad_values_are_refused(subject: Subject, bench: Bench) -> None:
    """Every parameter refuses a value just outside each bound, a choice not among its objects and a value of a
    wrong type: a ConfigError naming the parameter, the value and what is allowed."""
    cls = subject.experiment
    for key, p in parameters(cls).items():
        for value in bad_values(p):
            message = refusal(cls, key, value)
            assert message is not None, f"{cls.name}: {key} = {value!r} was accepted; allowed: {describe_allowed(p)}"
            for part in (repr(key), repr(value), describe_allowed(p)):
                assert part in message, f"{cls.name}: refusing {key} = {value!r}, the message lacks {part}: {message}"


def check_cli_exits_2_on_a_bad_value(subject: Subject, bench: Bench) -> None:
    """``workbench run NAME -p key=value`` with a value outside the first own parameter's bounds or choices exits
    with 2 before any work, naming the parameter, and records nothing."""
    cls = subject.experiment
    key, value = next((k, v) for k, p in own_parameters(cls).items() for v in bad_values(p)[:1])
    override, db = f"{key}={cli_text(value)}", bench.folder / "cli.db"
    done = subprocess.run(workbench_command(cls, "run", cls.name, "-p", override), capture_output=True, text=True,
                          timeout=300, env={**os.environ, "WORKBENCH_DB": str(db), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, f"{cls.name}: -p {override} exited with {done.returncode}:\n{done.stderr}"
    assert repr(key) in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not db.exists() or RunStore(db).list() == [], f"{cls.name}: a refused run was recorded"


def check_headline_metrics_are_finite(subject: Subject, bench: Bench) -> None:
    """A tiny run finishes with headline metrics, all finite: every exact name of ``headline`` among them, and at
    least one metric for the headline's patterns (a ".suffix" pattern is one item's metric, or one task's)."""
    cls, result = subject.experiment, bench.runs(subject).result
    assert result.status == "finished", f"{cls.name}: the tiny run ended {result.status}"
    assert cls.headline, f"{cls.name} declares no headline metrics"
    shown = {k: v for k, v in result.metrics.items() if matches_headline(k, cls.headline)}
    missing = [name for name in cls.headline if not name.startswith(".") and name not in result.metrics]
    assert shown and not missing, (f"{cls.name}: headline {cls.headline} finds {sorted(shown)}, misses {missing} "
                                   f"among the metrics {sorted(result.metrics)}")
    non_finite = {k: v for k, v in shown.items() if not math.isfinite(v)}
    assert not non_finite, f"{cls.name}: non-finite headline metrics {non_finite}"


def check_per_item_metric_names(subject: Subject, bench: Bench) -> None:
    """Per-item metrics and curves are named ``item.metric`` (one dot, both parts non-empty), and no name without a
    dot carries an item the old way: one of the experiment's choices (an optimizer, a BN variant, a baseline) as an
    underscore-separated part ("test_accuracy_gbw", "dmd_nrmse@50", "tcr_kmeans_accuracy")."""
    cls, result = subject.experiment, bench.runs(subject).result
    names = set(result.metrics) | set(result.curves)
    malformed = sorted(n for n in names if "." in n and not re.fullmatch(r"[^.\s]+\.[^.\s]+", n))
    items = choices(cls)
    old_style = sorted(n for n in names if "." not in n and any(f"_{item}_" in f"_{n}_" for item in items))
    assert not malformed, f"{cls.name}: metric names not of the form item.metric: {malformed}"
    assert not old_style, f"{cls.name}: per-item metrics named the old way (expected item.metric): {old_style}"


def check_results_round_trip_through_the_store(subject: Subject, bench: Bench) -> None:
    """A tiny run recorded in the run store reads back with its status, metrics and curves unchanged."""
    run = bench.runs(subject)
    assert run.record.status == run.result.status
    assert same(run.record.metrics, run.result.metrics), (
        f"{subject.name}: metrics changed in the store: {differences(run.result.metrics, run.record.metrics)}")
    assert same(run.record.curves, run.result.curves), (
        f"{subject.name}: curves changed in the store: {sorted(differences(run.result.curves, run.record.curves))}")


def check_same_seed_same_metrics(subject: Subject, bench: Bench) -> None:
    """Two tiny runs at the same seed give the same metrics and curves (wall-clock timings aside)."""
    first, second = bench.runs(subject).result, run_tiny(subject)
    metrics, curves = differences(timeless(first.metrics), timeless(second.metrics)), differences(
        timeless(first.curves), timeless(second.curves))
    assert not metrics, f"{subject.name}: the same seed gave other metrics: {metrics}"
    assert not curves, f"{subject.name}: the same seed gave other curves: {sorted(curves)}"


def check_stop_ends_the_run(subject: Subject, bench: Bench) -> None:
    """Stop, set at the first event, ends the run: at most one more event, no later than the next step the Cadence
    reports, then the run returns within STOP_CPU_SECONDS of CPU time.

    CPU time of this process, not wall-clock time: other processes loading the machine take wall-clock time from
    the run, not CPU time, so a loaded machine cannot fail the bound; a tiny run's final metrics take a few
    hundredths of a second of it, a run that keeps training after Stop the rest of its steps."""
    bench.runs(subject)  # the experiment's modules imported and warm: the CPU time measured below is the run's
    stop, seen = threading.Event(), []

    def progress(event: Event) -> None:
        seen.append((event.step, event.total, time.process_time()))
        stop.set()

    result = run_tiny(subject, progress=progress, stop=stop)
    returned = time.process_time()
    assert seen, f"{subject.name}: no event before the run ended"
    (first, total, _), after = seen[0], seen[1:]
    assert first < total, f"{subject.name}: the first event is at the last step; tiny_params leave nothing to stop"
    assert len(after) <= 1, (f"{subject.name}: {len(after)} events after the one that set Stop (steps "
                             f"{[step for step, _, _ in after[:5]]}...); allowed: one")
    every = Cadence(total, seconds=None).every
    assert seen[-1][0] <= first + every, f"{subject.name}: trained on to step {seen[-1][0]} after Stop at step {first}"
    assert returned - seen[-1][2] <= STOP_CPU_SECONDS, (
        f"{subject.name}: {returned - seen[-1][2]:.2f} s of CPU time after the last event before returning")
    assert result.status == "stopped"


def check_progress_follows_the_cadence(subject: Subject, bench: Bench) -> None:
    """With the Cadence's clock frozen, a tiny run reports exactly the steps ``Cadence(total)`` is due at (every
    1 % of the total and the last), one total for every event, 0 < step <= total, the steps never decreasing
    (several events at one step are allowed)."""
    events = bench.runs(subject).events
    assert events, f"{subject.name}: the tiny run reported no event"
    totals = sorted({e.total for e in events})
    assert len(totals) == 1, f"{subject.name}: events with several totals {totals}"
    total, steps = totals[0], [e.step for e in events]
    assert total >= MIN_STEPS, (f"{subject.name}: its tiny_params run {total} steps; the contract needs at least "
                                f"{MIN_STEPS} to tell the 1 % cadence from reporting every step")
    assert all(0 < s <= total for s in steps), f"{subject.name}: steps outside 1..{total}: {steps}"
    assert steps == sorted(steps), f"{subject.name}: steps go back: {steps}"
    due = Cadence(total, seconds=None)
    expected = [s for s in range(1, total + 1) if due(s)]
    assert sorted(set(steps)) == expected, (
        f"{subject.name}: reported at steps {sorted(set(steps) - set(expected))[:10]} off the Cadence and missed "
        f"{sorted(set(expected) - set(steps))[:10]} (Cadence({total}): every {due.every} steps and the last)")


def check_notebook_declares_every_parameter(subject: Subject, bench: Bench) -> None:
    """The notebook's ``parameters`` cell declares every parameter of the experiment with the experiment's default
    (notebook-only variables beside them are allowed)."""
    path = subject.notebook(bench.folder)
    assert path.exists(), f"{subject.name}: its notebook {path} is missing"
    declared = parameters_cell(path)
    spec = parameters(subject.experiment)
    missing = [k for k in spec if k not in declared]
    differing = [f"{k} = {declared[k]!r} (experiment: {p.default!r})" for k, p in spec.items()
                 if k in declared and not same(declared[k], p.default)]
    assert not missing and not differing, (f"{path.name}: the parameters cell misses {missing}; its defaults differ "
                                           f"from the experiment's: {', '.join(differing) or 'none'}")


def check_notebook_has_two_breakages(subject: Subject, bench: Bench) -> None:
    """``tests/notebook_cases.py`` holds at least two breakages of the experiment's notebook."""
    breakages = {(m.case, m.name) for m in subject.breakages}
    assert len(breakages) >= 2, (f"{subject.name}: {len(breakages)} breakages in tests/notebook_cases.py; the contract "
                                 f"asks for at least two (README, 'Adding a method')")


def check_live_picture_draws_from_the_first_event(subject: Subject, bench: Bench) -> None:
    """The live picture registered for the experiment draws the first event of a tiny run: a figure with at least
    one trace holding data."""
    plot = plot_for(subject.name)
    assert plot is not None, f"{subject.name}: no live picture registered (workbench.panels.plots.register_plot)"
    events = bench.runs(subject).events
    assert events, f"{subject.name}: the tiny run reported no event"
    first = events[0]
    try:
        figure = plot(first)
    except Exception as error:
        raise AssertionError(f"{subject.name}: the live picture fails on the first event: {error!r}") from error
    traces = figure["data"] if isinstance(figure, dict) else figure.data
    assert any(has_data(trace) for trace in traces), f"{subject.name}: the first event's picture has no data"


CHECKS = [check_bad_values_are_refused, check_cli_exits_2_on_a_bad_value, check_headline_metrics_are_finite,
          check_per_item_metric_names, check_results_round_trip_through_the_store, check_same_seed_same_metrics,
          check_stop_ends_the_run, check_progress_follows_the_cadence, check_notebook_declares_every_parameter,
          check_notebook_has_two_breakages, check_live_picture_draws_from_the_first_event]
SLOW_CHECKS = {check_cli_exits_2_on_a_bad_value}  # a fresh process each: a few seconds


# --- the toy: a method added next year ---------------------------------------------------------------------


@register
class Descent(Experiment):
    """Gradient descent on f(x) = x²/2 from x₀ under each chosen step-size schedule, one item per schedule:
    x_{t+1} = x_t − η_t ∇f(x_t) = (1 − η_t) x_t, with η_t = lr (constant) or lr (1 + cos(π t / T)) / 2 (cosine).

    Events on the Cadence carry ``<schedule>.loss`` (the mean of f since the previous report) and the iterates;
    metrics ``<schedule>.final_loss`` and ``steps_done``."""

    name = param.String("contract_toy", constant=True)
    headline = (".final_loss",)
    tiny_params = {"steps": 300, "start": "random"}

    steps = param.Integer(1000, bounds=(1, 1_000_000), doc="Gradient steps T.")
    lr = param.Number(0.01, bounds=(0, 1), inclusive_bounds=(False, True), doc="Step size η.")
    schedules = param.ListSelector(default=["constant", "cosine"], objects=["constant", "cosine"],
                                   doc="Step-size schedules, each an item.")
    start = param.Selector(default="one", objects=["one", "random"], doc="x₀ = 1, or drawn from N(0, 1).")
    clip = param.Boolean(False, doc="Clip every update to at most 0.01 in size.")

    def cadence(self) -> Cadence:
        return Cadence(self.steps)

    def start_point(self) -> float:
        return 1.0 if self.start == "one" else random.gauss(0.0, 1.0)

    def metric(self, item: str, name: str) -> str:
        return f"{item}.{name}"

    def step_size(self, schedule: str, t: int) -> float:
        return self.lr if schedule == "constant" else self.lr * (1 + math.cos(math.pi * t / self.steps)) / 2

    def run(self, progress, stop: threading.Event) -> Result:
        due, x0 = self.cadence(), self.start_point()
        x = {s: x0 for s in self.schedules}
        losses, count, done = dict.fromkeys(self.schedules, 0.0), 0, 0
        while done < self.steps and not stop.is_set():
            done, count = done + 1, count + 1
            for s in self.schedules:
                update = self.step_size(s, done) * x[s]
                x[s] -= max(-0.01, min(0.01, update)) if self.clip else update
                losses[s] += x[s] ** 2 / 2
            if due(done):
                metrics = {self.metric(s, "loss"): losses[s] / count for s in self.schedules}
                progress(Event(done, self.steps, metrics, payload={"x": dict(x)}))
                losses, count = dict.fromkeys(self.schedules, 0.0), 0
        metrics = {self.metric(s, "final_loss"): x[s] ** 2 / 2 for s in self.schedules}
        return Result(metrics=metrics | {"steps_done": done})


def descent_plot(event: Event):
    """The toy's live picture: each schedule's iterate at the latest event."""
    import plotly.graph_objects as go

    x = event.payload["x"]
    return go.Figure(go.Bar(x=list(x), y=list(x.values())), layout={"title": f"step {event.step} of {event.total}"})


register_plot(Descent.name, descent_plot)

TOY_NOTEBOOK_CELL = """\
# Parameters: papermill and `workbench notebook contract_toy -p key=value` override this cell.
steps = 1000
lr = 0.01
schedules = ["constant", "cosine"]   # constant | cosine
start = "one"                        # one | random
clip = False
seed = 0
device = "auto"
plot_every = 10                      # notebook-only: the picture's stride
"""
TOY_BREAKAGES = (  # what tests/notebook_cases.py would hold for the toy's notebook
    Mutation("contract_toy", "ascent_instead_of_descent",
             "from test_contract import Descent\nDescent.step_size = lambda self, schedule, t: -self.lr\n"),
    Mutation("contract_toy", "cosine_schedule_constant",
             "from test_contract import Descent\nDescent.step_size = lambda self, schedule, t: self.lr\n"),
)

SUBJECTS = [Subject(cls, tuple(m for m in MUTATIONS if m.notebook == name))
            for name, cls in workbench.experiments().items() if cls.__module__.startswith("workbench.labs.")]
SUBJECTS.append(Subject(Descent, TOY_BREAKAGES, TOY_NOTEBOOK_CELL))


# --- the contract -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("contract"))


def contract_cases() -> Iterator:
    for subject in SUBJECTS:
        for check in CHECKS:
            marks = [pytest.mark.slow] if check in SLOW_CHECKS else []
            yield pytest.param(subject, check, marks=marks, id=f"{subject.name}-{check.__name__[len('check_'):]}")


@pytest.mark.parametrize("subject, check", contract_cases())
def test_contract(subject: Subject, check: Callable[[Subject, Bench], None], tiny_runs: TinyRuns, tmp_path: Path):
    check(subject, Bench(tiny_runs, tmp_path))


def test_every_bundled_experiment_is_under_the_contract():
    """The subjects are found by workbench.experiments(), not listed here: a lab added later is checked too, each
    module of workbench/labs/ being the experiment of its name."""
    import pkgutil

    import workbench.labs

    labs = {module.name for module in pkgutil.iter_modules(workbench.labs.__path__)}
    assert {"lightsb", "optimizers", "koopman", "manifold_clustering", "spd_normalization"} <= labs
    assert {s.name for s in SUBJECTS} == labs | {Descent.name}


# --- every check can fail: toys broken one way each -------------------------------------------------------


class UncheckedNumber(param.Number):
    """A Number whose bounds are declared but never enforced."""

    def _validate_bounds(self, val, bounds, inclusive_bounds):
        pass


class UncheckedBound(Descent):
    """steps' bounds [1, 1e6] declared, not enforced."""

    name = param.String("contract_toy_unchecked_bound", constant=True)
    steps = UncheckedNumber(1000, bounds=(1, 1_000_000), doc="Gradient steps T (a float, bounds unchecked).")

    def cadence(self) -> Cadence:
        return Cadence(int(self.steps))


class NonFiniteHeadline(Descent):
    name = param.String("contract_toy_non_finite", constant=True)

    def run(self, progress, stop):
        result = super().run(progress, stop)
        result.metrics["cosine.final_loss"] = math.inf
        return result


class HeadlineNamesNothing(Descent):
    """The headline still names the metric before it was kept per item."""

    name = param.String("contract_toy_stale_headline", constant=True)
    headline = ("final_loss",)


class OldStyleNames(Descent):
    name = param.String("contract_toy_old_names", constant=True)

    def metric(self, item: str, name: str) -> str:
        return f"{name}_{item}"  # final_loss_cosine


class TwoDots(Descent):
    name = param.String("contract_toy_two_dots", constant=True)

    def metric(self, item: str, name: str) -> str:
        return f"descent.{item}.{name}"


class RenamedBack(Descent):
    """Declares a current metric name as an old one: the store reads it under another name."""

    name = param.String("contract_toy_renamed_back", constant=True)
    renamed_metrics = {"cosine.final_loss": "cosine.last_loss"}


class Unseeded(Descent):
    """Draws x₀ from a generator that the seed does not reach."""

    name = param.String("contract_toy_unseeded", constant=True)

    def start_point(self) -> float:
        return random.SystemRandom().gauss(0.0, 1.0)


class IgnoresStop(Descent):
    name = param.String("contract_toy_ignores_stop", constant=True)

    def run(self, progress, stop):
        return super().run(progress, threading.Event())


class WorksOnAfterStop(Descent):
    """Stops reporting at Stop, then computes for another 1.5 s of CPU time before returning."""

    name = param.String("contract_toy_works_on", constant=True)

    def run(self, progress, stop):
        result = super().run(progress, stop)
        end = time.process_time() + 1.5 * STOP_CPU_SECONDS
        while time.process_time() < end:
            pass
        return result


class ReportsEveryStep(Descent):
    name = param.String("contract_toy_every_step", constant=True)

    def cadence(self) -> Cadence:
        return Cadence(self.steps, every=1)


class ReportsOnItsOwnSchedule(Descent):
    """Reports every 7th step besides the Cadence's (as a loop that also reports at the end of each epoch)."""

    name = param.String("contract_toy_own_schedule", constant=True)

    def cadence(self) -> Callable[[int], bool]:
        due = Cadence(self.steps)
        return lambda step: due(step) or step % 7 == 0


class TooFewSteps(Descent):
    """tiny_params of 50 steps: the 1 % cadence is every step, indistinguishable from reporting every step."""

    name = param.String("contract_toy_too_few_steps", constant=True)
    tiny_params = {"steps": 50}


class NoPlot(Descent):
    name = param.String("contract_toy_no_plot", constant=True)


class PlotFailsOnTheFirstEvent(Descent):
    name = param.String("contract_toy_plot_fails", constant=True)


class PlotWithoutData(Descent):
    name = param.String("contract_toy_plot_empty", constant=True)


def empty_plot(event: Event):
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[], y=[]))


BROKEN_PLOTS = {NoPlot.name: None, PlotFailsOnTheFirstEvent.name: lambda event: event.payload["history"],
                PlotWithoutData.name: empty_plot}
TOY = SUBJECTS[-1]


def toy(cls: type[Descent]) -> Subject:
    return replace(TOY, experiment=cls)


BROKEN = [  # (check, a toy broken for it, what the check's message says)
    (check_bad_values_are_refused, toy(UncheckedBound), "steps = 0.9999999999999999 was accepted"),
    pytest.param(check_cli_exits_2_on_a_bad_value, toy(UncheckedBound), "exited with 0", marks=pytest.mark.slow),
    (check_headline_metrics_are_finite, toy(NonFiniteHeadline), "non-finite headline metrics"),
    (check_headline_metrics_are_finite, toy(HeadlineNamesNothing), "misses ['final_loss']"),
    (check_per_item_metric_names, toy(OldStyleNames), "the old way (expected item.metric): ['final_loss_constant'"),
    (check_per_item_metric_names, toy(TwoDots), "not of the form item.metric: ['descent.constant.final_loss'"),
    (check_results_round_trip_through_the_store, toy(RenamedBack), "metrics changed in the store"),
    (check_same_seed_same_metrics, toy(Unseeded), "the same seed gave other metrics"),
    (check_stop_ends_the_run, toy(IgnoresStop), "events after the one that set Stop"),
    (check_stop_ends_the_run, toy(WorksOnAfterStop), "of CPU time after the last event"),
    (check_progress_follows_the_cadence, toy(ReportsEveryStep), "reported at steps [1, 2, 4, 5, 7"),
    (check_progress_follows_the_cadence, toy(ReportsOnItsOwnSchedule), "reported at steps [7, 14, 28"),
    (check_progress_follows_the_cadence, toy(TooFewSteps), "run 50 steps; the contract needs at least 200"),
    (check_notebook_declares_every_parameter, replace(TOY, notebook_cell=TOY_NOTEBOOK_CELL.replace("0.01", "0.02")),
     "lr = 0.02 (experiment: 0.01)"),
    (check_notebook_declares_every_parameter,
     replace(TOY, notebook_cell=TOY_NOTEBOOK_CELL.replace("clip = False\n", "")), "misses ['clip']"),
    (check_notebook_has_two_breakages, replace(TOY, breakages=TOY_BREAKAGES[:1]), "1 breakages"),
    (check_live_picture_draws_from_the_first_event, toy(NoPlot), "no live picture registered"),
    (check_live_picture_draws_from_the_first_event, toy(PlotFailsOnTheFirstEvent), "fails on the first event"),
    (check_live_picture_draws_from_the_first_event, toy(PlotWithoutData), "picture has no data"),
]


def breakage_id(value: Any) -> str:
    if isinstance(value, Subject):
        return value.name if value.experiment is not Descent else "toy_notebook_or_breakages"
    return value.__name__[len("check_"):] if callable(value) else "-"


@pytest.mark.parametrize("check, subject, says", BROKEN, ids=breakage_id)
def test_a_broken_toy_fails_the_check(check, subject: Subject, says: str, tmp_path: Path, monkeypatch):
    """Registered (and its picture too) for the test only: the store reads a run's metric names through the
    registry, and the app would list it."""
    monkeypatch.setitem(experiment_module._REGISTRY, subject.name, subject.experiment)
    monkeypatch.setitem(PLOTS, subject.name, BROKEN_PLOTS.get(subject.name, descent_plot))
    with pytest.raises(AssertionError, match=re.escape(says)):
        check(subject, Bench(TinyRuns(tmp_path), tmp_path))


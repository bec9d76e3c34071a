"""The experiment protocol: typed parameters -> ``run(progress, stop)`` -> :class:`Result`.

An experiment is a ``param.Parameterized`` class whose parameters (types, bounds,
choices, docs) are declared once. The same declaration builds the panel form,
and validates CLI ``-p key=value`` overrides and papermill-injected values. The
constructor only stores parameters; work happens in
:meth:`Experiment.run`, a plain loop that reports through ``progress`` and checks
``stop``. It never touches widgets.

    @register
    class Quadratic(Experiment):
        name = param.String("quadratic", constant=True)
        steps = param.Integer(100, bounds=(1, 10_000), doc="Gradient steps.")

        def run(self, progress, stop):
            for step in range(1, self.steps + 1):
                if stop.is_set():
                    break
                progress(Event(step, self.steps, {"loss": 1.0 / step}))
            return Result(metrics={"loss": 1.0 / step})

:meth:`Experiment.execute` wraps ``run``: it seeds every generator, resolves the
device, collects every reported metric into curves, times the run and sets the
status (``finished`` or ``stopped``).
"""
from __future__ import annotations

import importlib
import math
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import param

from workbench.progress import Event  # noqa: F401  re-exported: experiments report with it


class ConfigError(ValueError):
    """A parameter value that is not allowed; the message names parameter, value and what is allowed."""


@dataclass
class Result:
    """What a run produces: final scalar ``metrics``, metric ``curves`` ({name: {"step": [...],
    "value": [...]}}), ``artifacts`` (trained objects; ``result.model`` reads ``artifacts["model"]``),
    ``status`` and wall time in seconds."""

    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    status: str = "finished"
    seconds: float = 0.0

    def __getattr__(self, name: str) -> Any:
        artifacts = self.__dict__.get("artifacts", {})
        if name in artifacts:
            return artifacts[name]
        raise AttributeError(f"Result has no attribute or artifact {name!r}; artifacts: {sorted(artifacts)}")


class CurveRecorder:
    """A progress callback that keeps every reported metric as a curve and forwards the event."""

    def __init__(self, forward: Callable[[Event], None] | None = None):
        self.forward = forward
        self.curves: dict[str, dict[str, list]] = {}
        self.last: Event | None = None

    def __call__(self, event: Event) -> None:
        for name, value in event.metrics.items():
            curve = self.curves.setdefault(name, {"step": [], "value": []})
            curve["step"].append(int(event.step))
            curve["value"].append(float(value))
        self.last = event
        if self.forward is not None:
            self.forward(event)


def resolve_device(device: str):
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is a ConfigError."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("parameter 'device' = 'cuda' but no CUDA device is available; allowed here: 'auto', 'cpu'")
    return torch.device(device)


@contextmanager
def one_thread_on_cpu(device) -> Iterator[None]:
    """Run the body with one torch thread when ``device`` is a CPU, and restore the count after. For small-matrix
    work one thread is as fast, and immune to a busy CPU: on a loaded 2-core machine two OpenMP threads that wait
    for each other made a Koopman run 8× slower (61 s against 7.3 s for 200 steps)."""
    import torch

    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Experiment(param.Parameterized):
    """Base class of every experiment: subclasses set ``name``, declare parameters and define ``run``."""

    name = param.String("", constant=True, doc="Registry name; subclasses set it: name = param.String('mine', constant=True).")
    # The few metrics a person looks at first (tables of runs of several experiments show only these): exact
    # metric names, or ".suffix" for a metric per item ("<optimizer>.test_accuracy"). A class attribute, not a param.
    headline: tuple[str, ...] = ()
    # Metric names of earlier releases and the names that replaced them ({"test_accuracy_gbw": "gbw.test_accuracy"}):
    # runs stored under an old name are read under the new one. A class attribute, not a param.
    renamed_metrics: dict[str, str] = {}
    # Parameter values at which run() takes about a second on a laptop CPU (the contract suite in
    # tests/test_contract.py, smoke runs); empty when the defaults already are that small. A class attribute.
    tiny_params: dict[str, Any] = {}

    seed = param.Integer(0, bounds=(0, 2**31 - 1), doc="Seed of every random generator (python, numpy, torch).")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"], doc="Where to compute: auto picks cuda when available.")

    def run(self, progress: Callable[[Event], None], stop: threading.Event) -> Result:
        raise NotImplementedError

    def validate(self) -> None:
        """Cross-parameter rules (e.g. a 2-D dataset needs dim 2); raise ConfigError when broken."""

    @property
    def torch_device(self):
        return resolve_device(self.device)

    def params_dict(self) -> dict[str, Any]:
        """The experiment's parameter values (plain JSON-able values), without param's ``name``."""
        return {k: v for k, v in self.param.values().items() if k != "name"}

    def execute(self, progress: Callable[[Event], None] | None = None, stop: threading.Event | None = None) -> Result:
        """Seed, run, collect curves, time it, set the status; exceptions propagate."""
        stop = stop if stop is not None else threading.Event()
        recorder = CurveRecorder(progress)
        self.torch_device  # a bad device fails before any work
        seed_everything(self.seed)
        start = time.perf_counter()
        result = self.run(recorder, stop)
        result.seconds = time.perf_counter() - start
        for name, curve in recorder.curves.items():
            result.curves.setdefault(name, curve)
        result.status = "stopped" if stop.is_set() else "finished"
        result.metrics = {k: float(v) for k, v in result.metrics.items()}
        return result


def matches_headline(metric: str, headline: tuple[str, ...]) -> bool:
    """Whether ``metric`` is one of the ``headline`` metrics: an exact name, or ".name" for every item's."""
    return any(metric.endswith(pattern) if pattern.startswith(".") else metric == pattern for pattern in headline)


def headline_summary(name: str, metrics: dict[str, float]) -> str:
    """The headline metrics of experiment ``name`` found in ``metrics``, compact: "cbw2_uvp 0.0325, kl 0.0029",
    or per item "test_accuracy: adamw 0.98, galore 0.971"."""
    if name not in _REGISTRY and name not in experiments():  # a run of an experiment not installed here
        return ""
    parts = []
    for pattern in get(name).headline:
        if pattern.startswith("."):
            items = [(k[: -len(pattern)], v) for k, v in metrics.items() if k.endswith(pattern)]
            if items:
                parts.append(f"{pattern[1:]}: " + ", ".join(f"{item} {v:.4g}" for item, v in items))
        elif pattern in metrics:
            parts.append(f"{pattern} {metrics[pattern]:.4g}")
    return "; ".join(parts)


def current_metric_names(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (metrics or curves of a stored run of experiment ``name``) with every metric name of an earlier
    release replaced by its current one (``Experiment.renamed_metrics``); unchanged for an experiment not installed."""
    cls = _registered(name)
    renamed = cls.renamed_metrics if cls is not None else {}
    return {renamed.get(metric, metric): value for metric, value in values.items()}


# --- registry -----------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: make an experiment available by its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs name = param.String('<registry name>', constant=True)")
    _REGISTRY[cls.name] = cls
    return cls


def experiments() -> dict[str, type[Experiment]]:
    """All registered experiments by name (importing every bundled one)."""
    from workbench.labs import import_all

    import_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> type[Experiment]:
    """The experiment registered as ``name``; a bundled one is imported on first use, alone (a fresh process
    running one experiment does not pay for the others' imports)."""
    cls = _registered(name)
    if cls is None:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(experiments())}")
    return cls


def _registered(name: str) -> type[Experiment] | None:
    """The experiment registered as ``name``, importing the bundled module of that name first; None when none."""
    if name not in _REGISTRY and name.isidentifier():
        try:
            importlib.import_module(f"workbench.labs.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"workbench.labs.{name}":
                raise
    return _REGISTRY.get(name)


# --- validation ---------------------------------------------------------------------------------

AUTO = "auto"  # how an optional parameter's None is written on the command line, in forms and tables


def describe_allowed(p: param.Parameter) -> str:
    """A human description of the values a parameter allows (an optional one also allows 'auto')."""
    allowed = _describe_values(p)
    return f"{allowed}, or {AUTO!r}" if p.allow_None and not isinstance(p, param.String) else allowed


def _describe_values(p: param.Parameter) -> str:
    if isinstance(p, param.ListSelector):
        return "a comma-separated list of " + ", ".join(repr(o) for o in p.objects)
    if isinstance(p, param.Selector):
        return "one of " + ", ".join(repr(o) for o in p.objects)
    if isinstance(p, param.Boolean):
        return "true or false"
    if isinstance(p, param.List):
        return "a comma-separated list"
    if isinstance(p, param.Number):
        kind = "an integer" if isinstance(p, param.Integer) else "a number"
        lo, hi = p.bounds if p.bounds is not None else (None, None)
        lo_incl, hi_incl = p.inclusive_bounds
        if lo is None and hi is None:
            return kind
        left = "(-inf" if lo is None else ("[" if lo_incl else "(") + f"{lo:g}"
        right = "inf)" if hi is None else f"{hi:g}" + ("]" if hi_incl else ")")
        return f"{kind} in {left}, {right}"
    if isinstance(p, param.String):
        return "a string"
    return type(p).__name__


def coerce(p: param.Parameter, value: Any) -> Any:
    """Turn a CLI/papermill string into the parameter's type ('auto' or 'none' is None for an optional
    parameter); other values pass through."""
    if not isinstance(value, str) or isinstance(p, param.String):
        return value
    text = value.strip()
    if p.allow_None and text.lower() in (AUTO, "none"):
        return None
    if isinstance(p, param.Boolean):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(p, param.Integer):
        number = float(text)
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    if isinstance(p, param.Number):
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(text)
        return number
    if isinstance(p, param.ListSelector):
        return [coerce(param.Selector(objects=p.objects), item) for item in text.split(",") if item.strip()]
    if isinstance(p, param.List):  # comma-separated; items typed like the default's items
        template = {bool: param.Boolean, int: param.Integer, float: param.Number}.get(type((p.default or [""])[0]))
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [coerce(template(), item) for item in items] if template else items
    if isinstance(p, param.Selector):
        for option in p.objects:
            if str(option) == text:
                return option
    return value


def configure(name: str | type[Experiment], **params: Any) -> Experiment:
    """Build a validated experiment from parameter values (typed or strings).

    Raises ConfigError naming the parameter, the bad value and what is allowed; an unknown
    parameter name lists the valid names.
    """
    cls = get(name) if isinstance(name, str) else name
    spec = {k: p for k, p in cls.param.objects("existing").items() if k != "name"}
    unknown = [k for k in params if k not in spec]
    if unknown:
        raise ConfigError(
            f"{cls.name}: unknown parameter {unknown[0]!r}; valid names: {', '.join(sorted(spec))}"
        )
    values = {}
    for key, raw in params.items():
        p = spec[key]
        try:
            values[key] = coerce(p, raw)
            if isinstance(p, param.Integer) and isinstance(values[key], float) and values[key].is_integer():
                values[key] = int(values[key])
            p._validate(values[key])
        except (ValueError, TypeError):
            raise ConfigError(
                f"{cls.name}: parameter {key!r} = {raw!r} is not allowed; expected {describe_allowed(p)}"
            ) from None
    experiment = cls(**values)
    experiment.validate()
    resolve_device(experiment.device)  # cuda on a machine without it is a configuration error, found before any work
    return experiment


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` (the command lines' ``-p``) as {key: value}, the values still strings for
    :func:`configure` to type and check; a pair without ``=`` or without a key raises ConfigError."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"-p expects key=value, got {pair!r}")
        overrides[key.strip()] = value
    return overrides

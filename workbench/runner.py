"""Running experiments and their notebooks, and recording them in the run store."""
from __future__ import annotations

import ast
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import param

from workbench.experiment import ConfigError, Event, Experiment, Result, coerce, configure, describe_allowed, get
from workbench.reporting import read_reports, report_hook
from workbench.store import LiveRun, RunStore

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def progress_bar(description: str = "", **tqdm_options) -> Callable[[Event], None]:
    """A progress callback drawing a tqdm bar (``tqdm.auto``: a widget in notebooks, text elsewhere)
    with the latest metrics as its postfix."""
    from tqdm.auto import tqdm

    state: dict[str, Any] = {"bar": None}

    def update(event: Event) -> None:
        bar = state["bar"]
        if bar is None:
            bar = state["bar"] = tqdm(total=event.total, desc=description, **tqdm_options)
        bar.update(event.step - bar.n)
        if event.metrics:
            bar.set_postfix({k: f"{v:.4g}" for k, v in event.metrics.items()}, refresh=False)
        if event.step >= event.total:
            bar.close()

    return update


def recording_store(store: RunStore | str | os.PathLike | bool | None) -> RunStore | None:
    """Where a run is recorded: nowhere (None) for None or False, the default :class:`RunStore` for True,
    the store at a path, or ``store`` itself."""
    if store is None or store is False:
        return None
    if store is True:
        return RunStore()
    return store if isinstance(store, RunStore) else RunStore(store)


def execute(experiment: Experiment, *, store: RunStore | str | os.PathLike | bool | None = None,
            progress: Callable[[Event], None] | None = None, stop: threading.Event | None = None) -> Result:
    """Execute a configured experiment; with ``store`` record it (running -> finished/stopped/failed), its
    curves and latest metrics written while it reports them (:class:`workbench.store.LiveRun`)."""
    store = recording_store(store)
    if store is None:
        return experiment.execute(progress=progress, stop=stop)
    run_id = store.start(experiment.name, experiment.params_dict(), seed=experiment.seed,
                         device=str(experiment.torch_device))
    live = LiveRun(store, run_id)
    try:
        result = experiment.execute(progress=recording(live, progress), stop=stop)
    except BaseException as error:
        live.flush()
        status = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
        store.finish(run_id, status, error="".join(traceback.format_exception(error)))
        raise
    store.finish(run_id, result.status, metrics=result.metrics, curves=result.curves, duration_s=result.seconds)
    result.artifacts.setdefault("run_id", run_id)
    return result


def recording(live: LiveRun, progress: Callable[[Event], None] | None = None) -> Callable[[Event], None]:
    """A progress callback that hands each event's metrics to ``live`` (the run store, in batches), then the
    event to ``progress``."""

    def report(event: Event) -> None:
        live.add(event.step, event.metrics)
        if progress is not None:
            progress(event)

    return report


def run(name: str, /, *, store: RunStore | str | os.PathLike | bool | None = None,
        progress: Callable[[Event], None] | bool | None = None, stop: threading.Event | None = None,
        **params: Any) -> Result:
    """Configure experiment ``name`` with ``params``, run it and return its :class:`Result`.

    ``progress=True`` draws a progress bar; ``store`` (a RunStore, a path or True for the
    default one) records the run.
    """
    experiment = configure(name, **params)
    if progress is True:
        progress = progress_bar(name)
    return execute(experiment, store=store, progress=progress or None, stop=stop)


def configure_from_namespace(name: str, namespace: dict[str, Any]) -> Experiment:
    """Configure ``name`` from the variables of a notebook's ``parameters`` cell (``globals()``):
    every parameter of the experiment found in the namespace is taken and validated."""
    spec = [k for k in get(name).param if k != "name"]
    return configure(name, **{k: namespace[k] for k in spec if k in namespace})


def notebook_names() -> list[str]:
    """The registered experiments that have a notebook, by name."""
    from workbench.experiment import experiments

    return [name for name in experiments() if (Path(os.environ.get("WORKBENCH_NOTEBOOKS", NOTEBOOKS_DIR))
                                               / f"{name}.ipynb").exists()]


def notebook_path(name: str) -> Path:
    path = Path(os.environ.get("WORKBENCH_NOTEBOOKS", NOTEBOOKS_DIR)) / f"{name}.ipynb"
    if not path.exists():
        raise ConfigError(f"no notebook for experiment {name!r}: {path} does not exist")
    return path


def _declared_parameter(default: Any) -> param.Parameter | None:
    """A param object of the type of a notebook default (bool, int, float, str, list), or None."""
    for kind, make in ((bool, param.Boolean), (int, param.Integer), (float, param.Number), (str, param.String),
                       (list, param.List)):
        if isinstance(default, kind):
            return make(default)
    return None


def notebook_parameters(name: str) -> dict[str, param.Parameter | None]:
    """The variables of ``notebooks/<name>.ipynb``'s ``parameters`` cell, each as a param object of its
    declared default's type (None when the default is not a plain literal).

    The cell is read with Python's own parser (every top-level ``name = value``), not with
    ``papermill.inspect_notebook``, whose line parser drops a variable whose comment holds ``=``."""
    import nbformat

    notebook = nbformat.read(str(notebook_path(name)), as_version=4)
    cell = next((c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ConfigError(f"notebooks/{name}.ipynb has no cell tagged 'parameters'")
    parameters = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                parameters[node.targets[0].id] = _declared_parameter(ast.literal_eval(node.value))
            except ValueError:
                parameters[node.targets[0].id] = None
    return parameters


def notebook_defaults(name: str) -> dict[str, Any]:
    """The values a notebook runs with when nothing is injected: the experiment's defaults, overridden by
    the plain-literal defaults of the notebook's ``parameters`` cell."""
    declared = {k: p.default for k, p in notebook_parameters(name).items() if p is not None}
    return {**configure(name).params_dict(), **declared}


def configure_notebook(name: str, params: dict[str, Any]) -> tuple[Experiment, dict[str, Any]]:
    """Validate a notebook's parameters: the experiment's own against its spec (:func:`configure`), the
    notebook-only ones (declared in its ``parameters`` cell only) against their defaults' types.

    Returns (experiment, {notebook-only name: typed value}); raises ConfigError naming the parameter,
    the value and what is allowed, and for an unknown name both sets of valid names.
    """
    spec = [k for k in get(name).param if k != "name"]
    notebook_only = {k: p for k, p in notebook_parameters(name).items() if k not in spec}
    unknown = [k for k in params if k not in spec and k not in notebook_only]
    if unknown:
        raise ConfigError(
            f"{name}: unknown parameter {unknown[0]!r}; experiment parameters: {', '.join(sorted(spec))}; "
            f"notebook-only parameters (notebooks/{name}.ipynb): {', '.join(sorted(notebook_only)) or 'none'}")
    experiment = configure(name, **{k: v for k, v in params.items() if k in spec})
    extra = {}
    for key in (k for k in params if k not in spec):
        p, raw = notebook_only[key], params[key]
        if p is None:
            extra[key] = raw
            continue
        try:
            extra[key] = coerce(p, raw)
            p._validate(extra[key])
        except (ValueError, TypeError):
            raise ConfigError(f"{name}: notebook parameter {key!r} = {raw!r} is not allowed; expected "
                              f"{describe_allowed(p)} (the type of its default {p.default!r})") from None
    return experiment, extra


def run_notebook(name: str, params: dict[str, Any] | None = None, *, output_dir: str | os.PathLike = "runs",
                 store: RunStore | str | os.PathLike | bool | None = True, timeout: float = 1800,
                 progress: bool = False, km=None) -> tuple[dict[str, Any], Path, int | None]:
    """Execute ``notebooks/<name>.ipynb`` with papermill, read the metrics it reported, record the run (each
    ``workbench.report`` reaches the store when its cell ends, so a failing check keeps what came before).

    Parameters are validated before anything runs (ConfigError, see :func:`configure_notebook`);
    notebook-only parameters are recorded with the run beside the experiment's. Returns (report,
    executed notebook path, run id). A failed notebook is recorded as failed (Ctrl-C: stopped) and its
    error re-raised. The executed notebook is written as it runs, at most every few seconds
    (:mod:`workbench.notebook_engine`). ``km``: a started kernel's manager to run on (a forked one from
    :mod:`workbench.warm_kernels`, as sweeps use); by default papermill starts a fresh ``python3`` kernel.
    """
    import papermill

    from workbench.notebook_engine import ENGINE

    params = dict(params or {})
    experiment, extra = configure_notebook(name, params)
    typed = {**{k: getattr(experiment, k) for k in params if k not in extra}, **extra}
    source = notebook_path(name)
    output_dir = Path(output_dir).resolve()
    (output_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    output = output_dir / "notebooks" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.ipynb"
    store = recording_store(store)
    run_id = live = hooks = None
    if store is not None:
        run_id = store.start(name, {**notebook_defaults(name), **typed}, seed=experiment.seed,
                             device=str(experiment.torch_device), notebook=str(output))
        live = LiveRun(store, run_id)
        hooks = {"on_cell_executed": report_hook(live.report)}  # each report reaches the store as its cell ends
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(output), parameters=typed, cwd=str(source.parent),
                                   kernel_name="python3", progress_bar=progress, execution_timeout=timeout,
                                   log_output=False, km=km, engine_name=ENGINE, **(hooks or {}))
    except BaseException as error:
        if run_id is not None:
            live.flush()
            status = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
            store.finish(run_id, status, error=str(error), duration_s=time.perf_counter() - start)
        raise
    report = read_reports(output)
    if run_id is not None:
        reported = report.get("params")
        store.finish(run_id, report.get("status", "finished"), metrics=report["metrics"], curves=report["curves"],
                     duration_s=time.perf_counter() - start, params=None if reported is None else {**reported, **extra})
    return report, output, run_id

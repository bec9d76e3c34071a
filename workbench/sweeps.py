"""Sweeps: one experiment over a grid or a random search of parameters, every point run apart.

    workbench.sweep("lightsb", grid={"epsilon": [0.1, 1, 10]}, params={"steps": 500}, workers=2)

Every point is validated against the experiment's parameter spec (and, for notebooks, the
notebook's own ``parameters`` cell) before anything runs: one bad value refuses the whole sweep
with a ConfigError. Each point then runs apart, with ``OMP_NUM_THREADS=1``: the method's notebook
through papermill on a Jupyter kernel of its own (``via="notebook"``), or the experiment itself in a
process of its own, ``python -m workbench.sweeps`` (``via="experiment"``). Kernels are started ahead
(:mod:`workbench.warm_kernels`: the next point's kernel imports torch and the experiment while the
current point runs), used for one point and killed after it. A point is killed (its kernel's or its
process's whole group) when it runs past ``timeout`` seconds; a dead kernel, a failing check or a
timeout records that point as failed and never stops the others.

Executors: ``local`` keeps ``workers`` points in flight on this machine; ``dask`` submits them to a
Dask cluster (``scheduler="tcp://host:port"``, or a ``LocalCluster`` when None), where each worker
process starts its own kernels ahead (one per thread; one left over serves the next sweep). Workers never touch
the run store or the driver's disk: a job carries the notebook's text, and the worker returns the
metrics, curves and the executed notebook's text. Only the driver writes: the store (every run with
the sweep's id) and ``<output_dir>/sweeps/<sweep id>/`` (the executed notebooks).

The sweep id is a hash of the experiment, the mode and the validated points, so running the same
sweep again resumes it: points with a finished run are skipped (``resume=ID`` does the same by
id). Ctrl-C kills the points in flight, records them as stopped and re-raises KeyboardInterrupt.
"""
from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import param

from workbench.experiment import ConfigError, configure, get
from workbench.runner import (configure_notebook, notebook_defaults, notebook_parameters, notebook_path,
                              recording_store)
from workbench.store import RunStore

if TYPE_CHECKING:
    from workbench.warm_kernels import Kernel, WarmKernels

VIAS = ("notebook", "experiment")
EXECUTORS = ("local", "dask")


# --- the points -------------------------------------------------------------------------------------

def parse_grid(entries: list[str]) -> dict[str, list[str]]:
    """``["epsilon=0.1,1,10", "n_components=4,16"]`` -> {"epsilon": ["0.1", "1", "10"], ...}."""
    grid = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not items:
            raise ConfigError(f"--grid expects key=v1,v2,..., got {entry!r}")
        grid[key.strip()] = items
    return grid


def parse_random(entries: list[str]) -> dict[str, tuple[float, float, bool]]:
    """``["lr=1e-4:1e-1:log"]`` -> {"lr": (1e-4, 0.1, True)}: bounds and whether to draw log-uniformly."""
    ranges = {}
    for entry in entries:
        key, sep, text = entry.partition("=")
        parts = text.split(":")
        try:
            if not sep or not key.strip() or len(parts) not in (2, 3) or parts[2:] not in ([], ["log"]):
                raise ValueError
            low, high = float(parts[0]), float(parts[1])
            if not low < high or (parts[2:] and low <= 0):
                raise ValueError
        except ValueError:
            raise ConfigError(f"--random expects key=lo:hi or key=lo:hi:log with lo < hi (lo > 0 for log), "
                              f"got {entry!r}") from None
        ranges[key.strip()] = (low, high, bool(parts[2:]))
    return ranges


def _parameter(name: str, key: str, via: str) -> param.Parameter | None:
    spec = get(name).param
    if key in spec and key != "name":
        return spec[key]
    return notebook_parameters(name).get(key) if via == "notebook" else None


def expand(name: str, grid: dict[str, list] | None = None, random: dict[str, tuple[float, float, bool]] | None = None,
           n: int = 10, sweep_seed: int = 0, fixed: dict[str, Any] | None = None, via: str = "notebook") -> list[dict]:
    """The raw points: the cartesian product of ``grid`` (in the order given), times ``n`` random draws of
    ``random`` (uniform or log-uniform, integers rounded for integer parameters, seeded by ``sweep_seed``),
    each with the ``fixed`` values."""
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else [{}]
    if random:
        generator = np.random.default_rng(sweep_seed)
        draws = []
        for _ in range(n):
            draw = {}
            for key, (low, high, log) in random.items():
                value = math.exp(generator.uniform(math.log(low), math.log(high))) if log else generator.uniform(low, high)
                draw[key] = round(value) if isinstance(_parameter(name, key, via), param.Integer) else float(value)
            draws.append(draw)
        points = [{**point, **draw} for point in points for draw in draws]
    return [{**(fixed or {}), **point} for point in points]


def validate_point(name: str, point: dict[str, Any], via: str) -> dict[str, Any]:
    """The point's values typed and checked (ConfigError otherwise), as JSON-able plain values."""
    if via == "notebook":
        experiment, extra = configure_notebook(name, point)
    else:
        experiment, extra = configure(name, **point), {}
    return {**{k: getattr(experiment, k) for k in point if k not in extra}, **extra}


def sweep_id_of(name: str, via: str, points: list[dict]) -> str:
    text = json.dumps({"experiment": name, "via": via, "points": points}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# --- one point, on a kernel or in a process of its own ---------------------------------------------------

SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run_point(job: dict[str, Any], kernels: WarmKernels) -> dict[str, Any]:
    """Run one point (``job``: name, via, params, notebook text, timeout, later) on this machine and return its
    outcome: status, metrics, curves, params, error, seconds, notebook (text or None). A notebook runs through
    papermill, from this thread, on a kernel of its own taken from ``kernels``; an experiment runs in a process
    of its own. Runs on the driver's threads or on a Dask worker's; uses only this machine's temporary disk."""
    start = time.perf_counter()
    if job["via"] == "notebook":
        outcome = _run_notebook(job, kernels)
    else:
        outcome = _run_experiment(job)
    outcome["seconds"] = time.perf_counter() - start
    outcome["metrics"] = {k: v if v is not None and math.isfinite(v) else None for k, v in outcome["metrics"].items()}
    return outcome


def _failed(error: str) -> dict[str, Any]:
    return {"status": "failed", "error": error[-4000:], "metrics": {}, "curves": {}, "notebook": None}


def _run_notebook(job: dict[str, Any], kernels: WarmKernels) -> dict[str, Any]:
    """The notebook on a fresh kernel, killed at the timeout and closed after the point."""
    try:
        kernel = kernels.take(job["name"], job["later"])
    except Exception as error:  # no kernel would start here, or the sweep is stopping
        return _failed(f"no kernel for this point: {type(error).__name__}: {error}")
    timed_out = threading.Event()
    timer = threading.Timer(job["timeout"], lambda: (timed_out.set(), kernel.kill()))
    timer.start()
    try:
        outcome = _execute_notebook(job, kernel)
    finally:
        timer.cancel()
        kernels.release(kernel)
    return _failed(f"timed out after {job['timeout']:g} s") if timed_out.is_set() else outcome


def _execute_notebook(job: dict[str, Any], kernel: Kernel) -> dict[str, Any]:
    """Papermill on ``kernel``: a failing check keeps the metrics reported before it; a dead kernel's error
    ends with the kernel's last output."""
    import papermill

    from workbench.reporting import read_reports

    source, output = kernel.folder / "source.ipynb", kernel.folder / "executed.ipynb"
    source.write_text(job["notebook"])
    try:
        papermill.execute_notebook(str(source), str(output), parameters=job["params"], km=kernel.km,
                                   kernel_name="python3", start_timeout=job["timeout"],
                                   request_save_on_cell_execute=False, progress_bar=False, log_output=False)
    except Exception as error:
        outcome = _failed(f"{type(error).__name__}: {error}")
        if not kernel.alive():
            outcome["error"] += f"\nthe kernel's last output:\n{kernel.log_tail()}"
    else:
        outcome = {"status": "finished", "error": None}
    if output.exists():
        report = read_reports(output)
        outcome.update(metrics=report["metrics"], curves=report["curves"], params=report.get("params"),
                       notebook=output.read_text())
        if outcome["status"] == "finished":
            outcome["status"] = report.get("status", "finished")
    return outcome


def _run_experiment(job: dict[str, Any]) -> dict[str, Any]:
    """The experiment in a fresh process (``python -m workbench.sweeps``), killed at the timeout."""
    with tempfile.TemporaryDirectory(prefix="workbench-point-") as folder:
        job_file, result_file = Path(folder) / "job.json", Path(folder) / "result.json"
        job_file.write_text(json.dumps(job))
        process = subprocess.Popen([sys.executable, "-m", "workbench.sweeps", str(job_file), str(result_file)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True, env={**os.environ, **SINGLE_THREAD},
                                   start_new_session=True)  # its own group: killed with what it started
        _LIVE.add(process)
        try:
            _, stderr = process.communicate(timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            _kill(process)
            return _failed(f"timed out after {job['timeout']:g} s")
        except BaseException:
            _kill(process)
            raise
        finally:
            _LIVE.discard(process)
        if result_file.exists():
            return json.loads(result_file.read_text())
        return _failed(f"the point's process ended with code {process.returncode}: {stderr.strip()[-2000:]}")


_LIVE: set[subprocess.Popen] = set()  # the experiment processes this process has running


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _execute_experiment(job: dict[str, Any]) -> dict[str, Any]:
    """Inside the point's process: run the experiment with one torch thread, never raising."""
    try:
        import torch

        torch.set_num_threads(1)
        result = configure(job["name"], **job["params"]).execute()
    except Exception as error:  # a failing run, a bad import: this point failed
        return _failed(f"{type(error).__name__}: {error}")
    return {"status": result.status, "metrics": result.metrics, "curves": result.curves, "error": None,
            "notebook": None}


# --- the driver -----------------------------------------------------------------------------------------

def sweep(name: str | None = None, *, grid: dict[str, list] | None = None,
          random: dict[str, tuple[float, float, bool]] | None = None, n: int = 10, sweep_seed: int = 0,
          params: dict[str, Any] | None = None, via: str = "notebook", workers: int = 1, executor: str = "local",
          scheduler: str | None = None, timeout: float = 1800, resume: str | None = None,
          store: RunStore | str | os.PathLike | bool | None = True, output_dir: str | os.PathLike = "runs",
          progress: bool | Callable[[dict], None] = True, on_start: Callable[[str, int, int], None] | None = None):
    """Run (or resume) a sweep of experiment ``name`` and return its runs as a DataFrame
    (:meth:`RunStore.dataframe` of the sweep). See the module docstring.

    ``grid``: {key: values} (cartesian product); ``random``: {key: (low, high, log)} drawn ``n`` times;
    ``params``: fixed values. ``on_start(sweep_id, n_points, n_done)`` is called once the points are
    validated and the sweep recorded, before any point runs.
    """
    store = recording_store(store) or RunStore()  # a sweep is always recorded
    if via not in VIAS:
        raise ConfigError(f"sweep: via = {via!r} is not allowed; expected one of {', '.join(VIAS)}")
    if executor not in EXECUTORS:
        raise ConfigError(f"sweep: executor = {executor!r} is not allowed; expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"sweep: workers = {workers} is not allowed; expected an integer >= 1")
    if resume is not None:
        try:
            recorded = store.sweep(resume)
        except KeyError as error:
            raise ConfigError(str(error.args[0])) from None
        name, via, points = recorded["experiment"], recorded["spec"]["via"], recorded["spec"]["points"]
    else:
        if name is None:
            raise ConfigError("sweep: give an experiment name or resume=SWEEP_ID")
        get(name)
        raw = expand(name, grid, random, n, sweep_seed, params, via)
        points = [validate_point(name, point, via) for point in raw]  # every point, before anything runs
    sweep_id = sweep_id_of(name, via, points)
    store.add_sweep(sweep_id, name, {"via": via, "points": points})

    finished = [run for run in store.list(name, sweep_id) if run.status == "finished"]
    todo = [(i, point) for i, point in enumerate(points)
            if not any(_matches(point, run.params) for run in finished)]
    if on_start is not None:
        on_start(sweep_id, len(points), len(points) - len(todo))
    notebook = notebook_path(name).read_text() if via == "notebook" else None
    folder = Path(output_dir).resolve() / "sweeps" / sweep_id
    jobs = {i: {"name": name, "via": via, "params": point, "notebook": notebook, "timeout": timeout,
                "later": len(todo) - 1 - k} for k, (i, point) in enumerate(todo)}
    Executor = _DaskExecutor if executor == "dask" else _LocalExecutor
    with Executor(workers, scheduler) as pool:
        defaults = notebook_defaults(name) if via == "notebook" else configure(name).params_dict()
        _drive(pool, jobs, store, name, sweep_id, folder, progress, len(points) - len(todo), len(points), defaults)
    return store.dataframe(name, sweep_id)


def _matches(point: dict[str, Any], params: dict[str, Any]) -> bool:
    return all(key in params and json.dumps(params[key], sort_keys=True) == json.dumps(value, sort_keys=True)
               for key, value in point.items())


def _drive(pool, jobs: dict[int, dict], store: RunStore, name: str, sweep_id: str, folder: Path,
           progress, done_before: int, total: int, defaults: dict[str, Any]) -> None:
    """Submit every job, record each outcome as it arrives; on Ctrl-C close the runs in flight as stopped.
    ``defaults``: the values of the parameters a point does not set, recorded until the run reports its own."""
    bar = _progress(progress, total, done_before)
    counts = {"done": done_before, "failed": 0, "running": 0}
    run_ids: dict[int, int] = {}
    pending = {}
    try:
        for i, job in jobs.items():
            run_ids[i] = store.start(name, {**defaults, **job["params"]}, seed=job["params"].get("seed", defaults["seed"]),
                                     device=str(job["params"].get("device", defaults["device"])),
                                     notebook=str(folder / f"{name}-{i}.ipynb") if job["via"] == "notebook" else None,
                                     sweep_id=sweep_id)
            pending[pool.submit(job)] = i
        counts["running"] = min(len(pending), pool.workers)
        bar(counts)
        while pending:
            for future in pool.completed(list(pending)):
                i = pending.pop(future)
                outcome = future.result()
                if outcome.get("notebook") is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{name}-{i}.ipynb").write_text(outcome["notebook"])
                reported = outcome.get("params")
                store.finish(run_ids[i], outcome["status"], metrics=outcome["metrics"], curves=outcome["curves"],
                             error=outcome.get("error"), duration_s=outcome["seconds"],
                             params=None if reported is None else {**reported, **jobs[i]["params"]})
                counts["done" if outcome["status"] == "finished" else "failed"] += 1
                counts["running"] = min(len(pending), pool.workers)
                bar(counts)
    except BaseException:
        pool.cancel()
        store.close_running(run_ids.values(), "stopped", error="the sweep was interrupted")
        raise
    finally:
        bar(None)


def _progress(progress, total: int, initial: int) -> Callable[[dict | None], None]:
    """A callback of the counts {done, failed, running}: a tqdm bar (progress=True), the given function, or nothing."""
    if callable(progress):
        return lambda counts: counts is not None and progress(dict(counts))
    if not progress:
        return lambda counts: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc="sweep", unit="run", file=sys.stderr)

    def update(counts: dict | None) -> None:
        if counts is None:
            bar.close()
            return
        bar.update(counts["done"] + counts["failed"] - bar.n)
        bar.set_postfix(counts, refresh=True)

    return update


_NO_OUTPUT = logging.NullHandler()


class _LocalExecutor:
    """``workers`` points in flight at once, each on a kernel (or in a process) of its own, with a kernel
    started ahead for each worker (threads here drive papermill or wait on the process)."""

    def __init__(self, workers: int, scheduler: str | None = None):
        from workbench.warm_kernels import WarmKernels  # imports jupyter_client: only when a sweep runs

        if scheduler is not None:
            raise ConfigError("sweep: --scheduler needs --executor dask")
        self.workers = workers
        self.threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep")
        self.kernels = WarmKernels(ahead=workers, env={**os.environ, **SINGLE_THREAD})
        # papermill's log lines (a kernel that died, a cell that failed) belong to the points' outcomes; with no
        # handler of the application's, Python would print them over the progress bar
        logging.getLogger("papermill").addHandler(_NO_OUTPUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.threads.shutdown(wait=True, cancel_futures=True)
        self.kernels.close()

    def submit(self, job: dict):
        return self.threads.submit(run_point, job, self.kernels)

    def completed(self, futures: list):
        return wait(futures, return_when=FIRST_COMPLETED).done

    def cancel(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        self.kernels.close()
        for process in list(_LIVE):
            _kill(process)


class _DaskExecutor:
    """The points as Dask tasks: on the scheduler at ``scheduler``, or on a LocalCluster of ``workers``
    single-threaded worker processes. Ctrl-C cancels the queued tasks; a point already running on a
    worker runs to its end there and its outcome is dropped."""

    def __init__(self, workers: int, scheduler: str | None = None):
        from dask.distributed import Client, LocalCluster

        self.cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                           host="127.0.0.1", dashboard_address=None)
        self.client = Client(scheduler or self.cluster, timeout="60s")
        self.workers = max(1, sum(w["nthreads"] for w in self.client.scheduler_info()["workers"].values()))
        self.submitted: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def submit(self, job: dict):
        future = self.client.submit(_run_on_dask_worker, job, pure=False)
        self.submitted.append(future)
        return future

    def completed(self, futures: list):
        from dask.distributed import wait as dask_wait

        return dask_wait(futures, return_when="FIRST_COMPLETED").done

    def cancel(self) -> None:
        self.client.cancel(self.submitted)


_worker_kernels: WarmKernels | None = None  # on a Dask worker: its process's kernels, made on its first point
_worker_kernels_lock = threading.Lock()


def _run_on_dask_worker(job: dict[str, Any]) -> dict[str, Any]:
    """A point on a Dask worker, with the worker process's kernels: one started ahead per worker thread, kept for
    the next points (of any sweep), closed when the worker exits."""
    global _worker_kernels
    with _worker_kernels_lock:
        if _worker_kernels is None:
            from distributed import get_worker

            from workbench.warm_kernels import WarmKernels

            _worker_kernels = WarmKernels(ahead=get_worker().state.nthreads, env={**os.environ, **SINGLE_THREAD})
            atexit.register(_worker_kernels.close)
    return run_point(job, _worker_kernels)


if __name__ == "__main__":  # one experiment point: python -m workbench.sweeps JOB.json RESULT.json
    job_path, result_path = sys.argv[1:3]
    Path(result_path).write_text(json.dumps(_execute_experiment(json.loads(Path(job_path).read_text()))))

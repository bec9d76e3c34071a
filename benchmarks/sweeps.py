"""Sweep throughput and the per-run overhead of running a point's notebook, measured side by side in one process.

    python benchmarks/sweeps.py                 # overhead, then the lightsb notebook's 8 points on 1 / 2 / 4 workers
    python benchmarks/sweeps.py --only overhead --repeats 5

1. Overhead per run: one experiment (2-D mixture benchmark, ``--steps`` steps, seed 0, one torch thread) run
   - in-process, warm (torch imported, first-call costs paid): the reference;
   - in a fresh Python process (what any isolated run pays: importing torch, torch's lazy imports);
   - through plain papermill (``workbench notebook``'s way: papermill starts a kernel, then runs);
   - as a sweep point (``workbench.sweeps.run_point``) on a kernel started ahead and ready, which is what a point
     gets whenever the point before it on its worker ran longer than a kernel takes to start;
   - as a sweep point whose kernel starts on the spot (a sweep's first points);
   each through a notebook that holds only the experiment (a ``parameters`` cell, then configure, execute, report),
   medians of ``--repeats`` in random order. "overhead s" = median - the in-process median. Then a whole 1-worker
   sweep of ``--points`` seeds of that notebook (``workbench.sweep``, its store, its first kernel and every
   fixed cost included): its wall time per point against the in-process runs of the same seeds.
2. Runs per minute: the same sweep (``--points`` seeds of the lightsb notebook on the 2-D mixture benchmark, its
   checks included, ``--toy-steps`` setting how long a point runs) with 1, 2 and 4 workers of the local executor,
   each into a fresh store; ratio to 1 worker. One worker's next kernel starts on the second core while its point
   runs; the kernels are forked from a preloaded process (``workbench.kernel_factory``), so that start costs about
   0.1 s of CPU, not the ~2 s of a kernel that imports torch itself.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
import torch
from jupyter_client import BlockingKernelClient

import workbench
from workbench.reporting import read_reports
from workbench.store import RunStore
from workbench.sweeps import SINGLE_THREAD, run_point
from workbench.warm_kernels import WarmKernels

EXPERIMENT = {"dataset": "mixture_benchmark", "dim": 2, "n_components": 50, "diagonal": True}
RUN_CELL = ("import torch, workbench\ntorch.set_num_threads(1)\n"
            "experiment = workbench.configure_from_namespace('lightsb', globals())\n"
            "workbench.report(experiment.execute(), experiment)")


def experiment_notebook(path: Path, params: dict) -> Path:
    """``lightsb.ipynb`` holding only the experiment: its parameters, then configure, execute and report."""
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                 "display_name": "Python 3"}})
    defaults = "\n".join(f"{key} = {value!r}" for key, value in params.items())
    notebook.cells = [nbformat.v4.new_code_cell(defaults, metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell(RUN_CELL)]
    nbformat.write(notebook, str(path))
    return path


def wait_until_ready(kernels: WarmKernels) -> None:
    """Block until the kernels started ahead answer (their imports done)."""
    for kernel in kernels.unused:
        client = BlockingKernelClient(connection_file=kernel.km.connection_file)
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=300)
        client.stop_channels()


def overhead(steps: int, repeats: int, folder: Path) -> list[dict]:
    params = {**EXPERIMENT, "steps": steps, "seed": 0}
    notebook = experiment_notebook(folder / "lightsb.ipynb", params)
    job = {"name": "lightsb", "via": "notebook", "params": params, "notebook": notebook.read_text(), "timeout": 600,
           "later": 0}
    kernels = WarmKernels(ahead=1, env={**os.environ, **SINGLE_THREAD})

    def in_process():
        torch.set_num_threads(1)
        workbench.run("lightsb", **params)

    def fresh_process():
        code = ("import json, sys, torch, workbench; torch.set_num_threads(1); "
                "workbench.run('lightsb', **json.loads(sys.argv[1]))")
        subprocess.run([sys.executable, "-c", code, json.dumps(params)], check=True,
                       env={**os.environ, **SINGLE_THREAD})

    def plain_papermill():
        output = folder / "plain.ipynb"
        papermill.execute_notebook(str(notebook), str(output), parameters=params, kernel_name="python3",
                                   progress_bar=False, log_output=False)
        assert read_reports(output)["metrics"]

    def sweep_point():
        outcome = run_point(job, kernels)
        assert outcome["status"] == "finished" and outcome["metrics"], outcome.get("error")

    def start_ahead():
        kernels.start("lightsb", 1)
        wait_until_ready(kernels)

    ways = {"in-process (warm)": (None, in_process), "fresh process": (None, fresh_process),
            "plain papermill (cold kernel)": (None, plain_papermill),
            "sweep point, kernel started ahead": (start_ahead, sweep_point),
            "sweep point, kernel started on the spot": (None, sweep_point)}
    times = {name: [] for name in ways}
    in_process()  # warm-up: imports and first-call costs
    try:
        for _ in range(repeats):
            for name in random.sample(list(ways), len(ways)):
                prepare, measured = ways[name]
                if prepare is not None:
                    prepare()
                start = time.perf_counter()
                measured()
                times[name].append(time.perf_counter() - start)
    finally:
        kernels.close()
    base = statistics.median(times["in-process (warm)"])
    return [{"way": name, "median s": statistics.median(t), "overhead s": statistics.median(t) - base,
             "min s": min(t), "max s": max(t), "runs": len(t)} for name, t in times.items()]


def sweep_per_point(steps: int, points: int, folder: Path) -> list[dict]:
    """A 1-worker sweep of ``points`` seeds of the experiment's notebook against the same runs in-process."""
    params = {**EXPERIMENT, "steps": steps}
    experiment_notebook(folder / "lightsb.ipynb", {**params, "seed": 0})
    seeds = list(range(points))
    start = time.perf_counter()
    for seed in seeds:
        torch.set_num_threads(1)
        workbench.run("lightsb", **params, seed=seed)
    in_process = (time.perf_counter() - start) / points
    os.environ["WORKBENCH_NOTEBOOKS"] = str(folder)  # the sweep runs this notebook
    try:
        start = time.perf_counter()
        frame = workbench.sweep("lightsb", grid={"seed": seeds}, params=params, workers=1,
                                store=RunStore(folder / "sweep.db"), output_dir=folder / "runs", progress=False)
        swept = (time.perf_counter() - start) / points
    finally:
        del os.environ["WORKBENCH_NOTEBOOKS"]
    assert (frame["status"] == "finished").all()
    return [{"points": points, "in-process s/run": in_process, "sweep s/point": swept,
             "overhead s/point": swept - in_process}]


def throughput(workers: list[int], points: int, toy_steps: int, folder: Path) -> list[dict]:
    rows = []
    for n in workers:
        store = RunStore(folder / f"throughput-{n}.db")
        start = time.perf_counter()
        frame = workbench.sweep("lightsb", grid={"seed": list(range(points))},
                                params={**EXPERIMENT, "toy_steps": toy_steps}, workers=n, store=store,
                                output_dir=folder / f"out-{n}", progress=False)
        minutes = (time.perf_counter() - start) / 60
        rows.append({"workers": n, "runs": len(frame), "finished": int((frame["status"] == "finished").sum()),
                     "minutes": minutes, "runs/min": len(frame) / minutes})
    for row in rows:
        row["x 1 worker"] = row["runs/min"] / rows[0]["runs/min"]
    return rows


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)), "-|-".join("-" * w for w in widths)]
    return "\n".join(lines + [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells])


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    parser.add_argument("--points", type=int, default=8, help="points per sweep (default 8)")
    parser.add_argument("--steps", type=int, default=500, help="training steps in the overhead runs (default 500)")
    parser.add_argument("--toy-steps", type=int, default=200,
                        help="the notebook's toy_steps in the runs-per-minute sweeps (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each overhead measurement (default 5)")
    parser.add_argument("--only", choices=["overhead", "throughput"], help="measure only one of the two")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs; every run with one "
          f"torch thread, every kernel with OMP_NUM_THREADS=1")
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as folder:
        folder = Path(folder)
        for part in ("overhead", "per-point", "throughput"):
            (folder / part).mkdir()
        if args.only != "throughput":
            print(f"\nOverhead per run (the same experiment, {args.steps} steps), {load()}:")
            print(table(overhead(args.steps, args.repeats, folder / "overhead")))
            print(f"\nA 1-worker sweep of {args.points} points of that notebook, {load()}:")
            print(table(sweep_per_point(args.steps, args.points, folder / "per-point")))
        if args.only != "overhead":
            print(f"\nRuns per minute: {args.points} points of the lightsb notebook (2-D mixture benchmark, "
                  f"toy_steps={args.toy_steps}, checks included), {load()}:")
            workers = [int(w) for w in args.workers.split(",")]
            print(table(throughput(workers, args.points, args.toy_steps, folder / "throughput")))
        print(f"\n{load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

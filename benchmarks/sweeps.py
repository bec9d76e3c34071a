"""Sweep throughput and the per-run overhead of papermill, measured side by side in one process.

    python benchmarks/sweeps.py                 # lightsb notebook, 8 points, 1 / 2 / 4 workers
    python benchmarks/sweeps.py --points 4 --workers 1,2

1. Runs per minute: the same sweep (``--points`` seeds of the lightsb notebook on the 2-D mixture
   benchmark, the notebook's checks included) with 1, 2 and 4 workers of the local executor, each into a
   fresh store; the ratio is to 1 worker.
2. Overhead per run: the same experiment (2-D mixture benchmark, ``--steps`` steps) run in-process with one
   torch thread (warm: torch imported, first-call costs paid), in a fresh Python process (what any isolated
   run pays: importing torch, torch's lazy imports on the first optimizer), through papermill in a one-cell
   notebook that calls it (a fresh kernel, parameter injection, reading the report back), and as a sweep
   point (``workbench.sweeps.run_point``: a fresh process that runs papermill). Medians of ``--repeats``,
   in random order. The "overhead" column is against the warm in-process run.
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

import workbench
from workbench.reporting import read_reports
from workbench.store import RunStore
from workbench.sweeps import run_point

EXPERIMENT = {"dataset": "mixture_benchmark", "dim": 2, "n_components": 50, "diagonal": True}


def one_cell_notebook(path: Path) -> Path:
    """A notebook that only runs the experiment with its injected parameters and reports it."""
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                 "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("params = {}", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("import torch, workbench\ntorch.set_num_threads(1)\n"
                                                "result = workbench.run('lightsb', **params)\nworkbench.report(result)")]
    nbformat.write(notebook, str(path))
    return path


def throughput(workers: list[int], points: int, folder: Path) -> list[dict]:
    rows = []
    for n in workers:
        store = RunStore(folder / f"throughput-{n}.db")
        start = time.perf_counter()
        frame = workbench.sweep("lightsb", grid={"seed": list(range(points))}, params={**EXPERIMENT, "toy_steps": 200},
                                workers=n, store=store, output_dir=folder / f"out-{n}", progress=False)
        minutes = (time.perf_counter() - start) / 60
        rows.append({"workers": n, "runs": len(frame), "finished": int((frame["status"] == "finished").sum()),
                     "minutes": minutes, "runs/min": len(frame) / minutes})
    for row in rows:
        row["x 1 worker"] = row["runs/min"] / rows[0]["runs/min"]
    return rows


def overhead(steps: int, repeats: int, folder: Path) -> list[dict]:
    params = {**EXPERIMENT, "steps": steps}
    notebook = one_cell_notebook(folder / "one_cell.ipynb")
    text = notebook.read_text()

    def in_process():
        torch.set_num_threads(1)
        workbench.run("lightsb", **params)

    def through_papermill():
        output = folder / "one_cell.out.ipynb"
        papermill.execute_notebook(str(notebook), str(output), parameters={"params": params}, kernel_name="python3",
                                   progress_bar=False, log_output=False)
        assert read_reports(output)["metrics"]

    def fresh_process():  # what any isolated run pays: a new interpreter imports torch and warms up
        code = ("import json, sys, torch, workbench; torch.set_num_threads(1); "
                "workbench.run('lightsb', **json.loads(sys.argv[1]))")
        subprocess.run([sys.executable, "-c", code, json.dumps(params)], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})

    def as_sweep_point():
        outcome = run_point({"name": "lightsb", "via": "notebook", "params": {"params": params}, "notebook": text,
                             "timeout": 600})
        assert outcome["status"] == "finished", outcome.get("error")

    ways = {"in-process": in_process, "fresh process": fresh_process, "papermill": through_papermill,
            "sweep point": as_sweep_point}
    times = {name: [] for name in ways}
    in_process()  # warm-up: imports and first-call costs
    for _ in range(repeats):
        for name in random.sample(list(ways), len(ways)):
            start = time.perf_counter()
            ways[name]()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["in-process"])
    return [{"way": name, "median s": statistics.median(t), "overhead s": statistics.median(t) - base,
             "runs": len(t)} for name, t in times.items()]


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)), "-|-".join("-" * w for w in widths)]
    return "\n".join(lines + [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    parser.add_argument("--points", type=int, default=8, help="points per sweep (default 8)")
    parser.add_argument("--steps", type=int, default=500, help="training steps in the overhead runs (default 500)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each overhead measurement (default 5)")
    parser.add_argument("--only", choices=["overhead", "throughput"], help="measure only one of the two")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {torch.get_num_threads()} torch threads "
          f"available; each point runs with OMP_NUM_THREADS=1")
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as folder:
        folder = Path(folder)
        if args.only != "throughput":
            print("\nOverhead per run (the same experiment):")
            print(table(overhead(args.steps, args.repeats, folder)))
        if args.only != "overhead":
            print(f"\nRuns per minute: {args.points} points of the lightsb notebook (2-D mixture benchmark, checks "
                  "included):")
            print(table(throughput([int(w) for w in args.workers.split(",")], args.points, folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

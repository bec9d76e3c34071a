"""The ``workbench`` command line: list, run, notebook, sweep, runs, show, compare, serve.

Exit codes: 0 success, 1 a run failed, 2 bad input (unknown experiment or parameter, bad value),
130 interrupted (Ctrl-C; the runs in flight are recorded as stopped).
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
from typing import Any

from workbench.experiment import ConfigError, describe_allowed, experiments, get, headline_summary, parse_overrides
from workbench.store import RunStore, default_path


TABLE_WIDTH = 120  # characters a line of `workbench runs` takes when stdout is not a terminal
MIN_COLUMN = 20  # a column is never cut narrower than this (nor than its header)


def table_width() -> int:
    """The characters a table line may take: the terminal's width when stdout is one, else TABLE_WIDTH."""
    return shutil.get_terminal_size((TABLE_WIDTH, 24)).columns if sys.stdout.isatty() else TABLE_WIDTH


def format_table(rows: list[dict[str, Any]], width: int | None = None, full: str = "") -> str:
    """A plain aligned text table of dict rows (columns in first-seen order). With ``width``, no line is longer:
    the widest cells are cut, ending in "…", and columns that still do not fit are left out from the last; a line
    under the table then says so, and where the full text is (``full``)."""
    if not rows:
        return "(none)"
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    text = [[cell(row.get(c)) for c in columns] for row in rows]
    natural = [max(len(c), *(len(r[i]) for r in text)) for i, c in enumerate(columns)]
    widths = natural if width is None else _fitted(columns, natural, width)
    shown = [i for i, w in enumerate(widths) if w]
    line = lambda cells: "  ".join(_cut(cells[i], widths[i]).ljust(widths[i]) for i in shown).rstrip()  # noqa: E731
    lines = [line(columns), "  ".join("-" * widths[i] for i in shown), *map(line, text)]
    if widths != natural:
        left_out = len(columns) - len(shown)
        lines.append(f"(… cut to fit {width} characters" + (f"; {left_out} more columns left out" if left_out else "")
                     + (f"; {full})" if full else ")"))
    return "\n".join(lines)


def _fitted(columns: list[str], widths: list[int], width: int) -> list[int]:
    """Column widths whose lines fit ``width``: the widest column narrowed first, none below its header or
    MIN_COLUMN; then the last columns left out (width 0) while the lines are still too long."""
    widths = list(widths)
    floors = [min(w, max(len(c), MIN_COLUMN)) for c, w in zip(columns, widths)]
    total = lambda: sum(widths) + 2 * (sum(w > 0 for w in widths) - 1)  # noqa: E731  two spaces between columns
    while total() > width and any(w > f for w, f in zip(widths, floors)):
        i = max((i for i, w in enumerate(widths) if w > floors[i]), key=widths.__getitem__)
        widths[i] = max(floors[i], widths[i] - (total() - width))
    while total() > width and sum(w > 0 for w in widths) > 1:
        widths[max(i for i, w in enumerate(widths) if w)] = 0
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_list(args) -> int:
    for name, cls in experiments().items():
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")
        for key, p in cls.param.objects("existing").items():
            if key == "name":
                continue
            print(f"  {key} = {p.default!r}  ({describe_allowed(p)})  {p.doc or ''}")
        print()
    return 0


def cmd_run(args) -> int:
    from workbench.runner import execute, progress_bar
    from workbench.experiment import configure

    experiment = configure(args.name, **parse_overrides(args.param))
    store = RunStore(args.db)
    progress = None if args.quiet else progress_bar(args.name, file=sys.stderr)
    try:
        result = execute(experiment, store=store, progress=progress)
    except KeyboardInterrupt:
        print(f"\n{args.name}: interrupted, recorded as stopped", file=sys.stderr)
        return 130
    except Exception as error:  # the run failed: recorded as failed, reported, exit 1
        print(f"{args.name}: run failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"run {result.artifacts['run_id']} {result.status} in {result.seconds:.1f} s ({store.path})")
    print(format_table([{"metric": k, "value": v} for k, v in result.metrics.items()]))
    return 0


def cmd_notebook(args) -> int:
    from workbench.runner import notebook_names, run_notebook

    names = notebook_names() if args.all else [args.name]
    if not names or names == [None]:
        raise ConfigError("give an experiment NAME or --all")
    overrides = parse_overrides(args.param)
    failures, rows = 0, []
    for name in names:
        start = time.perf_counter()
        try:
            report, output, run_id = run_notebook(name, overrides, output_dir=args.output_dir, store=RunStore(args.db),
                                                  timeout=args.timeout, progress=not args.quiet)
            status = report.get("status", "finished")
        except ConfigError:
            raise
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted, recorded as stopped", file=sys.stderr)
            return 130
        except Exception as error:
            failures += 1
            print(f"{name}: notebook failed: {type(error).__name__}: {str(error).strip()[-2000:]}", file=sys.stderr)
            output, run_id, status, report = getattr(error, "output", None), None, "failed", {"metrics": {}}
        row = {"experiment": name, "run": run_id, "status": status, "seconds": time.perf_counter() - start}
        row.update(_chosen_metrics(report["metrics"], args.metrics, every=not args.all, experiment=name))
        row["notebook"] = str(output) if output else ""
        rows.append(row)
    print(format_table(rows, width=table_width() if args.all else None,
                       full="workbench show RUN shows all, --metrics picks columns"))
    print(f"\nruns recorded in {RunStore(args.db).path}; executed notebooks under {args.output_dir}/notebooks")
    return 1 if failures else 0


def cmd_handout(args) -> int:
    from workbench.handout import write_handout
    from workbench.runner import notebook_names, run_notebook

    def execute(name: str):
        print(f"{name}: executing the teacher's copy at its defaults (about a minute)", file=sys.stderr)
        return run_notebook(name, {}, output_dir=args.runs, store=RunStore(args.db), progress=True)[1]

    names = notebook_names()
    sources = write_handout(args.out_dir, names, runs_dir=args.runs, execute=execute)
    print(format_table([{"notebook": name, "teacher's copy from": source} for name, source in sources.items()]))
    print(f"\nstudent copies in {args.out_dir}/student, teacher's copies in {args.out_dir}/teacher, "
          f"{args.out_dir}/README.md for the students")
    return 0


def _chosen_metrics(metrics: dict, patterns: str | None, every: bool, experiment: str | None = None) -> dict:
    """The metrics whose names contain one of the comma-separated patterns; without patterns, all of them
    (every=True: one experiment) or the experiment's headline metrics in one column (several experiments:
    all their columns would not fit)."""
    if patterns is None:
        return metrics if every else {"headline": headline_summary(experiment, metrics) if experiment else ""}
    parts = [p.strip() for p in patterns.split(",") if p.strip()]
    return {k: v for k, v in metrics.items() if any(p in k for p in parts)}


def cmd_sweep(args) -> int:
    from workbench.sweeps import parse_grid, parse_random, sweep

    def started(sweep_id: str, n_points: int, n_done: int) -> None:
        print(f"sweep {sweep_id}: {n_points} points of {args.name or 'the recorded sweep'}"
              + (f", {n_done} already finished" if n_done else ""), flush=True)

    store = RunStore(args.db)
    try:
        frame = sweep(args.name, grid=parse_grid(args.grid), random=parse_random(args.random), n=args.n,
                      sweep_seed=args.sweep_seed, params=parse_overrides(args.param), via=args.via, workers=args.workers,
                      executor=args.executor, scheduler=args.scheduler, timeout=args.timeout, resume=args.resume,
                      store=store, output_dir=args.output_dir, progress=not args.quiet, on_start=started)
    except KeyboardInterrupt:
        print("\nsweep interrupted: the runs in flight are recorded as stopped", file=sys.stderr)
        return 130
    sweep_id = frame["sweep_id"].iloc[0] if len(frame) else args.resume
    runs = store.list(sweep_id=sweep_id)
    print(format_table([_run_row(run, args.metrics, every=True) for run in runs]))
    failed = sum(run.status != "finished" for run in runs if _latest(run, runs))
    print(f"\nsweep {sweep_id}: {len(runs)} runs in {store.path}; compare: workbench compare {sweep_id} -o report.html")
    return 1 if failed else 0


def _latest(run, runs) -> bool:
    """Whether ``run`` is the last attempt at its parameters in ``runs`` (a resumed sweep re-runs failures)."""
    return not any(other.id > run.id and other.params == run.params for other in runs)


def cmd_compare(args) -> int:
    from workbench.compare import chosen_metrics, write_report

    store = RunStore(args.db)
    runs = []
    for target in args.targets:
        try:
            runs += [store.load(int(target))] if target.isdigit() else store.list(sweep_id=store.sweep(target)["id"])
        except KeyError as error:
            raise ConfigError(str(error.args[0])) from None
    if not runs:
        raise ConfigError("compare: no runs to compare")
    path = write_report(runs, args.output, metrics=chosen_metrics(runs, args.metrics),
                        title=f"workbench: {', '.join(args.targets)}")
    print(f"report of {len(runs)} runs: {path}")
    return 0


def _run_row(run, patterns: str | None, every: bool) -> dict:
    row = {"id": run.id, "experiment": run.experiment, "status": run.status,
           "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at)), "seconds": run.duration_s}
    row.update(_chosen_metrics(run.metrics, patterns, every=every, experiment=run.experiment))
    return row


def cmd_runs(args) -> int:
    if args.name is not None:
        get(args.name)
    one_experiment = args.name is not None or args.sweep is not None
    print(format_table([_run_row(run, args.metrics, every=one_experiment)
                        for run in RunStore(args.db).list(args.name, args.sweep)],
                       width=table_width(), full="workbench show ID shows all, --metrics picks columns"))
    return 0


def cmd_show(args) -> int:
    try:
        run = RunStore(args.db).load(args.run_id)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from None
    summary = {k: v for k, v in vars(run).items() if k != "curves"}
    summary["curves"] = {name: f"{len(c['step'])} points, last {c['value'][-1]:.6g}"
                         for name, c in run.curves.items() if c["value"]}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_serve(args) -> int:
    import importlib

    from workbench.panels.serve import access_token, serve

    token = access_token(args)
    for module in args.imports:
        importlib.import_module(module)
    import panel as pn

    from workbench.panels.app import FILES_URL, pages

    pn.extension("plotly", "tabulator")
    store = RunStore(args.db)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    serve(pages(store), args, store, title="workbench", token=token,
          static_dirs={FILES_URL.strip("/"): str(store.path.parent)})
    return 0


METRICS_HELP = ("metric columns to show: comma-separated parts of their names, e.g. test_accuracy,val_loss "
                "(default: all metrics of one experiment, none when several are listed)")


def build_parser() -> argparse.ArgumentParser:
    from workbench.panels.serve import add_server_options

    parser = argparse.ArgumentParser(prog="workbench", description="Run and compare workbench experiments.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help=f"run store path (default $WORKBENCH_DB or {default_path()})")
    sub = parser.add_subparsers(dest="command", required=True)
    add = lambda name, **kw: sub.add_parser(name, parents=[common], **kw)  # noqa: E731

    add("list", help="experiments with their parameters, defaults, bounds and docs").set_defaults(func=cmd_list)

    run = add("run", help="run an experiment headless and record it")
    run.add_argument("name")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    notebook = add("notebook", help="execute notebooks/NAME.ipynb with papermill and record it")
    notebook.add_argument("name", nargs="?")
    notebook.add_argument("--all", action="store_true", help="every experiment that has a notebook")
    notebook.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    notebook.add_argument("--output-dir", default="runs")
    notebook.add_argument("--timeout", type=float, default=1800, help="seconds per cell")
    notebook.add_argument("-q", "--quiet", action="store_true")
    notebook.add_argument("--metrics", metavar="PARTS", help=METRICS_HELP)
    notebook.set_defaults(func=cmd_notebook)

    handout = add("handout", help="student copies of the notebooks without the worked solutions, the teacher's "
                                  "copies with outputs, and a README for the students")
    handout.add_argument("out_dir", metavar="OUT_DIR")
    handout.add_argument("--runs", default="runs", help="where `workbench notebook` (make run) wrote executed "
                                                         "notebooks: the newest, when newer than its source, is reused")
    handout.set_defaults(func=cmd_handout)

    sweep = add("sweep", help="run NAME's notebook (or experiment) over a grid or random search of parameters")
    sweep.add_argument("name", nargs="?", help="experiment (omit with --resume)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of one parameter; several --grid make the cartesian product")
    sweep.add_argument("--random", action="append", default=[], metavar="KEY=LO:HI[:log]",
                       help="draw KEY uniformly (log-uniformly with :log) in [LO, HI], --n times")
    sweep.add_argument("--n", type=int, default=10, help="random draws (default 10)")
    sweep.add_argument("--sweep-seed", type=int, default=0, help="seed of the random draws")
    sweep.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a fixed value")
    sweep.add_argument("--via", choices=["notebook", "experiment"], default="notebook",
                       help="run each point's notebook with papermill (default) or the experiment in-process")
    sweep.add_argument("--workers", type=int, default=1, help="points in flight at once (local executor)")
    sweep.add_argument("--executor", choices=["local", "dask"], default="local")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a Dask scheduler (default: a LocalCluster)")
    sweep.add_argument("--timeout", type=float, default=1800, help="seconds per point before it is killed")
    sweep.add_argument("--resume", metavar="SWEEP_ID", help="run the points of a recorded sweep not yet finished")
    sweep.add_argument("--output-dir", default="runs", help="executed notebooks go to OUTPUT_DIR/sweeps/SWEEP_ID/")
    sweep.add_argument("-q", "--quiet", action="store_true")
    sweep.add_argument("--metrics", metavar="PARTS", help=METRICS_HELP)
    sweep.set_defaults(func=cmd_sweep)

    runs = add("runs", help="table of recorded runs")
    runs.add_argument("name", nargs="?")
    runs.add_argument("--sweep", metavar="SWEEP_ID", help="only the runs of this sweep")
    runs.add_argument("--metrics", metavar="PARTS", help=METRICS_HELP)
    runs.set_defaults(func=cmd_runs)

    compare = add("compare", help="an HTML report comparing a sweep's runs (or several runs)")
    compare.add_argument("targets", nargs="+", metavar="SWEEP_ID|RUN_ID")
    compare.add_argument("-o", "--output", default="report.html", help="report file (default report.html)")
    compare.add_argument("--metrics", metavar="PARTS", help="metrics to show: comma-separated parts of their names "
                         "(default: the experiments' headline metrics, else those every run reports, at most 8)")
    compare.set_defaults(func=cmd_compare)

    serve = add("serve", help="the web app: a page per experiment and a Runs page, behind a token (this machine only "
                "by default)")
    add_server_options(serve, db=False)
    serve.set_defaults(func=cmd_serve)

    show = add("show", help="one run in full")
    show.add_argument("run_id", type=int)
    show.set_defaults(func=cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C stops runs even when started from a process that ignores SIGINT (a Jupyter kernel does, and a child
    # inherits that, so Python would not raise KeyboardInterrupt)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"workbench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

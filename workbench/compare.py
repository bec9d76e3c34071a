"""Comparing runs: a table, a parallel-coordinates plot, metric-versus-parameter plots, an HTML report.

    runs = workbench.RunStore().list(sweep_id="3f2a...")
    comparison_table(runs); parallel_coordinates(runs); metric_vs_parameter(runs, "cbw2_uvp", "epsilon")
    write_report(runs, "report.html")        # self-contained: Plotly's JavaScript inlined, opens offline

The views are plain functions of a list of :class:`RunRecord` returning a DataFrame or a Plotly
figure, for the report, the served app and notebooks alike. Parameters shown are those that vary
across the runs; metrics are the experiments' headline metrics, else those every finished run reports
(or those matching ``metrics``, comma-separated parts of their names). Plots show every run that
reported metrics: finished ones, those whose notebook failed a check after reporting, and those that
died after reporting (the table gives each run's status, ``died`` for a run whose process is gone). Where runs
differ only by ``seed``, metric-versus-parameter plots show the mean over seeds with the standard
deviation as error bars.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.experiment import ConfigError, get, matches_headline
from workbench.store import RunRecord

MAX_METRICS = 8  # metrics shown when none are named


def varying_parameters(runs: list[RunRecord]) -> list[str]:
    """Parameters whose values differ between the runs, in first-seen order."""
    keys = list(dict.fromkeys(k for run in runs for k in run.params))
    values = {k: {json.dumps(run.params.get(k), sort_keys=True, default=str) for run in runs} for k in keys}
    return [k for k in keys if len(values[k]) > 1]


def reported(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs that reported metrics."""
    return [run for run in runs if run.metrics]


def chosen_metrics(runs: list[RunRecord], patterns: str | None = None) -> list[str]:
    """Metrics of the runs: those whose names contain one of ``patterns`` (comma-separated); else the
    headline metrics of the runs' experiments that every run with metrics reports; else those every run
    with metrics reports and that differ between runs (at most MAX_METRICS, in name order)."""
    finished = reported(runs)
    names = sorted({k for run in finished for k in run.metrics})
    if patterns:
        parts = [p.strip() for p in patterns.split(",") if p.strip()]
        return [k for k in names if any(p in k for p in parts)]
    common = [k for k in names if all(k in run.metrics for run in finished)]
    headline = [k for k in common if any(matches_headline(k, h) for h in headlines(finished))]
    varying = [k for k in common if len({run.metrics[k] for run in finished}) > 1]  # equal everywhere: tells nothing
    return (headline or varying)[:MAX_METRICS]


def headlines(runs: list[RunRecord]) -> list[tuple[str, ...]]:
    """The headline metric patterns of the runs' experiments (those installed here)."""
    patterns = []
    for name in dict.fromkeys(run.experiment for run in runs):
        try:
            patterns.append(get(name).headline)
        except ConfigError:  # a run of an experiment not installed here
            continue
    return patterns


def comparison_table(runs: list[RunRecord], metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per run: id, status, sweep, the varying parameters, the metrics, the notebook."""
    metrics = chosen_metrics(runs) if metrics is None else metrics
    rows = []
    for run in runs:
        row = {"run": run.id, "experiment": run.experiment, "status": run.status, "sweep": run.sweep_id}
        row.update({k: run.params.get(k) for k in varying_parameters(runs)})
        row.update({k: run.metrics.get(k) for k in metrics})
        row["seconds"], row["notebook"] = run.duration_s, run.notebook
        rows.append(row)
    return pd.DataFrame(rows)


def _axis_values(values: list[Any]) -> tuple[list[float], dict[str, Any]]:
    """Numbers for a parallel-coordinates axis; text values become codes with tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], {}
    labels = list(dict.fromkeys(json.dumps(v, default=str) for v in values))
    codes = [labels.index(json.dumps(v, default=str)) for v in values]
    return codes, {"tickvals": list(range(len(labels))), "ticktext": [t.strip('"') for t in labels]}


def parallel_coordinates(runs: list[RunRecord], metrics: list[str] | None = None) -> go.Figure:
    """A parallel-coordinates plot of the runs with metrics: the varying parameters, then the metrics,
    coloured by the first metric."""
    finished = reported(runs)
    metrics = chosen_metrics(runs) if metrics is None else metrics
    dimensions = []
    for key in varying_parameters(finished):
        values, ticks = _axis_values([run.params.get(key) for run in finished])
        dimensions.append({"label": key, "values": values, **ticks})
    for key in metrics:
        dimensions.append({"label": key, "values": [run.metrics.get(key, np.nan) for run in finished]})
    color = dimensions[-len(metrics)]["values"] if metrics else [0] * len(finished)
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line={"color": color, "colorscale": "Viridis",
                                                                  "showscale": bool(metrics)}))
    figure.update_layout(title=f"{len(finished)} runs with metrics" + (f", coloured by {metrics[0]}" if metrics else ""),
                         template="plotly_white", height=440, margin={"l": 60, "r": 60, "t": 100, "b": 30})
    return figure


def metric_vs_parameter(runs: list[RunRecord], metric: str, parameter: str) -> go.Figure:
    """``metric`` against ``parameter`` over the runs that report it, one line per combination of the other
    varying parameters; runs that differ only by seed are averaged (mean, standard deviation as error bars)."""
    finished = [run for run in reported(runs) if metric in run.metrics]
    others = [k for k in varying_parameters(finished) if k not in (parameter, "seed")]
    frame = pd.DataFrame([{**{k: json.dumps(run.params.get(k), default=str) for k in others},
                           "x": _scalar(run.params.get(parameter)), "y": run.metrics[metric]} for run in finished])
    figure = go.Figure()
    groups = frame.groupby(others, dropna=False) if others else [((), frame)]
    for key, group in groups:
        stats = group.groupby("x", dropna=False)["y"].agg(["mean", "std", "count"]).reset_index()
        label = ", ".join(f"{k}={v.strip(chr(34))}" for k, v in zip(others, key if isinstance(key, tuple) else (key,)))
        figure.add_trace(go.Scatter(x=stats["x"], y=stats["mean"], mode="lines+markers", name=label or metric,
                                    error_y={"type": "data", "array": stats["std"].fillna(0), "visible": bool((stats["count"] > 1).any())}))
    numeric_x = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in frame["x"]) if len(frame) else False
    positive = numeric_x and (frame["x"] > 0).all()
    spread = positive and frame["x"].max() / frame["x"].min() >= 100
    figure.update_layout(title=f"{metric} against {parameter}" + (" (mean ± std over seeds)" if "seed" in varying_parameters(finished) else ""),
                         xaxis={"title": parameter, "type": "log" if spread else "-"}, yaxis_title=metric,
                         template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return figure


def _scalar(value: Any) -> Any:
    """A parameter value usable as a plot coordinate: lists (the optimizers compared...) become their text."""
    return ", ".join(map(str, value)) if isinstance(value, list) else value


def write_report(runs: list[RunRecord], path: str | os.PathLike, metrics: list[str] | None = None,
                 title: str = "workbench comparison") -> Path:
    """A self-contained HTML report (opens offline: Plotly's JavaScript is inlined once): the table with
    links to the executed notebooks, the parallel-coordinates plot and each metric against each
    varying parameter."""
    path = Path(path).resolve()
    metrics = chosen_metrics(runs) if metrics is None else metrics
    table = comparison_table(runs, metrics)
    table["notebook"] = [_link(notebook, path.parent) for notebook in table["notebook"]]
    figures = [parallel_coordinates(runs, metrics)]
    figures += [metric_vs_parameter(runs, m, p) for p in varying_parameters(runs) if p != "seed" for m in metrics]
    parts = [figure.to_html(full_html=False, include_plotlyjs=i == 0) for i, figure in enumerate(figures)]
    body = (f"<h1>{html.escape(title)}</h1><p>{len(runs)} runs: "
            + ", ".join(f"{n} {status}" for status, n in table["status"].value_counts().items()) + "</p>"
            + table.to_html(index=False, escape=False, float_format=lambda v: f"{v:.4g}", na_rep="")
            + "".join(f"<div>{part}</div>" for part in parts))
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{body}</body></html>")
    return path


def _link(notebook: str | None, base: Path) -> str:
    if not notebook:
        return ""
    target = os.path.relpath(notebook, base) if Path(notebook).is_absolute() else notebook
    return f"<a href='{html.escape(target)}'>{html.escape(Path(notebook).name)}</a>"


def curves_comparison(runs: list[RunRecord], metric: str) -> go.Figure:
    """The recorded curve of ``metric`` of each run that has one, overlaid: one line per run."""
    figure = go.Figure()
    for run in runs:
        curve = run.curves.get(metric)
        if curve and curve["step"]:
            figure.add_trace(go.Scatter(x=curve["step"], y=curve["value"], mode="lines", name=f"run {run.id}"))
    figure.update_layout(title=f"{metric} during the runs", xaxis_title="step", yaxis_title=metric,
                         template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return figure

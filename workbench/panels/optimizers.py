"""The live picture of the optimizers experiment: curves, trajectories, state memory, step times.

``optimizers_plot(event)`` reads ``event.payload`` (a dict from the ``optimizers`` experiment; a
:class:`workbench.Result` works too, through its ``payload`` artifact) and returns one Plotly figure:

- top left: the training loss of every optimizer, overlaid (log scale); on the 2-D tasks, the
  trajectories on the contour plot of f, with the start and the known minimum x*;
- top right: the periodic metric (test accuracy, validation loss, or ‖x − x*‖ on the 2-D tasks,
  where the loss curves move here);
- bottom left: optimizer state memory per optimizer (bytes per parameter above the bars);
- bottom right: a table of lr, mean ``optimizer.step()`` time, iteration time, state and the last periodic metric.

Payload keys: ``task``, ``optimizers``, ``curves`` ({opt: {"step", "loss", "eval_step", "eval"}}),
``eval_name``, ``state_bytes``, ``step_ms``, ``iter_ms``, ``lrs``, ``n_params``; 2-D tasks add
``trajectories`` ({opt: [[x, y], ...]}). Lists may still be growing (another thread appends): they
are sliced to a common length before drawing.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_POINTS = 1000  # drawn per curve
PALETTE = {
    "adamw": "#1f77b4", "sgd": "#7f7f7f", "galore": "#d62728", "dct": "#ff7f0e", "apollo": "#2ca02c",
    "apollo_mini": "#98df8a", "frugal": "#9467bd", "lion": "#8c564b", "adamw8bit": "#e377c2", "lamb": "#17becf",
    "muon": "#393b79", "soap": "#637939", "cosmos": "#8c6d31", "q_galore": "#843c39", "natural_galore": "#7b4173",
    "badam": "#3182bd", "mezo": "#e6550d", "sparse_mezo": "#fd8d3c", "zo_sgd": "#31a354", "zo_adam": "#756bb1",
}
EVAL_TITLES = {"test_accuracy": "test accuracy", "val_loss": "validation loss", "distance": "‖x − x*‖"}


def color(name: str) -> str:
    return PALETTE.get(name, "#bcbd22")


def _pair(xs: list, ys: list) -> tuple[list, list]:
    """Equal-length, thinned copies of two growing lists."""
    xs, ys = list(xs), list(ys)  # snapshots (atomic under the GIL)
    n = min(len(xs), len(ys))
    stride = max(1, math.ceil(n / MAX_POINTS))
    return xs[:n:stride], ys[:n:stride]


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _contour(fig: go.Figure, task: str, row: int, col: int) -> None:
    from workbench.methods.optim_tasks import FUNCTIONS, grid

    xs, ys, values = grid(task)
    fig.add_trace(go.Contour(x=xs.numpy(), y=ys.numpy(), z=np.log10(values.numpy() + 1e-3), colorscale="Greys",
                             reversescale=True, showscale=False, contours={"coloring": "lines"}, ncontours=25,
                             name="log10 f", hoverinfo="skip", showlegend=False), row=row, col=col)
    x_star = FUNCTIONS[task].minimum
    fig.add_trace(go.Scatter(x=[x_star[0]], y=[x_star[1]], mode="markers", name="minimum x*",
                             marker={"symbol": "star", "size": 14, "color": "gold", "line": {"color": "black", "width": 1}}),
                  row=row, col=col)
    start = FUNCTIONS[task].start
    fig.add_trace(go.Scatter(x=[start[0]], y=[start[1]], mode="markers", name="start", showlegend=False,
                             marker={"symbol": "circle-open", "size": 10, "color": "black"}), row=row, col=col)
    fig.update_xaxes(range=list(FUNCTIONS[task].xlim), row=row, col=col)
    fig.update_yaxes(range=list(FUNCTIONS[task].ylim), row=row, col=col)


def optimizers_plot(event) -> go.Figure:
    payload = getattr(event, "payload", None)
    if not isinstance(payload, dict) or "curves" not in payload:
        raise KeyError("optimizers_plot needs the payload of the 'optimizers' experiment (keys task, optimizers, "
                       f"curves, ...); got {sorted(payload) if isinstance(payload, dict) else type(payload).__name__}")
    task, names, curves = payload["task"], list(payload["optimizers"]), payload["curves"]
    eval_name = payload.get("eval_name")
    two_d = "trajectories" in payload
    eval_title = EVAL_TITLES.get(eval_name, eval_name or "")
    titles = (f"trajectories on {task}" if two_d else "training loss",
              f"f(x) and {eval_title}" if two_d else eval_title,
              "optimizer state memory", "per optimizer")
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, vertical_spacing=0.14, horizontal_spacing=0.1,
                        specs=[[{"type": "xy"}, {"type": "xy"}], [{"type": "xy"}, {"type": "table"}]])

    if two_d:
        _contour(fig, task, 1, 1)
    for name in names:
        c = curves[name]
        steps, loss = _pair(c["step"], c["loss"])
        line = {"color": color(name), "width": 1.8}
        if two_d:
            path = payload["trajectories"][name]
            path = np.asarray(list(path), dtype=float)  # (steps + 1, 2); list() snapshots a growing list
            fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name=name, legendgroup=name,
                                     line=line), row=1, col=1)
            fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name=name, legendgroup=name, line=line,
                                     showlegend=False), row=1, col=2)
        else:
            fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name=name, legendgroup=name, line=line),
                          row=1, col=1)
            eval_steps, evals = _pair(c["eval_step"], c["eval"])
            fig.add_trace(go.Scatter(x=eval_steps, y=evals, mode="lines+markers", name=name, legendgroup=name,
                                     line=line, marker={"size": 5}, showlegend=False), row=1, col=2)
    if two_d:
        fig.update_yaxes(type="log", title_text="f(x)", row=1, col=2)
        fig.update_xaxes(title_text="x", row=1, col=1)
        fig.update_yaxes(title_text="y", row=1, col=1)
    else:
        fig.update_yaxes(type="log", title_text="loss", row=1, col=1)
        fig.update_yaxes(title_text=eval_title, row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)

    memory = payload.get("state_bytes", {})
    n_params = payload.get("n_params") or 0
    per_param = [memory.get(n, 0) / n_params if n_params else float("nan") for n in names]
    fig.add_trace(go.Bar(x=names, y=[memory.get(n, 0) for n in names], marker_color=[color(n) for n in names],
                         text=[f"{b:.2f}" if n_params else _bytes(memory.get(n, 0)) for n, b in zip(names, per_param)],
                         textposition="outside", textangle=0, cliponaxis=False, name="state bytes",
                         showlegend=False), row=2, col=1)
    fig.update_yaxes(title_text="bytes (labels: per parameter)" if n_params else "bytes", row=2, col=1)

    def last(values: list) -> str:
        return f"{values[-1]:.4g}" if values else ""

    lrs, step_ms, iter_ms = payload.get("lrs", {}), payload.get("step_ms", {}), payload.get("iter_ms", {})
    columns = {
        "optimizer": names,
        "lr": [f"{lrs[n]:.3g}" if n in lrs else "" for n in names],
        "step ms": [f"{step_ms[n]:.3f}" if n in step_ms else "" for n in names],
        "iter ms": [f"{iter_ms[n]:.3f}" if n in iter_ms else "" for n in names],
        "state": [_bytes(memory.get(n, 0)) for n in names],
        eval_title or "eval": [last(curves[n]["eval"]) for n in names],
    }
    fig.add_trace(go.Table(columnwidth=[1.3, 0.8, 0.8, 0.8, 1.1, 1.1],
                           header={"values": list(columns), "fill_color": "#eeeeee", "align": "left",
                                   "font": {"size": 11}, "height": 22},
                           cells={"values": list(columns.values()), "align": "left", "font": {"size": 11},
                                  "height": 20}), row=2, col=2)

    step, total = getattr(event, "step", None), getattr(event, "total", None)
    title = f"optimizers on {task}" + (f" — step {step} / {total}" if step is not None else "")
    fig.update_layout(title={"text": title, "font": {"size": 14}}, template="plotly_white", uirevision="picture",
                      height=720, margin={"l": 50, "r": 10, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.08})
    return fig


def comparison_table(result) -> "Any":
    """A pandas DataFrame, one row per optimizer, of the result's ``<opt>.<metric>`` values."""
    import pandas as pd

    rows: dict[str, dict[str, float]] = {}
    for key, value in result.metrics.items():
        name, sep, metric = key.partition(".")
        if sep:
            rows.setdefault(name, {})[metric] = value
    return pd.DataFrame.from_dict(rows, orient="index")


def trajectories_figure(*results) -> go.Figure:
    """Side by side, one contour plot per 2-D result (quadratic, rosenbrock) with every optimizer's
    trajectory from the start to the end of its run."""
    fig = make_subplots(rows=1, cols=len(results), horizontal_spacing=0.08,
                        subplot_titles=[r.payload["task"] for r in results])
    for col, result in enumerate(results, start=1):
        payload = result.payload
        _contour(fig, payload["task"], 1, col)
        for name in payload["optimizers"]:
            path = np.asarray(payload["trajectories"][name], dtype=float)  # (steps + 1, 2)
            fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name=name, legendgroup=name,
                                     line={"color": color(name), "width": 1.8}, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="x", row=1, col=col)
    fig.update_yaxes(title_text="y", row=1, col=1)
    for trace in fig.data:  # one legend entry for the markers
        if trace.name in ("minimum x*",) and trace.xaxis != "x":
            trace.showlegend = False
    fig.update_layout(template="plotly_white", height=420, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.2}, title={"text": "optimizer trajectories", "font": {"size": 14}})
    return fig


def curves_figure(result, metric: str = "loss", log: bool = True, title: str | None = None) -> go.Figure:
    """One curve per optimizer of ``<opt>.<metric>`` from a finished result."""
    fig = go.Figure()
    for name in result.payload["optimizers"]:
        curve = result.curves.get(f"{name}.{metric}")
        if curve is None:
            continue
        steps, values = _pair(curve["step"], curve["value"])
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=name, line={"color": color(name), "width": 1.8}))
    fig.update_layout(template="plotly_white", height=360, title={"text": title or metric, "font": {"size": 14}},
                      xaxis_title="step", yaxis_title=metric, yaxis_type="log" if log else "linear",
                      margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def memory_figure(*results, labels: list[str] | None = None) -> go.Figure:
    """Optimizer state per parameter (bytes / parameter) of each optimizer, one group of bars per result."""
    fig = go.Figure()
    labels = labels or [r.payload["task"] for r in results]
    for result, label in zip(results, labels):
        names = result.payload["optimizers"]
        per_param = [result.metrics[f"{n}.state_bytes"] / result.metrics["n_params"] for n in names]
        fig.add_trace(go.Bar(x=names, y=per_param, name=label, text=[f"{b:.2f}" for b in per_param],
                             textposition="outside"))
    fig.update_layout(template="plotly_white", height=360, barmode="group", yaxis_title="state bytes / parameter",
                      title={"text": "optimizer state memory (fp32 AdamW = 8 bytes / parameter)", "font": {"size": 14}},
                      margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def step_memory_figure(memory: dict[str, dict]) -> go.Figure:
    """The peak memory of one training step per optimizer (``workbench.methods.side_by_side.step_memory``), stacked:
    the model, the optimizer state, and the peak allocated during the step (activations, gradients, temporaries)."""
    names = list(memory)
    fig = go.Figure()
    for key, label, shade in (("model_bytes", "model", "#9ecae1"), ("state_bytes", "optimizer state", "#3182bd"),
                              ("step_bytes", "allocated during the step", "#fd8d3c")):
        values = [memory[n][key] / 1024 for n in names]
        fig.add_trace(go.Bar(x=names, y=values, name=label, marker_color=shade))
    totals = [memory[n]["peak_bytes"] / 1024 for n in names]
    fig.add_trace(go.Scatter(x=names, y=totals, mode="text", text=[f"{t:.0f} KiB" for t in totals],
                             textposition="top center", showlegend=False, hoverinfo="skip"))
    fig.update_layout(template="plotly_white", height=380, barmode="stack", yaxis_title="KiB",
                      title={"text": "peak memory of one training step (torch.profiler)", "font": {"size": 14}},
                      margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def wallclock_figure(*results, window: int = 20) -> go.Figure:
    """Training loss (the mean of the last ``window`` steps) against wall-clock seconds (step × the optimizer's mean
    iteration time), every optimizer of every result: which one is ahead after the same time, not the same steps."""
    fig = go.Figure()
    for result in results:
        payload = result.payload
        for name in payload["optimizers"]:
            curve = payload["curves"][name]
            n = min(len(curve["step"]), len(curve["loss"]))
            smooth = np.convolve(curve["loss"][:n], np.ones(window) / window, mode="valid").tolist()
            steps, losses = _pair(curve["step"][window - 1:n], smooth)
            seconds = [s * payload["iter_ms"][name] / 1000 for s in steps]
            fig.add_trace(go.Scatter(x=seconds, y=losses, mode="lines", name=name,
                                     line={"color": color(name), "width": 1.5}))
    fig.update_layout(template="plotly_white", height=360, xaxis_title="seconds of training", yaxis_title="loss",
                      yaxis_type="log", title={"text": f"training loss (mean of {window} steps) against wall-clock time",
                                               "font": {"size": 14}},
                      margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig

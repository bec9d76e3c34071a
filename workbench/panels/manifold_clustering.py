"""The live picture of manifold clustering (MLC): what the features and the membership look like.

``manifold_clustering_plot(event)`` reads ``event.payload`` (a dict from the ``manifold_clustering``
experiment; ``result.payload`` at the end of a run) and returns one Plotly figure of six panels:

- the objective's terms over the steps: R and the invariance term (TCR), R, R_c and ΔR = R − R_c (MLC);
- Γ as a heatmap, rows and columns ordered by predicted cluster (a good Γ is block diagonal);
- |cosine| similarity |ZZᵀ| of the features in the same order (blocks = clusters, ≈ 0 across = orthogonal);
- a 2-D embedding of Z (its first two principal axes) coloured by prediction;
- per-cluster singular values of Z (normalised by the largest; few large ones = a low-dimensional subspace);
- the accuracy table: MLC and TCR (spectral clustering on Γ) against the baselines on raw X, Z_TCR, Z_MLC.

``embedding_3d(payload)`` draws the first three principal axes as a 3-D scatter. Everything drawn comes from the
payload's ``view`` (:class:`workbench.methods.mlc.ClusterView`: predicted labels, their order, |ZZᵀ|, principal
coordinates, singular values, accuracy), which computes each on first use: a figure that is not drawn costs
nothing.

Payload keys: ``view``, ``phase``, ``history`` ({metric name: {"step": [...], "value": [...]}}, lists that may
still grow) and ``table`` ({row: {column: accuracy}}).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
TERM_COLORS = {"R": "#1f77b4", "R_c": "#d62728", "delta_R": "#2ca02c", "invariance": "#7f7f7f"}
PHASE_DASH = {"tcr": "dot", "mlc": "solid"}
COLUMNS = ("raw", "tcr", "mlc")


def color(label: int) -> str:
    return PALETTE[int(label) % len(PALETTE)]


def _table(table: dict[str, dict[str, float]]) -> go.Table:
    rows = list(table)
    cells = [[f"{table[r][c]:.3f}" if c in table[r] else "–" for r in rows] for c in COLUMNS]
    return go.Table(header={"values": ["accuracy", "raw X", "Z_TCR", "Z_MLC"], "align": "left"},
                    cells={"values": [rows, *cells], "align": "left"})


def _term_traces(history: dict[str, dict[str, list]]) -> list[go.Scatter]:
    """One line per training curve ``<phase>.train_<term>``: the term's colour, the phase's dash."""
    traces = []
    for name, curve in list(history.items()):  # list: the training thread may add a curve meanwhile
        phase, _, term = name.partition(".train_")
        points = list(zip(curve["step"], curve["value"]))  # zip: complete points of lists that may still grow
        if points and term in TERM_COLORS:
            xs, ys = zip(*points)
            traces.append(go.Scatter(x=xs, y=ys, mode="lines", name=f"{term} ({phase.upper()})",
                                     line={"color": TERM_COLORS[term], "dash": PHASE_DASH.get(phase, "solid")}))
    return traces


def manifold_clustering_plot(event) -> go.Figure:
    payload = event.payload if isinstance(event.payload, dict) else {}
    if "view" not in payload:
        raise KeyError(f"manifold_clustering_plot needs a view in the payload; got keys {sorted(payload)}")
    view = payload["view"]
    order = view.order
    fig = make_subplots(rows=2, cols=3, horizontal_spacing=0.07, vertical_spacing=0.14,
                        specs=[[{}, {}, {}], [{}, {}, {"type": "table"}]],
                        subplot_titles=("objective terms", "Γ, ordered by predicted cluster",
                                        "|cos| similarity of Z", "Z on its first two principal axes",
                                        "per-cluster singular values of Z", "accuracy against baselines"))

    for trace in _term_traces(payload.get("history") or {}):
        fig.add_trace(trace, row=1, col=1)

    fig.add_trace(go.Heatmap(z=view.Gamma[np.ix_(order, order)], colorscale="Viridis", showscale=False, name="Γ"),
                  row=1, col=2)
    fig.add_trace(go.Heatmap(z=view.cosine[np.ix_(order, order)], colorscale="Greys", reversescale=True, zmin=0,
                             zmax=1, showscale=False, name="|cos|"), row=1, col=3)
    for axis in ("xaxis2", "xaxis3"):
        fig.layout[axis].update(showticklabels=False)
    for axis in ("yaxis2", "yaxis3"):
        fig.layout[axis].update(showticklabels=False, autorange="reversed")

    coords = view.coordinates(2)
    for c, s in view.spectra.items():
        mask = view.labels == c
        fig.add_trace(go.Scatter(x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=f"cluster {c}",
                                 marker={"size": 4, "color": color(c)}, legendgroup=f"c{c}", showlegend=False),
                      row=2, col=1)
        fig.add_trace(go.Scatter(x=np.arange(1, len(s) + 1), y=s, mode="lines+markers", name=f"cluster {c}",
                                 marker={"size": 3, "color": color(c)}, line={"color": color(c)},
                                 legendgroup=f"c{c}", showlegend=False), row=2, col=2)
    fig.update_yaxes(type="log", row=2, col=2)
    fig.update_xaxes(title_text="index i", row=2, col=2)
    fig.update_yaxes(title_text="σ_i / σ_1", row=2, col=2)
    fig.update_xaxes(title_text="step", row=1, col=1)

    table = payload.get("table") or {}
    if view.accuracy is not None:  # the live accuracy of the plotted points, beside the final table
        table = {"MLC now (plotted points)": {"mlc": view.accuracy}, **table}
    fig.add_trace(_table(table), row=2, col=3)

    phase = payload.get("phase", "")
    fig.update_layout(title={"text": f"MLC — {phase} — step {event.step} / {event.total}", "font": {"size": 14}},
                      template="plotly_white", height=720, uirevision="picture",
                      margin={"l": 40, "r": 10, "t": 60, "b": 40}, legend={"orientation": "h", "y": 1.08, "x": 0})
    return fig


def embedding_3d(payload: dict[str, Any], by: str = "prediction") -> go.Figure:
    """Z on its first three principal axes, coloured by predicted cluster (``by="prediction"``) or by the
    ground truth (``by="truth"``)."""
    view = payload["view"]
    labels = view.labels if by == "prediction" else view.y
    coords = view.coordinates(3)
    fig = go.Figure()
    for c in np.unique(labels):
        mask = labels == c
        fig.add_trace(go.Scatter3d(x=coords[mask, 0], y=coords[mask, 1], z=coords[mask, 2], mode="markers",
                                   name=f"{'cluster' if by == 'prediction' else 'class'} {c}",
                                   marker={"size": 2.5, "color": color(c)}))
    fig.update_layout(title="features Z, first three principal axes", height=480, template="plotly_white",
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return fig

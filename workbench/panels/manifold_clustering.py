"""The live picture of manifold clustering (MLC): what the features and the membership look like.

``manifold_clustering_plot(event)`` reads ``event.payload`` (a dict from the ``manifold_clustering``
experiment; ``result.payload`` at the end of a run) and returns one Plotly figure of six panels:

- the objective's terms over the steps: R, R_c and ΔR = R − R_c (MLC phase), R and the invariance term (TCR);
- Γ as a heatmap, rows and columns ordered by predicted cluster (a good Γ is block diagonal);
- |cosine| similarity |ZZᵀ| of the features in the same order (blocks = clusters, ≈ 0 across = orthogonal);
- a 2-D embedding of Z (its first two principal axes) coloured by prediction;
- per-cluster singular values of Z (normalised by the largest; few large ones = a low-dimensional subspace);
- the accuracy table: MLC and TCR (spectral clustering on Γ) against the baselines on raw X, Z_TCR, Z_MLC.

Predicted labels are computed here (spectral clustering on the plotted Γ), so the training loop pays
nothing for them. ``embedding_3d(payload)`` draws the first three principal axes as a 3-D scatter.

Payload keys: ``Z`` (n, d), ``Gamma`` (n, n), ``y`` (n,) ground truth, ``n_clusters``, ``phase``,
``history`` ({"step": [...], term: [...]}, lists that may still grow), ``table`` ({row: {column: acc}});
optional ``labels`` (n,) to skip the spectral clustering.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
TERM_COLORS = {"R": "#1f77b4", "R_c": "#d62728", "delta_R": "#2ca02c", "invariance": "#7f7f7f"}
COLUMNS = ("raw", "tcr", "mlc")


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=float)


def color(label: int) -> str:
    return PALETTE[int(label) % len(PALETTE)]


def predicted_labels(payload: dict[str, Any]) -> np.ndarray:
    """Labels of the plotted points: ``payload["labels"]`` or spectral clustering on the plotted Γ."""
    if payload.get("labels") is not None:
        return np.asarray(payload["labels"])
    from workbench.methods.mlc import spectral_labels

    return spectral_labels(_numpy(payload["Gamma"]), int(payload["n_clusters"]))


def principal_coordinates(Z: np.ndarray, k: int = 2) -> np.ndarray:
    """Z (n, d) on its first k principal axes, (n, k)."""
    centred = Z - Z.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:k].T


def _order(labels: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """Sort by predicted cluster, then by ground truth inside a cluster (stable)."""
    return np.lexsort((labels,) if y is None else (y, labels))


def _table(table: dict[str, dict[str, float]]) -> go.Table:
    rows = list(table)
    cells = [[f"{table[r][c]:.3f}" if c in table[r] else "–" for r in rows] for c in COLUMNS]
    return go.Table(header={"values": ["accuracy", "raw X", "Z_TCR", "Z_MLC"], "align": "left"},
                    cells={"values": [rows, *cells], "align": "left"})


def manifold_clustering_plot(event) -> go.Figure:
    payload = event.payload if isinstance(event.payload, dict) else {}
    if "Z" not in payload or "Gamma" not in payload:
        raise KeyError(f"manifold_clustering_plot needs Z and Gamma in the payload; got keys {sorted(payload)}")
    Z, Gamma = _numpy(payload["Z"]), _numpy(payload["Gamma"])
    y = np.asarray(payload["y"]) if payload.get("y") is not None else None
    labels = predicted_labels(payload)
    order = _order(labels, y)
    fig = make_subplots(rows=2, cols=3, horizontal_spacing=0.07, vertical_spacing=0.14,
                        specs=[[{}, {}, {}], [{}, {}, {"type": "table"}]],
                        subplot_titles=("objective terms", "Γ, ordered by predicted cluster",
                                        "|cos| similarity of Z", "Z on its first two principal axes",
                                        "per-cluster singular values of Z", "accuracy against baselines"))

    history = payload.get("history") or {}
    steps = list(history.get("step", []))
    for term in ("R", "R_c", "delta_R", "invariance"):
        values = list(history.get(term, []))
        points = [(s, v) for s, v in zip(steps, values) if v is not None]  # R_c: MLC phase only
        if points:
            xs, ys = zip(*points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=term, line={"color": TERM_COLORS[term]}),
                          row=1, col=1)

    fig.add_trace(go.Heatmap(z=Gamma[np.ix_(order, order)], colorscale="Viridis", showscale=False, name="Γ"),
                  row=1, col=2)
    cosine = np.abs(Z @ Z.T)
    fig.add_trace(go.Heatmap(z=cosine[np.ix_(order, order)], colorscale="Greys", reversescale=True, zmin=0, zmax=1,
                             showscale=False, name="|cos|"), row=1, col=3)
    for axis in ("xaxis2", "xaxis3"):
        fig.layout[axis].update(showticklabels=False)
    for axis in ("yaxis2", "yaxis3"):
        fig.layout[axis].update(showticklabels=False, autorange="reversed")

    coords = principal_coordinates(Z, 2)
    for c in np.unique(labels):
        mask = labels == c
        fig.add_trace(go.Scatter(x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=f"cluster {c}",
                                 marker={"size": 4, "color": color(c)}, legendgroup=f"c{c}", showlegend=False),
                      row=2, col=1)
        s = np.linalg.svd(Z[mask], compute_uv=False)
        fig.add_trace(go.Scatter(x=np.arange(1, len(s) + 1), y=s / s[0], mode="lines+markers", name=f"cluster {c}",
                                 marker={"size": 3, "color": color(c)}, line={"color": color(c)},
                                 legendgroup=f"c{c}", showlegend=False), row=2, col=2)
    fig.update_yaxes(type="log", row=2, col=2)
    fig.update_xaxes(title_text="index i", row=2, col=2)
    fig.update_yaxes(title_text="σ_i / σ_1", row=2, col=2)
    fig.update_xaxes(title_text="step", row=1, col=1)

    table = payload.get("table") or {}
    if y is not None:  # the live accuracy of the plotted points, beside the final table
        table = {"MLC now (plotted points)": {"mlc": _accuracy(y, labels)}, **table}
    fig.add_trace(_table(table), row=2, col=3)

    phase = payload.get("phase", "")
    fig.update_layout(title={"text": f"MLC — {phase} — step {event.step} / {event.total}", "font": {"size": 14}},
                      template="plotly_white", height=720, uirevision="picture",
                      margin={"l": 40, "r": 10, "t": 60, "b": 40}, legend={"orientation": "h", "y": 1.08, "x": 0})
    return fig


def _accuracy(y, labels) -> float:
    from workbench.methods.mlc import clustering_accuracy

    return clustering_accuracy(y, labels)


def embedding_3d(payload: dict[str, Any], by: str = "prediction") -> go.Figure:
    """Z on its first three principal axes, coloured by predicted cluster (``by="prediction"``) or by the
    ground truth (``by="truth"``)."""
    Z = _numpy(payload["Z"])
    labels = predicted_labels(payload) if by == "prediction" else np.asarray(payload["y"])
    coords = principal_coordinates(Z, 3)
    fig = go.Figure()
    for c in np.unique(labels):
        mask = labels == c
        fig.add_trace(go.Scatter3d(x=coords[mask, 0], y=coords[mask, 1], z=coords[mask, 2], mode="markers",
                                   name=f"{'cluster' if by == 'prediction' else 'class'} {c}",
                                   marker={"size": 2.5, "color": color(c)}))
    fig.update_layout(title="features Z, first three principal axes", height=480, template="plotly_white",
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return fig

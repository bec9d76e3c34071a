"""The live picture of SPD batch normalization: curves per variant, spectra before and after BN, and 2×2 SPD
matrices drawn as ellipses moving along a Bures–Wasserstein geodesic and being centred.

``spd_normalization_plot(event)`` reads ``event.payload`` (from the ``spd_normalization`` experiment: ``curves``
{variant: {epoch, test_accuracy, ...}}, ``spectra`` {before, after: log10 eigenvalues per probe matrix,
condition_before, condition_after}, ``bn`` the chosen variant, ``variant`` the one training now) and returns a
Plotly figure with three panels:

1. test accuracy per epoch, one line per variant trained so far, and its validation accuracy dotted when the run
   holds out a validation split;
2. the log10 eigenvalues of a probe batch at the BN's input and output (eval mode), with the median condition
   numbers in the legend: AIM centring keeps the spread of the spectrum, BW/GBW centring compresses it;
3. for teaching (fixed 2×2 matrices, independent of training): an ellipse {Σ^½ u : ‖u‖ = 1} moving from A to B along
   the BW geodesic γ(t), and a batch of ellipses moving along their BW geodesics to their centred versions
   Exp_I(Γ_{μ→I} Log_μ X_i); t = the run's progress. The centred batch has BW mean I (the dashed unit circle).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {"none": "#7f7f7f", "aim": "#1f77b4", "lem": "#2ca02c", "bw": "#ff7f0e", "gbw": "#d62728"}
N_ELLIPSE_POINTS = 60


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


@functools.lru_cache(maxsize=1)
def teaching_matrices():
    """(A, B, batch X (5, 2, 2), centred Z (5, 2, 2)) as float64 torch tensors; Z_i = Exp_I(Γ_{μ→I} Log_μ X_i)."""
    import torch

    from workbench.methods.spd import bw_exp_identity, bw_log, bw_mean, bw_transport_to_identity

    def spd(l1, l2, angle):
        R = _rotation(angle)
        return torch.tensor(R @ np.diag([l1, l2]) @ R.T)

    A, B = spd(2.5, 0.25, 0.5), spd(0.4, 1.6, -0.4)
    X = torch.stack([spd(3.0, 0.6, 0.9), spd(2.0, 0.3, 0.5), spd(1.6, 0.9, 1.4), spd(3.4, 0.4, 0.7),
                     spd(2.2, 1.1, 0.2)])
    mu = bw_mean(X, n_iter=100)
    Z = bw_exp_identity(bw_transport_to_identity(mu, bw_log(mu, X)))
    return A, B, X, Z


def ellipse(S, centre=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Boundary of {S^½ u + c : ‖u‖ = 1} for a 2×2 SPD S."""
    S = np.asarray(S, dtype=float)
    lam, U = np.linalg.eigh(0.5 * (S + S.T))
    root = U @ np.diag(np.sqrt(np.clip(lam, 0, None))) @ U.T
    t = np.linspace(0, 2 * np.pi, N_ELLIPSE_POINTS)
    points = root @ np.stack([np.cos(t), np.sin(t)])  # (2, P)
    return points[0] + centre[0], points[1] + centre[1]


def _ellipse_trace(S, centre, color, width=1.5, dash=None, opacity=1.0, name=None, legend=False):
    x, y = ellipse(S, centre)
    return go.Scatter(x=x, y=y, mode="lines", line={"color": color, "width": width, "dash": dash}, opacity=opacity,
                      name=name, showlegend=legend, hoverinfo="skip")


def geodesic_picture(t: float) -> list[go.Scatter]:
    """Ellipses for panel 3 at progress t ∈ [0, 1]."""
    from workbench.methods.spd import bw_geodesic

    A, B, X, Z = teaching_matrices()
    traces = []
    for s in np.linspace(0, 1, 5):  # the geodesic A → B, faint, spread along x
        traces.append(_ellipse_trace(bw_geodesic(A, B, float(s)).numpy(), (4 * s - 2, 2.2), "#9467bd", 1, opacity=0.3))
    traces.append(_ellipse_trace(bw_geodesic(A, B, t).numpy(), (4 * t - 2, 2.2), "#9467bd", 3,
                                 name="γ(t) from A to B", legend=True))
    moving = bw_geodesic(X, Z, t).numpy()  # (5, 2, 2): every batch member on its way to its centred version
    for i in range(len(X)):
        traces.append(_ellipse_trace(X[i].numpy(), (0, -2.0), "#7f7f7f", 1, opacity=0.25))
        traces.append(_ellipse_trace(moving[i], (0, -2.0), "#d62728", 2, name="batch being centred", legend=i == 0))
    traces.append(_ellipse_trace(np.eye(2), (0, -2.0), "black", 1.5, dash="dash", name="I (the centred mean)",
                                 legend=True))
    return traces


def spd_normalization_plot(event) -> go.Figure:
    payload = event.payload if isinstance(event.payload, dict) else {}
    curves = payload.get("curves") or {}
    spectra = payload.get("spectra")
    bn = payload.get("bn", payload.get("variant", ""))  # the chosen variant, whose spectra are drawn
    training = payload.get("variant", bn)
    total = max(1, int(event.total or 1))
    t = min(1.0, max(0.0, event.step / total))
    fig = make_subplots(rows=1, cols=3, column_widths=[0.34, 0.33, 0.33], horizontal_spacing=0.07,
                        subplot_titles=("test (and dotted: validation) accuracy", f"log10 eigenvalues before / after BN ({bn})",
                                        "BW geodesic and centring (2×2 ellipses)"))
    for name, h in curves.items():
        for key, dash, label in (("test_accuracy", None, name), ("validation_accuracy", "dot", f"{name} validation")):
            if h.get("epoch") and h.get(key):
                fig.add_trace(go.Scatter(x=h["epoch"], y=h[key], mode="lines+markers", name=label,
                                         line={"color": COLORS.get(name, "black"), "dash": dash},
                                         marker={"size": 4}), row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    if spectra:
        for key, x0, color in (("before", 0, "#7f7f7f"), ("after", 1, COLORS.get(bn, "#d62728"))):
            values = np.asarray(spectra[key], dtype=float)  # (B, n)
            kappa = float(np.median(spectra[f"condition_{key}"]))
            fig.add_trace(go.Box(y=values.ravel(), x=np.full(values.size, f"{key} BN"),
                                 name=f"{key}: median κ {kappa:.3g}",
                                 marker_color=color, boxpoints="all", jitter=0.4, pointpos=0, marker={"size": 2}),
                          row=1, col=2)
    fig.update_yaxes(title_text="log10 λ", row=1, col=2)
    for trace in geodesic_picture(t):
        fig.add_trace(trace, row=1, col=3)
    fig.update_xaxes(range=[-4.2, 4.2], showticklabels=False, row=1, col=3)
    fig.update_yaxes(range=[-4.6, 4.6], showticklabels=False, scaleanchor="x3", row=1, col=3)
    title = f"SPD batch normalization: {bn} (training {training}) — step {event.step} / {event.total}"
    fig.update_layout(title={"text": title, "font": {"size": 14}}, template="plotly_white", uirevision="picture",
                      height=420, margin={"l": 50, "r": 10, "t": 60, "b": 40},
                      legend={"orientation": "h", "y": -0.15})
    return fig

"""The live picture of SPD batch normalization: curves per variant, spectra before and after BN, and 2×2 SPD
matrices drawn as ellipses moving along a Bures–Wasserstein geodesic and being centred.

``spd_normalization_plot(event)`` reads ``event.payload`` (from the ``spd_normalization`` experiment: ``curves``
{variant: {epoch, test_accuracy, ...}}, ``spectra`` {before, after: log10 eigenvalues per probe matrix,
condition_before, condition_after: their median κ}, ``bn`` the chosen variant, ``variant`` the one training now) and
returns a Plotly figure with three panels:

1. test accuracy per epoch, one line per variant trained so far, and its validation accuracy dotted when the run
   holds out a validation split;
2. the log10 eigenvalues of a probe batch at the BN's input and output (eval mode), with the median condition
   numbers in the legend: AIM centring keeps the spread of the spectrum, BW/GBW centring compresses it;
3. for teaching (fixed 2×2 matrices, independent of training; the ellipses from
   :func:`workbench.methods.spd.geodesic_ellipses`): an ellipse moving from A to B along the BW geodesic γ(t), and a
   batch of ellipses moving along their BW geodesics to their centred versions; t = the run's progress. The centred
   batch has BW mean I (the dashed unit circle).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.methods.spd import geodesic_ellipses

COLORS = {"none": "#7f7f7f", "aim": "#1f77b4", "lem": "#2ca02c", "bw": "#ff7f0e", "gbw": "#d62728"}
# how each role of the geodesic picture is drawn: colour, width, dash, opacity, legend label (None: no legend entry)
ELLIPSE_STYLES = {
    "path": ("#9467bd", 1, None, 0.3, None),
    "now": ("#9467bd", 3, None, 1.0, "γ(t) from A to B"),
    "batch": ("#7f7f7f", 1, None, 0.25, None),
    "centring": ("#d62728", 2, None, 1.0, "batch being centred"),
    "identity": ("black", 1.5, "dash", 1.0, "I (the centred mean)"),
}


def geodesic_picture(t: float) -> list[go.Scatter]:
    """Ellipses for panel 3 at progress t ∈ [0, 1], one legend entry per role."""
    traces = []
    for role, ellipses in geodesic_ellipses(t).items():
        color, width, dash, opacity, label = ELLIPSE_STYLES[role]
        for i, (x, y) in enumerate(ellipses):
            traces.append(go.Scatter(x=x, y=y, mode="lines", line={"color": color, "width": width, "dash": dash},
                                     opacity=opacity, name=label, showlegend=label is not None and i == 0,
                                     hoverinfo="skip"))
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
        for key, color in (("before", "#7f7f7f"), ("after", COLORS.get(bn, "#d62728"))):
            values = np.asarray(spectra[key], dtype=float)  # (B, n)
            fig.add_trace(go.Box(y=values.ravel(), x=np.full(values.size, f"{key} BN"),
                                 name=f"{key}: median κ {spectra[f'condition_{key}']:.3g}",
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

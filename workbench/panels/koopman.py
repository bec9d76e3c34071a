"""The live picture of the Koopman lab: is the latent space linear, and has it collapsed?

``koopman_plot(event)`` reads ``event.payload`` (a dict from the ``koopman`` experiment) and returns one
Plotly figure with four panels:

- top left: the loss parts (reconstruction, prediction, InfoNCE, consistency; log scale) and the effective
  dimension d_eff = exp S of the batch latents (right axis);
- top right: predicted vs true trajectories of two test trajectories (the first observed channels over
  100 steps; the model's rollout from the first snapshot, dashed, and DMD's, dotted);
- bottom left: the eigenvalues of K against the unit circle (DMD's beside them; on the linear system the true
  one-step eigenvalues e^{μ dt});
- bottom right: the latent trajectories z_t = φ(x_t) of the test trajectories, in 3-D on their first three
  principal axes (2-D latents are drawn in the plane z = 0). For DMD the latent is the state, for EDMD the
  dictionary's features.

Payload keys: ``model`` (a ``KoopmanAutoencoder``, ``DMD`` or ``EDMD``), ``test`` ((N, T + 1, D) test
observations), optional ``history`` ({"step": [...], "rec": [...], ..., "d_eff": [...]}, lists that another
thread may still be growing), ``baselines`` ({"dmd": DMD, ...}), ``dt``, ``system``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.methods.koopman import eigenvalues, latents, linear_eigenvalues, rollout
from workbench.methods.projection import principal_coordinates

N_TRAJECTORIES = 2
PLOT_STEPS = 100
LOSS_PARTS = {"rec": "#1f77b4", "pred": "#d62728", "nce": "#2ca02c", "consistency": "#9467bd"}
MODEL_COLOR, DMD_COLOR, TRUE_COLOR = "#d62728", "#7f7f7f", "#000000"


def _history(history: dict[str, list]) -> dict[str, list]:
    """Equal-length snapshots of lists another thread may be appending to."""
    lists = {key: list(values) for key, values in history.items()}
    n = min((len(v) for v in lists.values()), default=0)
    return {key: values[:n] for key, values in lists.items()}


def koopman_plot(event) -> go.Figure:
    payload = event.payload if isinstance(event.payload, dict) else {}
    model, test = payload.get("model"), payload.get("test")
    if model is None or test is None:
        raise KeyError(f"koopman_plot needs 'model' and 'test' in the payload; got keys {sorted(payload)}")
    baselines = payload.get("baselines") or {}
    dmd = baselines.get("dmd")
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.1, vertical_spacing=0.14,
                        specs=[[{"secondary_y": True}, {}], [{}, {"type": "scene"}]],
                        subplot_titles=("losses and effective dimension", "predicted vs true (test)",
                                        "eigenvalues of K", "latent trajectories (first 3 principal axes)"))

    # losses and d_eff
    history = _history(payload.get("history") or {})
    steps = history.get("step", [])
    for key, color in LOSS_PARTS.items():
        values = history.get(key)
        if values and any(v > 0 for v in values):
            fig.add_trace(go.Scatter(x=steps, y=[v if v > 0 else None for v in values], mode="lines", name=key,
                                     line={"color": color}), row=1, col=1)
    if history.get("d_eff"):
        fig.add_trace(go.Scatter(x=steps, y=history["d_eff"], mode="lines", name="d_eff = exp S",
                                 line={"color": "#ff7f0e", "width": 3}), row=1, col=1, secondary_y=True)
    if not steps:
        fig.add_annotation(text="no training curve (DMD / EDMD)", showarrow=False, xref="x domain", yref="y domain",
                           x=0.5, y=0.5, row=1, col=1)
    fig.update_yaxes(type="log", title_text="loss", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="d_eff", row=1, col=1, secondary_y=True)
    fig.update_xaxes(title_text="step", row=1, col=1)

    # predicted vs true
    test = test[:N_TRAJECTORIES]
    n = min(PLOT_STEPS, test.shape[1] - 1)
    truth = test[:, :n + 1].double().numpy()  # (B, n + 1, D)
    predicted = rollout(model, test[:, 0], n).numpy()
    reference = rollout(dmd, test[:, 0], n).numpy() if dmd is not None and dmd is not model else None
    time = np.arange(n + 1) * float(payload.get("dt", 1.0))
    channels = min(2, truth.shape[-1])
    dashes = ("solid", "dash", "dot")
    for b in range(truth.shape[0]):
        for c in range(channels):
            first = b == 0 and c == 0
            label = f"traj {b}, x{c}"
            fig.add_trace(go.Scatter(x=time, y=truth[b, :, c], mode="lines", name="true", legendgroup="true",
                                     showlegend=first, line={"color": TRUE_COLOR, "width": 1.5}, hovertext=label),
                          row=1, col=2)
            fig.add_trace(go.Scatter(x=time, y=predicted[b, :, c], mode="lines", name="model", legendgroup="model",
                                     showlegend=first, line={"color": MODEL_COLOR, "dash": dashes[1]},
                                     hovertext=label), row=1, col=2)
            if reference is not None:
                fig.add_trace(go.Scatter(x=time, y=reference[b, :, c], mode="lines", name="DMD", legendgroup="dmd",
                                         showlegend=first, line={"color": DMD_COLOR, "dash": dashes[2]},
                                         hovertext=label), row=1, col=2)
    fig.update_xaxes(title_text="time", row=1, col=2)
    fig.update_yaxes(title_text="observation", row=1, col=2)

    # eigenvalues against the unit circle
    angle = np.linspace(0, 2 * np.pi, 200)
    fig.add_trace(go.Scatter(x=np.cos(angle), y=np.sin(angle), mode="lines", name="unit circle", showlegend=False,
                             line={"color": "#bbbbbb", "width": 1}, hoverinfo="skip"), row=2, col=1)
    lam = eigenvalues(model).numpy()
    fig.add_trace(go.Scatter(x=lam.real, y=lam.imag, mode="markers", name="λ(K)",
                             marker={"color": MODEL_COLOR, "size": 8}), row=2, col=1)
    if dmd is not None and dmd is not model:
        lam = eigenvalues(dmd).numpy()
        fig.add_trace(go.Scatter(x=lam.real, y=lam.imag, mode="markers", name="λ(DMD)",
                                 marker={"color": DMD_COLOR, "size": 9, "symbol": "x"}), row=2, col=1)
    if payload.get("system") == "linear" and payload.get("observation", "state") == "state":
        lam = linear_eigenvalues(float(payload.get("dt", 0.1))).numpy()
        fig.add_trace(go.Scatter(x=lam.real, y=lam.imag, mode="markers", name="true e^{μ dt}",
                                 marker={"color": "gold", "size": 13, "symbol": "star-open",
                                         "line": {"width": 2}}), row=2, col=1)
    fig.update_xaxes(title_text="Re λ", row=2, col=1)
    fig.update_yaxes(title_text="Im λ", scaleanchor="x3", row=2, col=1)

    # latent trajectories
    Z = latents(model, payload["test"]).numpy()  # (N, T + 1, d)
    projected = principal_coordinates(Z.reshape(-1, Z.shape[-1]), 3)  # (N·(T + 1), ≤ 3)
    projected = np.pad(projected, ((0, 0), (0, 3 - projected.shape[1]))).reshape(*Z.shape[:2], 3)  # 2-D: z = 0
    for b in range(projected.shape[0]):
        fig.add_trace(go.Scatter3d(x=projected[b, :, 0], y=projected[b, :, 1], z=projected[b, :, 2], mode="lines",
                                   name="latent", legendgroup="latent", showlegend=b == 0,
                                   line={"width": 4, "color": np.arange(projected.shape[1]), "colorscale": "Viridis"}),
                      row=2, col=2)
    fig.update_scenes(xaxis_title="PC 1", yaxis_title="PC 2", zaxis_title="PC 3", aspectmode="cube")

    title = f"Koopman — {payload.get('system', '')}, step {event.step} / {event.total}"
    fig.update_layout(title={"text": title, "font": {"size": 14}}, template="plotly_white", uirevision="picture",
                      height=720, margin={"l": 50, "r": 10, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.08})
    return fig


def figure_from_result(result: Any) -> go.Figure:
    """The same picture for a finished run (``workbench.Result`` of the koopman experiment)."""
    from workbench.experiment import Event

    data = result.data
    payload = {"model": result.model, "test": data.test[:4], "baselines": result.baselines, "dt": data.dt,
               "system": data.system, "observation": "lifted" if data.lift is not None else "state",
               "history": {"step": result.curves.get("rec", {}).get("step", []),
                           **{k: result.curves[k]["value"] for k in (*LOSS_PARTS, "d_eff") if k in result.curves}}}
    steps = int(result.metrics.get("steps_done", 1))
    return koopman_plot(Event(steps, steps, dict(result.metrics), payload))

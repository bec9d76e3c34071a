"""The live picture of LightSB: where the learned Schrödinger bridge sends the source samples.

``lightsb_plot(event)`` reads ``event.payload`` (a dict from the LightSB experiment) and returns a
Plotly figure:

- 2-D data: source samples x0, target samples x1, mapped samples x̂1 ~ π(x1 | x0) (``model.sample``)
  and a few SDE trajectories of the bridge from x0[:8] (``model.sample_trajectory``);
- 1-D data: histograms of source, target and mapped samples;
- higher dimensions: target and mapped samples projected on the first two principal axes of the
  target (PCA of x1), so the two clouds can be compared by eye.

Payload keys (as the LightSB experiment sends them): ``model`` (a ``workbench.methods.lightsb.LightSB``),
source samples ``x0`` and target samples ``x1``.
"""
from __future__ import annotations

import inspect

import numpy as np
import plotly.graph_objects as go

from workbench.methods.projection import principal_axes

MAX_POINTS = 512  # drawn per cloud
N_TRAJECTORIES = 8
N_PATH_STEPS = 50  # Euler–Maruyama steps of each drawn SDE path
COLORS = {"source": "#7f7f7f", "target": "#1f77b4", "mapped": "#d62728", "path": "rgba(44,160,44,0.6)"}


def _numpy(x) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").float().numpy()
    return np.asarray(x, dtype=float)


def _call(method, *args, seed: int = 0):
    """Call a sampler with its own generator when it takes one, so drawing the picture does not
    consume the global RNG the training thread is using."""
    import torch

    try:
        takes_generator = "generator" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes_generator = False
    with torch.no_grad():
        if takes_generator:
            device = args[0].device if hasattr(args[0], "device") else "cpu"
            return method(*args, generator=torch.Generator(device=device).manual_seed(seed))
        return method(*args)


def _scatter(points: np.ndarray, name: str, color: str, size: int = 4, opacity: float = 0.6) -> go.Scatter:
    return go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers", name=name,
                      marker={"size": size, "color": color, "opacity": opacity})


def lightsb_plot(event) -> go.Figure:
    payload = event.payload if isinstance(event.payload, dict) else {}
    model = payload.get("model")
    x0, x1 = payload.get("x0"), payload.get("x1")
    if x0 is None or x1 is None:
        raise KeyError(f"lightsb_plot needs source and target samples in the payload; got keys {sorted(payload)}")
    x0, x1 = x0[:MAX_POINTS], x1[:MAX_POINTS]
    if model is not None and hasattr(model, "parameters"):
        x0 = x0.to(next(model.parameters()).device)  # the model may train on a GPU; samples live on the CPU
    mapped = _call(model.sample, x0) if model is not None else None
    x0_np, x1_np, mapped_np = _numpy(x0), _numpy(x1), _numpy(mapped)
    dim = x1_np.shape[1]
    title = f"LightSB — step {event.step} / {event.total}"

    fig = go.Figure()
    if dim == 2:
        paths = _call(model.sample_trajectory, x0[:N_TRAJECTORIES], N_PATH_STEPS) if model is not None else None
        fig.add_trace(_scatter(x0_np, "source x0", COLORS["source"], opacity=0.35))
        fig.add_trace(_scatter(x1_np, "target x1", COLORS["target"], opacity=0.5))
        if mapped_np is not None:
            fig.add_trace(_scatter(mapped_np, "mapped x̂1", COLORS["mapped"]))
        if paths is not None:
            paths_np = _numpy(paths)  # (B, T, D)
            for b in range(paths_np.shape[0]):
                fig.add_trace(go.Scatter(x=paths_np[b, :, 0], y=paths_np[b, :, 1], mode="lines",
                                         line={"color": COLORS["path"], "width": 1.5}, name="SDE paths",
                                         legendgroup="paths", showlegend=b == 0))
        fig.update_layout(xaxis_title="coordinate 1", yaxis_title="coordinate 2")
    elif dim == 1:
        for points, name, color in ((x0_np, "source x0", COLORS["source"]), (x1_np, "target x1", COLORS["target"]),
                                    (mapped_np, "mapped x̂1", COLORS["mapped"])):
            if points is not None:
                fig.add_trace(go.Histogram(x=points[:, 0], name=name, marker_color=color, opacity=0.5,
                                           histnorm="probability density", nbinsx=40))
        fig.update_layout(barmode="overlay", xaxis_title="x", yaxis_title="density")
    else:
        mean, axes = principal_axes(x1_np)
        fig.add_trace(_scatter((x1_np - mean) @ axes, "target x1", COLORS["target"], opacity=0.4))
        if mapped_np is not None:
            fig.add_trace(_scatter((mapped_np - mean) @ axes, "mapped x̂1", COLORS["mapped"]))
        title += f" (dim {dim}: projection on the target's first two principal axes)"
        fig.update_layout(xaxis_title="PC 1", yaxis_title="PC 2")
    fig.update_layout(title={"text": title, "font": {"size": 14}}, template="plotly_white", uirevision="picture",
                      margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.15}, yaxis={"scaleanchor": "x"} if dim == 2 else {})
    return fig

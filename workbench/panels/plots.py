"""The live pictures of the experiments: ``PLOTS`` maps an experiment name to its ``plot(event) -> figure``,
given as the function or as "module:function" (imported on first use); :func:`register_plot` adds one.
Re-exported by :mod:`workbench.panels`."""
from __future__ import annotations

import importlib
from typing import Any, Callable

PLOTS: dict[str, Callable[..., Any] | str] = {
    "lightsb": "workbench.panels.lightsb:lightsb_plot",
    "optimizers": "workbench.panels.optimizers:optimizers_plot",
    "koopman": "workbench.panels.koopman:koopman_plot",
    "manifold_clustering": "workbench.panels.manifold_clustering:manifold_clustering_plot",
    "spd_normalization": "workbench.panels.spd_normalization:spd_normalization_plot",
}


def register_plot(name: str, plot: Callable[..., Any] | str) -> None:
    """Make ``plot`` the live picture of experiment ``name``."""
    PLOTS[name] = plot


def plot_for(name: str) -> Callable[..., Any] | None:
    """The live picture registered for experiment ``name``, or None."""
    plot = PLOTS.get(name)
    if isinstance(plot, str):
        module, _, attr = plot.partition(":")
        plot = PLOTS[name] = getattr(importlib.import_module(module), attr)
    return plot

"""Panel views: a generic panel built from an experiment, plus per-method live plots.

    from workbench.panels import ExperimentPanel
    ExperimentPanel("lightsb")          # picks the plot registered for "lightsb"

``PLOTS`` maps an experiment name to its live picture, ``plot(event) -> figure``; :func:`register_plot`
adds one, :func:`plot_for` finds one (both from :mod:`workbench.panels.plots`).
Serve a panel: ``python -m workbench.panels.serve NAME --port 5006`` (see ``workbench.panels.serve``).
"""
from __future__ import annotations

from typing import Any

from workbench.panels.plots import PLOTS, plot_for, register_plot


def __getattr__(name: str) -> Any:  # import Panel only when the panel is asked for
    if name in ("ExperimentPanel", "LiveState"):
        from workbench.panels import base

        return getattr(base, name)
    raise AttributeError(f"module 'workbench.panels' has no attribute {name!r}")


__all__ = ["ExperimentPanel", "PLOTS", "plot_for", "register_plot"]

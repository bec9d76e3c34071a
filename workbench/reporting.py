"""Notebook reporting: metrics leave a notebook as a typed display output.

Inside a notebook, ``workbench.report(result, experiment)`` displays a MIME bundle of type
``application/vnd.workbench.report+json`` (with a readable ``text/plain`` beside it). The
driver that executed the notebook with papermill reads those outputs back from the saved
notebook, so a worker on another machine needs no database access: only the driver writes.
A driver that runs papermill itself also receives them as each cell ends (:func:`report_hook`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

MIME_TYPE = "application/vnd.workbench.report+json"


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def report(result=None, experiment=None, *, metrics: dict[str, float] | None = None,
           curves: dict[str, dict[str, list]] | None = None) -> dict[str, Any]:
    """Display a report of ``result`` (a :class:`workbench.Result`) and/or explicit ``metrics``.

    Several reports in one notebook are merged by the reader, later values winning.
    Returns the report dictionary.
    """
    from IPython.display import display

    data: dict[str, Any] = {"metrics": {}, "curves": {}}
    if result is not None:
        data["metrics"].update(result.metrics)
        data["curves"].update(result.curves)
        data["status"] = result.status
        data["seconds"] = result.seconds
    if experiment is not None:
        data["experiment"] = experiment.name
        data["params"] = experiment.params_dict()
    data["metrics"].update(metrics or {})
    data["curves"].update(curves or {})
    data["metrics"] = {k: _finite_or_none(v) for k, v in data["metrics"].items()}
    text = ", ".join(f"{k} = {v:.6g}" if v is not None else f"{k} = nan" for k, v in data["metrics"].items())
    display({MIME_TYPE: data, "text/plain": f"workbench report: {text}"}, raw=True)
    return data


def read_reports(notebook: str | Path | dict) -> dict[str, Any]:
    """Merge every workbench report found in an executed notebook (path or nbformat dict, left unchanged); a
    metric reported as non-finite (null in the JSON output) reads back as NaN."""
    if isinstance(notebook, (str, Path)):
        notebook = json.loads(Path(notebook).read_text())
    merged: dict[str, Any] = {"metrics": {}, "curves": {}}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get(MIME_TYPE)
            if data is None:
                continue
            if isinstance(data, str):
                data = json.loads(data)
            data = {**data, "metrics": {k: math.nan if v is None else v for k, v in data.get("metrics", {}).items()}}
            for key, value in data.items():
                if key in ("metrics", "curves"):
                    merged[key].update(value)
                else:
                    merged[key] = value
    return merged


def report_hook(receive: Callable[[dict[str, float], dict[str, dict[str, list]]], None]) -> Callable[..., None]:
    """An nbclient ``on_cell_executed`` hook (``papermill.execute_notebook(..., on_cell_executed=hook)``) that
    hands the reports of each cell, as it ends, to ``receive(metrics, curves)``; cells without one are skipped."""

    def on_cell_executed(cell, **_) -> None:
        report = read_reports({"cells": [cell]})
        if report["metrics"] or report["curves"]:
            receive(report["metrics"], report["curves"])

    return on_cell_executed

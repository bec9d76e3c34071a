"""Numbers and metric names for people: results tables, metric families and their units.

    format_value("state_bytes", 341104.0)        -> "333.1 KiB"
    format_value("step_ms", 0.01234)             -> "12.34 µs"
    results_tables({"adamw.final_loss": 0.1, "adamw.state_bytes": 2048, "steps_done": 500})
        -> (per-run table: metric | value, per-item table: item | final_loss | state_bytes)

A metric's name says its unit: ``*_bytes`` are bytes, ``*_ms`` milliseconds, ``*_s`` / ``seconds`` /
``time_per_*`` seconds. Metrics reported per item (one per optimizer, per variant) are named
``item.metric``; :func:`split_item` splits them.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from workbench.experiment import AUTO

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def split_item(name: str) -> tuple[str | None, str]:
    """``"adamw.final_loss"`` -> ("adamw", "final_loss"); ``"loss"`` -> (None, "loss")."""
    item, dot, metric = name.rpartition(".")
    return (item, metric) if dot and item else (None, name)


def unit_of(metric: str) -> str:
    """The unit a metric's name declares: "bytes", "ms", "s", or "" (a plain number)."""
    if metric.endswith("bytes"):
        return "bytes"
    if metric.endswith("_ms"):
        return "ms"
    if metric.endswith("_s") or metric in ("seconds", "duration") or metric.startswith("time_per"):
        return "s"
    return ""


def axis_of(metric: str) -> str:
    """Metrics that may share a plot axis have the same key: their unit, else their kind (any accuracy,
    any loss), else their own name."""
    unit = unit_of(metric)
    if unit:
        return unit
    return next((kind for kind in ("accuracy", "loss") if kind in metric), metric)


def significant(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, integers in full, no exponent between 1e-4 and 1e6."""
    if isinstance(value, bool) or value is None:
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}".replace(",", " ") if abs(value) >= 1e4 else str(int(value))
    return f"{value:.{digits}g}"


def format_value(metric: str, value: Any) -> str:
    """A metric's (or parameter's) value for a table: bytes as B/KiB/MiB/GiB, times in µs/ms/s, numbers with 4
    significant digits, None as "auto", lists comma-separated."""
    if value is None or isinstance(value, (bool, str, list)):
        return AUTO if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    unit = unit_of(metric)
    if unit == "bytes":
        power = 0 if abs(value) < 1024 else min(int(math.log(abs(value), 1024)), len(BYTE_UNITS) - 1)
        return f"{significant(value / 1024**power)} {BYTE_UNITS[power]}"
    if unit in ("ms", "s"):
        seconds = value / 1000 if unit == "ms" else value
        if abs(seconds) >= 1:
            return f"{seconds:.4g} s"
        if abs(seconds) >= 1e-3 or seconds == 0:
            return f"{seconds * 1e3:.4g} ms"
        return f"{seconds * 1e6:.4g} µs"
    return significant(value)


def results_tables(metrics: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Final metrics as two tables of formatted strings: the run's own metrics (metric | value), and the
    per-item metrics with a row per item and a column per metric (empty when there are none)."""
    scalars, items = [], {}
    for name, value in metrics.items():
        item, metric = split_item(name)
        if item is None:
            scalars.append({"metric": name, "value": format_value(name, value)})
        else:
            items.setdefault(item, {"item": item})[metric] = format_value(metric, value)
    per_item = pd.DataFrame(list(items.values())).fillna("") if items else pd.DataFrame()
    return pd.DataFrame(scalars, columns=["metric", "value"]), per_item

"""How a training loop reports progress: one :class:`Event` type, sent on a :class:`Cadence`.

Every ``fit`` in ``workbench.methods`` takes ``callback(event)``, ``stop()`` and ``cadence``; the event carries
the step, the total and the mean of each named training value since the previous report. The experiment adds
its evaluation metrics and a payload for the live picture, and passes the event on:

    due = Cadence(total=steps)
    for step in range(1, steps + 1):
        ...
        if due(step):
            callback(Event(step, steps, {"loss": running_loss / count}))

The cadence reports every 1 % of the steps, at the last step, and at least every half second of wall clock, so
that a long run with slow steps never looks stalled. ``Cadence(total, every=10, seconds=None)`` reports by step
count alone (tests, benchmarks). A loop that evaluates on its own schedule keeps it: the cadence only decides when
scalars are reported.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

REPORT_SECONDS = 0.5


@dataclass
class Event:
    """One progress report: ``step`` of ``total``, scalar ``metrics`` (named values: a training loss, an
    evaluation, ...) and an optional ``payload`` (anything a live plot needs, e.g. the model being trained);
    payloads are never stored."""

    step: int
    total: int
    metrics: dict[str, float] = field(default_factory=dict)
    payload: Any = None


class Cadence:
    """``due(step)`` is True at every ``every``-th step (default: 1 % of ``total``), at ``step == total``,
    and when ``seconds`` of wall clock have passed since the last True (``None``: never by time)."""

    def __init__(self, total: int, every: int | None = None, seconds: float | None = REPORT_SECONDS):
        self.total = int(total)
        self.every = max(1, int(every if every is not None else self.total // 100))
        self.seconds = seconds
        self.last = time.monotonic()

    def __call__(self, step: int) -> bool:
        now = time.monotonic()
        due = (step % self.every == 0 or step == self.total
               or (self.seconds is not None and now - self.last >= self.seconds))
        if due:
            self.last = now
        return due

"""When a training loop reports progress: every 1 % of its steps, at its last step, and at least every half
second of wall clock, so that a long run with slow steps never looks stalled.

    due = Cadence(total=steps)
    for step in range(1, steps + 1):
        ...
        if due(step):
            progress(Event(step, steps, metrics))

``Cadence(total, every=10, seconds=None)`` reports by step count alone (tests, benchmarks). A loop that
evaluates on its own schedule keeps it: the cadence only decides when scalars are reported.
"""
from __future__ import annotations

import time

REPORT_SECONDS = 0.5


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

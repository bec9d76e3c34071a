"""Progress cadence: every 1 % of the steps, the last step, and at least every half second of wall clock."""
import itertools

import torch

from workbench import progress as progress_module
from workbench.progress import Cadence
from workbench.methods.lightsb import LightSB, fit


def test_step_schedule_without_a_clock():
    due = Cadence(total=1000, seconds=None)
    assert [s for s in range(1, 1001) if due(s)] == list(range(10, 1001, 10))
    due = Cadence(total=7, every=3, seconds=None)
    assert [s for s in range(1, 8) if due(s)] == [3, 6, 7]
    due = Cadence(total=50, seconds=None)  # fewer than 100 steps: every step
    assert all(due(s) for s in range(1, 51))


def test_slow_steps_are_reported_every_half_second(monkeypatch):
    clock = itertools.count(0.0, 0.2)  # each call of the clock: 0.2 s later
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    due = Cadence(total=10_000)
    reported = [s for s in range(1, 21) if due(s)]
    assert reported == [3, 6, 9, 12, 15, 18]  # 0.6 s apart: the first call at or past 0.5 s


def test_lightsb_fit_reports_on_the_clock_between_step_reports(monkeypatch):
    clock = itertools.count(0.0, 0.3)
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    torch.manual_seed(0)
    model = LightSB(2, 2, 1.0)
    calls = []
    fit(model, lambda n: torch.randn(n, 2), lambda n: torch.randn(n, 2), steps=10_000, batch_size=4,
        callback=lambda event: calls.append(event.step), stop=lambda: len(calls) == 3)
    assert calls == [2, 4, 6]  # long before the 1 % step (100)

"""Optimizers side by side (workbench.methods.side_by_side): lockstep training reported on the Cadence."""
import pytest
import torch

from workbench.methods.optim_tasks import Task2D
from workbench.methods.side_by_side import SideBySide
from workbench.optim import MeZO
from workbench.progress import Cadence


def test_first_and_zeroth_order_optimizers_train_in_lockstep_and_report_means_on_the_cadence():
    task = Task2D("quadratic")
    race = SideBySide(task, task.model(), {"sgd": lambda m: torch.optim.SGD(m.parameters(), lr=0.02),
                                           "mezo": lambda m: MeZO(m.parameters(), lr=0.02, zo_eps=1e-3)})
    events = []
    done = race.fit(40, schedule="constant", eval_every=20, callback=events.append,
                    cadence=Cadence(40, every=10, seconds=None))
    assert done == 40 and [e.step for e in events] == [10, 20, 30, 40]
    for name in ("sgd", "mezo"):
        losses = race.curves[name]["loss"]
        assert len(losses) == 40 and losses[-1] < 0.5 * losses[0]  # both learn; MeZO without a backward pass
        assert events[1].metrics[f"{name}.loss"] == pytest.approx(sum(losses[10:20]) / 10)  # the mean since the last
        assert events[1].metrics[f"{name}.distance"] == race.curves[name]["eval"][0]  # the evaluation at step 20
        assert f"{name}.distance" not in events[0].metrics
    assert race.models["mezo"].x.grad is None  # nothing was differentiated

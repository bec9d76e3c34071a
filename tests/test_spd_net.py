"""SPDNet's training loop and evaluations (``workbench.methods.spd.net``) and the ellipses of the BW geodesic
picture (``workbench.methods.spd.ellipses``): events on the cadence with the mean loss since the previous report,
early stopping on an evaluated value, Stop, spectra, and the picture's geometry against closed forms."""
import copy

import numpy as np
import pytest
import torch

from workbench.methods.spd import (SPDNet, bw_mean, ellipse, fit, geodesic_ellipses, random_spd, spectra,
                                   steps_per_epoch, teaching_matrices)
from workbench.methods.spd.data import condition_numbers
from workbench.progress import Cadence

N, BATCH = 40, 8  # 5 steps an epoch


def toy_problem(seed: int = 0, bn: str = "bw") -> tuple[SPDNet, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    X = random_spd(N, 8, 100.0, generator)  # (N, 8, 8) float64
    y = torch.randint(0, 3, (N,), generator=generator)
    torch.manual_seed(seed)
    return SPDNet(8, (4, 3), 3, bn=bn).double(), X, y


@pytest.mark.parametrize("n, batch_size, steps", [(898, 32, 29), (673, 32, 21), (64, 32, 2), (65, 32, 2), (66, 32, 3)])
def test_an_epoch_has_a_step_per_batch_of_at_least_two_matrices(n, batch_size, steps):
    assert steps_per_epoch(n, batch_size) == steps


def test_events_come_on_the_cadence_with_the_mean_loss_since_the_previous_one_and_the_latest_evaluation():
    model, X, y = toy_problem()
    events, scores = [], iter([0.1, 0.2, 0.3])
    history = fit(model, X, y, epochs=3, batch_size=BATCH, evaluate=lambda m: {"score": next(scores)},
                  callback=events.append, cadence=Cadence(15, every=2, seconds=None))
    steps = [event.step for event in events]
    assert steps == [2, 4, 6, 8, 10, 12, 14, 15] and all(event.total == 15 for event in events)
    # epochs end at steps 5, 10 and 15: each evaluation rides on the next event the cadence is due for
    assert {event.step: event.metrics.get("score") for event in events if "score" in event.metrics} == {
        6: 0.1, 10: 0.2, 15: 0.3}
    # each event's loss is the mean over the steps since the previous event: weighted by those step counts, the
    # events average to the mean over all steps (a loop that reported the last batch's loss would not)
    weighted = sum((b - a) * e.metrics["loss"] for a, b, e in zip([0] + steps, steps, events)) / 15
    assert weighted == pytest.approx(sum(record["loss"] for record in history.epochs) / 3, rel=1e-12)
    assert [record["epoch"] for record in history.epochs] == [1, 2, 3] and history.selected == 3
    assert history.unreported == {}


def test_values_evaluated_after_the_last_event_are_left_for_the_caller_to_report():
    model, X, y = toy_problem()
    events = []  # a caller's cadence that is not due at the last step (its count goes on in another fit)
    history = fit(model, X, y, epochs=3, batch_size=BATCH, evaluate=lambda m: {"score": 1.0 + len(events)},
                  callback=events.append, cadence=lambda step: step % 4 == 0)
    assert [event.step for event in events] == [4, 8, 12]
    assert history.unreported == {"score": 4.0} == {"score": history.epochs[-1]["score"]}


def test_select_keeps_the_weights_of_the_epoch_with_the_highest_value_the_earliest_on_ties():
    model, X, y = toy_problem()
    scores, states = iter([0.5, 0.9, 0.9, 0.1]), []

    def evaluate(m):
        states.append(copy.deepcopy(m.state_dict()))
        return {"score": next(scores)}

    history = fit(model, X, y, epochs=4, batch_size=BATCH, evaluate=evaluate, select="score")
    assert history.selected == 2 and history.kept == history.epochs[1] and history.kept["score"] == 0.9
    kept = model.state_dict()
    assert all(torch.equal(kept[name], states[1][name]) for name in kept)
    assert not all(torch.equal(kept[name], states[3][name]) for name in kept)  # the last epoch's weights differ


def test_select_names_a_value_that_evaluate_returns():
    model, X, y = toy_problem()
    with pytest.raises(ValueError, match=r"select = 'validation_accuracy' is not one of the values evaluate returns: "
                                         r"\['score'\]"):
        fit(model, X, y, epochs=1, batch_size=BATCH, evaluate=lambda m: {"score": 1.0}, select="validation_accuracy")


def test_stop_ends_training_before_the_next_step_and_the_epoch_cut_short_is_evaluated():
    model, X, y = toy_problem()
    events = []
    history = fit(model, X, y, epochs=3, batch_size=BATCH, evaluate=lambda m: {"score": 1.0},
                  callback=events.append, stop=lambda: bool(events), cadence=Cadence(15, every=2, seconds=None))
    assert [event.step for event in events] == [2, 2]  # the event that asked to stop, then the epoch's end, no step
    assert events[1].metrics == {"score": 1.0}  # no step since the previous report: no loss to average
    assert len(history.epochs) == 1 and history.selected == 1


def test_spectra_give_the_log_eigenvalues_and_median_condition_numbers_around_the_bn():
    model, X, _ = toy_problem(bn="none")
    probed = spectra(model, X[:7])
    with torch.no_grad():
        H = model.before_bn(X[:7])
    expected = float(np.median(condition_numbers(H).numpy()))
    assert probed["condition_before"] == pytest.approx(expected, rel=1e-12) == probed["condition_after"]
    assert np.allclose(10 ** np.asarray(probed["before"]), torch.linalg.eigvalsh(H).numpy(), rtol=1e-10)
    model, X, _ = toy_problem(bn="bw")
    probed = spectra(model, X[:8])  # an even batch: the midpoint of the two middle values
    with torch.no_grad():
        out = model.eval().bn(model.before_bn(X[:8]))  # eval mode, on the running statistics, as spectra
    assert probed["condition_after"] == pytest.approx(float(np.median(condition_numbers(out).numpy())), rel=1e-12)


def test_an_ellipse_is_the_unit_circle_through_the_square_root():
    angle = 0.7
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    S = R @ np.diag([4.0, 0.25]) @ R.T
    x, y = ellipse(S, centre=(1.0, -2.0))
    p = np.stack([x - 1.0, y + 2.0])  # (2, P), each point S^½ u with ‖u‖ = 1, so pᵀ S⁻¹ p = 1
    assert np.allclose(np.einsum("ip,ij,jp->p", p, np.linalg.inv(S), p), 1.0, atol=1e-12)
    assert np.linalg.norm(p, axis=0).max() == pytest.approx(2.0, abs=0.01)  # the long half-axis, √4


def test_the_picture_centres_the_batch_at_the_identity_along_bw_geodesics():
    A, B, X, Z = teaching_matrices()
    assert torch.allclose(bw_mean(Z, n_iter=200), torch.eye(2, dtype=torch.float64), atol=1e-10)
    same = lambda a, b: all(np.allclose(p, q, atol=1e-12) for (p, q) in zip(a, b))  # noqa: E731
    start, end = geodesic_ellipses(0.0), geodesic_ellipses(1.0)
    assert same(start["centring"][0], start["batch"][0]) and same(end["centring"][3], ellipse(Z[3], (0.0, -2.0)))
    assert same(start["now"][0], ellipse(A, (-2.0, 2.2))) and same(end["now"][0], ellipse(B, (2.0, 2.2)))
    assert same(start["path"][0], start["now"][0]) and same(start["path"][-1], end["now"][0])
    assert [len(v) for v in start.values()] == [5, 1, 5, 5, 1]

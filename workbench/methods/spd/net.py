"""SPDNet with a Riemannian batch normalization, its training loop and its evaluations.

Network (Huang & Van Gool, AAAI 2017; method note §6, the independent SPDNet measurement):

    X (B, n, n) → BiMap n→h₁ → ReEig → [SPDBatchNorm(h₁)] → BiMap h₁→h₂ → ReEig → LogEig → upper triangle
      → Linear → class scores (B, classes)

BiMap weights live on the Stiefel manifold and the BN's bias and metric on the SPD manifold; :func:`fit` trains them
with ``geoopt.optim.RiemannianAdam`` (Riemannian steps and retractions for manifold parameters, plain Adam steps for
the Euclidean ones) on the cross-entropy loss.

    net = SPDNet(8, (8, 6), 10, bn="gbw", theta=0.5).double()
    history = fit(net, X_train, y_train, epochs=6, evaluate=lambda m: {"test_accuracy": accuracy(m, X_test, y_test)})
    history.epochs[-1]   # {"epoch": 6, "loss": ..., "seconds": ..., "test_accuracy": ...}
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import geoopt
import torch
from torch import nn

from workbench.methods.spd.batchnorm import SPDBatchNorm
from workbench.methods.spd.data import condition_numbers
from workbench.methods.spd.layers import BiMap, LogEig, ReEig, triu_vector
from workbench.progress import Cadence, Event

BN_VARIANTS = ("none", "aim", "lem", "bw", "gbw")  # none: no BN; the others: SPDBatchNorm's metrics


class SPDNet(nn.Module):
    """BiMap n→h₁, ReEig, [SPDBatchNorm(h₁)], BiMap h₁→h₂, ReEig, LogEig, vec, Linear → classes.

    ``bn`` is one of :data:`BN_VARIANTS`; the BN's keyword arguments are :class:`SPDBatchNorm`'s. ReEig floors the
    eigenvalues at ``reeig_eps`` λ_max of each matrix."""

    def __init__(self, n: int, hidden: tuple[int, int], n_classes: int, bn: str = "gbw", theta: float = 0.5,
                 learn_theta: bool = False, learn_metric: bool = True, bn_iter: int = 3, momentum: float = 0.1,
                 dispersion: str = "mean", reeig_eps: float = 1e-4):
        super().__init__()
        if bn not in BN_VARIANTS:
            raise ValueError(f"SPDNet: bn = {bn!r} is not allowed; expected one of {', '.join(map(repr, BN_VARIANTS))}")
        h1, h2 = hidden
        self.bimap1, self.reeig1 = BiMap(n, h1, check_input=True), ReEig(reeig_eps, relative=True)
        self.bn = (nn.Identity() if bn == "none" else
                   SPDBatchNorm(h1, metric=bn, theta=theta, momentum=momentum, n_iter=bn_iter, dispersion=dispersion,
                                learn_theta=learn_theta, learn_metric=learn_metric, check_input=False))
        self.bimap2, self.reeig2 = BiMap(h1, h2), ReEig(reeig_eps, relative=True)
        self.logeig = LogEig()
        self.classifier = nn.Linear(h2 * (h2 + 1) // 2, n_classes)

    def before_bn(self, X: torch.Tensor) -> torch.Tensor:
        return self.reeig1(self.bimap1(X))  # (B, h1, h1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        H = self.bn(self.before_bn(X))  # (B, h1, h1)
        S = self.logeig(self.reeig2(self.bimap2(H)))  # (B, h2, h2)
        return self.classifier(triu_vector(S))  # (B, classes)


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Eval-mode accuracy (BN on running statistics): the fraction of X whose arg-max class is y."""
    was_training = model.training
    model.eval()
    correct = sum(int((model(X[i:i + batch]).argmax(-1) == y[i:i + batch]).sum()) for i in range(0, len(X), batch))
    model.train(was_training)
    return correct / len(X)


@torch.no_grad()
def spectra(model: SPDNet, X: torch.Tensor) -> dict:
    """What the BN does to a probe batch X (eval mode): ``before`` / ``after``, the log10 eigenvalues (B, h1) of
    the BN's input and output as nested lists, and ``condition_before`` / ``condition_after``, their median
    condition numbers κ = λ_max / λ_min (the midpoint of the two middle ones for an even batch)."""
    was_training = model.training
    model.eval()
    H = model.before_bn(X)  # (B, h1, h1)
    out = model.bn(H)
    model.train(was_training)
    result = {}
    for key, M in (("before", H), ("after", out)):
        result[key] = torch.linalg.eigvalsh(M).clamp_min(1e-300).log10().cpu().tolist()
        result[f"condition_{key}"] = float(condition_numbers(M).double().quantile(0.5))
    return result


def steps_per_epoch(n_matrices: int, batch_size: int) -> int:
    """Steps of one epoch of :func:`fit`: one per batch, a last batch of one matrix dropped (BN needs two)."""
    return n_matrices // batch_size + (n_matrices % batch_size >= 2)


@dataclass
class History:
    """What :func:`fit` did: one record per epoch run, {"epoch", "loss" (the epoch's mean), "seconds" (its training
    time), and what ``evaluate`` returned}; ``selected``, the epoch whose weights the model ends with; and
    ``unreported``, the values evaluated after the last event (empty unless the cadence was not due at the last step,
    as when a caller's cadence spans several fits): the caller reports them with its next event."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    selected: int | None = None  # None until an epoch ran
    unreported: dict[str, float] = field(default_factory=dict)

    @property
    def kept(self) -> dict[str, float]:
        """The record of the selected epoch."""
        return self.epochs[self.selected - 1]

    def columns(self) -> dict[str, list]:
        """The records as columns: {"epoch": [1, 2, ...], "loss": [...], ...}."""
        return {key: [record[key] for record in self.epochs] for key in (self.epochs[0] if self.epochs else {})}


def fit(model: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int = 32, lr: float = 1e-2,
        seed: int = 0, evaluate: Callable[[nn.Module], dict[str, float]] | None = None, select: str | None = None,
        callback: Callable[[Event], None] | None = None, stop: Callable[[], bool] | None = None,
        cadence: Cadence | None = None) -> History:
    """Minimise the cross-entropy of ``model(X)`` (N, classes) against the labels ``y`` (N,) with geoopt's
    RiemannianAdam at learning rate ``lr``, on batches of ``batch_size`` matrices in an order reshuffled every epoch
    by a generator seeded with ``seed`` (a last batch of one matrix is dropped: BN needs two).

    ``evaluate(model)`` returns named values (accuracies, say) at the end of every epoch, also of one cut short by
    ``stop``. ``select`` names one of them: the model then ends with the weights of the epoch where it was highest
    (the earliest on ties; early stopping on a validation split), instead of the last epoch's.

    ``callback(Event(step, total, {"loss": mean since the previous report, ...}))`` whenever ``cadence(step)`` is due
    (default :class:`Cadence`: every 1 % of the steps, the last one and every half second), with the values of the
    latest epoch evaluated since the previous report; total = ``epochs`` × :func:`steps_per_epoch`. ``stop()``
    returning True ends training before the next step; the epoch it cut short is evaluated and reported in one last
    event. Returns the :class:`History` of the epochs run."""
    per_epoch = steps_per_epoch(len(X), batch_size)
    total = epochs * per_epoch
    stopped = stop if stop is not None else (lambda: False)
    cadence = cadence if cadence is not None else Cadence(total)
    optimizer = geoopt.optim.RiemannianAdam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    history, best = History(), {"value": float("-inf"), "state": None}

    def end_epoch(epoch: int, losses: list[float], seconds: float) -> dict[str, float]:
        """Record the epoch just run, keep its weights when ``select`` finds it the best so far; its evaluation."""
        evaluated = evaluate(model) if evaluate is not None else {}
        history.epochs.append({"epoch": epoch, "loss": sum(losses) / len(losses), "seconds": seconds, **evaluated})
        if select is None:
            history.selected = epoch
        elif select not in evaluated:
            raise ValueError(f"fit: select = {select!r} is not one of the values evaluate returns: {sorted(evaluated)}")
        elif evaluated[select] > best["value"]:
            history.selected = epoch
            best.update(value=evaluated[select], state=copy.deepcopy(model.state_dict()))
        return evaluated

    step, running, count = 0, 0.0, 0
    for epoch in range(1, epochs + 1):
        start, losses = time.perf_counter(), []
        for index in torch.randperm(len(X), generator=order).to(X.device).split(batch_size)[:per_epoch]:
            if stopped():
                break
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(X[index]), y[index])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step, running, count = step + 1, running + losses[-1], count + 1
            if len(losses) == per_epoch:  # the epoch's last step: evaluated before the report it may be due for
                history.unreported = end_epoch(epoch, losses, time.perf_counter() - start)
            if callback is not None and cadence(step):
                callback(Event(step, total, {"loss": running / count} | history.unreported))
                running, count, history.unreported = 0.0, 0, {}
        if len(losses) < per_epoch:  # stopped: the epoch cut short is evaluated, and what is unreported reported
            if losses:
                history.unreported = end_epoch(epoch, losses, time.perf_counter() - start)
            if callback is not None and (count or history.unreported):
                callback(Event(step, total, ({"loss": running / count} if count else {}) | history.unreported))
                history.unreported = {}
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return history

"""The ``spd_normalization`` experiment: SPDNet on digits covariance descriptors, without batch normalization and
with AIM-RBN, LEM-RBN, BW-BN or GBWBN (``workbench.methods.spd``).

Network (method note §6, the independent SPDNet measurement): BiMap n→h₁, ReEig, [SPDBatchNorm], BiMap h₁→h₂,
ReEig, LogEig, upper-triangle vector, linear classifier; BiMap weights on the Stiefel manifold and the BN's SPD
parameters trained with ``geoopt.optim.RiemannianAdam`` (Euclidean parameters get plain Adam steps from it),
cross-entropy loss, float64 by default.

Model selection without the test half: ``validation`` holds out a stratified fraction of the training half (seeded by
``seed``, so every variant at a seed sees the same split), and ``epoch_selection="best_validation"`` keeps the
weights of the epoch with the highest validation accuracy (early stopping; the earliest on ties) instead of the
last. The reported accuracies are those of the kept weights.

Metrics: ``test_accuracy`` and ``train_accuracy`` of the chosen variant (``bn``), ``validation_accuracy`` (with a
validation split), ``selected_epoch``, ``loss`` (mean over the kept epoch), ``time_per_epoch`` (seconds),
``condition_before_bn`` / ``condition_after_bn`` (median κ of a probe batch at the BN's input and output); for each
variant in ``compare`` also ``test_accuracy_<variant>``, ``validation_accuracy_<variant>``,
``selected_epoch_<variant>`` and ``time_per_epoch_<variant>``. Curves: ``loss`` at every event, the train,
validation and test accuracies (per variant) once per epoch. Events come at least every 1 % of all steps, with
payload {bn, variant (training now), curves (per variant: epoch, train/validation/test accuracy, loss), spectra
(log10 eigenvalues of the probe batch before and after BN), dataset}. Artifacts: ``model`` (the chosen variant's
SPDNet), ``models`` (all trained), ``data``, ``history``.
"""
from __future__ import annotations

import copy
import threading
import time

import geoopt
import param
import torch
from torch import nn

from workbench.cadence import Cadence
from workbench.experiment import ConfigError, Event, Experiment, Result, register
from workbench.methods.spd import (DATASETS, BiMap, LogEig, ReEig, SPDBatchNorm, condition_numbers, load_digits_spd,
                                   triu_vector)

BN_VARIANTS = ("none", "aim", "lem", "bw", "gbw")
EPOCH_SELECTIONS = ("last", "best_validation")
N_PROBE = 64  # training matrices whose spectra the live picture shows


class SPDNet(nn.Module):
    """BiMap n→h₁, ReEig, [SPDBatchNorm(h₁)], BiMap h₁→h₂, ReEig, LogEig, vec, Linear → classes."""

    def __init__(self, n: int, hidden: tuple[int, int], n_classes: int, bn: str = "gbw", theta: float = 0.5,
                 learn_theta: bool = False, learn_metric: bool = True, bn_iter: int = 3, momentum: float = 0.1,
                 dispersion: str = "mean", reeig_eps: float = 1e-4):
        super().__init__()
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
    """Eval-mode accuracy (BN on running statistics)."""
    was_training = model.training
    model.eval()
    correct = sum(int((model(X[i:i + batch]).argmax(-1) == y[i:i + batch]).sum()) for i in range(0, len(X), batch))
    model.train(was_training)
    return correct / len(X)


@torch.no_grad()
def spectra(model: SPDNet, X: torch.Tensor) -> dict[str, list]:
    """log10 eigenvalues (B, h1) and condition numbers of a probe batch before and after BN (eval mode)."""
    was_training = model.training
    model.eval()
    H = model.before_bn(X)
    out = model.bn(H)
    model.train(was_training)
    result = {}
    for key, M in (("before", H), ("after", out)):
        result[key] = torch.linalg.eigvalsh(M).clamp_min(1e-300).log10().cpu().tolist()
        result[f"condition_{key}"] = condition_numbers(M).cpu().tolist()
    return result


@register
class SPDNormalizationExperiment(Experiment):
    """SPDNet with Riemannian batch normalization under the Bures–Wasserstein geometry (GBWBN, Wang et al.,
    CVPR 2025) against no BN, AIM-RBN (Brooks et al. 2019) and LEM-RBN, on digits covariance descriptors."""

    name = param.String("spd_normalization", constant=True)
    headline = ("test_accuracy",)

    dataset = param.Selector(default="digits_illcond", objects=list(DATASETS), doc=(
        "digits_illcond: row Gram matrices of the digits, median κ ≈ 1.5e5 (BW suits these); "
        "digits_region: Tuzel region covariances, median κ ≈ 260."))
    bn = param.Selector(default="gbw", objects=list(BN_VARIANTS), doc=(
        "Batch normalization after the first BiMap+ReEig: none, aim (Brooks RBN), lem (log-Euclidean), "
        "bw (Bures–Wasserstein, M = I) or gbw (generalized BW with learned M)."))
    compare = param.ListSelector(default=[], objects=list(BN_VARIANTS), doc=(
        "Other variants trained in the same run at the same seed and epochs, for comparison curves."))
    theta = param.Number(0.5, bounds=(0, 10), inclusive_bounds=(False, True), doc=(
        "Power deformation θ > 0 of the BN (θ = 1: no deformation; θ → 0 approaches half the log-Euclidean metric)."))
    learn_theta = param.Boolean(False, doc="Learn θ (from the value above) instead of keeping it fixed.")
    learn_metric = param.Boolean(True, doc="gbw: learn the SPD metric matrix M (else M = I stays fixed).")
    dispersion = param.Selector(default="mean", objects=["mean", "identity"], doc=(
        "Dispersion measured around the batch mean, or around I as the official GBWBN code does."))
    bn_iter = param.Integer(3, bounds=(1, 100), doc="Fixed-point (BW) / Karcher (AIM) iterations of the batch mean.")
    momentum = param.Number(0.1, bounds=(0, 1), inclusive_bounds=(False, True), doc="Running-statistics momentum.")
    epochs = param.Integer(8, bounds=(1, 10_000), doc="Passes over the training half (898 matrices).")
    validation = param.Number(0.0, bounds=(0, 0.5), doc=(
        "Fraction of the training half held out for validation (stratified, seeded by `seed`); 0: none."))
    epoch_selection = param.Selector(default="last", objects=list(EPOCH_SELECTIONS), doc=(
        "Report the last epoch, or keep the weights of the epoch with the best validation accuracy (early stopping)."))
    batch_size = param.Integer(32, bounds=(2, 4096), doc="Matrices per step.")
    lr = param.Number(1e-2, bounds=(0, 10), inclusive_bounds=(False, True), doc="RiemannianAdam learning rate.")
    hidden = param.List([8, 6], item_type=int, doc="BiMap output sizes h₁, h₂ (8 ≥ h₁ ≥ h₂ ≥ 1).")
    reeig_eps = param.Number(1e-4, bounds=(0, 1), inclusive_bounds=(False, True), doc=(
        "ReEig threshold relative to each matrix's largest eigenvalue."))
    dtype = param.Selector(default="float64", objects=["float64", "float32"], doc="Floating-point precision.")

    def validate(self) -> None:
        h = list(self.hidden)
        if len(h) != 2 or not 8 >= h[0] >= h[1] >= 1:
            raise ConfigError(f"{self.name}: parameter 'hidden' = {self.hidden!r} is not allowed; expected two sizes "
                              f"8 >= h1 >= h2 >= 1 (the digits matrices are 8×8)")
        if self.epoch_selection == "best_validation" and not self.validation > 0:
            raise ConfigError(f"{self.name}: parameter 'epoch_selection' = 'best_validation' needs a validation split; "
                              f"got 'validation' = {self.validation!r}, expected a fraction in (0, 0.5]")

    def variants(self) -> list[str]:
        return [self.bn] + [v for v in self.compare if v != self.bn]

    def build(self, bn: str, n: int, n_classes: int) -> SPDNet:
        return SPDNet(n, tuple(self.hidden), n_classes, bn=bn, theta=self.theta, learn_theta=self.learn_theta,
                      learn_metric=self.learn_metric, bn_iter=self.bn_iter, momentum=self.momentum,
                      dispersion=self.dispersion, reeig_eps=self.reeig_eps)

    def run(self, progress, stop: threading.Event) -> Result:
        self.validate()
        device = self.torch_device
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(1)  # small-matrix eigendecompositions: one thread is 4–50× faster on a shared CPU
        try:
            return self._run(progress, stop, device)
        finally:
            torch.set_num_threads(threads)

    def _run(self, progress, stop, device) -> Result:
        dtype = getattr(torch, self.dtype)
        data = load_digits_spd(self.dataset, dtype=dtype, validation=self.validation, validation_seed=self.seed)
        X_train, y_train = data.X_train.to(device), data.y_train.to(device)
        X_val, y_val = data.X_val.to(device), data.y_val.to(device)
        X_test, y_test = data.X_test.to(device), data.y_test.to(device)
        keep_best = self.epoch_selection == "best_validation"
        probe = X_train[:N_PROBE]
        variants = self.variants()
        n_batches = -(-len(X_train) // self.batch_size)
        per_variant = self.epochs * n_batches
        total = per_variant * len(variants)
        due = Cadence(total)  # batch losses every 1 % of the steps and every half second; epochs always
        columns = ["epoch", "train_accuracy"] + (["validation_accuracy"] if len(X_val) else []) + [
            "test_accuracy", "loss", "seconds"]
        history = {v: {key: [] for key in columns} for v in variants}
        payload = {"bn": self.bn, "variant": self.bn, "curves": history, "spectra": None, "dataset": self.dataset,
                   "variants": variants}  # variant: the one training now; spectra: always of the chosen bn
        models, step, metrics = {}, 0, {}
        for variant in variants:
            torch.manual_seed(self.seed)  # every variant starts from the same weights and sees the same batches
            order = torch.Generator().manual_seed(self.seed)
            model = self.build(variant, data.n, data.n_classes).to(device=device, dtype=dtype)
            models[variant] = model
            optimizer = geoopt.optim.RiemannianAdam(model.parameters(), lr=self.lr)
            suffix = "" if variant == self.bn else f"_{variant}"
            payload["variant"] = variant
            best_validation, kept_epoch, kept_state = -1.0, None, None  # under epoch_selection="best_validation"
            for epoch in range(1, self.epochs + 1):
                if stop.is_set():
                    break
                start, losses = time.perf_counter(), []
                permutation = torch.randperm(len(X_train), generator=order).to(device)
                for b in range(n_batches):
                    if stop.is_set():
                        break
                    index = permutation[b * self.batch_size:(b + 1) * self.batch_size]
                    if len(index) < 2:
                        continue
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(model(X_train[index]), y_train[index])
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    step += 1
                    if due(step) and b < n_batches - 1:
                        progress(Event(step, total, {f"loss{suffix}": losses[-1]}, payload))
                seconds = time.perf_counter() - start
                row = {"epoch": epoch, "train_accuracy": accuracy(model, X_train, y_train),
                       "test_accuracy": accuracy(model, X_test, y_test), "loss": sum(losses) / max(1, len(losses)),
                       "seconds": seconds}
                if len(X_val):
                    row["validation_accuracy"] = accuracy(model, X_val, y_val)
                    if keep_best and row["validation_accuracy"] > best_validation:
                        best_validation, kept_epoch = row["validation_accuracy"], epoch
                        kept_state = copy.deepcopy(model.state_dict())
                for key, value in row.items():
                    history[variant][key].append(value)
                if variant == self.bn:
                    payload["spectra"] = spectra(model, probe)
                progress(Event(step, total, {f"{key}{suffix}": value for key, value in row.items()
                                             if key not in ("epoch", "seconds")}, payload))
            h = history[variant]
            if h["epoch"]:
                kept = h["epoch"].index(kept_epoch) if kept_state is not None else -1  # best on validation, or last
                if kept_state is not None:
                    model.load_state_dict(kept_state)
                metrics[f"test_accuracy{suffix}"] = h["test_accuracy"][kept]
                metrics[f"selected_epoch{suffix}"] = h["epoch"][kept]
                if len(X_val):
                    metrics[f"validation_accuracy{suffix}"] = h["validation_accuracy"][kept]
                metrics[f"time_per_epoch{suffix}"] = sum(h["seconds"]) / len(h["seconds"])
                if variant == self.bn:
                    metrics["train_accuracy"] = h["train_accuracy"][kept]
                    metrics["loss"] = h["loss"][kept]
            if stop.is_set():
                break
        model = models[self.bn]
        if "test_accuracy" in metrics:
            s = spectra(model, probe)
            metrics["condition_before_bn"] = float(torch.tensor(s["condition_before"]).median())
            metrics["condition_after_bn"] = float(torch.tensor(s["condition_after"]).median())
            payload["spectra"] = s
        metrics["epochs_done"] = len(history[self.bn]["epoch"])
        return Result(metrics=metrics, artifacts={"model": model, "models": models, "data": data,
                                                  "history": history, "payload": payload})

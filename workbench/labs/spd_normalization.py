"""The ``spd_normalization`` experiment: SPDNet on digits covariance descriptors, without batch normalization and
with AIM-RBN, LEM-RBN, BW-BN or GBWBN (the network, its training and evaluations: ``workbench.methods.spd.net``).

Each variant, the chosen ``bn`` first and then those in ``compare``, trains at the same seed from the same initial
weights on the same batches (:func:`workbench.methods.spd.fit`, float64 by default).

Model selection without the test half: ``validation`` holds out a stratified fraction of the training half (seeded by
``seed``, so every variant at a seed sees the same split), and ``epoch_selection="best_validation"`` keeps the
weights of the epoch with the highest validation accuracy (early stopping; the earliest on ties) instead of the
last. The reported accuracies are those of the kept weights.

Metrics, per variant trained (``<variant>.<metric>``, e.g. ``gbw.test_accuracy``): ``test_accuracy``,
``train_accuracy``, ``validation_accuracy`` (with a validation split), ``loss`` (mean over the kept epoch),
``selected_epoch``, ``time_per_epoch`` (seconds), ``condition_before_bn`` / ``condition_after_bn`` (median κ of a
probe batch at the BN's input and output); and ``epochs_done`` (of the chosen variant). Events come on one
:class:`Cadence` over all variants' steps, each with ``<variant>.loss`` (the mean since the previous event) and, after
an epoch's end, that epoch's train, validation and test accuracies (a variant's last ones with the next variant's first
event when its last step is not due); payload {bn, variant (training now), curves (per variant: epoch and its
train/validation/test accuracy, drawn at each epoch's end; at the end also loss and seconds), spectra (of the chosen
variant: log10 eigenvalues of the probe batch before and after BN), dataset, variants}. Artifacts: ``model`` (the
chosen variant's SPDNet), ``models`` (all trained), ``data``, ``history`` (the curves), ``payload``.
"""
from __future__ import annotations

import statistics
import threading

import param
import torch

from workbench.experiment import ConfigError, Event, Experiment, Result, one_thread_on_cpu, register
from workbench.methods.spd import (BN_VARIANTS, DATASETS, History, SPDNet, accuracy, fit, load_digits_spd, spectra,
                                   steps_per_epoch)
from workbench.progress import Cadence

EPOCH_SELECTIONS = ("last", "best_validation")
N_PROBE = 64  # training matrices whose spectra the live picture shows
# per-variant metrics and curves, named "<metric>_<variant>" before they were "<variant>.<metric>"
RENAMED = ("test_accuracy", "train_accuracy", "validation_accuracy", "loss", "selected_epoch", "time_per_epoch")


def named(variant: str, values: dict[str, float]) -> dict[str, float]:
    """``values`` as the metrics of one variant: {"<variant>.<name>": value}."""
    return {f"{variant}.{key}": value for key, value in values.items()}


def variant_metrics(variant: str, history: History, probed: dict) -> dict[str, float]:
    """The metrics of one trained variant, named ``<variant>.<metric>``: its kept epoch's record, its mean epoch
    time, and the median condition numbers of ``probed`` (:func:`spectra` of its network)."""
    kept = history.kept
    values = {key: value for key, value in kept.items() if key not in ("epoch", "seconds")}  # its accuracies, loss
    values |= {"selected_epoch": kept["epoch"],
               "time_per_epoch": statistics.mean(record["seconds"] for record in history.epochs),
               "condition_before_bn": probed["condition_before"], "condition_after_bn": probed["condition_after"]}
    return named(variant, values)


@register
class SPDNormalizationExperiment(Experiment):
    """SPDNet with Riemannian batch normalization under the Bures–Wasserstein geometry (GBWBN, Wang et al.,
    CVPR 2025) against no BN, AIM-RBN (Brooks et al. 2019) and LEM-RBN, on digits covariance descriptors."""

    name = param.String("spd_normalization", constant=True)
    headline = (".test_accuracy",)
    tiny_params = {"epochs": 1, "batch_size": 8, "compare": ["none"]}
    renamed_metrics = {f"{metric}_{variant}": f"{variant}.{metric}" for variant in BN_VARIANTS for metric in RENAMED}

    dataset = param.Selector(default="digits_illcond", objects=list(DATASETS), doc=(
        "digits_illcond: row Gram matrices of the digits, median κ ≈ 1.5e5 (BW suits these); "
        "digits_region: Tuzel region covariances, median κ ≈ 260."))
    bn = param.Selector(default="gbw", objects=list(BN_VARIANTS), doc=(
        "Batch normalization after the first BiMap+ReEig: none, aim (Brooks RBN), lem (log-Euclidean), "
        "bw (Bures–Wasserstein, M = I) or gbw (generalized BW with learned M)."))
    compare = param.ListSelector(default=["none", "aim"], objects=list(BN_VARIANTS), doc=(
        "Other variants trained in the same run at the same seed and epochs, for comparison curves."))
    theta = param.Number(0.5, bounds=(0, 10), inclusive_bounds=(False, True), doc=(
        "Power deformation θ > 0 of the BN (θ = 1: no deformation; θ → 0 approaches half the log-Euclidean metric)."))
    learn_theta = param.Boolean(False, doc="Learn θ (from the value above) instead of keeping it fixed.")
    learn_metric = param.Boolean(True, doc="gbw: learn the SPD metric matrix M (else M = I stays fixed).")
    dispersion = param.Selector(default="mean", objects=["mean", "identity"], doc=(
        "Dispersion measured around the batch mean, or around I as the official GBWBN code does."))
    bn_iter = param.Integer(3, bounds=(1, 100), doc="Fixed-point (BW) / Karcher (AIM) iterations of the batch mean.")
    momentum = param.Number(0.1, bounds=(0, 1), inclusive_bounds=(False, True), doc="Running-statistics momentum.")
    epochs = param.Integer(6, bounds=(1, 10_000), doc="Passes over the training half (898 matrices).")
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
        """The SPDNet of variant ``bn`` at this experiment's settings (initial weights from torch's global seed)."""
        return SPDNet(n, tuple(self.hidden), n_classes, bn=bn, theta=self.theta, learn_theta=self.learn_theta,
                      learn_metric=self.learn_metric, bn_iter=self.bn_iter, momentum=self.momentum,
                      dispersion=self.dispersion, reeig_eps=self.reeig_eps)

    def run(self, progress, stop: threading.Event) -> Result:
        self.validate()
        device = self.torch_device
        with one_thread_on_cpu(device):  # small-matrix eigendecompositions: one thread is 4–50× faster on a shared CPU
            return self._run(progress, stop, device)

    def _run(self, progress, stop: threading.Event, device) -> Result:
        dtype = getattr(torch, self.dtype)
        data = load_digits_spd(self.dataset, dtype=dtype, validation=self.validation, validation_seed=self.seed)
        X_train, y_train = data.X_train.to(device), data.y_train.to(device)
        X_val, y_val = data.X_val.to(device), data.y_val.to(device)
        X_test, y_test = data.X_test.to(device), data.y_test.to(device)
        probe = X_train[:N_PROBE]
        variants = self.variants()
        per_variant = self.epochs * steps_per_epoch(len(X_train), self.batch_size)
        due = Cadence(per_variant * len(variants))  # one cadence over every variant's steps
        select = "validation_accuracy" if self.epoch_selection == "best_validation" else None  # early stopping
        history = {variant: {} for variant in variants}
        payload = {"bn": self.bn, "variant": self.bn, "curves": history, "spectra": None, "dataset": self.dataset,
                   "variants": variants}  # variant: the one training now; spectra: always of the chosen bn

        def evaluate(model: SPDNet) -> dict[str, float]:  # at each epoch's end: drawn at once, reported on the cadence
            values = {"train_accuracy": accuracy(model, X_train, y_train)}
            if len(X_val):
                values["validation_accuracy"] = accuracy(model, X_val, y_val)
            values["test_accuracy"] = accuracy(model, X_test, y_test)
            live = history[payload["variant"]]
            for key, value in {"epoch": len(live.get("epoch", [])) + 1, **values}.items():
                live.setdefault(key, []).append(value)
            if payload["variant"] == self.bn:
                payload["spectra"] = spectra(model, probe)
            return values

        models, metrics, carried = {}, {}, {}  # carried: a variant's last values, evaluated after its last event
        for index, variant in enumerate(variants):
            if stop.is_set():
                break
            torch.manual_seed(self.seed)  # every variant starts from the same weights and sees the same batches
            model = models[variant] = self.build(variant, data.n, data.n_classes).to(device=device, dtype=dtype)
            before = index * per_variant  # steps of the variants trained before this one
            payload["variant"] = variant

            def report(event: Event) -> None:
                progress(Event(before + event.step, due.total, carried | named(variant, event.metrics), payload))
                carried.clear()

            trained = fit(model, X_train, y_train, self.epochs, self.batch_size, self.lr, seed=self.seed,
                          evaluate=evaluate, select=select, callback=report, stop=stop.is_set,
                          cadence=lambda step: due(before + step))
            carried |= named(variant, trained.unreported)
            if trained.epochs:
                history[variant] = trained.columns()
                probed = spectra(model, probe)
                metrics |= variant_metrics(variant, trained, probed)
                if variant == self.bn:
                    payload["spectra"] = probed
        metrics["epochs_done"] = len(history[self.bn].get("epoch", []))
        return Result(metrics=metrics, artifacts={"model": models[self.bn], "models": models, "data": data,
                                                  "history": history, "payload": payload})

"""The ``lightsb`` experiment: train a Light Schrödinger Bridge between a source and a target and check it
against ground truth where the pair has one.

Datasets (``workbench.methods.eot_benchmark``): ``gaussian`` (closed-form plan in any dimension),
``swiss_roll`` and ``eight_gaussians`` (2-D toys from N(0, I)), ``mixture_benchmark`` and
``mixture_benchmark_rotated`` (the Gaussian-mixture EOT benchmark, axis-aligned or rotated components,
generated seed-exactly; its plan is exactly a LightSB model, so a perfect fit exists).

Metrics: ``loss`` (mean L(θ) over the last logging window) and ``bw2_uvp`` (sampled BW2-UVP of the mapped
source against the target) always; with ground truth also ``cbw2_uvp`` (analytic conditional BW2-UVP on
1000 fixed test points), ``kl`` (KL(π* ‖ π_θ) = L(θ) − L(θ*) estimated on 16384 common samples) and, for the
Gaussian pair, ``cond_mean_rel_error`` / ``cond_cov_rel_error`` against the closed form.
Curves: ``loss`` at every event and ``cbw2_uvp`` (or ``bw2_uvp`` without ground truth) ten times a run.
Events come every 1 % of the steps with payload {model, x0, x1, dataset}: a live panel draws the mapped
samples and SDE trajectories from it. Artifacts: ``model``, ``pair`` (the dataset) and the plotted ``x0``, ``x1``.
"""
from __future__ import annotations

import copy
import threading

import param
import torch

from workbench.experiment import ConfigError, Event, Experiment, Result, one_thread_on_cpu, register
from workbench.methods.eot_benchmark import DATASETS, GaussianPair, MixtureBenchmark, check_dataset, make_pair
from workbench.methods.lightsb import LightSB, fit
from workbench.methods.gaussian_metrics import bw2_uvp, cbw2_uvp_from_moments

N_PLOT = 512  # source/target samples kept for pictures
N_EVAL = 16_384  # samples for KL and BW2-UVP estimates


def exact_model(pair) -> LightSB | None:
    """θ*: the LightSB model equal to the pair's EOT plan (float64), or None when no closed form is known."""
    if isinstance(pair, GaussianPair):
        K, _ = pair.bridge
        r = pair.m1 - K @ pair.m0  # E[x1 | x0] = r + K x0
        return LightSB.from_parameters(torch.zeros(1, dtype=torch.float64), r[None], K[None], pair.epsilon)
    if isinstance(pair, MixtureBenchmark):
        return LightSB.from_potential(pair.weights, pair.means, pair.covs, pair.epsilon, diagonal=not pair.rotated)
    return None


@torch.no_grad()
def evaluate(model: LightSB, pair, generator: torch.Generator, full: bool = True) -> dict[str, float]:
    """Metrics of ``model`` on ``pair`` (computed on a float64 CPU copy). ``full=False``: only the cheap
    headline metric (cBW2-UVP with ground truth, else BW2-UVP on fewer samples)."""
    model = copy.deepcopy(model).to("cpu", torch.float64)
    theta_star = exact_model(pair)
    metrics: dict[str, float] = {}
    if theta_star is not None:
        x = pair.test_points
        mean, cov = model.conditional_moments(x)
        true_mean, true_cov = pair.conditional_moments(x)
        metrics["cbw2_uvp"] = cbw2_uvp_from_moments(mean, cov, true_mean, true_cov, pair.y_var)
        if not full:
            return metrics
        if isinstance(pair, GaussianPair):
            error = (mean - true_mean).norm(dim=-1).mean() / true_mean.norm(dim=-1).mean()
            metrics["cond_mean_rel_error"] = float(error)
            metrics["cond_cov_rel_error"] = float((cov[0] - true_cov[0]).norm() / true_cov[0].norm())
    n = N_EVAL if full else N_EVAL // 8
    x0, x1 = pair.sample_x0(n, generator).double(), pair.sample_x1(n, generator).double()
    metrics["bw2_uvp"] = bw2_uvp(model.sample(x0, generator), x1)
    if theta_star is not None:
        metrics["kl"] = float(model.loss(x0, x1) - theta_star.loss(x0, x1))
    return metrics


@register
class LightSBExperiment(Experiment):
    """Light Schrödinger Bridge (Korotin et al., ICLR 2024): a Gaussian-mixture potential gives the EOT plan,
    its sampler and the bridge's drift in closed form; trained by minimising E log c_θ(x0) − E log v_θ(x1)."""

    name = param.String("lightsb", constant=True)
    headline = ("cbw2_uvp", "kl", "bw2_uvp")
    tiny_params = {"steps": 200, "batch_size": 64, "n_components": 8}

    dataset = param.Selector(default="gaussian", objects=list(DATASETS), doc=(
        "Source → target pair: gaussian (closed form), swiss_roll / eight_gaussians (2-D, from N(0, I)), "
        "mixture_benchmark / mixture_benchmark_rotated (Gaussian-mixture EOT benchmark, exact plan known)."))
    dim = param.Integer(4, bounds=(1, 4096), doc="Data dimension D (swiss_roll and eight_gaussians need 2).")
    epsilon = param.Number(0.5, bounds=(1e-3, 100), doc="ε, the variance of the reference Brownian motion W^ε.")
    n_components = param.Integer(None, allow_None=True, bounds=(1, 10_000), doc=(
        "K, components of the Gaussian-mixture potential; auto = 1 for the Gaussian pair (exact), 50 otherwise "
        "(the official benchmark setting)."))
    steps = param.Integer(2000, bounds=(1, 1_000_000), doc="Adam steps.")
    batch_size = param.Integer(256, bounds=(1, 1_000_000), doc="Source and target samples per step (each).")
    lr = param.Number(1e-2, bounds=(0, 10), inclusive_bounds=(False, True), doc=(
        "Adam learning rate (reference EOT notebook: 1e-3 / 3e-3 / 6e-2 for ε = 0.1 / 1 / 10 over 10k steps)."))
    S_init = param.Number(0.1, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Initial eigenvalues of every S_k (reference: 1.0 on the benchmark, 0.1 elsewhere)."))
    diagonal = param.Boolean(None, allow_None=True, doc=(
        "Diagonal S_k (reference experiments) or full S_k = U_k diag(s_k) U_kᵀ; auto = full for the Gaussian pair "
        "(correlated covariances), diagonal otherwise."))
    pair_seed = param.Integer(0, bounds=(0, 2**31 - 1), doc=(
        "Seed of the random pair (gaussian, mixture_benchmark*); the toys ignore it."))

    @property
    def components(self) -> int:
        """K: ``n_components``, or when auto 1 for the Gaussian pair and 50 otherwise."""
        return self.n_components or (1 if self.dataset == "gaussian" else 50)

    @property
    def diagonal_S(self) -> bool:
        """``diagonal``, or when auto full S_k for the Gaussian pair and diagonal otherwise."""
        return self.dataset != "gaussian" if self.diagonal is None else self.diagonal

    def validate(self) -> None:
        try:
            check_dataset(self.dataset, self.dim)
        except ValueError as error:
            raise ConfigError(f"{self.name}: parameter 'dim' = {self.dim} is not allowed: {error}") from None

    def run(self, progress, stop: threading.Event) -> Result:
        self.validate()
        with one_thread_on_cpu(self.torch_device):  # batches of 256 points in a few dimensions: one thread is as fast
            return self._run(progress, stop, self.torch_device)

    def _run(self, progress, stop: threading.Event, device) -> Result:
        pair = make_pair(self.dataset, self.dim, self.epsilon, self.pair_seed)
        generator = torch.Generator().manual_seed(self.seed)
        x0_plot, x1_plot = pair.sample_x0(N_PLOT, generator), pair.sample_x1(N_PLOT, generator)

        model = LightSB(self.dim, self.components, self.epsilon, self.diagonal_S, self.S_init).to(device)
        model.init_r_by_samples(pair.sample_x1(self.components, generator).to(device))
        eval_every = 10 * max(1, self.steps // 100)  # on the step schedule: a run is the same at any speed
        payload = {"model": model, "x0": x0_plot, "x1": x1_plot, "dataset": self.dataset}
        last = {"loss": float("nan")}

        def report(event: Event) -> None:
            last["loss"] = event.metrics["loss"]
            if event.step % eval_every == 0 or event.step == self.steps:
                event.metrics |= evaluate(model, pair, generator, full=False)
            event.payload = payload
            progress(event)

        steps_done = fit(model, lambda n: pair.sample_x0(n, generator).to(device),
                         lambda n: pair.sample_x1(n, generator).to(device),
                         steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                         callback=report, stop=stop.is_set)
        metrics = {"loss": last["loss"], "steps_done": steps_done} | evaluate(model, pair, generator)
        return Result(metrics=metrics, artifacts={"model": model, "pair": pair, "x0": x0_plot, "x1": x1_plot})

"""The ``koopman`` experiment: learn a linear latent dynamics for a nonlinear system and compare it with DMD
and EDMD on the same held-out trajectories.

Data (``workbench.methods.koopman``): ``n_trajectories`` seeded trajectories of ``system`` (linear, pendulum,
van_der_pol, duffing, lorenz), observed as the ``state`` or ``lifted`` through a fixed random map
y = tanh(0.7·Wx + b) to ``obs_dim`` dimensions, optional observation noise on the training set, split by
trajectory (the last ``n_test`` are the test set).

Models: ``ae`` (the Koopman autoencoder with the information-theoretic Lagrangian, Cheng, Yuan et al.,
ICLR 2026), ``dmd`` (exact DMD) or ``edmd`` (EDMD with the ``edmd_dictionary``). With ``baselines`` on, DMD,
polynomial EDMD and RBF-EDMD are also fitted on the same training data and scored on the same test rollouts.

Metrics: ``nrmse@5``, ``nrmse@20``, ``nrmse@50`` (RMSE at step n over rollouts started every ``eval_stride``
steps of the test trajectories, divided by the test data's pooled standard deviation, see
:func:`~workbench.methods.koopman.nrmse`), ``effective_dimension`` (exp S of the latents of every training
snapshot; for DMD the state, for EDMD the dictionary features), ``spectral_radius`` (max |λ(K)|), on the
linear system ``eigenvalue_error`` (max distance of the true one-step eigenvalues to their matched estimates);
the baselines' ``dmd_…``, ``edmd_poly_…``, ``edmd_rbf_…`` versions; for ``ae`` the loss parts (``loss``,
``rec``, ``pred``, ``nce``, ``consistency``, ``entropy``, ``d_eff`` of the last logging window) and
``steps_done``. Events come every 1 % of the steps with payload {model, history, test, test_states, dt,
system, observation, baselines}: the live picture draws losses, d_eff, rollouts, K's eigenvalues and the latent
trajectories from it. Artifacts: ``model``, ``data``, ``baselines`` ({name: fitted DMD/EDMD}).
"""
from __future__ import annotations

import math
import threading

import param
import torch

from workbench.experiment import ConfigError, Event, Experiment, Result, register
from workbench.methods.koopman import (
    HORIZONS, SYSTEMS, DMD, EDMD, KoopmanAutoencoder, LossWeights, PolynomialDictionary, RBFDictionary, data_std,
    dmd, edmd, effective_dimension, eigenvalue_error, fit, linear_eigenvalues, make_data, nrmse, windows,
)

EVAL_STEPS = max(HORIZONS)  # rollouts of 50 steps
MAX_POLY_FEATURES = 5000
BASELINES = ("dmd", "edmd_poly", "edmd_rbf")


def pairs(trajectories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Snapshot pairs (x_t, x_{t+1}) of every trajectory, (N, T + 1, D) -> X, Y (N·T, D)."""
    D = trajectories.shape[-1]
    return trajectories[:, :-1].reshape(-1, D), trajectories[:, 1:].reshape(-1, D)


def n_polynomial_features(dim: int, degree: int) -> int:
    return math.comb(dim + degree, degree)


@register
class KoopmanExperiment(Experiment):
    """Koopman autoencoder with the information-theoretic Lagrangian, against DMD and EDMD on the same test rollouts.

    Cheng, Yuan et al., "Information Shapes Koopman Representation", ICLR 2026:
    L = L_rec + L_pred − α·Î + β·‖z' − zK‖² − γ·S (the paper's sign of S by default)."""

    name = param.String("koopman", constant=True)
    headline = ("nrmse@50", "effective_dimension")

    system = param.Selector(default="pendulum", objects=list(SYSTEMS), doc=(
        "Dynamical system: linear (known eigenvalues), pendulum (θ'' = −sin θ − 0.1θ'), van_der_pol (limit "
        "cycle), duffing (double well), lorenz (Lorenz-63, chaotic)."))
    observation = param.Selector(default="state", objects=["state", "lifted"], doc=(
        "Observe the state itself, or lifted through a fixed random map y = tanh(0.7·Wx + b) to obs_dim dims."))
    model = param.Selector(default="ae", objects=["ae", "dmd", "edmd"], doc=(
        "The model whose metrics are nrmse@n / effective_dimension: the Koopman autoencoder, exact DMD, or EDMD."))
    latent_dim = param.Integer(8, bounds=(1, 512), doc="Latent size d of the autoencoder (K is d × d).")
    hidden = param.Integer(64, bounds=(1, 4096), doc="Width of the encoder's and decoder's two hidden layers.")
    koopman = param.Selector(default="learned", objects=["learned", "ridge"], doc=(
        "K: learned nn.Linear with the β consistency term (paper), or the released code's closed-form ridge "
        "fit per batch (λ = 0.1, detached)."))
    alpha = param.Number(2.0, bounds=(0, 100), doc="α, weight of the InfoNCE temporal mutual information term.")
    beta = param.Number(1.0, bounds=(0, 100), doc="β, weight of the consistency term ‖z_{n+1} − z_n K‖².")
    gamma = param.Number(0.1, bounds=(0, 100), doc="γ, weight of the von Neumann entropy S of the latent covariance.")
    entropy_sign = param.Selector(default="paper", objects=["paper", "code"], doc=(
        "paper: L −= γS (maximise S, anti-collapse); code: the released code's L += γS (minimises S)."))
    k = param.Integer(3, bounds=(1, 100), doc="InfoNCE positives: the temporal neighbours z_{n±i}, 1 ≤ i ≤ k.")
    tau = param.Number(0.1, bounds=(0, 10), inclusive_bounds=(False, True), doc="InfoNCE temperature τ.")
    negatives = param.Selector(default="window", objects=["window", "batch"], doc=(
        "InfoNCE negatives: other steps of the same window (released code) or every latent of the batch (paper)."))
    horizon = param.Integer(50, bounds=(1, 10_000), doc=(
        "Training windows have horizon + 1 snapshots; the prediction loss rolls z_0 Kʰ out for h = 1..horizon "
        "(50: the longest evaluated forecast)."))
    steps = param.Integer(1000, bounds=(1, 1_000_000), doc="Adam steps of the autoencoder.")
    batch_size = param.Integer(64, bounds=(1, 100_000), doc="Windows per step.")
    lr = param.Number(1e-3, bounds=(0, 1), inclusive_bounds=(False, True), doc="Adam learning rate.")
    n_trajectories = param.Integer(60, bounds=(2, 100_000), doc="Simulated trajectories, train + test.")
    n_test = param.Integer(10, bounds=(1, 100_000), doc="Held-out test trajectories (the last ones).")
    n_steps = param.Integer(200, bounds=(1, 1_000_000), doc="Steps per trajectory (each has n_steps + 1 snapshots).")
    dt = param.Number(None, allow_None=True, bounds=(0, 10), inclusive_bounds=(False, True), doc=(
        "Time step; empty: the system's default (0.1; lorenz 0.01)."))
    noise = param.Number(0.0, bounds=(0, 10), doc=(
        "Observation noise on the training set, relative to each channel's standard deviation."))
    obs_dim = param.Integer(64, bounds=(1, 4096), doc="Dimension of the lifted observation.")
    data_seed = param.Integer(0, bounds=(0, 2**31 - 1), doc="Seed of the initial conditions (seed seeds the model).")
    dmd_rank = param.Integer(None, allow_None=True, bounds=(1, 100_000), doc=(
        "DMD rank truncation; auto keeps every non-zero singular value."))
    poly_degree = param.Integer(2, bounds=(1, 8), doc="Polynomial EDMD: monomials up to this degree.")
    rbf_centres = param.Integer(100, bounds=(1, 10_000), doc="RBF-EDMD: k-means centres (plus the state).")
    edmd_dictionary = param.Selector(default="rbf", objects=["rbf", "polynomial"], doc=(
        "Dictionary of EDMD when model = edmd."))
    baselines = param.Boolean(True, doc="Also fit DMD, polynomial and RBF EDMD and report dmd_/edmd_poly_/edmd_rbf_ metrics.")
    eval_stride = param.Integer(10, bounds=(1, 100_000), doc="Test rollouts start every eval_stride steps.")

    def validate(self) -> None:
        def fail(key: str, why: str) -> None:
            raise ConfigError(f"{self.name}: parameter {key!r} = {getattr(self, key)!r} is not allowed: {why}")

        if self.n_test >= self.n_trajectories:
            fail("n_test", f"it must be smaller than n_trajectories = {self.n_trajectories} (some must be for training)")
        if self.n_steps < EVAL_STEPS:
            fail("n_steps", f"NRMSE@{EVAL_STEPS} needs trajectories of at least {EVAL_STEPS} steps")
        if self.model == "ae" and self.horizon > self.n_steps:
            fail("horizon", f"training windows of horizon + 1 = {self.horizon + 1} snapshots are longer than the "
                            f"trajectories (n_steps + 1 = {self.n_steps + 1}); allowed: horizon <= n_steps")
        if self.model == "ae" and self.alpha > 0 and self.horizon + 1 < 2 * self.k + 1:
            fail("k", f"InfoNCE needs windows of at least 2k + 1 = {2 * self.k + 1} snapshots, but horizon + 1 = "
                      f"{self.horizon + 1}; allowed: k <= {self.horizon // 2} (or alpha = 0)")
        dim = self.obs_dim if self.observation == "lifted" else SYSTEMS[self.system].state_dim
        needs_poly = self.baselines or (self.model == "edmd" and self.edmd_dictionary == "polynomial")
        if needs_poly and n_polynomial_features(dim, self.poly_degree) > MAX_POLY_FEATURES:
            fail("poly_degree", f"{n_polynomial_features(dim, self.poly_degree)} monomials in {dim} dimensions exceed "
                                f"{MAX_POLY_FEATURES}; allowed here: a lower degree")
        n_train = (self.n_trajectories - self.n_test) * self.n_steps
        if self.rbf_centres > n_train:
            fail("rbf_centres", f"more centres than training snapshot pairs ({n_train})")

    # --- pieces ---------------------------------------------------------------------------------------

    def make_data(self):
        return make_data(self.system, self.n_trajectories, self.n_test, self.n_steps, self.dt, self.data_seed,
                         self.observation, self.noise, self.obs_dim)

    def fit_baselines(self, train: torch.Tensor, names=BASELINES) -> dict[str, DMD | EDMD]:
        X, Y = pairs(train)
        fitted: dict[str, DMD | EDMD] = {}
        if "dmd" in names:
            fitted["dmd"] = dmd(X, Y, rank=self.dmd_rank)
        if "edmd_poly" in names:
            fitted["edmd_poly"] = edmd(X, Y, PolynomialDictionary(X.shape[1], self.poly_degree))
        if "edmd_rbf" in names:
            fitted["edmd_rbf"] = edmd(X, Y, RBFDictionary.fit(X, self.rbf_centres, seed=self.seed))
        return fitted

    def score(self, predictor, test: torch.Tensor, std: float) -> dict[str, float]:
        """nrmse@5/20/50 of ``predictor.predict`` on the test rollouts."""
        W = windows(test, EVAL_STEPS + 1, self.eval_stride)  # (M, 51, D)
        prediction = predictor.predict(W[:, 0], EVAL_STEPS).to(W.dtype)  # (M, 51, D)
        return {f"nrmse@{n}": value for n, value in nrmse(prediction, W, std).items()}

    def spectrum_metrics(self, eigenvalues: torch.Tensor, dt: float) -> dict[str, float]:
        metrics = {"spectral_radius": float(eigenvalues.abs().max())}
        if self.system == "linear" and self.observation == "state":
            metrics["eigenvalue_error"] = eigenvalue_error(eigenvalues, linear_eigenvalues(dt).to(eigenvalues.device))
        return metrics

    # --- the run --------------------------------------------------------------------------------------

    def run(self, progress, stop: threading.Event) -> Result:
        self.validate()
        device = self.torch_device
        data = self.make_data()
        train, test = data.train.to(device), data.test.to(device)  # float64
        std = data_std(test)
        metrics: dict[str, float] = {}
        fitted = self.fit_baselines(train, BASELINES if self.baselines else ())
        for name, baseline in fitted.items():
            scores = self.score(baseline, test, std) | self.spectrum_metrics(baseline.eigenvalues, data.dt)
            metrics |= {f"{name}_{key}": value for key, value in scores.items()}

        history: dict[str, list] = {"step": []}
        payload = {"model": None, "history": history, "test": data.test[:4], "test_states": data.test_states[:4],
                   "dt": data.dt, "system": self.system, "observation": self.observation, "baselines": fitted}
        if self.model == "ae":
            model = KoopmanAutoencoder(data.obs_dim, self.latent_dim, self.hidden, self.koopman).to(device)
            train_windows = windows(train.float(), self.horizon + 1)  # (M, horizon + 1, D)
            model.set_normalization(train.float())
            payload["model"] = model
            weights = LossWeights(self.alpha, self.beta, self.gamma, self.entropy_sign, self.k, self.tau,
                                  self.negatives, self.horizon)
            last: dict[str, float] = {}

            def report(step: int, means: dict[str, float]) -> None:
                last.update(means)
                history["step"].append(step)
                for key, value in means.items():
                    history.setdefault(key, []).append(value)
                progress(Event(step, self.steps, dict(means), payload))

            steps_done = fit(model, train_windows, weights, self.steps, self.batch_size, self.lr, seed=self.seed,
                             callback=report, stop=stop.is_set)
            model.eval()
            with torch.no_grad():
                Z = torch.cat([model.encode(chunk) for chunk in train.float().reshape(-1, data.obs_dim).split(8192)])
                K = model.K.detach().double()
            metrics |= last | {"steps_done": steps_done}
            metrics |= self.score(model, test.float(), std) | {"effective_dimension": effective_dimension(Z)}
            metrics |= self.spectrum_metrics(torch.linalg.eigvals(K), data.dt)
        else:
            if self.model == "dmd":
                model = fitted.get("dmd") or self.fit_baselines(train, ("dmd",))["dmd"]
                features = pairs(train)[0]
            else:
                key = "edmd_rbf" if self.edmd_dictionary == "rbf" else "edmd_poly"
                model = fitted.get(key) or self.fit_baselines(train, (key,))[key]
                features = model.dictionary(pairs(train)[0])
            metrics |= self.score(model, test, std) | {"effective_dimension": effective_dimension(features)}
            metrics |= self.spectrum_metrics(model.eigenvalues, data.dt)
            payload["model"] = model
            progress(Event(1, 1, {"nrmse@20": metrics["nrmse@20"]}, payload))
        return Result(metrics=metrics, artifacts={"model": model, "data": data, "baselines": fitted})

"""Source/target pairs for entropic OT: Gaussians (closed form), 2-D toys, and the Gaussian-mixture benchmark.

Every pair exposes ``dim``, ``epsilon`` and ``sample_x0(n, generator=None)`` / ``sample_x1(n, generator=None)``
returning float32 (n, D) tensors. The pairs with a known EOT plan (:class:`GaussianPair`,
:class:`MixtureBenchmark`) also give ``conditional_moments(x0)`` (exact, float64), fixed ``test_points``
and ``y_var`` = tr Cov P1, the normaliser of cBW2-UVP (see ``workbench.methods.gaussian_metrics``).

The mixture benchmark follows Gushchin et al., "Building the Bridge of Schrödinger: A Continuous Entropic
Optimal Transport Benchmark", NeurIPS 2023: P0 = N(0, I) and a Gaussian-mixture Schrödinger potential
φ = Σ_m p_m N(μ_m, Σ_m) define the plan

    π*(y | x) = Σ_m w_m(x) N(y | Σ'_m Σ_m⁻¹ μ_m + (Σ'_m / ε) x, Σ'_m),
    Σ'_m = (Σ_m⁻¹ + I/ε)⁻¹,   w_m(x) ∝ p_m N(x | μ_m, Σ_m + εI),

and P1 is P0 pushed through it. The official pairs' seeds are not public, so :meth:`MixtureBenchmark.generate`
draws pairs of the same kind seed-exactly (the workbench's recipe, method note §7a).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from workbench.methods.lightsb import gaussian_bridge, mixture_moments

N_COMPONENTS = 5  # M, components of the benchmark potential
N_TEST_POINTS = 1000
N_Y_VAR_SAMPLES = 100_000


def _test_points(dim: int) -> torch.Tensor:
    """The fixed cBW2-UVP inputs: ``default_rng([12345, D]).standard_normal((1000, D))``, float64."""
    return torch.from_numpy(np.random.default_rng([12345, dim]).standard_normal((N_TEST_POINTS, dim)))


class _StandardNormalSource:
    """P0 = N(0, I_D)."""

    dim: int

    def sample_x0(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator, dtype=torch.float32)


@dataclass
class GaussianPair:
    """p0 = N(m0, A) → p1 = N(m1, B); the plan is Gaussian with E[x1|x0] = m1 + K (x0 − m0), Cov = εK
    (:func:`~workbench.methods.lightsb.gaussian_bridge`). Tensors are float64."""

    m0: torch.Tensor
    A: torch.Tensor
    m1: torch.Tensor
    B: torch.Tensor
    epsilon: float

    @classmethod
    def random(cls, dim: int, epsilon: float, seed: int = 0) -> "GaussianPair":
        """Seeded random pair: m0, m1 ~ N(0, I) and A, B = G Gᵀ / D + ½ I with G standard normal (D, D),
        all from ``default_rng([seed, D])``."""
        rng = np.random.default_rng([seed, dim])
        m0, m1 = rng.standard_normal(dim), rng.standard_normal(dim)
        A, B = (G @ G.T / dim + 0.5 * np.eye(dim) for G in rng.standard_normal((2, dim, dim)))
        return cls(*(torch.from_numpy(a) for a in (m0, A, m1, B)), epsilon=float(epsilon))

    @property
    def dim(self) -> int:
        return self.m0.shape[0]

    @cached_property
    def _chol(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.linalg.cholesky(self.A).float(), torch.linalg.cholesky(self.B).float()

    def sample_x0(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.m0.float() + torch.randn(n, self.dim, generator=generator, dtype=torch.float32) @ self._chol[0].T

    def sample_x1(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.m1.float() + torch.randn(n, self.dim, generator=generator, dtype=torch.float32) @ self._chol[1].T

    @cached_property
    def bridge(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, εK) of the closed-form plan."""
        return gaussian_bridge(self.m0, self.A, self.m1, self.B, self.epsilon)

    def conditional_moments(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact E[x1 | x0] = m1 + K (x0 − m0) and Cov[x1 | x0] = εK: (N, D) -> (N, D), (N, D, D), float64."""
        K, cov = self.bridge
        x0 = x0.to(torch.float64)
        return self.m1 + (x0 - self.m0) @ K.T, cov.expand(x0.shape[0], -1, -1)

    @cached_property
    def test_points(self) -> torch.Tensor:
        """m0 + A^½ z for the fixed standard-normal z of the mixture benchmark, (1000, D) float64."""
        return self.m0 + _test_points(self.dim) @ torch.linalg.cholesky(self.A).T

    @property
    def y_var(self) -> float:
        """tr Cov P1 = tr B, exact."""
        return float(self.B.trace())


@dataclass
class MixtureBenchmark(_StandardNormalSource):
    """The Gaussian-mixture EOT benchmark pair: P0 = N(0, I), potential φ = Σ_m p_m N(μ_m, Σ_m).

    Fields are the potential (float64): ``weights`` (M,), ``means`` (M, D), ``covs`` (M, D, D)."""

    weights: torch.Tensor
    means: torch.Tensor
    covs: torch.Tensor
    epsilon: float
    seed: int = 0
    rotated: bool = False
    plan: dict[str, torch.Tensor] = field(init=False, repr=False)

    @classmethod
    def generate(cls, dim: int, epsilon: float, seed: int = 0, rotated: bool = False) -> "MixtureBenchmark":
        """The workbench's seed-exact recipe: ``rng = default_rng([seed, D, round(1000 ε)])``, M = 5;
        p ~ Dirichlet(5·1), μ ~ U(−3, 3)^{M×D}; per component λ_m = min(ε, 1)·U(0.1, 0.5)^D and, in the
        rotated variant right after λ_m, Q_m from the QR of a standard normal (D, D) (columns' signs fixed
        by diag R): Σ_m = Q_m diag(λ_m) Q_mᵀ; axis-aligned: Σ_m = diag(λ_m)."""
        rng = np.random.default_rng([seed, dim, round(epsilon * 1000)])
        p = rng.dirichlet(5 * np.ones(N_COMPONENTS))
        mu = rng.uniform(-3, 3, size=(N_COMPONENTS, dim))
        covs = []
        for _ in range(N_COMPONENTS):
            lam = min(epsilon, 1) * rng.uniform(0.1, 0.5, size=dim)
            if rotated:
                Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
                Q = Q * np.sign(np.diag(R))
                covs.append(Q @ np.diag(lam) @ Q.T)
            else:
                covs.append(np.diag(lam))
        return cls(torch.from_numpy(p), torch.from_numpy(mu), torch.from_numpy(np.stack(covs)),
                   epsilon=float(epsilon), seed=seed, rotated=rotated)

    def __post_init__(self):
        """Precompute the plan's pieces straight from the formulas above (float64), independently of LightSB:
        Σ' = (Σ⁻¹ + I/ε)⁻¹, b = Σ'Σ⁻¹μ, G = Σ'/ε, the Cholesky factor L of Σ', and for the weights
        log p_m + log N(x | μ_m, Σ_m + εI) the precision and log-determinant of Σ + εI."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        Sigma_inv = torch.linalg.inv(self.covs)  # (M, D, D)
        Sigma_prime = torch.linalg.inv(Sigma_inv + eye / self.epsilon)
        Sigma_prime = 0.5 * (Sigma_prime + Sigma_prime.mT)
        weight_cov = self.covs + self.epsilon * eye  # Σ + εI
        self.plan = {
            "means": self.means,  # (M, D)
            "b": (Sigma_prime @ Sigma_inv @ self.means.unsqueeze(-1)).squeeze(-1),  # (M, D)
            "G": Sigma_prime / self.epsilon,  # (M, D, D)
            "Sigma_prime": Sigma_prime,
            "L": torch.linalg.cholesky(Sigma_prime),
            "precision": torch.linalg.inv(weight_cov),
            "log_norm": self.weights.log() - 0.5 * torch.logdet(2 * math.pi * weight_cov),  # (M,)
        }

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @cached_property
    def _plan32(self) -> dict[str, torch.Tensor]:
        return {k: v.float() for k, v in self.plan.items()}

    def _components(self, x: torch.Tensor, plan: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """log w_m(x) up to a constant, (N, M), and the component means b_m + G_m x, (N, M, D)."""
        diff = x.unsqueeze(1) - plan["means"]  # (N, M, D)
        logits = plan["log_norm"] - 0.5 * torch.einsum("nmd,mde,nme->nm", diff, plan["precision"], diff)
        return logits, plan["b"] + torch.einsum("mde,ne->nmd", plan["G"], x)

    def sample_x1(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """y ~ P1: x ~ N(0, I), m ~ Categorical(w(x)), y = b_m + G_m x + chol(Σ'_m) z. (n, D) float32."""
        x = self.sample_x0(n, generator)
        plan = self._plan32
        logits, means = self._components(x, plan)  # (n, M), (n, M, D)
        m = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float32)
        noise = torch.einsum("mde,ne->nmd", plan["L"], z)  # (n, M, D)
        rows = torch.arange(n)
        return means[rows, m] + noise[rows, m]

    def conditional_moments(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean and covariance of π*(· | x0): (N, D) -> (N, D), (N, D, D), float64."""
        logits, means = self._components(x0.to(torch.float64), self.plan)
        return mixture_moments(torch.softmax(logits, dim=-1), means, self.plan["Sigma_prime"])

    @cached_property
    def test_points(self) -> torch.Tensor:
        """``default_rng([12345, D]).standard_normal((1000, D))``, float64."""
        return _test_points(self.dim)

    @cached_property
    def y_var(self) -> float:
        """tr Cov P1 from 100k samples drawn with ``torch.Generator().manual_seed(seed)``."""
        y = self.sample_x1(N_Y_VAR_SAMPLES, torch.Generator().manual_seed(self.seed)).double()
        return float(y.var(dim=0).sum())


@dataclass
class SwissRoll(_StandardNormalSource):
    """N(0, I_2) → the 2-D swiss roll of the LightSB notebooks: sklearn ``make_swiss_roll(noise=0.8)``
    columns [0, 2] divided by 7.5, i.e. τ = 1.5π(1 + 2u), u ~ U(0, 1),
    y = ((τ cos τ, τ sin τ) + 0.8 z) / 7.5, z ~ N(0, I_2) (same distribution, drawn in torch)."""

    epsilon: float
    dim: int = 2

    def sample_x1(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        tau = 1.5 * math.pi * (1 + 2 * torch.rand(n, 1, generator=generator, dtype=torch.float32))  # (n, 1)
        roll = torch.cat([tau * tau.cos(), tau * tau.sin()], dim=1)
        return (roll + 0.8 * torch.randn(n, 2, generator=generator, dtype=torch.float32)) / 7.5


@dataclass
class EightGaussians(_StandardNormalSource):
    """N(0, I_2) → eight Gaussians N(c_j, σ² I) with equal weights, centres c_j = ρ (cos jπ/4, sin jπ/4),
    ρ = 4, σ = 0.5 (the usual toy, scaled to the unit-variance source)."""

    epsilon: float
    dim: int = 2
    radius: float = 4.0
    std: float = 0.5

    def sample_x1(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        angle = (math.pi / 4) * torch.randint(8, (n, 1), generator=generator, dtype=torch.float32)  # (n, 1)
        centres = self.radius * torch.cat([angle.cos(), angle.sin()], dim=1)
        return centres + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float32)


DATASETS = ("gaussian", "swiss_roll", "eight_gaussians", "mixture_benchmark", "mixture_benchmark_rotated")
TWO_D_DATASETS = ("swiss_roll", "eight_gaussians")


def check_dataset(name: str, dim: int) -> None:
    """Raise ValueError unless ``name`` is one of ``DATASETS`` and ``dim`` suits it (the 2-D toys need dim = 2)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name in TWO_D_DATASETS and dim != 2:
        raise ValueError(f"dataset {name!r} is two-dimensional: it needs dim = 2, got dim = {dim}")


def make_pair(name: str, dim: int, epsilon: float, seed: int = 0):
    """The pair called ``name`` (one of ``DATASETS``) in dimension ``dim``; ``seed`` picks the random
    Gaussian pair or the mixture benchmark's potential (the toys have none)."""
    check_dataset(name, dim)
    if name == "gaussian":
        return GaussianPair.random(dim, epsilon, seed)
    if name == "swiss_roll":
        return SwissRoll(epsilon)
    if name == "eight_gaussians":
        return EightGaussians(epsilon)
    return MixtureBenchmark.generate(dim, epsilon, seed, rotated=name == "mixture_benchmark_rotated")

"""The dynamical systems of the Koopman lab and their data: seeded trajectories, observed directly or through a
fixed random lift, with observation noise, split by trajectory into windows and snapshot pairs.

Row vectors throughout (snapshots are rows, as in the released code): x_{t+1} = x_t K for a linear map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

PENDULUM_DAMPING = 0.1
VDP_MU = 1.0
DUFFING = {"delta": 0.5, "alpha": -1.0, "beta": 1.0}
LORENZ = {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
# the linear system: continuous-time eigenvalues μ, in a fixed rotated basis (so A is not diagonal)
LINEAR_MU = (complex(-0.05, 1.0), complex(-0.2, 2.5))
RK4_MAX_STEP = 0.01  # internal RK4 step; dt is split into ceil(dt / max_step) sub-steps (Lorenz: 0.0025)


def _linear_matrix() -> torch.Tensor:
    """A (4, 4), real, with eigenvalues μ, μ̄ for μ in LINEAR_MU: 2×2 blocks [[a, b], [−b, a]] in the basis of a
    fixed orthogonal Q (float64)."""
    blocks = torch.zeros(4, 4, dtype=torch.float64)
    for i, mu in enumerate(LINEAR_MU):
        blocks[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[mu.real, mu.imag], [-mu.imag, mu.real]],
                                                                    dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    return Q @ blocks @ Q.T


def linear_eigenvalues(dt: float) -> torch.Tensor:
    """The exact eigenvalues of the linear system's one-step map x_{t+1} = x_t e^{Aᵀdt}: e^{μ dt}, (4,) complex128."""
    mu = torch.tensor([m for pair in LINEAR_MU for m in (pair, pair.conjugate())], dtype=torch.complex128)
    return torch.exp(mu * dt)


def linear_step_map(dt: float) -> torch.Tensor:
    """The linear system's exact one-step Koopman matrix in the row convention, K = e^{Aᵀ dt} (4, 4) float64:
    x_{t+1} = x_t K, so x_n = x_0 Kⁿ, and eig(K) = :func:`linear_eigenvalues`. K is not symmetric, so a
    rollout that uses Kᵀ (the column convention) instead of K is visibly wrong on it."""
    return torch.linalg.matrix_exp(_linear_matrix() * dt).T


def _pendulum(x: torch.Tensor) -> torch.Tensor:
    """θ'' = −sin θ − 0.1 θ': (B, 2) -> (B, 2)."""
    theta, omega = x.unbind(-1)
    return torch.stack([omega, -torch.sin(theta) - PENDULUM_DAMPING * omega], dim=-1)


def _van_der_pol(x: torch.Tensor) -> torch.Tensor:
    """x'' = μ (1 − x²) x' − x (a limit cycle of amplitude ≈ 2 for μ = 1): (B, 2) -> (B, 2)."""
    p, v = x.unbind(-1)
    return torch.stack([v, VDP_MU * (1 - p * p) * v - p], dim=-1)


def _duffing(x: torch.Tensor) -> torch.Tensor:
    """x'' = −δ x' − a x − b x³ (unforced, damped, double well for a < 0 < b): (B, 2) -> (B, 2)."""
    p, v = x.unbind(-1)
    return torch.stack([v, -DUFFING["delta"] * v - DUFFING["alpha"] * p - DUFFING["beta"] * p ** 3], dim=-1)


def _lorenz(x: torch.Tensor) -> torch.Tensor:
    """Lorenz-63, σ = 10, ρ = 28, β = 8/3: (B, 3) -> (B, 3)."""
    a, b, c = x.unbind(-1)
    return torch.stack([LORENZ["sigma"] * (b - a), a * (LORENZ["rho"] - c) - b, a * b - LORENZ["beta"] * c], dim=-1)


def _uniform(generator: torch.Generator, n: int, low: list[float], high: list[float]) -> torch.Tensor:
    low_t, high_t = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    return low_t + (high_t - low_t) * torch.rand(n, len(low), generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class System:
    """A dynamical system: ``state_dim``, vector field ``f`` (None: the exact linear flow), a sampler of
    initial conditions, a default time step and a burn-in (time units simulated and dropped first)."""

    name: str
    state_dim: int
    f: Callable[[torch.Tensor], torch.Tensor] | None
    initial: Callable[[torch.Generator, int], torch.Tensor]
    dt: float
    burn_in: float = 0.0
    doc: str = ""
    max_step: float = RK4_MAX_STEP


SYSTEMS: dict[str, System] = {
    "linear": System("linear", 4, None, lambda g, n: torch.randn(n, 4, generator=g, dtype=torch.float64), 0.1,
                     doc="x' = A x, A 4×4 with eigenvalues −0.05 ± 1i, −0.2 ± 2.5i (advanced exactly by e^{A dt})"),
    "pendulum": System("pendulum", 2, _pendulum, lambda g, n: _uniform(g, n, [-2.5, -1.0], [2.5, 1.0]), 0.1,
                       doc="θ'' = −sin θ − 0.1 θ', θ₀ ~ U(−2.5, 2.5), θ'₀ ~ U(−1, 1)"),
    "van_der_pol": System("van_der_pol", 2, _van_der_pol, lambda g, n: _uniform(g, n, [-3.0, -3.0], [3.0, 3.0]),
                          0.1, doc="x'' = (1 − x²) x' − x, x₀, x'₀ ~ U(−3, 3): a limit cycle"),
    "duffing": System("duffing", 2, _duffing, lambda g, n: _uniform(g, n, [-2.0, -2.0], [2.0, 2.0]), 0.1,
                      doc="x'' = −0.5 x' + x − x³, x₀, x'₀ ~ U(−2, 2): two wells"),
    "lorenz": System("lorenz", 3, _lorenz,
                     lambda g, n: torch.tensor([0.0, 1.0, 25.0], dtype=torch.float64)
                     + 5 * torch.randn(n, 3, generator=g, dtype=torch.float64), 0.01, burn_in=5.0,
                     doc="Lorenz-63 (σ = 10, ρ = 28, β = 8/3), x₀ ~ N((0, 1, 25), 25 I), 5 time units of burn-in",
                     max_step=0.0025),
}


def check_system(system: str) -> System:
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; allowed: {', '.join(SYSTEMS)}")
    return SYSTEMS[system]


def rk4_step(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float) -> torch.Tensor:
    """One classical Runge–Kutta step x ← x + h/6 (k1 + 2k2 + 2k3 + k4), batched: (B, D) -> (B, D)."""
    k1 = f(x)
    k2 = f(x + 0.5 * h * k1)
    k3 = f(x + 0.5 * h * k2)
    k4 = f(x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@torch.no_grad()
def simulate(system: str, n_trajectories: int, n_steps: int, dt: float | None = None, seed: int = 0,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Trajectories from seeded initial conditions, (n_trajectories, n_steps + 1, state_dim), float64.

    Batched RK4 in torch with sub-steps of at most 0.01 (Lorenz 0.0025; a Lorenz burn-in is simulated and dropped first);
    the linear system is advanced exactly, x_{t+1} = x_t e^{Aᵀ dt}, so its one-step eigenvalues are
    :func:`linear_eigenvalues`. ``dt=None`` takes the system's default (0.1; Lorenz 0.01)."""
    spec = check_system(system)
    dt = spec.dt if dt is None else float(dt)
    if not dt > 0 or n_trajectories < 1 or n_steps < 1:
        raise ValueError(f"simulate: dt = {dt!r}, n_trajectories = {n_trajectories!r}, n_steps = {n_steps!r}; "
                         "dt must be > 0 and the counts >= 1")
    generator = torch.Generator().manual_seed(seed)
    x = spec.initial(generator, n_trajectories).to(device)  # (N, D)
    if spec.f is None:
        step_map = linear_step_map(dt).to(device)  # (D, D): x_{t+1} = x_t e^{Aᵀ dt}
        advance = lambda x: x @ step_map  # noqa: E731
    else:
        substeps = max(1, math.ceil(dt / spec.max_step - 1e-9))
        h = dt / substeps

        def advance(x):
            for _ in range(substeps):
                x = rk4_step(spec.f, x, h)
            return x
        for _ in range(round(spec.burn_in / dt)):
            x = advance(x)
    path = [x]
    for _ in range(n_steps):
        x = advance(x)
        path.append(x)
    return torch.stack(path, dim=1)  # (N, n_steps + 1, D)


class RandomLift(nn.Module):
    """A fixed random nonlinear observation y = tanh(0.7 · x W + b), W ~ N(0, 1)^{D×M}, b ~ U(−1, 1)^M
    (a stand-in for a high-dimensional field such as a Kármán vortex street; the method note's map).
    Seeded, so every run observes the system through the same map. (..., D) -> (..., M)."""

    def __init__(self, state_dim: int, obs_dim: int = 64, seed: int = 0, scale: float = 0.7):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.scale = scale
        self.register_buffer("W", torch.randn(state_dim, obs_dim, generator=generator, dtype=torch.float64))
        self.register_buffer("b", 2 * torch.rand(obs_dim, generator=generator, dtype=torch.float64) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.scale * x @ self.W.to(x) + self.b.to(x))


def add_noise(X: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Observation noise: X + std · σ_X · ε, ε ~ N(0, I), σ_X the per-channel standard deviation of X
    (so ``std`` is relative, e.g. 0.1 = 10 % of the data's spread, as the graph tasks of the paper)."""
    if std == 0:
        return X
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    scale = X.reshape(-1, X.shape[-1]).std(dim=0)  # (D,)
    noise = torch.randn(X.shape, generator=generator, dtype=X.dtype).to(X.device)
    return X + std * scale * noise


@dataclass
class KoopmanData:
    """Train and test trajectories of one observed system, (N, T + 1, D) each (observations, float64),
    with the clean test states kept for plots (``test_states``)."""

    system: str
    dt: float
    train: torch.Tensor
    test: torch.Tensor
    test_states: torch.Tensor
    lift: RandomLift | None = None

    @property
    def obs_dim(self) -> int:
        return self.train.shape[-1]


def make_data(system: str, n_trajectories: int = 60, n_test: int = 10, n_steps: int = 200, dt: float | None = None,
              seed: int = 0, observation: str = "state", noise: float = 0.0, obs_dim: int = 64,
              lift_seed: int = 0) -> KoopmanData:
    """Simulate ``n_trajectories`` trajectories, observe them (``state`` or ``lifted`` through
    :class:`RandomLift`), add observation noise to the training set only, and split by trajectory: the last
    ``n_test`` are the test set."""
    if not 1 <= n_test < n_trajectories:
        raise ValueError(f"n_test = {n_test!r} must be >= 1 and < n_trajectories = {n_trajectories!r}")
    states = simulate(system, n_trajectories, n_steps, dt, seed)  # (N, T + 1, D)
    lift = None
    if observation == "lifted":
        lift = RandomLift(states.shape[-1], obs_dim, seed=lift_seed)
        observed = lift(states)  # (N, T + 1, M)
    elif observation == "state":
        observed = states
    else:
        raise ValueError(f"observation = {observation!r}; allowed: 'state', 'lifted'")
    train, test = observed[:-n_test], observed[-n_test:]
    train = add_noise(train, noise, seed)
    return KoopmanData(system, SYSTEMS[system].dt if dt is None else float(dt), train, test, states[-n_test:], lift)


def windows(trajectories: torch.Tensor, length: int, stride: int = 1) -> torch.Tensor:
    """Every window of ``length`` consecutive snapshots starting at multiples of ``stride``:
    (N, T + 1, D) -> (N · n_windows, length, D)."""
    if length > trajectories.shape[1]:
        raise ValueError(f"windows of {length} snapshots need trajectories at least that long; "
                         f"got {trajectories.shape[1]}")
    w = trajectories.unfold(1, length, stride)  # (N, n_windows, D, length)
    return w.permute(0, 1, 3, 2).reshape(-1, length, trajectories.shape[-1])


def pairs(trajectories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Snapshot pairs (x_t, x_{t+1}) of every trajectory, (N, T + 1, D) -> X, Y (N·T, D)."""
    D = trajectories.shape[-1]
    return trajectories[:, :-1].reshape(-1, D), trajectories[:, 1:].reshape(-1, D)

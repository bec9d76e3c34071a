"""Koopman lab: dynamical systems, DMD / EDMD baselines and the information-theoretic Koopman autoencoder.

The Koopman operator 𝒦 of a map x_{t+1} = F(x_t) acts linearly on observables g: (𝒦g)(x) = g(F(x)).
A finite-dimensional approximation finds features z = φ(x) on which the dynamics is (nearly) linear,
z_{t+1} ≈ z_t K. Row vectors throughout (snapshots are rows, as in the released code): z_{t+1} = z_t K.

Baselines (torch, any device):

- exact DMD (Tu et al. 2014): the best linear map on the state itself, Y ≈ X A, with rank truncation;
- EDMD (Williams et al. 2015): the same least squares on a dictionary ψ(x) (monomials, or Gaussian RBFs at
  k-means centres plus the state), ψ(Y) ≈ ψ(X) K, the state read back from its coordinates in ψ.

The Koopman autoencoder of Cheng, Yuan et al., "Information Shapes Koopman Representation", ICLR 2026
(arXiv 2510.13025; released code ``Wenxuan52/InformationKoopman``): an encoder z = φ(x), a decoder x̂ = ψ(z)
and a linear K, trained on windows x_0..x_T with the Lagrangian (paper Alg. 2, eq. 8)

    L = L_rec + L_pred − α·Î(z_n; P_n) + β·‖z_{n+1} − z_n K‖² − s·γ·S(C / tr C)

    L_rec  = mean_t ‖ψ(φ(x_t)) − x_t‖²
    L_pred = mean_{h=1..H} ‖ψ(z_0 Kʰ) − x_h‖²                   (multi-step rollout from each window's start)
    Î      = InfoNCE over temporal neighbours P_n = {z_{n±i}, 1 ≤ i ≤ k}, temperature τ
    S      = −Σ_j λ_j log λ_j,  λ = eig(C / tr C),  C the covariance of the batch's latents
    d_eff  = exp(S) ∈ [1, d]                                     (effective dimension)

Where the released code and the paper disagree, this module follows:

- **entropy sign**: the paper (s = +1, S is *maximised*: anti-collapse) by default; ``entropy_sign="code"``
  gives the released code's +0.1·S (s = −1, S minimised). See :data:`ENTROPY_SIGNS`.
- **K**: the paper's learned K (``nn.Linear`` without bias, with the β consistency term) by default;
  ``koopman="ridge"`` is the released code's closed-form ridge fit per window (λ = 0.1), averaged over the
  batch and detached (no gradient flows through K).
- **InfoNCE**: the code's form (cosine similarity, τ = 0.1, anchors n ∈ [k, T − k], the 2k neighbours
  as positives, loss −log Σ_pos e^s / Σ_{j≠n} e^s); negatives are the other steps of the same window
  (code) or every other latent of the batch (``negatives="batch"``, the paper's Σ_{j∈batch}).
- **prediction loss**: multi-step (the variant with a K-rollout loss), not the code's one-step loss.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from workbench.cadence import Cadence

# --- dynamical systems ----------------------------------------------------------------------------------

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


# --- DMD and EDMD ---------------------------------------------------------------------------------------

@dataclass
class DMD:
    """Exact DMD of snapshot pairs (rows) Y ≈ X A: ``eigenvalues`` λ (r,), ``modes`` Φ (D, r) (complex), the
    reduced operator Ã (r, r) and the POD basis U (D, r). Prediction is modal: x_n = Σ_j b_j λ_jⁿ φ_j with
    b = Φ⁺ x_0."""

    eigenvalues: torch.Tensor
    modes: torch.Tensor
    reduced_operator: torch.Tensor
    basis: torch.Tensor

    @torch.no_grad()
    def predict(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, D) -> (B, n_steps + 1, D) (real part; index 0 is x_0's projection on the modes)."""
        Phi = self.modes  # (D, r)
        b = x0.to(Phi.dtype) @ torch.linalg.pinv(Phi).T  # (B, r)
        powers = self.eigenvalues ** torch.arange(n_steps + 1, device=Phi.device).unsqueeze(-1)  # (n + 1, r)
        return torch.einsum("br,nr,dr->bnd", b, powers, Phi).real.to(x0.dtype)


def dmd(X: torch.Tensor, Y: torch.Tensor, rank: int | None = None) -> DMD:
    """Exact DMD (Tu et al. 2014) with snapshots as rows, X, Y (n, D), Y one step after X.

    In column form (X_c = Xᵀ): X_c = U Σ Vᴴ truncated to rank r, Ã = Uᴴ Y_c V Σ⁻¹, Ã W = W Λ and the exact
    modes Φ = Y_c V Σ⁻¹ W. ``rank=None`` keeps every singular value above 1e-12 · σ_max."""
    Xc, Yc = X.T, Y.T  # (D, n)
    U, s, Vh = torch.linalg.svd(Xc, full_matrices=False)  # (D, m), (m,), (m, n)
    r = int((s > 1e-12 * s[0]).sum()) if rank is None else min(int(rank), s.numel())
    U, s, V = U[:, :r], s[:r], Vh[:r].mH  # (D, r), (r,), (n, r)
    YV_inv_s = Yc @ V / s  # (D, r): Y_c V Σ⁻¹
    A_tilde = U.mH @ YV_inv_s  # (r, r)
    eigenvalues, W = torch.linalg.eig(A_tilde)  # (r,), (r, r)
    modes = YV_inv_s.to(W.dtype) @ W  # (D, r)
    return DMD(eigenvalues, modes, A_tilde, U)


def _lstsq(A: torch.Tensor, B: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """argmin_K ‖A K − B‖² (+ ridge ‖K‖²): (n, m), (n, p) -> (m, p). SVD-based (rank-deficient safe) on the CPU,
    the pseudo-inverse elsewhere (CUDA's lstsq assumes full rank)."""
    if ridge > 0:
        eye = torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
        return torch.linalg.solve(A.T @ A + ridge * eye, A.T @ B)
    if A.device.type == "cpu":
        return torch.linalg.lstsq(A, B, driver="gelsd").solution
    return torch.linalg.pinv(A) @ B


def polynomial_exponents(state_dim: int, degree: int) -> list[tuple[int, ...]]:
    """Monomials of degree 0..p as index tuples, in order: (), (0,), (1,), ..., (0, 0), (0, 1), ..."""
    return [c for p in range(degree + 1) for c in itertools.combinations_with_replacement(range(state_dim), p)]


class PolynomialDictionary:
    """ψ(x) = all monomials of x up to ``degree`` (1, x_i, x_i x_j, ...); the state is ψ's coordinates 1..D."""

    def __init__(self, state_dim: int, degree: int = 3):
        self.state_dim, self.degree = state_dim, degree
        self.exponents = polynomial_exponents(state_dim, degree)
        self.state_index = list(range(1, state_dim + 1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (n, D) -> (n, m)
        ones = torch.ones_like(x[:, :1])
        return torch.cat([x[:, list(e)].prod(dim=1, keepdim=True) if e else ones for e in self.exponents], dim=1)


def kmeans(x: torch.Tensor, k: int, n_iter: int = 50, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding, in torch (any device): (n, D) -> centres (k, D)."""
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    k = min(k, n)
    centres = x[torch.randint(n, (1,), generator=generator)]  # (1, D)
    d2 = torch.cdist(x, centres).square().squeeze(1)  # (n,)
    for _ in range(1, k):
        probabilities = (d2 / d2.sum()).cpu()
        nxt = x[torch.multinomial(probabilities, 1, generator=generator).to(x.device)]  # (1, D)
        centres = torch.cat([centres, nxt])
        d2 = torch.minimum(d2, torch.cdist(x, nxt).square().squeeze(1))
    for _ in range(n_iter):
        assign = torch.cdist(x, centres).argmin(dim=1)  # (n,)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).to(x.dtype)  # (k, 1)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        if torch.allclose(new, centres):
            break
        centres = new
    return centres


class RBFDictionary:
    """ψ(x) = (x, exp(−‖x − c_j‖² / σ²)_{j=1..k}): the state plus Gaussian RBFs at k-means centres of the
    training data, σ = the median distance between the centres (the method note's dictionary)."""

    def __init__(self, centres: torch.Tensor, width: float | None = None):
        self.centres = centres  # (k, D)
        self.state_dim = centres.shape[1]
        self.width = float(torch.pdist(centres).median()) if width is None else float(width)
        self.state_index = list(range(self.state_dim))

    @classmethod
    def fit(cls, x: torch.Tensor, n_centres: int = 100, seed: int = 0) -> "RBFDictionary":
        return cls(kmeans(x, n_centres, seed=seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (n, D) -> (n, D + k)
        rbf = torch.exp(-torch.cdist(x, self.centres).square() / self.width ** 2)  # (n, k)
        return torch.cat([x, rbf], dim=1)


@dataclass
class EDMD:
    """EDMD (Williams, Kevrekidis, Rowley 2015): ψ(Y) ≈ ψ(X) K in least squares, K (m, m) acting on rows.
    ``eigenvalues`` are K's; prediction rolls ψ forward, ψ_n = ψ(x_0) Kⁿ, and reads the state off ψ_n."""

    dictionary: Callable[[torch.Tensor], torch.Tensor]
    K: torch.Tensor

    @property
    def eigenvalues(self) -> torch.Tensor:
        return torch.linalg.eigvals(self.K)

    @torch.no_grad()
    def predict(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, D) -> (B, n_steps + 1, D)."""
        psi = self.dictionary(x0)  # (B, m)
        index = self.dictionary.state_index
        path = [psi[:, index]]
        for _ in range(n_steps):
            psi = psi @ self.K
            path.append(psi[:, index])
        return torch.stack(path, dim=1)


def edmd(X: torch.Tensor, Y: torch.Tensor, dictionary: Callable[[torch.Tensor], torch.Tensor],
         ridge: float = 0.0) -> EDMD:
    """Fit EDMD on snapshot pairs X, Y (n, D) with ``dictionary`` (:class:`PolynomialDictionary`,
    :class:`RBFDictionary`): K = argmin ‖ψ(X) K − ψ(Y)‖² (+ ridge ‖K‖²)."""
    return EDMD(dictionary, _lstsq(dictionary(X), dictionary(Y), ridge))


# --- the information-theoretic terms ------------------------------------------------------------------

ENTROPY_SIGNS = {"paper": 1.0, "code": -1.0}
"""s in L = ... − s·γ·S: the paper maximises S (s = +1); the released code adds +γ·S (s = −1)."""


def von_neumann_entropy(Z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """S(ρ) = −Σ_j λ_j log λ_j, λ = eig(ρ), ρ = C / tr C, C = (1/(n−1)) Σ_i (z_i − z̄)(z_i − z̄)ᵀ + eps·I,
    natural log, eigenvalues clamped at eps (as the released code). Z (n, d) -> scalar; S ∈ [0, log d]:
    log d for isotropic latents, 0 for latents on a line. Differentiable (``eigvalsh``)."""
    Zc = Z - Z.mean(dim=0, keepdim=True)  # (n, d)
    C = Zc.T @ Zc / max(Z.shape[0] - 1, 1)  # (d, d)
    C = C + eps * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    rho = C / C.diagonal().sum()
    lam = torch.linalg.eigvalsh(rho).clamp(min=eps)  # (d,)
    return -(lam * lam.log()).sum()


def effective_dimension(Z: torch.Tensor) -> float:
    """d_eff = exp(S(C / tr C)) ∈ [1, d] of latents Z (n, d)."""
    with torch.no_grad():
        return float(von_neumann_entropy(Z.double()).exp())


def info_nce(Z: torch.Tensor, k: int = 3, tau: float = 0.1, negatives: str = "window") -> torch.Tensor:
    """InfoNCE loss over temporal neighbours (released code's form; the estimate is Î = −loss up to a constant):

        loss = mean_{b, n} −log [ Σ_{p∈P_n} e^{s(z_n, z_p)/τ} / Σ_{j≠n} e^{s(z_n, z_j)/τ} ],
        P_n = {z_{n±i} : 1 ≤ i ≤ k},   s = cosine similarity,   anchors n ∈ [k, T − k].

    ``negatives="window"``: j runs over the other steps of the same window (code); ``"batch"``: over every
    other latent of the batch (the paper's Σ_{j∈batch}). Z (B, L, d) with L ≥ 2k + 1 -> scalar ≥ 0; it is
    smallest when each anchor is aligned with its neighbours and far from the rest."""
    B, L, d = Z.shape
    if L < 2 * k + 1:
        raise ValueError(f"info_nce needs windows of at least 2k + 1 = {2 * k + 1} steps; got {L}")
    z = torch.nn.functional.normalize(Z, dim=-1)  # (B, L, d)
    anchors = torch.arange(k, L - k, device=Z.device)  # (A,)
    steps = torch.arange(L, device=Z.device)
    offset = steps.unsqueeze(0) - anchors.unsqueeze(1)  # (A, L)
    positive = (offset.abs() >= 1) & (offset.abs() <= k)  # (A, L)
    self_mask = offset == 0  # (A, L)
    za = z[:, anchors]  # (B, A, d)
    if negatives == "window":
        logits = za @ z.mT / tau  # (B, A, L)
        pos_mask, keep = positive.expand(B, -1, -1), ~self_mask.expand(B, -1, -1)
    elif negatives == "batch":
        logits = za @ z.reshape(B * L, d).T / tau  # (B, A, B·L)
        own = torch.eye(B, dtype=torch.bool, device=Z.device)[:, None, :, None]  # (B, 1, B, 1)
        pos_mask = (own & positive[None, :, None, :]).reshape(B, len(anchors), B * L)
        keep = ~(own & self_mask[None, :, None, :]).reshape(B, len(anchors), B * L)
    else:
        raise ValueError(f"negatives = {negatives!r}; allowed: 'window', 'batch'")
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = logits.masked_fill(~pos_mask, neg_inf).logsumexp(dim=-1)  # (B, A)
    log_all = logits.masked_fill(~keep, neg_inf).logsumexp(dim=-1)  # (B, A)
    return (log_all - log_pos).mean()


def ridge_koopman(Z: torch.Tensor, Z_next: torch.Tensor, lam: float = 0.1) -> torch.Tensor:
    """Closed-form ridge fit of z' = z K (the released code's K): K = (ZᵀZ + λI)⁻¹ Zᵀ Z', or the equal
    Zᵀ(ZZᵀ + λI)⁻¹ Z' when there are fewer snapshots than latent dimensions (push-through identity).
    Batched over leading dimensions: Z, Z' (..., n, d) -> K (..., d, d)."""
    n, d = Z.shape[-2:]
    if n < d:
        eye = torch.eye(n, dtype=Z.dtype, device=Z.device)
        return Z.mT @ torch.linalg.solve(Z @ Z.mT + lam * eye, Z_next)
    eye = torch.eye(d, dtype=Z.dtype, device=Z.device)
    return torch.linalg.solve(Z.mT @ Z + lam * eye, Z.mT @ Z_next)


# --- the Koopman autoencoder --------------------------------------------------------------------------

def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


@dataclass
class LossWeights:
    """The Lagrangian's weights and settings. α: InfoNCE, β: consistency ‖z_{n+1} − z_n K‖², γ: entropy S;
    ``entropy_sign`` 'paper' (maximise S) or 'code' (minimise S, the released code); k, τ, negatives: InfoNCE;
    ``horizon``: steps of the multi-step prediction loss (≤ window length − 1)."""

    alpha: float = 2.0
    beta: float = 1.0
    gamma: float = 0.1
    entropy_sign: str = "paper"
    k: int = 3
    tau: float = 0.1
    negatives: str = "window"
    horizon: int = 16


class KoopmanAutoencoder(nn.Module):
    """Encoder φ: R^D → R^d, decoder ψ: R^d → R^D (MLPs) and a linear K acting on rows, z_{t+1} = z_t K.

    ``koopman="learned"``: K is the (transposed) weight of ``nn.Linear(d, d, bias=False)``, initialised at
    the identity and trained by the prediction and consistency losses (paper). ``koopman="ridge"``: K is
    refitted in closed form on every batch (per window, λ = ``ridge_lambda``, averaged, detached) as the
    released code does; the buffer ``K_ridge`` keeps the latest fit for prediction (:meth:`refit_koopman`
    sets it from whole data sets after training)."""

    def __init__(self, input_dim: int, latent_dim: int = 8, hidden: int = 64, koopman: str = "learned",
                 ridge_lambda: float = 0.1, depth: int = 2):
        super().__init__()
        if koopman not in ("learned", "ridge"):
            raise ValueError(f"koopman = {koopman!r}; allowed: 'learned', 'ridge'")
        if latent_dim < 1 or input_dim < 1 or hidden < 1:
            raise ValueError(f"input_dim, latent_dim, hidden = {input_dim}, {latent_dim}, {hidden}; all must be >= 1")
        self.input_dim, self.latent_dim, self.koopman, self.ridge_lambda = input_dim, latent_dim, koopman, ridge_lambda
        self.encoder = mlp([input_dim] + [hidden] * depth + [latent_dim])
        self.decoder = mlp([latent_dim] + [hidden] * depth + [input_dim])
        self.K_linear = nn.Linear(latent_dim, latent_dim, bias=False)
        with torch.no_grad():
            self.K_linear.weight.copy_(torch.eye(latent_dim))
        self.K_linear.requires_grad_(koopman == "learned")
        self.register_buffer("K_ridge", torch.eye(latent_dim))
        self.register_buffer("x_mean", torch.zeros(input_dim))
        self.register_buffer("x_scale", torch.ones(input_dim))

    @torch.no_grad()
    def set_normalization(self, x: torch.Tensor) -> None:
        """Standardise inputs per channel with the mean and standard deviation of x (..., D), as the released
        code's data set does; the losses are measured in these standardised units."""
        flat = x.reshape(-1, x.shape[-1])
        self.x_mean.copy_(flat.mean(dim=0))
        self.x_scale.copy_(flat.std(dim=0).clamp(min=1e-8))

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, koopman={self.koopman!r}"

    @property
    def K(self) -> torch.Tensor:
        """K (d, d) in the row convention z_{t+1} = z_t K."""
        return self.K_linear.weight.T if self.koopman == "learned" else self.K_ridge

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = φ((x − mean) / scale): (..., D) -> (..., d)."""
        return self.encoder((x - self.x_mean) / self.x_scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = ψ(z) · scale + mean: (..., d) -> (..., D)."""
        return self.decoder(z) * self.x_scale + self.x_mean

    @staticmethod
    def rollout_latent(z0: torch.Tensor, K: torch.Tensor, n_steps: int) -> torch.Tensor:
        """z_h = z_0 Kʰ, h = 0..n: (B, d) -> (B, n + 1, d)."""
        path = [z0]
        for _ in range(n_steps):
            path.append(path[-1] @ K)
        return torch.stack(path, dim=1)

    @torch.no_grad()
    def predict(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """x̂_h = ψ(φ(x_0) Kʰ): (B, D) -> (B, n_steps + 1, D)."""
        return self.decode(self.rollout_latent(self.encode(x0), self.K, n_steps))

    @torch.no_grad()
    def refit_koopman(self, x_windows: torch.Tensor) -> None:
        """Ridge mode: K_ridge ← the mean of the per-window ridge fits over ``x_windows`` (M, L, D) at the
        current encoder (the code's epoch-averaged K). Learned mode: nothing to do."""
        if self.koopman == "ridge":
            Z = torch.cat([self.encode(chunk) for chunk in x_windows.split(4096)])  # (M, L, d)
            self.K_ridge.copy_(ridge_koopman(Z[:, :-1], Z[:, 1:], self.ridge_lambda).mean(dim=0))

    def loss(self, x: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The Lagrangian on a batch of windows x (B, L, D), L ≥ horizon + 1:

            L = L_rec + L_pred + α·L_NCE + β·‖z_{n+1} − z_n K‖² − s·γ·S,   (L_NCE = −Î)

        Returns (L, parts) with parts rec, pred, nce, consistency, entropy (S) and d_eff = exp(S), detached."""
        B, L, D = x.shape
        x = (x - self.x_mean) / self.x_scale  # standardised units
        z = self.encoder(x)  # (B, L, d)
        if self.koopman == "ridge":
            K = ridge_koopman(z[:, :-1].detach(), z[:, 1:].detach(), self.ridge_lambda).mean(dim=0)  # (d, d)
            self.K_ridge.copy_(K)
        else:
            K = self.K  # (d, d)
        rec = (self.decoder(z) - x).square().mean()
        H = min(w.horizon, L - 1)
        z_roll = self.rollout_latent(z[:, 0], K, H)  # (B, H + 1, d)
        pred = (self.decoder(z_roll[:, 1:]) - x[:, 1:H + 1]).square().mean()
        consistency = (z[:, 1:] - z[:, :-1] @ K).square().sum(-1).mean()
        S = von_neumann_entropy(z.reshape(B * L, -1))
        total = rec + pred + w.beta * consistency - ENTROPY_SIGNS[w.entropy_sign] * w.gamma * S
        nce = info_nce(z, w.k, w.tau, w.negatives) if w.alpha > 0 else torch.zeros((), device=x.device)
        total = total + w.alpha * nce
        parts = {"rec": rec, "pred": pred, "nce": nce, "consistency": consistency, "entropy": S, "d_eff": S.exp()}
        return total, {name: value.detach() for name, value in parts.items()}


def fit(model: KoopmanAutoencoder, train_windows: torch.Tensor, weights: LossWeights, steps: int,
        batch_size: int = 64, lr: float = 1e-3, clip: float = 1.0, seed: int = 0,
        callback: Callable[[int, dict[str, float]], None] | None = None, stop: Callable[[], bool] | None = None,
        cadence: Cadence | None = None) -> int:
    """Minimise the Lagrangian with Adam (gradient norm clipped at ``clip``, as the released code) on
    random batches of ``train_windows`` (M, L, D), already on the model's device and dtype.
    ``callback(step, means)`` gets the mean of every loss part since the previous call whenever
    ``cadence(step)`` is due (default :class:`Cadence`: every 1 % of the steps, the last one and every half
    second); ``stop()`` returning True ends training before the next step. Returns steps taken.
    Ridge mode: K_ridge is refitted on all training windows at the end."""
    device = train_windows.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    cadence = cadence if cadence is not None else Cadence(steps)
    running: dict[str, torch.Tensor] = {}
    count, step = 0, 0
    while step < steps and not (stop is not None and stop()):
        index = torch.randint(train_windows.shape[0], (batch_size,), generator=generator).to(device)
        total, parts = model.loss(train_windows[index], weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        optimizer.step()
        step, count = step + 1, count + 1
        for name, value in (parts | {"loss": total.detach()}).items():
            running[name] = running.get(name, 0) + value
        if callback is not None and cadence(step):
            callback(step, {name: float(value) / count for name, value in running.items()})
            running, count = {}, 0
    model.refit_koopman(train_windows)
    return step


# --- metrics -----------------------------------------------------------------------------------------

HORIZONS = (5, 20, 50)


def data_std(X: torch.Tensor) -> float:
    """σ = sqrt(mean ‖x − x̄‖² / D) over every snapshot of X (..., D), x̄ the per-channel mean:
    the pooled standard deviation that normalises the NRMSE."""
    flat = X.reshape(-1, X.shape[-1])
    return float((flat - flat.mean(dim=0)).square().mean().sqrt())


def nrmse(prediction: torch.Tensor, truth: torch.Tensor, std: float,
          horizons: tuple[int, ...] = HORIZONS) -> dict[int, float]:
    """NRMSE@n = RMSE_n / σ, RMSE_n = sqrt(mean over rollouts and channels of (x̂_n − x_n)²), the error *at*
    step n (not averaged over 1..n); σ = :func:`data_std` of the test data. prediction, truth (B, H + 1, D)
    with index 0 the start. 1 ≈ the error of predicting the mean; a method that drifts can exceed it."""
    return {n: float((prediction[:, n] - truth[:, n]).square().mean().sqrt()) / std for n in horizons}


def eigenvalue_error(estimated: torch.Tensor, true: torch.Tensor) -> float:
    """max_i |λ_i − λ̂_{π(i)}| under the best one-to-one matching π of the true eigenvalues to the estimated
    ones (Hungarian algorithm on |λ_i − λ̂_j|)."""
    from scipy.optimize import linear_sum_assignment

    cost = (true.reshape(-1, 1).to(torch.complex128) - estimated.reshape(1, -1).to(torch.complex128)).abs()
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return float(cost[rows, cols].max())

"""Light Schrödinger Bridge (LightSB): entropic OT with a Gaussian-mixture adjusted potential.

Korotin, Gushchin, Burnaev, "Light Schrödinger Bridge", ICLR 2024 (reference code ``ngushchin/LightSB``,
``src/light_sb.py``). The reference process is W^ε: dX = √ε dW on [0, 1]; the bridge solves
min KL(T ‖ W^ε) between p0 and p1, i.e. EOT with cost ½‖x0 − x1‖² and regulariser ε·KL(π ‖ p0⊗p1).

The adjusted Schrödinger potential is a mixture of K Gaussians,

    v_θ(x1) = Σ_k α_k N(x1 | r_k, ε S_k),

which makes the normaliser, the conditional plan and the drift closed-form:

    c_θ(x0)      = Σ_k α_k exp((x0ᵀ S_k x0 + 2 r_kᵀ x0) / 2ε)
    π_θ(x1 | x0) = Σ_k w_k(x0) N(x1 | r_k + S_k x0, ε S_k),   w_k ∝ α_k exp((x0ᵀ S_k x0 + 2 r_kᵀ x0) / 2ε)
    L(θ)         = E_p0 log c_θ(x0) − E_p1 log v_θ(x1),      KL(π* ‖ π_θ) = L(θ) − L(θ*).

Parameters, as in the reference code: ``log_alpha_raw`` with log α = log_alpha_raw / ε (initialised to
ε log(1/K)), means ``r`` (K, D) and eigenvalue logs ``S_log_diagonal`` (K, D). S_k = diag(exp s_k) in
diagonal mode, S_k = U_k diag(exp s_k) U_kᵀ in full mode, with U_k orthogonal.

Orthogonality without geotorch: U_k = QR(W_k), the Q factor of an unconstrained ``S_rotation_raw``
W_k (K, D, D) with its columns' signs fixed by diag(R) (so U_k is a function of W_k, not of LAPACK's
sign choices). W ~ randn gives a Haar-random U_k at initialisation, and loading a given orthogonal
matrix is exact (W_k = U_k maps to itself), which :meth:`LightSB.from_parameters` relies on.

The log-normaliser's terms and the potential's component log-densities are affine in the sufficient
statistics T(x) = (x ⊙ x, x, 1) (full S: (vec x xᵀ, x, 1)), so each is one matrix product of (B, P) by
(P, K): training in diagonal mode never forms a (B, K, D) or (K, D, D) tensor, which keeps a step
(batch 128, K = 50) cheap on a CPU. In diagonal mode log c_θ, log v_θ and the weights w_k go through
``workbench.kernels.lightsb_lse``: a fused Triton log-sum-exp (no (B, K) logits either) on CUDA tensors,
this same product elsewhere.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from workbench.progress import Cadence, Event
from workbench.kernels import lightsb_lse
from workbench.methods.gaussian_metrics import sym_power


def _rotate(U: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """Coordinates in the eigenbasis, Uᵀx, batched by broadcasting: U (..., D, D), x (..., D) -> (..., D).
    U = None stands for the identity (diagonal S)."""
    return x if U is None else (x.unsqueeze(-2) @ U).squeeze(-2)


def _unrotate(U: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    """Back from the eigenbasis, U y: U (..., D, D), y (..., D) -> (..., D); U = None is the identity."""
    return y if U is None else (U @ y.unsqueeze(-1)).squeeze(-1)


def _compose(f: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
    """U_k diag(f_k) U_kᵀ: f (K, D), U (K, D, D) -> (K, D, D); U = None gives diag(f_k)."""
    return torch.diag_embed(f) if U is None else (U * f.unsqueeze(-2)) @ U.mT


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """k ~ Categorical(softmax(logits)) per row by the inverse CDF, k = #{j : F_j < u F_K} with
    F = cumsum exp(logits − max logits) and u ~ U(0, 1) (a few cheap ops; ``torch.multinomial`` costs
    several times more on small batches). (B, K) -> (B,) int64."""
    F = (logits - logits.amax(dim=-1, keepdim=True)).exp().cumsum(dim=-1)  # (B, K)
    u = torch.rand(F.shape[:-1] + (1,), generator=generator, dtype=F.dtype, device=F.device)
    return (F < u * F[..., -1:]).sum(dim=-1)


def mixture_moments(weights: torch.Tensor, means: torch.Tensor,
                    covs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the Gaussian mixture Σ_k w_k N(m_k, Σ_k), batched over B:

        m = Σ_k w_k m_k,    Cov = Σ_k w_k Σ_k + Σ_k w_k (m_k − m)(m_k − m)ᵀ.

    Shapes: weights (B, K), means (B, K, D), covs (K, D, D) -> (B, D), (B, D, D)."""
    B, K, D = means.shape
    mean = torch.einsum("bk,bkd->bd", weights, means)  # (B, D)
    deviation = means - mean.unsqueeze(-2)  # (B, K, D)
    within = (weights @ covs.reshape(K, D * D)).reshape(B, D, D)  # Σ_k w_k Σ_k
    between = (weights.unsqueeze(-1) * deviation).mT @ deviation  # (B, D, D)
    return mean, within + between


def gaussian_bridge(m0: torch.Tensor, A: torch.Tensor, m1: torch.Tensor, B: torch.Tensor,
                    epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form entropic OT plan between p0 = N(m0, A) and p1 = N(m1, B) (Janati et al. 2020 with
    σ² = ε; ``get_C_sigma`` in EntropicOTBenchmark's Gaussian notebook):

        K = A^{-½} [(A^½ B A^½ + ε²/4 I)^½ − ε/2 I] A^{-½}
        E[x1 | x0] = m1 + K (x0 − m0)
        Cov[x1 | x0] = ε K

    Identities: K A K + ε K = B, and the plan is exactly a one-component LightSB with S = K and
    r = m1 − K m0. K and the covariance do not depend on the means, which only enter E[x1 | x0].
    Returns (K, εK), both (D, D)."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    A_half, A_neg_half = sym_power(A, 0.5), sym_power(A, -0.5)
    K = A_neg_half @ (sym_power(A_half @ B @ A_half + epsilon**2 / 4 * eye, 0.5) - epsilon / 2 * eye) @ A_neg_half
    K = 0.5 * (K + K.mT)
    return K, epsilon * K


def gaussian_drift(m0: torch.Tensor, A: torch.Tensor, m1: torch.Tensor, B: torch.Tensor, epsilon: float,
                   x: torch.Tensor, t: float) -> torch.Tensor:
    """Closed-form drift of the Schrödinger bridge between p0 = N(m0, A) and p1 = N(m1, B), from the
    Gaussian plan alone (no LightSB formula involved):

        g(x, t) = (E[X1 | X_t = x] − x) / (1 − t),   X_t = t X1 + (1 − t) X0 + √(ε t (1 − t)) Z,

    with (X0, X1) ~ the plan of :func:`gaussian_bridge` (Cov(X1, X0) = K A), so (X_t, X1) is jointly Gaussian:

        E[X_t] = t m1 + (1 − t) m0
        Var X_t = t² B + (1 − t)² A + t (1 − t) (K A + A K) + ε t (1 − t) I
        Cov(X1, X_t) = t B + (1 − t) K A
        E[X1 | X_t = x] = m1 + Cov(X1, X_t) (Var X_t)⁻¹ (x − E[X_t]).

    The bridge is Markov, so this is the drift of dX = g dt + √ε dW. x (N, D), t ∈ [0, 1) -> (N, D)."""
    K, _ = gaussian_bridge(m0, A, m1, B, epsilon)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    var_t = t**2 * B + (1 - t) ** 2 * A + t * (1 - t) * (K @ A + A @ K) + epsilon * t * (1 - t) * eye  # (D, D)
    cov_1t = t * B + (1 - t) * K @ A  # (D, D)
    deviation = x - (t * m1 + (1 - t) * m0)  # (N, D)
    expected_x1 = m1 + torch.linalg.solve(var_t, deviation.mT).mT @ cov_1t.mT  # (N, D)
    return (expected_x1 - x) / (1 - t)


class LightSB(nn.Module):
    """LightSB model: v_θ(x1) = Σ_k α_k N(x1 | r_k, ε S_k) and everything it implies in closed form.

    Args:
        dim: D, the data dimension.
        n_components: K, the number of mixture components.
        epsilon: ε > 0, the variance of the reference Brownian motion W^ε.
        diagonal: diagonal S_k (all the reference experiments) or full S_k = U_k diag(exp s_k) U_kᵀ.
        S_init: initial eigenvalues of every S_k (reference default 0.1; its EOT-benchmark notebook uses 1.0).
    """

    def __init__(self, dim: int, n_components: int, epsilon: float, diagonal: bool = True, S_init: float = 0.1):
        super().__init__()
        if not epsilon > 0:
            raise ValueError(f"LightSB: epsilon = {epsilon!r} is not allowed; expected a number > 0")
        if not S_init > 0:
            raise ValueError(f"LightSB: S_init = {S_init!r} is not allowed; expected a number > 0")
        if dim < 1 or n_components < 1:
            raise ValueError(f"LightSB: dim = {dim!r}, n_components = {n_components!r}; both must be integers >= 1")
        self.dim, self.n_components, self.epsilon, self.diagonal = dim, n_components, float(epsilon), diagonal
        K, D = n_components, dim
        self.log_alpha_raw = nn.Parameter(torch.full((K,), self.epsilon * math.log(1 / K)))
        self.r = nn.Parameter(torch.randn(K, D))
        self.S_log_diagonal = nn.Parameter(torch.full((K, D), math.log(S_init)))
        if not diagonal:
            self.S_rotation_raw = nn.Parameter(torch.randn(K, D, D))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_components={self.n_components}, epsilon={self.epsilon:g}, diagonal={self.diagonal}"

    # --- parameters -----------------------------------------------------------------------------

    @property
    def log_alpha(self) -> torch.Tensor:
        """log α = log_alpha_raw / ε, (K,). L(θ) is invariant to a common shift of all log α_k."""
        return self.log_alpha_raw / self.epsilon

    @property
    def S_eigenvalues(self) -> torch.Tensor:
        """exp s_k, the eigenvalues of S_k, (K, D)."""
        return self.S_log_diagonal.exp()

    @property
    def rotation(self) -> torch.Tensor | None:
        """U_k (K, D, D), the Q factor of S_rotation_raw with diag(R) > 0; None in diagonal mode."""
        if self.diagonal:
            return None
        Q, R = torch.linalg.qr(self.S_rotation_raw)
        return Q * R.diagonal(dim1=-2, dim2=-1).sign().unsqueeze(-2)

    @property
    def S(self) -> torch.Tensor:
        """S_k = U_k diag(exp s_k) U_kᵀ as matrices, (K, D, D) (diagonal mode: diag(exp s_k))."""
        return _compose(*self._eigen())

    @torch.no_grad()
    def init_r_by_samples(self, x1: torch.Tensor) -> None:
        """r_k ← K target samples (K, D), as every reference notebook does before training."""
        if x1.shape != self.r.shape:
            raise ValueError(f"init_r_by_samples needs {tuple(self.r.shape)} samples (K, D); got {tuple(x1.shape)}")
        self.r.copy_(x1)

    # --- densities and the objective ------------------------------------------------------------

    def _eigen(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(exp s_k (K, D), U_k (K, D, D) or None): S_k's eigen-decomposition, computed once per call site."""
        return self.S_eigenvalues, self.rotation

    @staticmethod
    def _statistics(x: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """Sufficient statistics T(x) = (x ⊙ x, x, 1) for diagonal S, (vec x xᵀ, x, 1) for full S: (B, D) -> (B, P)."""
        if U is None:
            return lightsb_lse.diagonal_statistics(x)
        return torch.cat([(x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(1), x, torch.ones_like(x[:, :1])], dim=1)

    @staticmethod
    def _second_order(f: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """The coefficients of T(x)'s second-order block for U_k diag(f_k) U_kᵀ: (K, D) or (K, D²)."""
        return f if U is None else _compose(f, U).flatten(1)

    def _mixture_eta(self, s: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """η_k = (S_k / 2ε, r_k / ε, log α_k), (K, P): ⟨η_k, T(x0)⟩ = log α_k + (x0ᵀ S_k x0 + 2 r_kᵀ x0) / 2ε,
        log c_θ's terms and π_θ's component logits."""
        return torch.cat([self._second_order(s, U) / (2 * self.epsilon), self.r / self.epsilon,
                          self.log_alpha.unsqueeze(-1)], dim=1)

    def _potential_eta(self, s: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """η_k, (K, P), with ⟨η_k, T(x1)⟩ = log α_k + log N(x1 | r_k, ε S_k), Gaussians in exponential-family form:

            η_k = (−S_k⁻¹ / 2ε,  S_k⁻¹ r_k / ε,  log α_k − ½ log|2πε S_k| − r_kᵀ S_k⁻¹ r_k / 2ε),

        with S_k⁻¹ = U_k diag(1/s_k) U_kᵀ."""
        r_eig = _rotate(U, self.r)  # (K, D): U_kᵀ r_k
        S_inv_r = _unrotate(U, r_eig / s)  # (K, D)
        constant = (self.log_alpha - 0.5 * torch.log(2 * math.pi * self.epsilon * s).sum(-1)
                    - (r_eig * r_eig / s).sum(-1) / (2 * self.epsilon))  # (K,)
        return torch.cat([self._second_order(1 / s, U) / (-2 * self.epsilon), S_inv_r / self.epsilon,
                          constant.unsqueeze(-1)], dim=1)

    def _mixture_logits(self, x0: torch.Tensor, s: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """⟨η_k, T(x0)⟩ = log α_k + (x0ᵀ S_k x0 + 2 r_kᵀ x0) / 2ε, (B, K): one matrix product, no (B, K, D) tensor."""
        return self._statistics(x0, U) @ self._mixture_eta(s, U).T

    def _logsumexp(self, x: torch.Tensor, eta: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """logsumexp_k ⟨η_k, T(x)⟩, (B, D) -> (B,): diagonal S through the fused kernel's dispatch."""
        if U is None:
            return lightsb_lse.mixture_logsumexp(x, eta)
        return torch.logsumexp(self._statistics(x, U) @ eta.T, dim=-1)

    def _weights(self, x0: torch.Tensor, s: torch.Tensor, U: torch.Tensor | None) -> torch.Tensor:
        """w_k(x0) = softmax_k ⟨η_k, T(x0)⟩, (B, D) -> (B, K): diagonal S through the fused kernel's dispatch."""
        if U is None:
            return lightsb_lse.mixture_weights(x0, self._mixture_eta(s, U))
        return torch.softmax(self._mixture_logits(x0, s, U), dim=-1)

    def log_normalizer(self, x0: torch.Tensor) -> torch.Tensor:
        """log c_θ(x0) = logsumexp_k [log α_k + (x0ᵀ S_k x0 + 2 r_kᵀ x0) / 2ε], (B, D) -> (B,)."""
        s, U = self._eigen()
        return self._logsumexp(x0, self._mixture_eta(s, U), U)

    def log_potential(self, x1: torch.Tensor) -> torch.Tensor:
        """log v_θ(x1) = logsumexp_k [log α_k + log N(x1 | r_k, ε S_k)], (B, D) -> (B,)."""
        s, U = self._eigen()
        return self._logsumexp(x1, self._potential_eta(s, U), U)

    def loss(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """L(θ) = mean log c_θ(x0) − mean log v_θ(x1) on independent batches x0 ~ p0, x1 ~ p1
        (Algorithm 1); L(θ) − L(θ*) = KL(π* ‖ π_θ) ≥ 0. S_k's eigen-decomposition is formed once."""
        s, U = self._eigen()
        log_c = self._logsumexp(x0, self._mixture_eta(s, U), U)  # (B,)
        log_v = self._logsumexp(x1, self._potential_eta(s, U), U)  # (B,)
        return log_c.mean() - log_v.mean()

    # --- the conditional plan π_θ(x1 | x0) ----------------------------------------------------------

    def mixture_weights(self, x0: torch.Tensor) -> torch.Tensor:
        """w_k(x0) = softmax_k [log α_k + (x0ᵀ S_k x0 + 2 r_kᵀ x0) / 2ε], (B, D) -> (B, K)."""
        return self._weights(x0, *self._eigen())

    def conditional_moments(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Analytic mean and covariance of π_θ(x1 | x0) = Σ_k w_k N(m_k, ε S_k), m_k = r_k + S_k x0:

            E[x1 | x0] = Σ_k w_k m_k,   Cov[x1 | x0] = Σ_k w_k ε S_k + Σ_k w_k (m_k − m)(m_k − m)ᵀ.

        (B, D) -> (B, D), (B, D, D)."""
        s, U = self._eigen()
        weights = self._weights(x0, s, U)  # (B, K)
        means = _unrotate(U, s * _rotate(U, x0.unsqueeze(-2))) + self.r  # (B, K, D): S_k x0 + r_k
        return mixture_moments(weights, means, self.epsilon * _compose(s, U))

    @torch.no_grad()
    def sample(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x1 ~ π_θ(· | x0): a component k ~ Categorical(w(x0)), then x1 = r_k + S_k x0 + √ε S_k^½ z,
        z ~ N(0, I). (B, D) -> (B, D)."""
        s, U = self._eigen()
        k = sample_categorical(self._mixture_logits(x0, s, U), generator)  # (B,)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        s_k, U_k = s[k], None if U is None else U[k]  # (B, D), (B, D, D)
        return self.r[k] + _unrotate(U_k, s_k * _rotate(U_k, x0) + (self.epsilon * s_k).sqrt() * z)

    # --- the bridge: drift, SDE, Brownian bridge ------------------------------------------------------

    def drift(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """Closed-form drift g(x, t) = (E[X1 | X_t = x] − x) / (1 − t) of the Schrödinger bridge, t ∈ [0, 1).

        Given X_t = x, X1 is distributed as N(x1 | x, ε(1−t) I) e^{‖x1‖²/2ε} v_θ(x1), again a mixture.
        In the eigenbasis of S_k (x̃ = U_kᵀ x, r̃ = U_kᵀ r_k, per coordinate, λ = 1 − t + t s):

            E[X1 | X_t = x, k] = U_k (s x̃ + (1 − t) r̃) / λ
            weight_k ∝ α_k Π_d λ^{-½} exp( Σ_d [(s − 1) x̃² + 2 x̃ r̃ − t r̃²] / (2ελ) ).

        This is the reference ``get_drift``'s autograd of
        ε∇ log Σ_k α_k |S_k|^{-½} |A_k|^{-½} exp(½ c_kᵀA_k⁻¹c_k − r_kᵀS_k⁻¹r_k / 2ε) − x / (1 − t)
        written out, stable up to t → 1. At t = 0 it is E_π[x1 | x0 = x] − x.
        x (B, D), t a scalar or (B,) -> (B, D)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t_b = t.reshape(-1, 1, 1) if t.dim() else t  # (B, 1, 1) against (B, K, D)
        s, U = self._eigen()
        x_eig, r_eig = _rotate(U, x.unsqueeze(-2)), _rotate(U, self.r)  # (B, K, D), (K, D)
        lam = 1 - t_b + t_b * s  # (B, K, D)
        exponent = ((s - 1) * x_eig.square() + 2 * x_eig * r_eig - t_b * r_eig.square()) / lam
        logits = self.log_alpha - 0.5 * lam.log().sum(-1) + exponent.sum(-1) / (2 * self.epsilon)  # (B, K)
        means = _unrotate(U, (s * x_eig + (1 - t_b) * r_eig) / lam)  # (B, K, D)
        expected_x1 = torch.einsum("bk,bkd->bd", torch.softmax(logits, dim=-1), means)
        return (expected_x1 - x) / (1 - t_b.squeeze(-1))

    @torch.no_grad()
    def sample_trajectory(self, x0: torch.Tensor, n_steps: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Euler–Maruyama for dX = g(X, t) dt + √ε dW from X_0 = x0: dt = 1/n,
        x ← x + g(x, t) dt + √(ε dt) z; the last drift is taken at t = 1 − dt. (B, D) -> (B, n_steps + 1, D)."""
        dt = 1.0 / n_steps
        x, path = x0, [x0]
        for i in range(n_steps):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + self.drift(x, i * dt) * dt + math.sqrt(self.epsilon * dt) * z
            path.append(x)
        return torch.stack(path, dim=1)

    @torch.no_grad()
    def sample_bridge(self, x0: torch.Tensor, x1: torch.Tensor, t: float | torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """X_t of the Brownian bridge of W^ε pinned at x0 and x1:

            x_t = t x1 + (1 − t) x0 + √(ε t (1 − t)) z,   z ~ N(0, I).

        The square root is the corrected form: the reference ``sample_at_time_moment`` used the standard
        deviation ε t (1 − t) before commit 5b43943 (LightSB-M fixed the same bug in 07c91fe).
        With x1 = ``self.sample(x0)`` this samples the learned bridge's marginal at t. t: scalar or (B,)."""
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        t = t.reshape(-1, 1) if t.dim() else t  # (B, 1)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return t * x1 + (1 - t) * x0 + torch.sqrt(self.epsilon * t * (1 - t)) * z

    # --- exact parameters -------------------------------------------------------------------------------

    @classmethod
    def from_parameters(cls, log_alpha: torch.Tensor, r: torch.Tensor, S: torch.Tensor, epsilon: float) -> "LightSB":
        """A model with the given log α (K,), r (K, D) and S: eigenvalues (K, D) give a diagonal model,
        SPD matrices (K, D, D) a full one (U_k, exp s_k from eigh). Dtype and device follow r."""
        K, D = r.shape
        model = cls(D, K, epsilon, diagonal=S.dim() == 2).to(dtype=r.dtype, device=r.device)
        if S.dim() == 2:
            s, U = S, None
        else:
            s, U = torch.linalg.eigh(0.5 * (S + S.mT))
        with torch.no_grad():
            model.log_alpha_raw.copy_(epsilon * log_alpha)
            model.r.copy_(r)
            model.S_log_diagonal.copy_(s.log())
            if U is not None:
                model.S_rotation_raw.copy_(U)
        return model

    @classmethod
    def from_potential(cls, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, epsilon: float,
                       diagonal: bool = False) -> "LightSB":
        """The exact LightSB model of the EOT benchmark's plan with Schrödinger potential
        φ = Σ_m p_m N(μ_m, Σ_m), π*(y | x) ∝ exp(−‖x − y‖²/2ε) φ(y) (Gushchin et al. 2023):

            S_m = Σ'_m / ε,   r_m = Σ'_m Σ_m⁻¹ μ_m,   log α_m = log p_m + log N(μ_m | 0, Σ_m + εI),
            Σ'_m = (Σ_m⁻¹ + I/ε)⁻¹.

        With Σ_m = Q diag(λ) Qᵀ: S_m = Q diag(λ/(λ+ε)) Qᵀ and r_m = Q diag(ε/(λ+ε)) Qᵀ μ_m.
        ``diagonal=True`` needs axis-aligned Σ_m and gives a diagonal model. Shapes (M,), (M, D), (M, D, D)."""
        if diagonal:
            lam, Q = covs.diagonal(dim1=-2, dim2=-1), None  # (M, D)
            if not torch.equal(torch.diag_embed(lam), covs):
                raise ValueError("from_potential(diagonal=True) needs axis-aligned (diagonal) covariances; "
                                 "use diagonal=False for rotated ones")
        else:
            lam, Q = torch.linalg.eigh(covs)
        mu_eig = _rotate(Q, means)  # (M, D): Qᵀ μ
        log_alpha = (weights.log() - 0.5 * torch.log(2 * math.pi * (lam + epsilon)).sum(-1)
                     - 0.5 * (mu_eig.square() / (lam + epsilon)).sum(-1))
        r = _unrotate(Q, epsilon / (lam + epsilon) * mu_eig)
        s = lam / (lam + epsilon)
        return cls.from_parameters(log_alpha, r, s if Q is None else _compose(s, Q), epsilon)


def fit(model: LightSB, sample_x0: Callable[[int], torch.Tensor], sample_x1: Callable[[int], torch.Tensor],
        steps: int, batch_size: int = 128, lr: float = 1e-3,
        callback: Callable[[Event], None] | None = None, stop: Callable[[], bool] | None = None,
        cadence: Cadence | None = None) -> int:
    """Minimise L(θ) = E_p0 log c_θ − E_p1 log v_θ with Adam on independent batches, as the reference
    notebooks do (no gradient clipping, no scheduler, a fixed number of steps).

    ``sample_x0(n)`` / ``sample_x1(n)`` return (n, D) batches; ``callback(Event(step, steps, {"loss": mean}))``
    receives the mean loss since the previous call whenever ``cadence(step)`` is due (default :class:`Cadence`: every 1 % of
    the steps, the last one and every half second; one host sync per call);
    ``stop()`` returning True ends training before the next step. Returns the number of steps taken."""
    device = model.r.device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))
    cadence = cadence if cadence is not None else Cadence(steps)
    running, count, step = torch.zeros((), device=device), 0, 0
    while step < steps and not (stop is not None and stop()):
        loss = model.loss(sample_x0(batch_size), sample_x1(batch_size))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step, count = step + 1, count + 1
        running += loss.detach()
        if callback is not None and cadence(step):
            callback(Event(step, steps, {"loss": running.item() / count}))
            running.zero_()
            count = 0
    return step

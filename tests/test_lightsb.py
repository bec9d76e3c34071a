"""LightSB against ground truth: the Gaussian closed form, analytic moments, the drift identities, the
in-class mixture benchmark, and the Bures–Wasserstein metrics."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from workbench.progress import Cadence
from workbench.methods.eot_benchmark import GaussianPair, MixtureBenchmark
from workbench.methods.lightsb import LightSB, fit, gaussian_bridge, gaussian_drift, sample_categorical
from workbench.methods.gaussian_metrics import (bw2, bw2_uvp, cbw2_uvp_from_moments, cbw2_uvp_from_samples,
                                                gaussian_moments)

F64 = torch.float64


def random_model(dim, K, epsilon, diagonal, seed, spread=2.0):
    """A float64 LightSB with random parameters: means ~ spread·N(0, I), eigenvalues in [0.3, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    model = LightSB(dim, K, epsilon, diagonal=diagonal).double()
    with torch.no_grad():
        model.log_alpha_raw.copy_(epsilon * torch.randn(K, generator=g, dtype=F64))
        model.r.copy_(spread * torch.randn(K, dim, generator=g, dtype=F64))
        model.S_log_diagonal.copy_(torch.empty(K, dim, dtype=F64).uniform_(math.log(0.3), math.log(1.5), generator=g))
        if not diagonal:
            model.S_rotation_raw.copy_(torch.randn(K, dim, dim, generator=g, dtype=F64))
    return model


def conditional_distribution(model, x0):
    """π_θ(· | x0) built independently with torch.distributions: Σ_k w_k N(r_k + S_k x0, ε S_k)."""
    S = model.S  # (K, D, D)
    means = model.r + torch.einsum("kde,be->bkd", S, x0)  # (B, K, D)
    return MixtureSameFamily(Categorical(probs=model.mixture_weights(x0)),
                             MultivariateNormal(means, covariance_matrix=model.epsilon * S))


# --- the Gaussian closed form -------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [1, 3, 6])
@pytest.mark.parametrize("epsilon", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_bridge_identities(dim, epsilon, seed):
    pair = GaussianPair.random(dim, epsilon, seed)
    K, cov = gaussian_bridge(pair.m0, pair.A, pair.m1, pair.B, epsilon)
    # the plan's x1-marginal is p1: K A K + ε K = B
    assert torch.allclose(K @ pair.A @ K + epsilon * K, pair.B, atol=1e-9)
    assert torch.allclose(cov, epsilon * K)
    # the joint Gaussian's precision has off-diagonal block −I/ε (the density is ∝ exp(⟨x0, x1⟩/ε) ...)
    C = pair.A @ K
    joint = torch.cat([torch.cat([pair.A, C], 1), torch.cat([C.T, pair.B], 1)], 0)
    off_diagonal = torch.linalg.inv(joint)[:dim, dim:]
    assert torch.allclose(off_diagonal, -torch.eye(dim, dtype=F64) / epsilon, atol=1e-7 / epsilon)


@pytest.mark.parametrize("epsilon", [0.05, 1.0, 7.0])
def test_gaussian_bridge_diagonal_matches_scalar_formula(epsilon):
    # independent per-coordinate formula for diagonal A, B: K_ii = (√(a b + ε²/4) − ε/2) / a
    a, b = torch.tensor([0.3, 1.0, 4.0], dtype=F64), torch.tensor([2.0, 0.5, 1.0], dtype=F64)
    zero = torch.zeros(3, dtype=F64)
    K, _ = gaussian_bridge(zero, torch.diag(a), zero, torch.diag(b), epsilon)
    expected = (torch.sqrt(a * b + epsilon**2 / 4) - epsilon / 2) / a
    assert torch.allclose(K, torch.diag(expected), atol=1e-12)


@pytest.mark.parametrize("dim, epsilon, seed", [(2, 0.5, 0), (4, 1.0, 1), (5, 0.1, 2)])
def test_exact_one_component_model_is_the_gaussian_plan(dim, epsilon, seed):
    pair = GaussianPair.random(dim, epsilon, seed)
    K, _ = pair.bridge
    r = pair.m1 - K @ pair.m0
    model = LightSB.from_parameters(torch.zeros(1, dtype=F64), r[None], K[None], epsilon)
    x = pair.test_points[:50]
    mean, cov = model.conditional_moments(x)
    true_mean, true_cov = pair.conditional_moments(x)
    assert torch.allclose(mean, true_mean, atol=1e-10)
    assert torch.allclose(cov, true_cov, atol=1e-10)
    # the Gaussian plan's drift at t = 0 is K x + r − x
    assert torch.allclose(model.drift(x, 0.0), true_mean - x, atol=1e-10)


def test_fitted_one_component_model_recovers_the_gaussian_plan():
    dim, epsilon = 2, 0.5
    pair = GaussianPair.random(dim, epsilon, seed=3)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = LightSB(dim, 1, epsilon, diagonal=False, S_init=1.0)
    model.init_r_by_samples(pair.sample_x1(1, g))
    fit(model, lambda n: pair.sample_x0(n, g), lambda n: pair.sample_x1(n, g), steps=400, batch_size=512, lr=0.03)
    x = pair.test_points[:200]
    with torch.no_grad():
        mean, cov = model.double().conditional_moments(x)
    true_mean, true_cov = pair.conditional_moments(x)
    # SGD noise at batch 512: a few percent of the conditional spread / of the covariance
    assert (mean - true_mean).norm(dim=-1).max() < 0.1 * true_cov[0].trace().sqrt()
    assert (cov[0] - true_cov[0]).norm() < 0.06 * true_cov[0].norm()


# --- analytic conditional plan, drift, SDE, bridge ------------------------------------------------------

@pytest.mark.parametrize("diagonal", [True, False])
def test_analytic_moments_match_sample_moments(diagonal):
    model = random_model(3, 4, 0.5, diagonal, seed=1)
    x0 = torch.tensor([[0.0, 0.0, 0.0], [0.8, -0.5, 0.3]], dtype=F64)
    n = 20_000
    samples = model.sample(x0.repeat_interleave(n, 0), torch.Generator().manual_seed(2)).reshape(2, n, 3)
    mean, cov = model.conditional_moments(x0)
    sample_mean, sample_cov = gaussian_moments(samples)
    var = cov.diagonal(dim1=-2, dim2=-1)  # (2, D)
    # CLT: 5 standard errors for the mean; 8 (mixtures have heavy tails) for covariance entries
    assert ((sample_mean - mean).abs() < 5 * (var / n).sqrt()).all()
    cov_se = ((var.unsqueeze(-1) * var.unsqueeze(-2) + cov.square()) / n).sqrt()
    assert ((sample_cov - cov).abs() < 8 * cov_se).all()
    # the mixture is genuinely multimodal here: the between-component part is not negligible
    assert (cov.diagonal(dim1=-2, dim2=-1) > 2 * model.epsilon * model.S_eigenvalues.max()).any()


@pytest.mark.parametrize("diagonal", [True, False])
def test_log_densities_give_the_conditional_density(diagonal):
    # π_θ(x1 | x0) = exp(⟨x0, x1⟩/ε) v_θ(x1) / c_θ(x0), against torch.distributions' mixture density
    model = random_model(3, 5, 0.7, diagonal, seed=4)
    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(64, 3, generator=g, dtype=F64), 2 * torch.randn(64, 3, generator=g, dtype=F64)
    log_pi = (x0 * x1).sum(-1) / model.epsilon + model.log_potential(x1) - model.log_normalizer(x0)
    assert torch.allclose(log_pi, conditional_distribution(model, x0).log_prob(x1), atol=1e-9)


def reference_drift(model, x, t):
    """The reference ``get_drift`` with full matrices and autograd:
    g = −x/(1−t) + ε∇ LSE_k[log α_k − ½log|S_k| − ½log|A_k| − r_kᵀS_k⁻¹r_k/2ε + ½c_kᵀA_k⁻¹c_k],
    A_k = t/(ε(1−t)) I + (εS_k)⁻¹, c_k = x/(ε(1−t)) + S_k⁻¹r_k/ε."""
    eps, S, r = model.epsilon, model.S.detach(), model.r.detach()
    x = x.clone().requires_grad_(True)
    S_inv = torch.linalg.inv(S)
    A = t / (eps * (1 - t)) * torch.eye(x.shape[1], dtype=F64) + S_inv / eps  # (K, D, D)
    c = x[:, None, :] / (eps * (1 - t)) + (S_inv @ r[..., None])[..., 0] / eps  # (B, K, D)
    A_inv_c = torch.linalg.solve(A, c[..., None])[..., 0]
    arg = (model.log_alpha.detach() - 0.5 * torch.logdet(S) - 0.5 * torch.logdet(A)
           - 0.5 * (r[:, None, :] @ S_inv @ r[..., None])[:, 0, 0] / eps + 0.5 * (c * A_inv_c).sum(-1))
    grad, = torch.autograd.grad(torch.logsumexp(arg, -1).sum(), x)
    return -x.detach() / (1 - t) + eps * grad


@pytest.mark.parametrize("diagonal", [True, False])
@pytest.mark.parametrize("t", [0.0, 0.3, 0.9])
def test_closed_form_drift_matches_reference_autograd(diagonal, t):
    model = random_model(3, 4, 0.6, diagonal, seed=6)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    assert torch.allclose(model.drift(x, t), reference_drift(model, x, t), atol=1e-8)
    # t given per sample
    assert torch.allclose(model.drift(x, torch.full((16,), t, dtype=F64)), model.drift(x, t), atol=1e-12)


@pytest.mark.parametrize("diagonal", [True, False])
def test_drift_at_zero_is_conditional_mean_minus_x(diagonal):
    model = random_model(4, 6, 1.3, diagonal, seed=8)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(9), dtype=F64)
    mean, _ = model.conditional_moments(x)
    assert torch.allclose(model.drift(x, 0.0), mean - x, atol=1e-10)


def test_euler_maruyama_endpoints_match_the_plan():
    model = random_model(2, 3, 0.5, diagonal=True, seed=10, spread=1.0)
    x0 = torch.tensor([[0.5, -0.3]], dtype=F64)
    n = 3000
    path = model.sample_trajectory(x0.expand(n, 2), n_steps=100, generator=torch.Generator().manual_seed(11))
    assert path.shape == (n, 101, 2)
    assert torch.equal(path[:, 0], x0.expand(n, 2))
    end_mean, end_cov = gaussian_moments(path[:, -1])
    mean, cov = (m[0] for m in model.conditional_moments(x0))
    # 5 standard errors plus the O(dt) bias of Euler–Maruyama
    assert ((end_mean - mean).abs() < 5 * (cov.diagonal() / n).sqrt() + 0.02).all()
    assert (end_cov - cov).abs().max() < 0.1 * cov.diagonal().max()


@pytest.mark.parametrize("t", [0.3, 0.5])
def test_bridge_variance_is_eps_t_one_minus_t(t):
    epsilon, n = 2.0, 40_000
    model = LightSB(2, 1, epsilon)
    x0, x1 = torch.tensor([[1.0, -2.0]]).expand(n, 2), torch.tensor([[3.0, 0.0]]).expand(n, 2)
    xt = model.sample_bridge(x0, x1, t, generator=torch.Generator().manual_seed(12))
    mean, cov = gaussian_moments(xt)
    assert torch.allclose(mean, (t * x1[0] + (1 - t) * x0[0]).double(), atol=5 * math.sqrt(epsilon * t * (1 - t) / n))
    # corrected √(εt(1−t)) std: variance εt(1−t) (the old bug gave (εt(1−t))², 2.4x smaller at t = 0.5)
    assert torch.allclose(cov, epsilon * t * (1 - t) * torch.eye(2, dtype=F64), atol=0.03 * epsilon * t * (1 - t))
    per_sample = model.sample_bridge(x0, x1, torch.full((n,), t), generator=torch.Generator().manual_seed(12))
    assert torch.equal(per_sample, xt)


def test_inverse_cdf_categorical_draws_softmax_frequencies():
    logits = torch.tensor([[0.0, 1.0, -2.0, 3.0], [5.0, -math.inf, 5.0, 4.0]], dtype=F64)
    n = 40_000
    k = sample_categorical(logits.repeat_interleave(n, 0), torch.Generator().manual_seed(14)).reshape(2, n)
    frequencies = torch.nn.functional.one_hot(k, 4).double().mean(1)  # (2, 4)
    p = torch.softmax(logits, dim=-1)
    assert ((frequencies - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all()
    assert frequencies[1, 1] == 0  # a component of probability 0 is never drawn


# --- the in-class mixture benchmark ---------------------------------------------------------------------

@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("dim, epsilon", [(2, 0.1), (5, 1.0), (3, 10.0)])
def test_mapped_benchmark_potential_is_the_exact_plan(rotated, dim, epsilon):
    pair = MixtureBenchmark.generate(dim, epsilon, seed=0, rotated=rotated)
    model = LightSB.from_potential(pair.weights, pair.means, pair.covs, epsilon, diagonal=not rotated)
    assert model.diagonal is not rotated
    x = pair.test_points
    mean, cov = model.conditional_moments(x)
    true_mean, true_cov = pair.conditional_moments(x)
    assert torch.allclose(mean, true_mean, atol=1e-5)
    assert torch.allclose(cov, true_cov, atol=1e-5)
    assert abs(cbw2_uvp_from_moments(mean, cov, true_mean, true_cov, pair.y_var)) < 1e-6


def test_axis_aligned_potential_cannot_load_rotated_covariances():
    pair = MixtureBenchmark.generate(3, 1.0, rotated=True)
    with pytest.raises(ValueError, match="axis-aligned"):
        LightSB.from_potential(pair.weights, pair.means, pair.covs, 1.0, diagonal=True)


@pytest.mark.parametrize("rotated", [False, True])
def test_loss_gap_to_the_exact_model_is_a_positive_kl(rotated):
    # L(θ) − L(θ*) = KL(π* ‖ π_θ) = E_π*[log π*(x1|x0) − log π_θ(x1|x0)] > 0 for θ ≠ θ*
    dim, epsilon, n = 3, 1.0, 20_000
    pair = MixtureBenchmark.generate(dim, epsilon, rotated=rotated)
    exact = LightSB.from_potential(pair.weights, pair.means, pair.covs, epsilon, diagonal=not rotated)
    g = torch.Generator().manual_seed(13)
    x0 = torch.randn(n, dim, generator=g, dtype=F64)
    x1 = exact.sample(x0, g)
    for trial in range(4):
        model = LightSB.from_potential(pair.weights, pair.means, pair.covs, epsilon, diagonal=not rotated)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=F64))
            gap = model.loss(x0, x1) - exact.loss(x0, x1)
            log_ratio = conditional_distribution(exact, x0).log_prob(x1) - conditional_distribution(model, x0).log_prob(x1)
            kl = log_ratio.mean()
        assert gap > 0
        assert gap.item() == pytest.approx(kl.item(), rel=1e-6)


# --- training loop ----------------------------------------------------------------------------------------

def test_fit_reports_window_means_and_stops_on_request():
    torch.manual_seed(0)
    model = LightSB(2, 3, 1.0)
    calls = []
    batches = iter(range(10**6))
    x0, x1 = torch.randn(1000, 2), torch.randn(1000, 2)
    losses = []

    def sample_x0(n):
        losses.append(model.loss(x0[:n], x1[:n]).item())  # the loss this step will compute
        next(batches)
        return x0[:n]

    done = fit(model, sample_x0, lambda n: x1[:n], steps=100, batch_size=16, lr=1e-2,
               callback=lambda event: calls.append((event.step, event.metrics["loss"])), stop=lambda: len(calls) == 2,
               cadence=Cadence(100, every=10, seconds=None))
    assert done == 20
    assert [s for s, _ in calls] == [10, 20]
    assert calls[0][1] == pytest.approx(np.mean(losses[:10]), rel=1e-5)
    assert calls[1][1] == pytest.approx(np.mean(losses[10:20]), rel=1e-5)


# --- metrics ------------------------------------------------------------------------------------------------

def random_spd(dim, seed, batch=()):
    G = torch.randn(*batch, dim, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return G @ G.mT / dim + 0.1 * torch.eye(dim, dtype=F64)


def test_bw2_of_identical_gaussians_is_zero():
    C = random_spd(5, 0, batch=(3,))
    m = torch.randn(3, 5, dtype=F64)
    assert bw2(m, C, m, C).abs().max() < 1e-10


def test_w2_between_shifted_normals():
    # W2(N(0, 1), N(10, 1)) = 10 (POT's test_gaussian)
    one = torch.ones(1, 1, dtype=F64)
    assert math.sqrt(bw2(torch.zeros(1), one, torch.full((1,), 10.0), one)) == pytest.approx(10.0, abs=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_bw2_matches_scipy_sqrtm(seed):
    C1, C2 = random_spd(4, seed), random_spd(4, seed + 10)
    m1, m2 = torch.randn(4, dtype=F64), torch.randn(4, dtype=F64)
    C1_half = scipy.linalg.sqrtm(C1.numpy())
    cross = np.trace(scipy.linalg.sqrtm(C1_half @ C2.numpy() @ C1_half)).real
    expected = ((m1 - m2) ** 2).sum().item() + C1.trace().item() + C2.trace().item() - 2 * cross
    assert bw2(m1, C1, m2, C2).item() == pytest.approx(expected, rel=1e-9)
    # commuting (diagonal) case: Σ (√a − √b)²
    a, b = torch.tensor([1.0, 4.0, 0.25], dtype=F64), torch.tensor([9.0, 1.0, 0.25], dtype=F64)
    assert bw2(torch.zeros(3), torch.diag(a), torch.zeros(3), torch.diag(b)).item() == pytest.approx(
        ((a.sqrt() - b.sqrt()) ** 2).sum().item(), rel=1e-12)


def test_bw2_uvp_anchors():
    y = torch.randn(5000, 4, generator=torch.Generator().manual_seed(3), dtype=F64) * torch.tensor([1.0, 2.0, 0.5, 3.0])
    assert bw2_uvp(y, y) == pytest.approx(0.0, abs=1e-8)
    # predicting the target mean (no spread) explains none of the variance: 100
    assert bw2_uvp(y.mean(0).expand(100, 4), y) == pytest.approx(100.0, rel=1e-9)


def test_sampled_cbw2_uvp_agrees_with_analytic():
    true_mean = torch.randn(4, 3, dtype=F64)
    true_cov = random_spd(3, 4, batch=(4,))
    g = torch.Generator().manual_seed(5)
    z = torch.randn(4, 20_000, 3, generator=g, dtype=F64)
    samples = true_mean[:, None] + 1.1 * z @ torch.linalg.cholesky(true_cov).mT  # covariance off by 1.21x
    analytic = cbw2_uvp_from_moments(true_mean, 1.21 * true_cov, true_mean, true_cov, y_var=10.0)
    assert analytic > 0.1
    assert cbw2_uvp_from_samples(samples, true_mean, true_cov, y_var=10.0) == pytest.approx(analytic, rel=0.15)


@pytest.mark.parametrize("dim, epsilon", [(1, 0.3), (3, 1.0), (5, 4.0)])
@pytest.mark.parametrize("t", [0.0, 0.3, 0.9])
def test_drift_of_the_exact_model_matches_the_gaussian_closed_form(dim, epsilon, t):
    """LightSB's mixture drift formula, on θ* of a Gaussian pair, against the drift computed from the plan alone."""
    pair = GaussianPair.random(dim, epsilon, seed=dim)
    K, _ = pair.bridge
    exact = LightSB.from_parameters(torch.zeros(1, dtype=torch.float64), (pair.m1 - K @ pair.m0)[None], K[None], epsilon)
    x = torch.randn(64, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    closed = gaussian_drift(pair.m0, pair.A, pair.m1, pair.B, epsilon, x, t)
    torch.testing.assert_close(exact.drift(x, t), closed, rtol=1e-9, atol=1e-9)

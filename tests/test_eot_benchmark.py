"""The EOT pairs: the seed-exact mixture recipe, samplers against exact moments, the 2-D toys."""
import numpy as np
import pytest
import torch

from workbench.methods.eot_benchmark import (
    EightGaussians, GaussianPair, MixtureBenchmark, SwissRoll, make_pair,
)
from workbench.methods.gaussian_metrics import gaussian_moments


def test_recipe_is_seed_exact_and_follows_the_draw_order():
    D, eps = 3, 0.1
    pair = MixtureBenchmark.generate(D, eps, seed=0)
    again = MixtureBenchmark.generate(D, eps, seed=0)
    assert torch.equal(pair.covs, again.covs) and torch.equal(pair.means, again.means)
    rng = np.random.default_rng([0, D, 100])
    p = rng.dirichlet(5 * np.ones(5))
    mu = rng.uniform(-3, 3, size=(5, D))
    lam0 = 0.1 * rng.uniform(0.1, 0.5, size=D)  # min(ε, 1) = 0.1
    assert np.array_equal(pair.weights.numpy(), p) and np.array_equal(pair.means.numpy(), mu)
    assert np.array_equal(pair.covs[0].numpy(), np.diag(lam0))
    # the rotated variant draws Q_m right after λ_m: same p, μ and first spectrum, rotated
    rotated = MixtureBenchmark.generate(D, eps, seed=0, rotated=True)
    assert torch.equal(rotated.weights, pair.weights) and torch.equal(rotated.means, pair.means)
    assert np.allclose(np.linalg.eigvalsh(rotated.covs[0].numpy()), np.sort(lam0), rtol=1e-12)
    assert not torch.allclose(rotated.covs[0], pair.covs[0])
    assert not torch.equal(MixtureBenchmark.generate(D, 1.0, seed=0).means, pair.means)  # ε enters the seed


@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_covariance_spectra_are_scaled_by_min_eps_one(eps):
    covs = MixtureBenchmark.generate(4, eps, seed=1, rotated=True).covs
    lam = torch.linalg.eigvalsh(covs)
    scale = min(eps, 1.0)
    assert lam.min() >= 0.1 * scale - 1e-12 and lam.max() <= 0.5 * scale + 1e-12


def test_test_points_are_fixed_per_dimension():
    pair = MixtureBenchmark.generate(2, 1.0, seed=7)
    expected = np.random.default_rng([12345, 2]).standard_normal((1000, 2))
    assert np.array_equal(pair.test_points.numpy(), expected)


@pytest.mark.parametrize("rotated", [False, True])
def test_target_sampler_matches_the_plan_pushforward(rotated):
    # E[y] = E_x E[y|x] and tr Cov y = E_x tr Cov[y|x] + tr Cov_x E[y|x] (law of total variance)
    pair = MixtureBenchmark.generate(3, 1.0, seed=2, rotated=rotated)
    g = torch.Generator().manual_seed(0)
    n = 40_000
    y = pair.sample_x1(n, g).double()
    mean, cov = pair.conditional_moments(pair.sample_x0(n, g))
    total_mean = mean.mean(0)
    total_var = cov.diagonal(dim1=-2, dim2=-1).mean(0) + mean.var(0)
    se = (total_var / n).sqrt()
    assert ((y.mean(0) - total_mean).abs() < 6 * se).all()
    assert torch.allclose(y.var(0), total_var, rtol=0.05)
    assert pair.y_var == pytest.approx(total_var.sum().item(), rel=0.03)


@pytest.mark.parametrize("eps", [0.3, 2.0])
def test_one_component_potential_gives_the_gaussian_closed_form(eps):
    # φ = N(μ, Σ) and P0 = N(0, I): P1 = N(b, G Gᵀ + Σ') is Gaussian, and the plan
    # π(y|x) ∝ e^{−‖x−y‖²/2ε} φ(y) must be the Janati et al. closed form between N(0, I) and P1 (an independent derivation)
    from workbench.methods.lightsb import gaussian_bridge

    rng = np.random.default_rng(4)
    G = rng.standard_normal((3, 3))
    pair = MixtureBenchmark(torch.ones(1, dtype=torch.float64), torch.from_numpy(rng.standard_normal((1, 3))),
                            torch.from_numpy(G @ G.T / 3 + 0.2 * np.eye(3))[None], epsilon=eps)
    x = pair.test_points[:20]
    mean, cov = pair.conditional_moments(x)
    b, gain, Sigma_prime = pair.plan["b"][0], pair.plan["G"][0], pair.plan["Sigma_prime"][0]
    eye = torch.eye(3, dtype=torch.float64)
    K, bridge_cov = gaussian_bridge(torch.zeros(3, dtype=torch.float64), eye, b, gain @ gain.T + Sigma_prime, eps)
    assert torch.allclose(mean, b + x @ K.T, atol=1e-10)
    assert torch.allclose(cov, bridge_cov.expand(20, 3, 3), atol=1e-10)


def test_gaussian_pair_samples_have_the_given_moments():
    pair = GaussianPair.random(3, 1.0, seed=0)
    g = torch.Generator().manual_seed(1)
    for sample, m, C in ((pair.sample_x0, pair.m0, pair.A), (pair.sample_x1, pair.m1, pair.B)):
        mean, cov = gaussian_moments(sample(40_000, g))
        assert ((mean - m).abs() < 6 * (C.diagonal() / 40_000).sqrt()).all()
        assert torch.allclose(cov, C, atol=0.05 * C.diagonal().max())
    assert pair.y_var == pytest.approx(pair.B.trace().item())


def test_swiss_roll_matches_sklearn_in_distribution():
    from sklearn.datasets import make_swiss_roll

    n = 40_000
    ours = SwissRoll(epsilon=0.1).sample_x1(n, torch.Generator().manual_seed(0))
    theirs = make_swiss_roll(n_samples=n, noise=0.8, random_state=0)[0][:, [0, 2]] / 7.5
    mean, cov = gaussian_moments(ours)
    ref_mean, ref_cov = gaussian_moments(theirs)
    assert torch.allclose(mean, ref_mean, atol=0.03)
    assert torch.allclose(cov, ref_cov, atol=0.05)
    levels = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    radii, ref_radii = ours.double().norm(dim=1), torch.from_numpy(theirs).norm(dim=1)
    assert torch.allclose(radii.quantile(levels), ref_radii.quantile(levels), atol=0.05)


def test_eight_gaussians_moments():
    toy = EightGaussians(epsilon=1.0)
    mean, cov = gaussian_moments(toy.sample_x1(40_000, torch.Generator().manual_seed(0)))
    expected = (toy.radius**2 / 2 + toy.std**2) * torch.eye(2, dtype=torch.float64)
    assert mean.abs().max() < 0.06
    assert torch.allclose(cov, expected, rtol=0.03, atol=0.1)


def test_make_pair_checks_names_and_dimensions():
    assert isinstance(make_pair("mixture_benchmark_rotated", 4, 1.0), MixtureBenchmark)
    assert make_pair("mixture_benchmark_rotated", 4, 1.0).rotated
    with pytest.raises(ValueError, match="'swiss_roll' is two-dimensional: it needs dim = 2, got dim = 3"):
        make_pair("swiss_roll", 3, 1.0)
    with pytest.raises(ValueError, match="unknown dataset 'moons'; expected one of gaussian"):
        make_pair("moons", 2, 1.0)

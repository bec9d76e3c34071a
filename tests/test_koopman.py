"""The Koopman lab's math against ground truth: exact flows, known eigenvalues, PyDMD, closed-form entropies,
known linear maps, and the behaviour the paper predicts for the entropy term."""
import math

import numpy as np
import pydmd
import pytest
import torch
from scipy.integrate import solve_ivp

import workbench
from workbench.methods import koopman as kp
from workbench.methods.koopman import (
    SYSTEMS, KoopmanAutoencoder, LossWeights, PolynomialDictionary, RBFDictionary, RandomLift, data_std, dmd, edmd,
    eigenvalue_error, eigenvalues, forecast_nrmse, info_nce, kmeans, latents, linear_eigenvalues, linear_step_map,
    fit_baselines, make_data, n_polynomial_features, nrmse, pairs, ridge_koopman, rollout, simulate,
    von_neumann_entropy, windows,
)
from workbench.methods.koopman.systems import _linear_matrix
from workbench.progress import Cadence, Event


def linear_pairs(n_traj=5, n_steps=40, dt=0.1, seed=0):
    return pairs(simulate("linear", n_traj, n_steps, dt, seed))  # (N·T, 4) each


# --- systems --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("system", list(SYSTEMS))
def test_simulate_shape_dtype_and_seeding(system):
    X = simulate(system, 3, 20, 0.1, seed=4)
    assert X.shape == (3, 21, SYSTEMS[system].state_dim) and X.dtype == torch.float64
    assert torch.isfinite(X).all()
    assert torch.equal(X, simulate(system, 3, 20, 0.1, seed=4))
    assert not torch.equal(X, simulate(system, 3, 20, 0.1, seed=5))


@pytest.mark.parametrize("system", ["pendulum", "van_der_pol", "duffing", "lorenz"])
def test_rk4_agrees_with_scipy_solve_ivp(system):
    spec = SYSTEMS[system]
    X = simulate(system, 2, 50, 0.02, seed=1)
    x0 = X[:, 0].numpy()
    f = lambda t, x: spec.f(torch.from_numpy(x)[None])[0].numpy()  # noqa: E731
    t_eval = np.arange(51) * 0.02
    for b in range(2):
        ref = solve_ivp(f, (0, t_eval[-1]), x0[b], t_eval=t_eval, rtol=1e-11, atol=1e-11, method="DOP853").y.T
        assert np.abs(X[b].numpy() - ref).max() < 1e-6 * np.abs(ref).max()


def test_pendulum_initial_conditions_follow_the_method_note():
    X = simulate("pendulum", 2000, 1, 0.1, seed=0)[:, 0]
    assert X[:, 0].abs().max() <= 2.5 and X[:, 1].abs().max() <= 1.0
    assert X[:, 0].abs().max() > 2.4 and X[:, 1].abs().max() > 0.95  # the whole box is used


def test_linear_system_is_advanced_exactly():
    X = simulate("linear", 1, 30, 0.1, seed=0)[0]  # (31, 4)
    A = _linear_matrix()
    assert torch.allclose(X[-1], torch.linalg.matrix_exp(A * 3.0) @ X[0], atol=1e-12)
    mu = torch.linalg.eigvals(A)
    assert eigenvalue_error(torch.exp(mu * 0.1), linear_eigenvalues(0.1)) < 1e-12


@pytest.mark.parametrize("dt", [0.05, 0.1, 0.3])
def test_linear_step_map_is_the_row_convention_one_step_matrix(dt):
    K = linear_step_map(dt)  # x_{t+1} = x_t K
    X = simulate("linear", 3, 20, dt, seed=1)  # (3, 21, 4)
    assert torch.allclose(X[:, 1:], X[:, :-1] @ K, atol=1e-12)
    assert torch.allclose(X[:, -1], X[:, 0] @ torch.linalg.matrix_power(K, 20), atol=1e-10)
    assert torch.allclose(K, torch.linalg.matrix_exp(_linear_matrix() * dt).T, atol=1e-14)
    assert eigenvalue_error(torch.linalg.eigvals(K), linear_eigenvalues(dt)) < 1e-12
    assert (K - K.T).abs().max() > 0.1 * dt  # not symmetric: Kᵀ is a different map


def test_lift_noise_and_split():
    data = make_data("pendulum", 12, 3, 60, seed=0, observation="lifted", noise=0.1, obs_dim=64)
    assert data.train.shape == (9, 61, 64) and data.test.shape == (3, 61, 64) and data.test_states.shape == (3, 61, 2)
    assert torch.allclose(data.test, data.lift(data.test_states))  # the test set is clean
    clean = make_data("pendulum", 12, 3, 60, seed=0, observation="lifted", obs_dim=64)
    relative = (data.train - clean.train).std() / clean.train.std()
    assert 0.05 < relative < 0.2
    assert torch.equal(RandomLift(2, 64, seed=0).W, data.lift.W)  # a fixed map
    assert data.train.abs().max() <= 1 + 5 * 0.1


def test_windows_cover_every_start():
    X = torch.arange(2 * 6 * 1, dtype=torch.float64).reshape(2, 6, 1)
    W = windows(X, 3)
    assert W.shape == (8, 3, 1) and torch.equal(W[1, :, 0], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert windows(X, 3, stride=3).shape == (4, 3, 1)
    with pytest.raises(ValueError, match="at least that long"):
        windows(X, 7)


def test_pairs_are_every_snapshot_and_its_successor():
    X = torch.arange(2 * 4 * 3, dtype=torch.float64).reshape(2, 4, 3)  # (N = 2, T + 1 = 4, D = 3)
    before, after = pairs(X)
    assert before.shape == after.shape == (6, 3)
    assert torch.equal(before, torch.cat([X[0, :3], X[1, :3]])) and torch.equal(after, torch.cat([X[0, 1:], X[1, 1:]]))


# --- DMD and EDMD -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dt", [0.05, 0.1, 0.3])
def test_dmd_recovers_a_linear_systems_eigenvalues(seed, dt):
    X, Y = linear_pairs(dt=dt, seed=seed)
    fitted = dmd(X, Y)
    assert fitted.eigenvalues.shape == (4,) and fitted.modes.shape == (4, 4)
    assert eigenvalue_error(fitted.eigenvalues, linear_eigenvalues(dt)) < 1e-8


def test_dmd_modes_are_eigenvectors_and_predict_the_trajectory():
    X = simulate("linear", 1, 60, 0.1, seed=3)[0]  # (61, 4)
    fitted = dmd(X[:-1], X[1:])
    A = torch.linalg.lstsq(X[:-1], X[1:]).solution.T.to(torch.complex128)  # column form: x' = A x
    assert torch.allclose(A @ fitted.modes, fitted.modes * fitted.eigenvalues, atol=1e-9)
    assert torch.allclose(fitted.predict(X[:1], 60)[0], X, atol=1e-9)


@pytest.mark.parametrize("system, rank", [("linear", None), ("pendulum", None), ("lorenz", 2)])
def test_dmd_eigenvalues_match_pydmd(system, rank):
    X = simulate(system, 1, 300, None, seed=2)[0]  # one trajectory: PyDMD takes snapshots as columns
    ours = dmd(X[:-1], X[1:], rank=rank).eigenvalues.numpy()
    reference = pydmd.DMD(svd_rank=-1 if rank is None else rank, exact=True).fit(X.numpy().T).eigs
    assert len(ours) == len(reference)
    cost = np.abs(ours[:, None] - reference[None, :])
    assert cost.min(axis=1).max() < 1e-8 and cost.min(axis=0).max() < 1e-8


def test_rank_truncation_keeps_the_leading_subspace():
    X, Y = linear_pairs()
    assert dmd(X, Y, rank=2).eigenvalues.shape == (2,)


def test_edmd_with_linear_monomials_recovers_the_linear_eigenvalues_and_one():
    X, Y = linear_pairs()
    fitted = edmd(X, Y, PolynomialDictionary(4, degree=1))  # ψ = (1, x): eigenvalues {1} ∪ eig(A)
    expected = torch.cat([linear_eigenvalues(0.1), torch.ones(1, dtype=torch.complex128)])
    assert eigenvalue_error(fitted.eigenvalues, expected) < 1e-8
    x_next = simulate("linear", 1, 10, 0.1, seed=9)[0]
    assert torch.allclose(fitted.predict(x_next[:1], 10)[0], x_next, atol=1e-9)


@pytest.mark.parametrize("state_dim, degree", [(1, 1), (2, 2), (2, 3), (4, 2), (64, 2)])
def test_the_polynomial_feature_count_is_the_dictionary_length(state_dim, degree):
    assert n_polynomial_features(state_dim, degree) == len(PolynomialDictionary(state_dim, degree).exponents)


def test_polynomial_dictionary_is_closed_under_a_polynomial_map():
    # x' = (a x, b y + c x²) is linear on (1, x, y, x²): EDMD with degree 2 predicts it exactly
    a, b, c = 0.9, 0.5, 0.3
    x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    step = lambda x: torch.stack([a * x[:, 0], b * x[:, 1] + c * x[:, 0] ** 2], dim=1)  # noqa: E731
    fitted = edmd(x, step(x), PolynomialDictionary(2, degree=2))
    x0 = x[:5]
    truth = [x0]
    for _ in range(20):
        truth.append(step(truth[-1]))
    assert torch.allclose(fitted.predict(x0, 20), torch.stack(truth, dim=1), atol=1e-9)
    assert PolynomialDictionary(2, 3)(x).shape == (200, math.comb(5, 3))


def test_fit_baselines_fits_the_named_ones_on_every_snapshot_pair_and_refuses_unknown_names():
    X = simulate("linear", 4, 30, 0.1, seed=0)  # (4, 31, 4)
    fitted = fit_baselines(X, rank=2, degree=1, n_centres=5)
    assert list(fitted) == ["dmd", "edmd_poly", "edmd_rbf"]
    assert fitted["dmd"].eigenvalues.numel() == 2  # the rank reaches DMD
    assert len(fitted["edmd_poly"].dictionary.exponents) == n_polynomial_features(4, 1) == 5
    assert fitted["edmd_rbf"].dictionary.centres.shape == (5, 4)
    assert torch.equal(fit_baselines(X, ("dmd",))["dmd"].eigenvalues, dmd(*pairs(X)).eigenvalues)
    with pytest.raises(ValueError, match=r"unknown baselines \['edmd'\]; allowed: dmd, edmd_poly, edmd_rbf"):
        fit_baselines(X, ("dmd", "edmd"))


def test_kmeans_finds_separated_clusters_and_rbf_width_is_the_median_centre_distance():
    g = torch.Generator().manual_seed(0)
    truth = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    x = (truth[:, None] + 0.1 * torch.randn(3, 50, 2, generator=g, dtype=torch.float64)).reshape(-1, 2)
    centres = kmeans(x, 3, seed=1)
    assert eigenvalue_error(torch.complex(centres[:, 0], centres[:, 1]), torch.complex(truth[:, 0], truth[:, 1])) < 0.1
    dictionary = RBFDictionary(centres)
    assert math.isclose(dictionary.width, float(torch.pdist(centres).median()))
    features = dictionary(centres)
    assert features.shape == (3, 5) and torch.allclose(features[:, :2], centres)
    assert torch.allclose(features[:, 2:].diagonal(), torch.ones(3, dtype=torch.float64))


def test_rbf_edmd_is_nearly_exact_at_short_horizons_on_the_pendulum():
    data = make_data("pendulum", 60, 10, 100, seed=0)
    X, Y = data.train[:, :-1].reshape(-1, 2), data.train[:, 1:].reshape(-1, 2)
    W = windows(data.test, 21, 10)
    errors = nrmse(edmd(X, Y, RBFDictionary.fit(X, 100)).predict(W[:, 0], 20), W, data_std(data.test), (5, 20))
    assert errors[5] < 0.01 and errors[20] < 0.05


# --- metrics ---------------------------------------------------------------------------------------------

def test_nrmse_is_zero_for_the_truth_and_one_for_the_mean():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(4000, 51, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0])
    std = data_std(truth)
    assert all(v == 0 for v in nrmse(truth, truth, std).values())
    mean = truth.reshape(-1, 3).mean(0).expand_as(truth)
    assert all(abs(v - 1) < 0.03 for v in nrmse(mean, truth, std).values())
    assert math.isclose(std, math.sqrt((1 + 4 + 9) / 3), rel_tol=0.01)


def test_forecast_nrmse_scores_rollouts_from_every_stride_th_snapshot():
    """On the linear system DMD is exact, so its NRMSE is round-off; a model whose rollout stands still scores the
    error of x_0 against x_n, which forecast_nrmse must equal when computed by hand."""
    X = simulate("linear", 4, 80, 0.1, seed=0)  # (4, 81, 4)
    exact = forecast_nrmse(dmd(*pairs(X)), X, data_std(X), stride=10)
    assert set(exact) == {5, 20, 50} and max(exact.values()) < 1e-10

    class StandStill:
        state_dim, K = 4, torch.eye(4, dtype=torch.float64)

        def predict(self, x0, n_steps):
            return x0.unsqueeze(1).expand(-1, n_steps + 1, -1)

    starts = range(0, 81 - 50, 10)  # every 10th snapshot with 50 steps after it
    by_hand = {n: float(torch.stack([X[:, s + n] - X[:, s] for s in starts]).square().mean().sqrt()) / data_std(X)
               for n in (5, 20, 50)}
    assert forecast_nrmse(StandStill(), X, data_std(X), stride=10) == pytest.approx(by_hand, rel=1e-12)


def test_eigenvalue_error_matches_one_to_one():
    true = torch.tensor([1.0, 2.0], dtype=torch.complex128)
    assert eigenvalue_error(torch.tensor([2.1, 0.95], dtype=torch.complex128), true) == pytest.approx(0.1)
    assert eigenvalue_error(torch.tensor([2.0, 1.0, 9.0], dtype=torch.complex128), true) == 0  # extra estimates


# --- the information-theoretic terms ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [1, 2, 5, 16])
def test_entropy_is_log_d_for_isotropic_latents(d, dtype):
    eye = torch.eye(d, dtype=dtype)
    Z = torch.cat([eye, -eye]) * 3.0  # (2d, d): covariance exactly ∝ I
    assert von_neumann_entropy(Z).item() == pytest.approx(math.log(d), abs=1e-5 if dtype == torch.float32 else 1e-9)


@pytest.mark.parametrize("d", [2, 8, 32])
def test_entropy_is_zero_for_rank_one_latents_and_bounded(d):
    g = torch.Generator().manual_seed(d)
    direction = torch.randn(d, generator=g, dtype=torch.float64)
    Z = torch.randn(500, 1, generator=g, dtype=torch.float64) * direction  # (500, d), rank 1
    assert von_neumann_entropy(Z).item() == pytest.approx(0.0, abs=1e-5)
    Z = torch.randn(500, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    S = von_neumann_entropy(Z).item()
    assert 0 < S < math.log(d)
    assert von_neumann_entropy(7 * Z + 3).item() == pytest.approx(S, rel=1e-6)  # scale and shift invariant


def test_entropy_has_a_gradient_even_at_isotropy():
    Z = torch.cat([torch.eye(4), -torch.eye(4)]).double().requires_grad_()
    von_neumann_entropy(Z).backward()
    assert torch.isfinite(Z.grad).all()


@pytest.mark.parametrize("n", [1000, 3])  # both branches: (ZᵀZ + λI)⁻¹ZᵀZ' and Zᵀ(ZZᵀ + λI)⁻¹Z'
def test_ridge_fit_recovers_a_known_linear_map(n):
    g = torch.Generator().manual_seed(0)
    d = 6
    K_true = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    Z = torch.randn(n, d, generator=g, dtype=torch.float64)
    K = ridge_koopman(Z, Z @ K_true, lam=0.1)
    if n >= d:
        assert (K - K_true).abs().max() < 1e-3
    eye = torch.eye(d, dtype=torch.float64)
    assert torch.allclose(K, torch.linalg.solve(Z.T @ Z + 0.1 * eye, Z.T @ Z @ K_true), atol=1e-10)
    batched = ridge_koopman(torch.stack([Z, 2 * Z]), torch.stack([Z @ K_true, 2 * Z @ K_true]), 0.1)
    assert batched.shape == (2, d, d) and torch.allclose(batched[0], K)


def test_a_rotation_koopman_operator_has_unit_eigenvalues():
    model = KoopmanAutoencoder(2, 2)
    theta = 0.3
    with torch.no_grad():
        model.K_linear.weight.copy_(torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]))
    eigenvalues = torch.linalg.eigvals(model.K.detach())
    assert torch.allclose(eigenvalues.abs(), torch.ones(2), atol=1e-6)
    assert torch.allclose(eigenvalues.angle().abs(), torch.full((2,), theta), atol=1e-6)


@pytest.mark.parametrize("negatives", ["window", "batch"])
def test_info_nce_is_nonnegative_and_smallest_when_neighbours_align(negatives):
    g = torch.Generator().manual_seed(0)
    B, L, d, k = 4, 12, 16, 2
    random = info_nce(torch.randn(B, L, d, generator=g), k, 0.1, negatives)
    # aligned: each step points along a direction that turns slowly, so neighbours are nearly parallel and far
    # steps nearly orthogonal
    angle = torch.arange(L).float() * (math.pi / 2) / (k + 1)
    circle = torch.stack([angle.cos(), angle.sin()], dim=-1)  # (L, 2)
    aligned_z = torch.zeros(B, L, d)
    for b in range(B):
        aligned_z[b, :, 2 * b:2 * b + 2] = circle
    aligned = info_nce(aligned_z, k, 0.1, negatives)
    shuffled = info_nce(aligned_z[:, torch.randperm(L, generator=g)], k, 0.1, negatives)
    assert random >= 0 and aligned >= 0 and shuffled >= 0
    assert aligned < 0.5 * shuffled and aligned < 0.5 * random
    # the minimum: neighbours identical, the rest orthogonal, τ → small
    assert info_nce(aligned_z, k, 0.01, negatives) < aligned


def test_info_nce_needs_long_enough_windows():
    with pytest.raises(ValueError, match="at least 2k \\+ 1 = 7"):
        info_nce(torch.randn(2, 6, 3), k=3)


# --- the autoencoder's Lagrangian ----------------------------------------------------------------------

def test_loss_parts_and_the_entropy_sign():
    torch.manual_seed(0)
    model = KoopmanAutoencoder(2, 4, 16)
    x = simulate("pendulum", 8, 16, 0.1, seed=0).float()  # (8, 17, 2)
    model.set_normalization(x)
    w = LossWeights(alpha=2.0, beta=1.0, gamma=0.5)
    paper, parts = model.loss(x, w)
    code, _ = model.loss(x, LossWeights(alpha=2.0, beta=1.0, gamma=0.5, entropy_sign="code"))
    assert set(parts) == {"rec", "pred", "nce", "consistency", "entropy", "d_eff"}
    assert (code - paper).item() == pytest.approx(2 * 0.5 * parts["entropy"].item(), rel=1e-4)
    expected = parts["rec"] + parts["pred"] + 2.0 * parts["nce"] + parts["consistency"] - 0.5 * parts["entropy"]
    assert paper.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["d_eff"].item() == pytest.approx(math.exp(parts["entropy"].item()), rel=1e-5)


@pytest.mark.parametrize("koopman", ["learned", "ridge"])
def test_forecast_losses_against_a_loop_over_the_window(koopman):
    """rollout_mean: the mean error of ψ(z_0 Kʰ), h = 1..L − 1, and the mean reconstruction; one_step_sum (the
    released code): Σ_t MSE(ψ(z_t K), x_{t+1}) and Σ_t MSE(ψ(z_t), x_t), with the reconstruction weighted."""
    torch.manual_seed(0)
    model = KoopmanAutoencoder(2, 4, 16, koopman=koopman)
    x = simulate("pendulum", 6, 15, 0.1, seed=1).float()  # (6, 16, 2): 16-snapshot windows
    model.set_normalization(x)
    plain = dict(alpha=0.0, beta=0.0, gamma=0.0)
    rollout, rollout_parts = model.loss(x, LossWeights(**plain))
    summed, summed_parts = model.loss(x, LossWeights(**plain, forecast="one_step_sum", reconstruction=0.1))
    with torch.no_grad():
        xs = (x - model.x_mean) / model.x_scale
        z = model.encoder(xs)
        K = model.K
        mse = lambda a, b: float((a - b).square().mean())  # noqa: E731
        rec_steps = [mse(model.decoder(z[:, t]), xs[:, t]) for t in range(16)]
        one_step = [mse(model.decoder(z[:, t] @ K), xs[:, t + 1]) for t in range(15)]
        rollout_steps = [mse(model.decoder(z[:, 0] @ torch.linalg.matrix_power(K, h)), xs[:, h]) for h in range(1, 16)]
    assert rollout_parts["rec"].item() == pytest.approx(sum(rec_steps) / 16, rel=1e-5)
    assert rollout_parts["pred"].item() == pytest.approx(sum(rollout_steps) / 15, rel=1e-4)
    assert summed_parts["rec"].item() == pytest.approx(sum(rec_steps), rel=1e-5)
    assert summed_parts["pred"].item() == pytest.approx(sum(one_step), rel=1e-5)
    assert summed.item() == pytest.approx(0.1 * sum(rec_steps) + sum(one_step), rel=1e-5)
    assert rollout.item() == pytest.approx(sum(rec_steps) / 16 + sum(rollout_steps) / 15, rel=1e-4)


def test_loss_weights_refuse_an_unknown_forecast_loss():
    with pytest.raises(ValueError, match="forecast = 'rollout'; allowed: 'rollout_mean', 'one_step_sum'"):
        LossWeights(forecast="rollout")


def test_learned_k_gets_a_gradient_and_ridge_k_is_detached():
    x = simulate("pendulum", 8, 16, 0.1, seed=0).float()
    learned = KoopmanAutoencoder(2, 4, 16, koopman="learned")
    learned.loss(x, LossWeights())[0].backward()
    assert learned.K_linear.weight.grad is not None and learned.K_linear.weight.grad.abs().sum() > 0
    ridge = KoopmanAutoencoder(2, 4, 16, koopman="ridge")
    ridge.loss(x, LossWeights())[0].backward()
    assert ridge.K_linear.weight.grad is None and not ridge.K_ridge.requires_grad
    assert not torch.equal(ridge.K, torch.eye(4))  # refitted on the batch
    z = ridge.encode(x).detach()
    assert torch.allclose(ridge.K, ridge_koopman(z[:, :-1], z[:, 1:], 0.1).mean(0), atol=1e-5)


def test_predict_rolls_the_latent_with_powers_of_k():
    torch.manual_seed(0)
    model = KoopmanAutoencoder(3, 5, 8)
    x0 = torch.randn(4, 3)
    path = model.predict(x0, 6)
    z6 = model.encode(x0) @ torch.linalg.matrix_power(model.K.detach(), 6)
    assert path.shape == (4, 7, 3) and torch.allclose(path[:, 6], model.decode(z6), atol=1e-5)


def test_every_model_predicts_from_one_state_or_refuses_with_the_expected_shape():
    X = simulate("linear", 3, 20, 0.1, seed=0)  # (3, 21, 4)
    X0, X1 = X[:, :-1].reshape(-1, 4), X[:, 1:].reshape(-1, 4)
    torch.manual_seed(0)
    models = [dmd(X0, X1), edmd(X0, X1, PolynomialDictionary(4, 2)), KoopmanAutoencoder(4, 3, 8).double()]
    for model in models:
        one = model.predict(X[0, 0], 5)  # (D,) -> (n + 1, D)
        assert one.shape == (6, 4) and torch.equal(one, model.predict(X[:1, 0], 5)[0]), type(model).__name__
        for bad in (X[0, 0, :3], X):
            with pytest.raises(ValueError, match=r"expected one state \(4,\) or a batch of states \(B, 4\)"):
                model.predict(bad, 5)


def test_every_model_reads_the_same_way_on_the_cpu_in_float64():
    """rollout, latents and eigenvalues: the state itself for DMD, the dictionary for EDMD, φ(x) for the
    autoencoder (float32 parameters), returned in float64 / complex128 on the CPU."""
    X = simulate("linear", 3, 20, 0.1, seed=0)  # (3, 21, 4)
    torch.manual_seed(0)
    linear_dmd, poly = dmd(*pairs(X)), edmd(*pairs(X), PolynomialDictionary(4, 2))
    model = KoopmanAutoencoder(4, 3, 8)
    for fitted in (linear_dmd, poly, model):
        path = rollout(fitted, X[:, 0], 5)
        assert path.dtype == torch.float64 and path.shape == (3, 6, 4), type(fitted).__name__
        assert eigenvalues(fitted).dtype == torch.complex128
    assert torch.allclose(rollout(linear_dmd, X[:, 0], 20), X, atol=1e-10)
    assert torch.equal(latents(linear_dmd, X), X)
    assert torch.equal(latents(poly, X), poly.dictionary(X.reshape(-1, 4)).reshape(3, 21, -1))
    z = latents(model, X, chunk=7)  # chunks of 7 snapshots: the same as encoding all at once
    assert z.shape == (3, 21, 3) and torch.allclose(z, model.encode(X.float()).double().detach(), atol=1e-6)
    assert eigenvalue_error(eigenvalues(linear_dmd), linear_eigenvalues(0.1)) < 1e-8
    assert torch.allclose(eigenvalues(model), torch.ones(3, dtype=torch.complex128))  # K starts at the identity


SMALL = dict(system="pendulum", n_trajectories=20, steps=300, train_horizon=16, baselines=False)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.slow
def test_entropy_term_raises_the_effective_dimension_and_the_flipped_sign_lowers_it(seed):
    """Paper Props 4/5 in a seeded small run: γ > 0 (paper sign) gives a higher d_eff than γ = 0, and the released
    code's sign gives a lower one."""
    d_eff = {name: workbench.run("koopman", gamma=gamma, entropy_sign=sign, seed=seed,
                                 **SMALL).metrics["autoencoder.effective_dimension"]
             for name, gamma, sign in (("none", 0.0, "paper"), ("paper", 0.5, "paper"), ("code", 0.5, "code"))}
    assert d_eff["paper"] > 1.2 * d_eff["none"], d_eff
    assert d_eff["code"] < 0.8 * d_eff["none"], d_eff


def test_fit_steps_the_learning_rate_down_every_lr_step_steps():
    """StepLR(lr_step, lr_gamma): with γ_lr = 0 after the first step, only the first step moves the weights."""
    x = simulate("pendulum", 6, 20, 0.1, seed=0).float()
    train_windows = kp.windows(x, 16)

    def trained(steps: int, **schedule) -> torch.Tensor:
        torch.manual_seed(0)
        model = KoopmanAutoencoder(2, 4, 8)
        model.set_normalization(x)
        kp.fit(model, train_windows, LossWeights(), steps, batch_size=8, **schedule)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(trained(5, lr_step=1, lr_gamma=0.0), trained(1))
    assert not torch.equal(trained(5, lr_step=2, lr_gamma=0.0), trained(1))  # two steps at the full rate
    assert not torch.equal(trained(5), trained(1))  # constant rate by default


def test_fit_reports_events_with_the_mean_of_every_training_value_on_the_cadence():
    """callback(Event(step, steps, means)) whenever the cadence is due (here every 4 steps by count alone, and the
    last), each value the mean over the steps since the previous report; recomputed from the loss of each step."""
    x = simulate("pendulum", 6, 20, 0.1, seed=0).float()
    train_windows = windows(x, 16)
    torch.manual_seed(0)
    model = KoopmanAutoencoder(2, 4, 8)
    model.set_normalization(x)
    events, per_step = [], []
    exact_loss = model.loss

    def recording_loss(batch, weights):
        total, parts = exact_loss(batch, weights)
        per_step.append({name: float(value) for name, value in (parts | {"loss": total.detach()}).items()})
        return total, parts

    model.loss = recording_loss
    steps = kp.fit(model, train_windows, LossWeights(), 10, batch_size=8, callback=events.append,
                   cadence=Cadence(10, every=4, seconds=None))
    assert steps == 10 and all(isinstance(e, Event) for e in events)
    assert [(e.step, e.total) for e in events] == [(4, 10), (8, 10), (10, 10)]
    assert set(events[0].metrics) == {"loss", "rec", "pred", "nce", "consistency", "entropy", "d_eff"}
    for event, (start, end) in zip(events, [(0, 4), (4, 8), (8, 10)]):
        for name, value in event.metrics.items():
            assert value == pytest.approx(np.mean([step[name] for step in per_step[start:end]]), rel=1e-5), name

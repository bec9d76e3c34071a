"""SPD geometry against ground truth: closed forms (d(I, X) = ‖X^½ − I‖, the geodesic endpoints, transport of a
geodesic's velocity, the θ → 0 limit), identities (Log∘Exp, the mean's stationarity, norm preservation, GBW's
closed form) and pyriemann's numbers in float64; eigen-function and Lyapunov gradients (gradcheck, ties included);
finite values at condition numbers 1e5–1e8; the digits data against the method note's measurements."""
import numpy as np
import pytest
import scipy.linalg
import torch
from pyriemann.classification import MDM
from pyriemann.utils.distance import distance_logeuclid, distance_riemann, distance_wasserstein
from pyriemann.utils.geodesic import geodesic_wasserstein
from pyriemann.utils.mean import mean_logeuclid, mean_riemann, mean_wasserstein
from pyriemann.utils.tangentspace import exp_map_wasserstein, log_map_wasserstein

from workbench.methods.spd import (aim_distance, aim_exp, aim_geodesic, aim_log, aim_mean, bw_distance, bw_exp,
                                   bw_exp_identity, bw_geodesic, bw_log, bw_log_identity, bw_mean, bw_norm,
                                   bw_transport_from_identity, bw_transport_to_identity, condition_numbers, expm,
                                   gbw_distance, gbw_exp, gbw_log, gbw_mean, invsqrtm, lem_distance, lem_geodesic,
                                   lem_mean, load_digits_spd, logm, lyap, power_deform, powm, random_spd, sqrtm, sym,
                                   theta_gbw_distance)
from workbench.methods.spd.matfun import clampm, eig_function, sqrtm_near_diagonal

F64, F32 = torch.float64, torch.float32
DTYPES = [F32, F64]
TOL = {F32: 2e-3, F64: 1e-9}  # relative tolerance per dtype for well-conditioned inputs (κ ≤ 100)


def spd(N, n, seed, cond=20.0, dtype=F64):
    return random_spd(N, n, cond, torch.Generator().manual_seed(seed), dtype=dtype)


def symmetric(N, n, seed, dtype=F64, scale=1.0):
    V = torch.randn(N, n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return (scale * sym(V)).to(dtype)


def close(a, b, tol):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item() < tol


# --- closed forms and identities, float32 and float64 ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, seed", [(2, 0), (5, 1), (8, 2)])
def test_log_of_exp_is_identity_inside_the_injectivity_domain(dtype, n, seed):
    P = spd(16, n, seed, dtype=dtype)
    V = symmetric(16, n, seed + 10, dtype)
    L = lyap(P, V)
    # shrink V until I + L_P[V] ≻ 0 (Exp's injectivity domain), with margin
    lam_min = torch.linalg.eigvalsh(L.double()).amin(-1)  # (16,)
    shrink = torch.where(lam_min < -0.5, -0.5 / lam_min, torch.ones_like(lam_min)).to(dtype)[:, None, None]
    V = V * shrink
    X = bw_exp(P, V)
    assert close(bw_log(P, X), V, TOL[dtype])
    assert close(bw_exp(P, bw_log(P, X)), X, TOL[dtype])  # and Exp∘Log = id on the manifold
    assert close(bw_distance(P, X), bw_norm(P, V), TOL[dtype])  # d(P, Exp_P V) = ‖V‖_P inside the domain


def test_exp_outside_the_domain_folds_but_stays_psd():
    P = torch.eye(3, dtype=F64)
    V = torch.diag(torch.tensor([-6.0, 0.5, 1.0], dtype=F64))  # I + V/2 has eigenvalue −2
    X = bw_exp(P, V)
    assert torch.linalg.eigvalsh(X).min() >= 0
    assert not close(bw_log(P, X), V, 1e-3)  # Log does not invert Exp here


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, seed", [(3, 0), (6, 1)])
def test_geodesic_endpoints_and_constant_speed(dtype, n, seed):
    A, B = spd(8, n, seed, dtype=dtype), spd(8, n, seed + 1, dtype=dtype)
    assert close(bw_geodesic(A, B, 0.0), A, TOL[dtype])
    assert close(bw_geodesic(A, B, 1.0), B, TOL[dtype])
    d = bw_distance(A, B)
    for t in (0.25, 0.5, 0.8):
        G = bw_geodesic(A, B, t)
        assert close(bw_distance(A, G), t * d, 10 * TOL[dtype])
        assert close(bw_distance(G, B), (1 - t) * d, 10 * TOL[dtype])
    # γ(t) = Exp_A(t Log_A B)
    assert close(bw_geodesic(A, B, 0.3), bw_exp(A, 0.3 * bw_log(A, B)), TOL[dtype])
    # batched times: one t per matrix
    t = torch.linspace(0, 1, 8, dtype=dtype)
    assert close(bw_geodesic(A, B, t)[-1], B[-1], TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_at_identity_is_frobenius_of_square_root_minus_identity(dtype, seed):
    X = spd(6, 5, seed, cond=50.0, dtype=dtype)
    expected = torch.stack([torch.as_tensor(np.linalg.norm(scipy.linalg.sqrtm(x.double().numpy()) - np.eye(5)))
                            for x in X])
    eye = torch.eye(5, dtype=dtype)
    assert close(bw_distance(eye, X), expected, TOL[dtype])
    assert close(bw_distance(X, eye), expected, TOL[dtype])  # symmetric
    assert close(bw_log_identity(X), 2 * (sqrtm(X) - eye), TOL[dtype])
    assert close(bw_exp_identity(bw_log_identity(X)), X, TOL[dtype])


def test_distance_between_commuting_matrices_is_distance_of_square_roots():
    # commuting (diagonal) A, B: d² = ‖A^½ − B^½‖²
    a, b = torch.tensor([0.5, 2.0, 9.0], dtype=F64), torch.tensor([4.0, 1.0, 0.25], dtype=F64)
    assert abs(bw_distance(torch.diag(a), torch.diag(b)).item() - (a.sqrt() - b.sqrt()).norm().item()) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_fixed_point_mean_satisfies_its_stationarity_equation(dtype, weighted):
    X = spd(30, 6, 3, cond=1e3, dtype=dtype)
    w = torch.rand(30, generator=torch.Generator().manual_seed(0), dtype=dtype) if weighted else None
    G, info = bw_mean(X, weights=w, n_iter=200, tol=1e-13 if dtype == F64 else 2e-5, return_info=True)
    assert info.converged and info.iterations < 200
    wn = torch.full((30,), 1 / 30, dtype=dtype) if w is None else w / w.sum()
    # Σ w_i Log_G X_i = 0, relative to the size of the individual logs
    logs = bw_log(G, X)  # (30, 6, 6)
    residual = (wn[:, None, None] * logs).sum(0).norm() / logs.norm(dim=(-2, -1)).mean()
    assert residual < (1e-9 if dtype == F64 else 1e-3)
    # G = Σ w_i (G^½ X_i G^½)^½
    G_half = sqrtm(G)
    assert close((wn[:, None, None] * sqrtm(G_half @ X @ G_half)).sum(0), G, 10 * TOL[dtype])


def test_mean_error_falls_with_iterations_and_is_reported():
    """The method note's table (n = 6, κ ≈ 1e3, 30 matrices): the relative error falls from ~0.9 at 0 iterations to
    ~1e-1 after 1 and ~1e-4 after 10 (our matrices differ, so only the shape is checked)."""
    X = spd(30, 6, 4, cond=1e3)
    exact = bw_mean(X, n_iter=500, tol=1e-15)
    errors = [((bw_mean(X, n_iter=k, tol=0.0, anderson=0) - exact).norm() / exact.norm()).item() for k in (1, 2, 5, 10)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-2
    _, info = bw_mean(X, n_iter=2, tol=0.0, return_info=True)
    assert info.iterations == 2 and not info.converged and info.relative_change > 0


def test_mean_of_one_matrix_and_of_commuting_matrices():
    X = spd(1, 4, 0)
    assert close(bw_mean(X), X[0], 1e-12)
    # commuting matrices: G^½ = Σ w_i X_i^½
    d = torch.rand(5, 4, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1
    assert close(bw_mean(torch.diag_embed(d)), torch.diag(d.sqrt().mean(0) ** 2), 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_transport_preserves_norms_and_is_the_geodesic_transport(dtype, seed):
    P = spd(10, 5, seed, cond=30.0, dtype=dtype)
    V = symmetric(10, 5, seed + 5, dtype)
    eye = torch.eye(5, dtype=dtype)
    to_I = bw_transport_to_identity(P, V)
    assert close(bw_norm(eye, to_I), bw_norm(P, V), TOL[dtype])
    assert close(bw_transport_from_identity(P, to_I), V, TOL[dtype])
    W = symmetric(10, 5, seed + 6, dtype)  # inner products too
    assert close((0.25 * to_I * bw_transport_to_identity(P, W)).sum((-2, -1)),
                 0.5 * (lyap(P, V) * W).sum((-2, -1)), TOL[dtype])
    # the velocity of the geodesic P → I is carried to the velocity at I: Γ(Log_P I) = −Log_I P
    assert close(bw_transport_to_identity(P, bw_log(P, eye.expand_as(P))), -bw_log_identity(P), 10 * TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gbw_through_the_isometry_matches_the_closed_form(dtype, seed):
    A, B, M = spd(4, 5, seed, dtype=dtype), spd(4, 5, seed + 1, dtype=dtype), spd(1, 5, seed + 2, dtype=dtype)[0]
    Mi = np.linalg.inv(M.double().numpy())
    d2 = []
    logs = []
    for a, b in zip(A.double().numpy(), B.double().numpy()):
        # d²_M = tr M⁻¹A + tr M⁻¹B − 2 tr (A M⁻¹ B M⁻¹)^½ (Han et al. 2021)
        d2.append(np.trace(Mi @ a) + np.trace(Mi @ b) - 2 * np.trace(scipy.linalg.sqrtm(a @ Mi @ b @ Mi)).real)
        # Log_A(B) = M (M⁻¹ A M⁻¹ B)^½ + (B M⁻¹ A M⁻¹)^½ M − 2A
        m = M.double().numpy()
        logs.append((m @ scipy.linalg.sqrtm(Mi @ a @ Mi @ b) + scipy.linalg.sqrtm(b @ Mi @ a @ Mi) @ m - 2 * a).real)
    assert close(gbw_distance(A, B, M), torch.tensor(d2).sqrt(), TOL[dtype])
    assert close(gbw_log(A, B, M), torch.tensor(np.array(logs)), 10 * TOL[dtype])
    assert close(gbw_exp(A, gbw_log(A, B, M), M), B, 10 * TOL[dtype])
    assert close(gbw_distance(A, B, torch.eye(5, dtype=dtype)), bw_distance(A, B), TOL[dtype])  # M = I is BW
    # the GBW mean is the BW mean of the isometric images, pulled back: it is stationary for GBW's Log
    G = gbw_mean(A, M, n_iter=300)
    assert gbw_log(G, A, M).sum(0).norm() / gbw_log(G, A, M).norm() < (1e-8 if dtype == F64 else 1e-2)


def test_power_deformation_interpolates_between_bw_and_half_log_euclidean():
    """d_θ(A, B) = d_BW(A^θ, B^θ)/θ: θ = 1 is BW; as θ → 0, A^θ ≈ I + θ log A and the BW metric at I is ¼‖V‖², so
    d_θ → ½ d_LEM."""
    A, B = spd(5, 4, 7, cond=1e3), spd(5, 4, 8, cond=1e3)
    assert close(theta_gbw_distance(A, B, theta=1.0), bw_distance(A, B), 1e-12)
    assert close(theta_gbw_distance(A, B, theta=1e-5), 0.5 * lem_distance(A, B), 1e-4)
    assert close(power_deform(power_deform(A, 0.25), 4.0), A, 1e-10)
    with pytest.raises(ValueError, match=r"theta = 0 is not allowed; expected a number > 0"):
        power_deform(A, 0)
    with pytest.raises(ValueError, match=r"theta = -0.5 is not allowed"):
        theta_gbw_distance(A, B, theta=-0.5)


def test_bw_is_not_affine_invariant_but_aim_is():
    A, B = spd(3, 4, 0), spd(3, 4, 1)
    C = torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=F64) + 4 * torch.eye(4, dtype=F64)
    move = lambda X: C @ X @ C.T  # noqa: E731
    assert close(aim_distance(move(A), move(B)), aim_distance(A, B), 1e-9)
    assert not close(bw_distance(move(A), move(B)), bw_distance(A, B), 1e-2)
    Q = torch.linalg.qr(C)[0]  # but BW is orthogonally invariant
    assert close(bw_distance(Q @ A @ Q.T, Q @ B @ Q.T), bw_distance(A, B), 1e-10)


# --- agreement with pyriemann (float64) --------------------------------------------------------------------

@pytest.mark.parametrize("n, cond, seed", [(3, 10.0, 0), (8, 1e3, 1), (16, 1e2, 2)])
def test_bw_agrees_with_pyriemann(n, cond, seed):
    A, B = spd(20, n, seed, cond), spd(20, n, seed + 1, cond)
    a, b = A.numpy(), B.numpy()
    assert close(bw_distance(A, B), [distance_wasserstein(x, y) for x, y in zip(a, b)], 1e-10)
    assert close(bw_log(A[0], B), log_map_wasserstein(b, a[0]), 1e-9)
    V = bw_log(A[0], B) * 0.3
    assert close(bw_exp(A[0], V), exp_map_wasserstein(V.numpy(), a[0]), 1e-10)
    for t in (0.2, 0.5, 0.9):
        assert close(bw_geodesic(A, B, t), np.array([geodesic_wasserstein(x, y, t) for x, y in zip(a, b)]), 1e-10)
    w = np.linspace(1, 2, 20)
    assert close(bw_mean(A, n_iter=500, tol=1e-14), mean_wasserstein(a, tol=1e-13, maxiter=500), 1e-9)
    assert close(bw_mean(A, torch.as_tensor(w), n_iter=500, tol=1e-14),
                 mean_wasserstein(a, tol=1e-13, maxiter=500, sample_weight=w), 1e-9)


# --- forward-only fast paths against the differentiable reference ----------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1e2, 1e4])
def test_cholesky_distance_matches_the_eigen_route_and_broadcasts(dtype, cond):
    """Without autograd d(A, B) goes through eigvalsh(Lᵀ B L), A = L Lᵀ; with autograd through A^½ (Daleckii–Krein).
    Both must agree, also when A and B broadcast against each other (A's Cholesky runs on A's own batch)."""
    A, B = spd(6, 7, 0, cond, dtype), spd(5, 7, 1, cond, dtype)
    fast = bw_distance(A[:, None], B[None])  # (6, 5)
    reference = bw_distance(A[:, None].clone().requires_grad_(), B[None]).detach()
    assert fast.shape == (6, 5)
    assert close(fast, reference, TOL[dtype])
    # one pair alone: float32's batched and single LAPACK calls round differently, measured up to 4.3e-6 apart at
    # κ = 1e4 (each within 6e-6 of float64); a wrong pairing of A and B is off by O(1)
    assert close(fast[2, 3], bw_distance(A[2], B[3]), 1e-12 if dtype == F64 else 3e-5)
    assert close(bw_distance(A[:, None], B[None], squared=True), fast**2, TOL[dtype])


def test_cholesky_distance_falls_back_to_the_eigen_route_on_singular_matrices():
    a, b = torch.tensor([0.0, 2.0, 9.0], dtype=F64), torch.tensor([4.0, 1.0, 0.25], dtype=F64)  # A is only PSD
    assert torch.linalg.cholesky_ex(torch.diag(a)).info > 0
    # the eigen route floors eigenvalues at eps · λ_max: √(eps · 9) ≈ 5e-8 off at the zero eigenvalue
    assert abs(bw_distance(torch.diag(a), torch.diag(b)).item() - (a.sqrt() - b.sqrt()).norm().item()) < 1e-7


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1e2, 1e4])
def test_anderson_accelerated_mean_matches_the_plain_iteration_in_fewer_iterations(dtype, cond):
    X = spd(3 * 40, 6, 5, cond, dtype).reshape(3, 40, 6, 6)  # a batch of three sets of 40 matrices
    tol = 1e-12 if dtype == F64 else 2e-5
    plain, plain_info = bw_mean(X, n_iter=500, tol=tol, anderson=0, return_info=True)
    fast, fast_info = bw_mean(X, n_iter=500, tol=tol, return_info=True)
    assert plain.shape == fast.shape == (3, 6, 6) and plain_info.converged and fast_info.converged
    assert close(fast, plain, 1e-9 if dtype == F64 else 1e-4)
    assert close(fast[1], bw_mean(X[1], n_iter=500, tol=tol), 1e-9 if dtype == F64 else 1e-4)
    assert fast_info.iterations < 0.75 * plain_info.iterations, (fast_info, plain_info)


def test_mean_with_autograd_runs_the_plain_differentiable_iteration():
    X = spd(20, 5, 6, 1e3)
    Xg = X.clone().requires_grad_()
    G, info = bw_mean(Xg, n_iter=6, tol=0.0, return_info=True)
    assert info.iterations == 6 and G.requires_grad
    assert close(G.detach(), bw_mean(X, n_iter=6, tol=0.0, anderson=0), 1e-12)


@pytest.mark.parametrize("n, seed", [(3, 0), (8, 1)])
def test_aim_and_lem_agree_with_pyriemann(n, seed):
    A, B = spd(20, n, seed, 100.0), spd(20, n, seed + 1, 100.0)
    a, b = A.numpy(), B.numpy()
    assert close(aim_distance(A, B), [distance_riemann(x, y) for x, y in zip(a, b)], 1e-9)
    assert close(lem_distance(A, B), [distance_logeuclid(x, y) for x, y in zip(a, b)], 1e-9)
    assert close(aim_mean(A, n_iter=200, tol=1e-14), mean_riemann(a, tol=1e-12, maxiter=200), 1e-8)
    assert close(lem_mean(A), mean_logeuclid(a), 1e-10)
    assert close(aim_geodesic(A[0], B[0], 0.0), A[0], 1e-10) and close(aim_geodesic(A[0], B[0], 1.0), B[0], 1e-9)
    assert close(aim_exp(A, aim_log(A, B)), B, 1e-9)
    assert close(lem_geodesic(A, B, 1.0), B, 1e-9)


def test_chord_square_root_of_a_near_diagonal_matrix():
    """sqrtm_near_diagonal converges to Z^½ from D and from a nearby root, and reports a matrix far from diagonal."""
    Z = spd(8, 6, 11, cond=1e3)
    lam, U = torch.linalg.eigh(Z)
    Q = torch.linalg.matrix_exp(1e-3 * (lambda K: K - K.mT)(torch.randn(8, 6, 6, dtype=F64,
                                                                       generator=torch.Generator().manual_seed(0))))
    near = sym(Q.mT @ torch.diag_embed(lam) @ Q)  # (8, 6, 6), off-diagonal ~1e-3 · λ
    for start in (None, torch.diag_embed(lam.sqrt())):
        S, converged = sqrtm_near_diagonal(near, 1e-14, start, steps=30)
        assert bool(converged.all()) and close(S, sqrtm(near), 1e-12)
    _, converged = sqrtm_near_diagonal(Z, 1e-14)  # a random basis: far from diagonal, κ = 1e3
    assert not bool(converged.all())


@pytest.mark.parametrize("which", ["random", "digits"])
def test_warm_started_mean_matches_the_plain_iteration(which, monkeypatch):
    """The accelerated mean (warm-started roots, blocks of 100 matrices, a leading batch dimension) agrees with the
    plain eigendecomposition iteration to 1e-10, on κ = 100 matrices and on the ill-conditioned digits (κ up to ~1e8,
    where most roots fall back to a fresh eigendecomposition), and satisfies G = Σ w_i (G^½ X_i G^½)^½."""
    monkeypatch.setattr("workbench.methods.spd.geometry._WarmStartedMap.block_entries", 100 * 8 * 8)
    if which == "random":
        X = spd(2 * 300, 8, 12, cond=100.0).reshape(2, 300, 8, 8)
    else:
        X = load_digits_spd("digits_illcond").X_train[:600].reshape(2, 300, 8, 8)
    plain, plain_info = bw_mean(X, n_iter=500, tol=1e-14, anderson=0, return_info=True)
    fast, fast_info = bw_mean(X, n_iter=500, tol=1e-13, return_info=True)
    assert plain_info.converged and fast_info.converged and fast_info.iterations < plain_info.iterations
    assert close(fast, plain, 1e-10)
    G_half = sqrtm(fast).unsqueeze(-3)  # (2, 1, 8, 8)
    assert close(sqrtm(G_half @ X @ G_half).mean(-3), fast, 1e-10)


def test_means_agree_with_pyriemann_on_ill_conditioned_digits():
    """κ ≈ 1.5e5: the AIM Karcher flow needs pyriemann's adaptive step (a fixed unit step oscillates)."""
    data = load_digits_spd("digits_illcond")
    X = data.X_train[data.y_train == 0]
    assert close(aim_mean(X, n_iter=200, tol=1e-12), mean_riemann(X.numpy(), tol=1e-12, maxiter=200), 1e-8)
    assert close(bw_mean(X, n_iter=500, tol=1e-14), mean_wasserstein(X.numpy(), tol=1e-13, maxiter=500), 1e-8)


# --- eigen-functions and the Lyapunov solve: gradients ---------------------------------------------------

def spd_from(P):
    """An SPD matrix as a smooth function of an unconstrained one (for gradcheck)."""
    return P @ P.mT + torch.eye(P.shape[-1], dtype=P.dtype)


@pytest.mark.parametrize("fn", [sqrtm, invsqrtm, logm, lambda X: powm(X, 0.3), lambda X: expm(0.1 * X)],
                         ids=["sqrt", "invsqrt", "log", "pow", "exp"])
def test_eigen_function_gradients_including_tied_eigenvalues(fn):
    P = torch.randn(2, 4, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P: fn(spd_from(P)), (P,))
    # at the identity and at a matrix with a tied pair: symmetric perturbations of S
    S = torch.zeros(4, 4, dtype=F64, requires_grad=True)
    base = torch.diag(torch.tensor([2.0, 2.0, 2.0, 5.0], dtype=F64))
    assert torch.autograd.gradcheck(lambda S: fn(base + sym(S)), (S,))
    assert torch.autograd.gradcheck(lambda S: fn(torch.eye(4, dtype=F64) + sym(S)), (S,))


def test_daleckii_krein_backward_matches_autograd_through_eigh_away_from_ties():
    X = spd(3, 5, 0, cond=10.0).requires_grad_()
    G = symmetric(3, 5, 1)
    (ours,) = torch.autograd.grad((sqrtm(X) * G).sum(), X)
    X2 = X.detach().clone().requires_grad_()
    lam, U = torch.linalg.eigh(X2)
    (reference,) = torch.autograd.grad(((U * lam.sqrt().unsqueeze(-2)) @ U.mT * G).sum(), X2)
    assert close(ours, sym(reference), 1e-9)


def test_tied_eigenvalue_gradient_is_the_derivative_not_zero():
    """The official code sets the 0/0 entries to 0; at X = I the gradient of tr(sqrtm(X) G) is G/2 (f'(1) = ½)."""
    X = torch.eye(3, dtype=F64, requires_grad=True)
    G = symmetric(1, 3, 2)[0]
    (grad,) = torch.autograd.grad((sqrtm(X) * G).sum(), X)
    assert close(grad, 0.5 * G, 1e-12)


def test_reeig_gradient_after_clamping():
    base = torch.diag(torch.tensor([1e-6, 2e-6, 1e-6, 0.5, 2.0], dtype=F64))  # three clamped, two of them tied
    Q = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=F64))[0]
    S = torch.zeros(5, 5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda S: clampm(Q @ (base + 1e-8 * sym(S)) @ Q.T, 1e-4), (S,), eps=1e-9)
    assert torch.autograd.gradcheck(lambda S: clampm(Q @ base @ Q.T + sym(S), 1e-4), (S,), eps=1e-9)


def test_lyapunov_solve_and_its_implicit_backward():
    P = spd(4, 5, 0)
    V = symmetric(4, 5, 1)
    Z = lyap(P, V)
    assert close(P @ Z + Z @ P, V, 1e-12)
    Pr = torch.randn(4, 5, 5, dtype=F64, requires_grad=True)
    Vr = symmetric(4, 5, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda P, V: lyap(spd_from(P), V), (Pr, Vr))
    # one P broadcast against a batch of V: gradients summed back to P's shape
    P1 = torch.randn(5, 5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, V: lyap(spd_from(P), V), (P1, Vr))
    S = torch.zeros(5, 5, dtype=F64, requires_grad=True)  # at P = I (all eigenvalues tied)
    assert torch.autograd.gradcheck(lambda S, V: lyap(torch.eye(5, dtype=F64) + sym(S), V), (S, Vr))


@pytest.mark.parametrize("to_identity", [True, False])
def test_transport_gradients_including_the_identity(to_identity):
    transport = bw_transport_to_identity if to_identity else bw_transport_from_identity
    V = symmetric(3, 4, 0).requires_grad_()
    P = torch.randn(4, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, V: transport(spd_from(P), V), (P, V))
    S = torch.zeros(4, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda S, V: transport(torch.eye(4, dtype=F64) + sym(S), V), (S, V))


def test_distance_and_mean_gradients():
    A = torch.randn(3, 4, 4, dtype=F64, requires_grad=True)
    B = spd(3, 4, 1)
    assert torch.autograd.gradcheck(lambda A: bw_distance(spd_from(A), B), (A,))
    assert torch.autograd.gradcheck(lambda A: bw_mean(spd_from(A), n_iter=3, tol=0.0), (A,))
    M = torch.randn(4, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda M: gbw_distance(B[0], B[1], spd_from(M)), (M,))


# --- ill-conditioning ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1e5, 1e6, 1e7, 1e8])
def test_no_nan_or_inf_at_large_condition_numbers(dtype, cond):
    X, Y = spd(16, 8, 0, cond, dtype), spd(16, 8, 1, cond, dtype)
    if dtype == F64:
        assert torch.allclose(condition_numbers(X), torch.full((16,), cond, dtype=F64), rtol=1e-3)
    outputs = [bw_distance(X, Y), bw_log(X[0], Y), bw_geodesic(X, Y, 0.5), bw_mean(X, n_iter=10),
               bw_transport_to_identity(X, Y), bw_exp(X, 0.1 * bw_log(X, Y)), aim_distance(X, Y), lem_distance(X, Y),
               theta_gbw_distance(X, Y, X[1], theta=0.5), logm(X), invsqrtm(X)]
    for out in outputs:
        assert torch.isfinite(out).all()
    Xg = X.clone().requires_grad_()
    bw_distance(Xg, Y).sum().backward()
    assert torch.isfinite(Xg.grad).all()


# --- data ---------------------------------------------------------------------------------------------------

def test_random_spd_has_the_requested_condition_number_and_is_reproducible():
    X = random_spd(50, 6, 1e4, torch.Generator().manual_seed(0))
    assert torch.allclose(condition_numbers(X), torch.full((50,), 1e4, dtype=F64), rtol=1e-6)
    assert torch.equal(X, random_spd(50, 6, 1e4, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="cond = 0.5 is not allowed"):
        random_spd(2, 3, 0.5)


def test_digits_covariances_match_the_note():
    region, ill = load_digits_spd("digits_region"), load_digits_spd("digits_illcond")
    assert region.X_train.shape == ill.X_train.shape == (898, 8, 8) and region.X_test.shape == (899, 8, 8)
    assert torch.equal(region.y_test, ill.y_test) and region.n_classes == 10
    k_region = condition_numbers(torch.cat([region.X_train, region.X_test]))
    k_ill = condition_numbers(torch.cat([ill.X_train, ill.X_test]))
    assert 200 < k_region.median() < 330  # note: ≈ 260
    assert 1.2e5 < k_ill.median() < 1.8e5 and 0.95 < (k_ill > 1e5).double().mean() < 0.99  # note: 1.5e5, 97 %
    with pytest.raises(ValueError, match="dataset 'mnist' is not known; expected one of 'digits_region'"):
        load_digits_spd("mnist")


def test_validation_split_is_carved_from_the_training_half_stratified_and_seeded():
    full = load_digits_spd("digits_illcond")
    split = load_digits_spd("digits_illcond", validation=0.2, validation_seed=1)
    assert len(split.X_train) == 718 and len(split.X_val) == 180 and torch.equal(split.X_test, full.X_test)
    per_class = torch.bincount(full.y_train, minlength=10).double()
    assert ((torch.bincount(split.y_val, minlength=10) - 0.2 * per_class).abs() <= 1).all()  # stratified
    rows = lambda X: {tuple(x.flatten().tolist()) for x in X}  # noqa: E731
    assert rows(split.X_train) | rows(split.X_val) == rows(full.X_train) and not rows(split.X_train) & rows(split.X_val)
    again, other = (load_digits_spd("digits_illcond", validation=0.2, validation_seed=s) for s in (1, 2))
    assert torch.equal(again.X_val, split.X_val) and not torch.equal(other.X_val, split.X_val)
    assert len(full.X_val) == 0
    with pytest.raises(ValueError, match="validation = 1.5 is not allowed; expected a fraction in"):
        load_digits_spd("digits_illcond", validation=1.5)


def test_pyriemann_mdm_wasserstein_reaches_the_note_accuracy_on_the_ill_conditioned_split():
    data = load_digits_spd("digits_illcond")
    mdm = MDM(metric="wasserstein").fit(data.X_train.numpy(), data.y_train.numpy())
    accuracy = (mdm.predict(data.X_test.numpy()) == data.y_test.numpy()).mean()
    assert abs(accuracy - 0.860) < 0.003  # method note §6(b)

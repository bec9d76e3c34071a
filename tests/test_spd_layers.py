"""SPDNet layers and SPD batch normalization: BiMap on the Stiefel manifold (geoopt), ReEig, LogEig, SPD parameters
that stay SPD, and SPDBatchNorm's defining properties (output Fréchet mean G and dispersion s², O(n) equivariance,
running statistics, train/eval paths), gradients (gradcheck in float64 at M = G = I and after ReEig clamping),
ill-conditioned inputs and clear errors for bad settings."""
import geoopt
import pytest
import torch

from workbench.methods.spd import (METRICS, BiMap, LogEig, ReEig, SPDBatchNorm, bw_distance, bw_mean, condition_numbers,
                                   gbw_isometry, load_digits_spd, logm, out_of_domain_fraction, powm, random_spd, sym,
                                   theta_gbw_distance, triu_vector)

F64 = torch.float64


def spd(N, n, seed, cond=20.0, scale=1.0):
    return random_spd(N, n, cond, torch.Generator().manual_seed(seed), scale=scale)


def close(a, b, tol):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item() < tol


def set_parameters(bn, G=None, M=None, shift=None):
    with torch.no_grad():
        if G is not None:
            bn.bias.copy_(G)
        if M is not None:
            bn.metric_matrix.copy_(M)
        if shift is not None:
            bn.log_shift.fill_(float(torch.log(torch.tensor(shift))))


# --- layers -------------------------------------------------------------------------------------------------

def test_bimap_keeps_stiefel_weights_under_riemannian_adam_and_they_move():
    torch.manual_seed(0)
    layer = BiMap(8, 5).double()
    assert isinstance(layer.weight, geoopt.ManifoldParameter) and isinstance(layer.weight.manifold, geoopt.Stiefel)
    W0 = layer.weight.detach().clone()
    X = spd(16, 8, 0)
    target = spd(16, 5, 1)
    optimizer = geoopt.optim.RiemannianAdam(layer.parameters(), lr=0.05)
    for _ in range(30):
        optimizer.zero_grad()
        loss = (layer(X) - target).pow(2).sum()
        loss.backward()
        optimizer.step()
    W = layer.weight.detach()
    assert torch.allclose(W.T @ W, torch.eye(5, dtype=F64), atol=1e-6)  # still orthonormal columns
    assert (W - W0).norm() > 0.1  # and it trained (the official SPDNet variant never steps BiMap)
    Y = layer(X)
    assert Y.shape == (16, 5, 5) and torch.allclose(Y, W.T @ X @ W)
    assert torch.linalg.eigvalsh(Y).min() > 0  # congruence by full-column-rank W keeps SPD


def test_reeig_clamps_and_logeig_takes_the_logarithm():
    lam = torch.tensor([1e-6, 1e-3, 0.5, 2.0], dtype=F64)
    Q = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64))[0]
    X = Q @ torch.diag(lam) @ Q.T
    assert torch.allclose(torch.linalg.eigvalsh(ReEig(1e-2)(X)), torch.tensor([1e-2, 1e-2, 0.5, 2.0], dtype=F64))
    relative = ReEig(1e-2, relative=True)(X)  # threshold 1e-2 · λ_max = 0.02
    assert torch.allclose(torch.linalg.eigvalsh(relative), torch.tensor([0.02, 0.02, 0.5, 2.0], dtype=F64))
    assert torch.allclose(LogEig()(X), Q @ torch.diag(lam.log()) @ Q.T, atol=1e-10)
    S = sym(torch.randn(3, 4, 4, dtype=F64))
    assert torch.allclose(triu_vector(S).norm(dim=-1), S.norm(dim=(-2, -1)))


def test_spd_parameters_stay_spd_under_training():
    bn = SPDBatchNorm(4, metric="gbw", theta=0.5).double()
    optimizer = geoopt.optim.RiemannianAdam(bn.parameters(), lr=0.5)  # a large step
    X = spd(20, 4, 0, cond=100.0)
    for step in range(15):
        optimizer.zero_grad()
        (bn(X) - 3 * torch.eye(4, dtype=F64)).pow(2).sum().backward()
        optimizer.step()
    for P in (bn.bias, bn.metric_matrix):
        assert torch.allclose(P, P.mT) and torch.linalg.eigvalsh(P.detach()).min() > 0
    assert not torch.allclose(bn.bias.detach(), torch.eye(4, dtype=F64))  # it moved


def test_spdnet_chain_gradcheck_through_reeig_clamping_and_batchnorm():
    torch.manual_seed(0)
    bimap, reeig, bn = BiMap(5, 4).double(), ReEig(0.3), SPDBatchNorm(4, metric="gbw", theta=0.5, n_iter=2).double()
    X = spd(6, 5, 0, cond=100.0)  # many eigenvalues below 0.3: ReEig clamps and ties them
    assert (torch.linalg.eigvalsh(bimap(X)) < 0.3).sum() > 4
    with torch.no_grad():
        bn(reeig(bimap(X)))
    bn.eval()  # detached batch statistics: check the eval path
    A = torch.zeros(5, 5, dtype=F64, requires_grad=True)
    f = lambda A: logm(bn(reeig(bimap(X + 0.01 * sym(A)))))  # noqa: E731
    assert torch.autograd.gradcheck(f, (A,))


# --- batch normalization ----------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["gbw", "bw"])
@pytest.mark.parametrize("dispersion", ["mean", "identity"])
def test_output_has_frechet_mean_g_and_dispersion_s_squared(metric, dispersion):
    """θ = 0.25, converged batch mean (n_iter = 200): the BW mean of φ_M(out^θ) is φ_M(G^θ) and the (θ)-GBW
    dispersion around it is s²; the official around-identity dispersion misses s²."""
    theta, s = 0.25, 0.7
    X = load_digits_spd("digits_illcond").X_train[:40] * 256  # raw-pixel scale, κ ≈ 1.5e5
    bn = SPDBatchNorm(8, metric=metric, theta=theta, n_iter=200, eps=1e-12, dispersion=dispersion).double()
    G, M = spd(1, 8, 1, cond=30.0)[0], spd(1, 8, 2, cond=10.0, scale=10.0)[0]  # M ⪰ I keeps φ_M(X^θ) in the domain
    set_parameters(bn, G=G, M=M if metric == "gbw" else None, shift=s)
    with torch.no_grad():
        out = bn(X)
    M = M if metric == "gbw" else torch.eye(8, dtype=F64)
    out_t, G_t = gbw_isometry(powm(out, theta), M), gbw_isometry(powm(G, theta), M)
    mean = bw_mean(out_t, n_iter=300, tol=1e-14)
    assert close(mean, G_t, 1e-8)
    dispersion_out = theta_gbw_distance(out, G, M, theta, squared=True).mean().item()
    if dispersion == "mean":
        assert abs(dispersion_out - s**2) < 1e-6
    else:
        assert abs(dispersion_out - s**2) > 0.05  # scaled by the spread around I, not around the mean


@pytest.mark.parametrize("metric", METRICS)
def test_o_n_equivariance_at_m_equal_g_equal_identity(metric):
    X = spd(12, 5, 3, cond=50.0)
    Q = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(4), dtype=F64))[0]
    bn = SPDBatchNorm(5, metric=metric, theta=0.5).double()
    with torch.no_grad():
        out = bn(X)
        rotated = bn(Q @ X @ Q.T)
    assert close(rotated, Q @ out @ Q.T, 1e-9)


@pytest.mark.parametrize("metric", METRICS)
def test_batchnorm_gradcheck_at_identity_parameters(metric):
    X = spd(5, 4, 0, cond=30.0)
    bn = SPDBatchNorm(4, metric=metric, theta=0.5, n_iter=2).double()  # G = M = I: every eigenvalue tied
    with torch.no_grad():  # batch statistics are detached by design, so check the eval path (running statistics)
        bn(spd(8, 4, 9, cond=30.0))
    bn.eval()
    A = torch.zeros(4, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda A: bn(X + 0.01 * sym(A)), (A,))
    # parameter gradients through G (and M, s), perturbed symmetrically around I
    S = torch.zeros(4, 4, dtype=F64, requires_grad=True)

    assert torch.autograd.gradcheck(
        lambda S: torch.func.functional_call(bn, {"bias": torch.eye(4, dtype=F64) + sym(S)}, (X,)), (S,))
    if metric == "gbw":
        assert torch.autograd.gradcheck(
            lambda S: torch.func.functional_call(bn, {"metric_matrix": torch.eye(4, dtype=F64) + sym(S)}, (X,)), (S,))


def test_learnable_theta_gets_a_gradient():
    bn = SPDBatchNorm(4, metric="gbw", theta=0.5, learn_theta=True).double()
    out = bn(spd(8, 4, 0))
    out.pow(2).sum().backward()
    assert bn.log_theta.grad is not None and torch.isfinite(bn.log_theta.grad) and bn.log_theta.grad != 0
    assert abs(float(bn.theta.detach()) - 0.5) < 1e-6


@pytest.mark.parametrize("metric", METRICS)
def test_running_statistics_are_buffers_and_converge_on_a_stationary_stream(metric):
    bn = SPDBatchNorm(4, metric=metric, theta=0.5, momentum=0.3, n_iter=20).double()
    assert {"running_mean", "running_var", "num_batches_tracked"} <= set(dict(bn.named_buffers()))
    assert bn.running_var.shape == ()  # a scalar variance (the official code: an (n,)-shaped Parameter)
    X = spd(24, 4, 5, cond=100.0)
    with torch.no_grad():
        for _ in range(60):
            train_out = bn(X)
        bn.eval()
        eval_out = bn(X)
    assert int(bn.num_batches_tracked) == 60
    assert close(eval_out, train_out, 1e-6)  # eval with converged running stats = train on the same batch
    state = bn.state_dict()
    fresh = SPDBatchNorm(4, metric=metric, theta=0.5).double()
    fresh.load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        assert close(fresh(X), eval_out, 1e-12)


def test_running_mean_is_stored_in_original_coordinates():
    """The running mean of a stationary stream is the (θ)-GBW batch mean in the original space, whatever M is."""
    X = spd(24, 4, 6, cond=100.0)
    M = spd(1, 4, 7)[0]
    bn = SPDBatchNorm(4, metric="gbw", theta=0.5, momentum=1.0, n_iter=50).double()
    set_parameters(bn, M=M)
    with torch.no_grad():
        bn(X)
    X_t = gbw_isometry(powm(X, 0.5), M)
    expected = powm(sym(torch.linalg.cholesky(M) @ torch.eye(4, dtype=F64) @ torch.linalg.cholesky(M).mT), 1.0)
    mu = bw_mean(X_t, n_iter=50, tol=0.0)
    M_half = powm(M, 0.5)
    expected = powm(M_half @ mu @ M_half, 2.0)
    assert close(bn.running_mean, expected, 1e-8)


def test_training_batch_of_one_does_not_collapse_to_g():
    bn = SPDBatchNorm(4, metric="gbw", theta=0.5).double()
    X = spd(1, 4, 0, cond=10.0)
    out = bn(X)
    assert not torch.allclose(out, bn.bias.detach().expand_as(out), atol=1e-3)
    assert int(bn.num_batches_tracked) == 0  # no statistics from one matrix


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("cond", [1e5, 1e6, 1e7, 1e8])
def test_no_nan_or_inf_at_large_condition_numbers(metric, cond):
    X = spd(16, 6, 0, cond=cond).requires_grad_()
    bn = SPDBatchNorm(6, metric=metric, theta=0.5).double()
    out = bn(X)
    out.pow(2).sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(X.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in bn.parameters() if p.grad is not None)


def test_power_deformation_brings_large_matrices_into_the_injectivity_domain():
    """BW is not scale invariant: on digits Gram matrices at raw-pixel scale (×256) most centred vectors leave Exp_I's
    injectivity domain at θ = 1, none at θ = 0.25 (method note §1's table, reproduced in shape)."""
    X = load_digits_spd("digits_illcond").X_train[:30] * 256
    assert out_of_domain_fraction(X, 1.0) > 0.5
    assert out_of_domain_fraction(X, 0.25) == 0.0
    assert out_of_domain_fraction(X / 256, 1.0) == 0.0  # at the [0, 1] pixel scale, θ = 1 is already inside


def test_out_of_domain_fraction_after_scaling_has_its_closed_form_on_commuting_matrices():
    """diag(2.25, 1) and diag(6.25, 1): BW mean diag(4, 1) (square roots 1.5 and 2.5 average to 2), centred vectors
    ∓diag(1, 0), σ² = 0.25 (θ = 1). Scaled by k = s/√(σ² + eps), the first leaves Exp_I's domain (1 − k/2 ≤ 0)
    exactly when s ≥ 2√(σ² + eps)."""
    X = torch.diag_embed(torch.tensor([[2.25, 1.0], [6.25, 1.0]], dtype=F64))
    eps, edge = 1e-5, 2 * (0.25 + 1e-5) ** 0.5
    assert out_of_domain_fraction(X) == 0.0
    assert out_of_domain_fraction(X, shift=0.999 * edge, eps=eps) == 0.0
    assert out_of_domain_fraction(X, shift=1.001 * edge, eps=eps) == 0.5
    assert out_of_domain_fraction(X, shift=10.0, eps=eps) == 0.5  # the second only grows: 1 + k/2 > 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"theta": 0}, "theta = 0 is not allowed; expected a number > 0"),
    ({"theta": -1.0}, "theta = -1.0 is not allowed"),
    ({"metric": "euclid"}, "metric = 'euclid' is not allowed; expected one of 'gbw', 'bw', 'aim', 'lem'"),
    ({"momentum": 0}, "momentum = 0 is not allowed"),
    ({"dispersion": "median"}, "dispersion = 'median' is not allowed"),
])
def test_bad_settings_get_a_clear_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        SPDBatchNorm(4, **kwargs)


def test_non_spd_inputs_get_a_clear_error():
    bn = SPDBatchNorm(3).double()
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=F64)).expand(4, 3, 3)
    with pytest.raises(ValueError, match=r"SPDBatchNorm: 4 of 4 input matrices are not positive definite"):
        bn(indefinite)
    with pytest.raises(ValueError, match=r"SPDBatchNorm: the input is not symmetric"):
        bn(torch.randn(4, 3, 3, dtype=F64) + 5 * torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"expected \(B, 3, 3\)"):
        bn(spd(4, 4, 0))
    with pytest.raises(ValueError, match=r"BiMap: 4 of 4 input matrices are not positive definite"):
        BiMap(3, 2, check_input=True).double()(indefinite)
    with pytest.raises(ValueError, match="ReEig: eps = 0 is not allowed"):
        ReEig(0)
    with pytest.raises(ValueError, match="BiMap: n_out = 5 with n_in = 3 is not allowed"):
        BiMap(3, 5)


def test_condition_numbers_helper():
    assert torch.allclose(condition_numbers(torch.diag(torch.tensor([1.0, 10.0], dtype=F64))[None]),
                          torch.tensor([10.0], dtype=F64))
    assert bw_distance(torch.eye(2, dtype=F64), torch.eye(2, dtype=F64)).item() == 0

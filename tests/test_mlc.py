"""MLC against ground truth: closed forms of R and R_c, the orthogonal-subspace gain, Sinkhorn's marginals and
its η behaviour (down to the permutation degeneracy), the Hungarian accuracy, numerical ranks, the picture's
read-out, the datasets, the baselines on data they must solve, and the training pieces (one-shot copy, reports
on the Cadence, device-agnostic fit)."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from workbench.methods import mlc
from workbench.methods.mlc import (DATASETS, cluster_baseline, digit_augmenter, make_dataset, run_baselines,
                                   self_expression_connectivity)
from workbench.progress import Cadence

F64 = torch.float64


def sphere(n, d, seed, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def orthogonal_subspaces(d, k, r, per, seed, tight=True):
    """k mutually orthogonal r-dim subspaces of R^d, `per` unit points each; tight=True uses ±basis vectors
    (an isotropic frame: Z_kᵀZ_k = per/r · P_k exactly, per a multiple of 2r), else random unit points."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))[0]
    rows, labels = [], []
    for c in range(k):
        U = Q[:, c * r:(c + 1) * r]  # (d, r)
        if tight:
            E = torch.cat([torch.eye(r, dtype=F64), -torch.eye(r, dtype=F64)]).repeat(per // (2 * r), 1)  # (per, r)
        else:
            E = F.normalize(torch.randn(per, r, generator=g, dtype=F64), dim=1)
        rows.append(E @ U.T)
        labels += [c] * per
    Z = torch.cat(rows)  # (k per, d)
    y = torch.tensor(labels)
    Gamma = (y[:, None] == y[None, :]).to(F64) / per  # true blocks, rows sum to 1
    return Z, y, Gamma


def logdet_reference(M):
    return torch.linalg.slogdet(M)[1]


# --- R and R_c ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(50, 8), (120, 32), (7, 16)])
@pytest.mark.parametrize("eps", [0.1, math.sqrt(0.1), 1.0])
def test_coding_rate_matches_its_definition(n, d, eps):
    Z = sphere(n, d, seed=n + d)
    expected = logdet_reference(torch.eye(d, dtype=F64) + d / (n * eps**2) * Z.T @ Z)
    assert torch.allclose(mlc.coding_rate(Z, eps), expected, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_compressed_rate_matches_the_sum_over_rows(seed):
    n, d, eps = 30, 6, 0.5
    Z = sphere(n, d, seed)
    Gamma = mlc.sinkhorn(torch.rand(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64), 0.3, 50)
    expected = torch.stack([logdet_reference(torch.eye(d, dtype=F64) + d / eps**2 * Z.T @ torch.diag(Gamma[j]) @ Z)
                            for j in range(n)]).mean()
    assert torch.allclose(mlc.compressed_coding_rate(Z, Gamma, eps), expected, rtol=1e-10)


@pytest.mark.parametrize("n, d", [(40, 8), (120, 32)])
@pytest.mark.parametrize("eps", [math.sqrt(0.1), 0.7])
def test_uniform_membership_gives_rc_equal_to_r(n, d, eps):
    Z = sphere(n, d, seed=3)
    uniform = torch.full((n, n), 1 / n, dtype=F64)
    assert torch.allclose(mlc.compressed_coding_rate(Z, uniform, eps), mlc.coding_rate(Z, eps), rtol=1e-12)
    assert abs(mlc.rate_reduction(Z, uniform, eps).item()) < 1e-10


@pytest.mark.parametrize("n, d", [(40, 8), (120, 32)])
@pytest.mark.parametrize("eps", [math.sqrt(0.1), 0.7])
def test_identity_membership_gives_log_one_plus_d_over_eps2(n, d, eps):
    # each row codes one unit vector: logdet(I + d/ε² z zᵀ) = log(1 + d/ε²), MLC's convention (no ½)
    Z = sphere(n, d, seed=4)
    value = mlc.compressed_coding_rate(Z, torch.eye(n, dtype=F64), eps).item()
    assert value == pytest.approx(math.log(1 + d / eps**2), rel=1e-12)


@pytest.mark.parametrize("d, k, r", [(32, 4, 3), (16, 2, 5), (12, 3, 4)])
@pytest.mark.parametrize("eps", [math.sqrt(0.1), 0.7])
def test_true_blocks_on_orthogonal_subspaces_give_the_known_gain(d, k, r, eps):
    Z, _, Gamma = orthogonal_subspaces(d, k, r, per=4 * r, seed=0)
    gain = mlc.rate_reduction(Z, Gamma, eps).item()
    assert gain == pytest.approx(mlc.orthogonal_subspaces_gain(d, k, r, eps), rel=1e-10)
    # the note's case, 4 orthogonal 3-D subspaces in R^32 with ε² = 0.1: k r log(1 + d/(k r ε²)) − r log(1 + d/(r ε²))
    if (d, k, r) == (32, 4, 3) and eps == math.sqrt(0.1):
        assert gain == pytest.approx(12 * math.log(1 + 32 / 1.2) - 3 * math.log(1 + 32 / 0.3), rel=1e-10)


def test_random_points_on_orthogonal_subspaces_follow_the_block_formula():
    # R splits over orthogonal blocks; R_c of a true-block row is that block's rate at n/k points
    d, k, r, per, eps = 32, 4, 3, 40, math.sqrt(0.1)
    Z, y, Gamma = orthogonal_subspaces(d, k, r, per, seed=1, tight=False)
    n = len(y)
    R = sum(logdet_reference(torch.eye(d, dtype=F64) + d / (n * eps**2) * Z[y == c].T @ Z[y == c]) for c in range(k))
    Rc = sum(logdet_reference(torch.eye(d, dtype=F64) + d / (per * eps**2) * Z[y == c].T @ Z[y == c])
             for c in range(k)) / k
    assert mlc.rate_reduction(Z, Gamma, eps).item() == pytest.approx((R - Rc).item(), rel=1e-10)


def test_cholesky_logdet_has_the_same_gradient_as_torch_logdet():
    d = 5
    A = torch.randn(d, d, dtype=F64, generator=torch.Generator().manual_seed(0))
    M = (A @ A.T + torch.eye(d, dtype=F64)).requires_grad_()
    grad = torch.autograd.grad(mlc.logdet_spd(M), M)[0]
    expected = torch.autograd.grad(torch.logdet(M), M)[0]
    assert torch.allclose(grad, expected, atol=1e-12)


# --- Sinkhorn ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [5, 64, 200])
@pytest.mark.parametrize("eta", [0.2, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sinkhorn_is_doubly_stochastic(n, eta, dtype):
    C = sphere(n, 8, seed=n, dtype=dtype)
    Gamma = mlc.sinkhorn((C @ C.T).abs(), eta, n_iter=200)
    tol = 1e-6 if dtype == F64 else 1e-5
    assert (Gamma >= 0).all()
    assert (Gamma.sum(1) - 1).abs().max() < tol
    assert (Gamma.sum(0) - 1).abs().max() < tol
    assert torch.allclose(Gamma, Gamma.T, atol=10 * tol)  # a symmetric kernel gives a symmetric plan


def test_sinkhorn_maximises_the_entropic_objective():
    # the Sinkhorn plan beats any other doubly stochastic matrix on ⟨K, Γ⟩ + η H(Γ) (here: perturbed ones)
    n, eta = 20, 0.3
    K = torch.rand(n, n, dtype=F64, generator=torch.Generator().manual_seed(2))
    Gamma = mlc.sinkhorn(K, eta, 500)

    def objective(G):
        return (K * G).sum() - eta * (G * G.log()).sum()

    best = objective(Gamma)
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        other = mlc.sinkhorn(K + 0.3 * torch.randn(n, n, dtype=F64, generator=g), eta, 500)
        assert objective(other) < best


@pytest.mark.parametrize("n", [2, 50, 500])
@pytest.mark.parametrize("eta, c", [(0.15, 1.0), (0.5, 2.0)])
def test_sinkhorn_of_a_scaled_identity_has_the_closed_form(n, eta, c):
    # K = c I: by symmetry Γ = p I + (1 − p)/(n − 1) (11ᵀ − I), and a scaling of e^{K/η} has diagonal/off-diagonal
    # ratio e^{c/η}: p = e^{c/η} / (e^{c/η} + n − 1), reached at the first iteration
    Gamma = mlc.sinkhorn(c * torch.eye(n, dtype=F64), eta, n_iter=1)
    p = math.exp(c / eta) / (math.exp(c / eta) + n - 1)
    expected = p * torch.eye(n, dtype=F64) + (1 - p) / (n - 1) * (1 - torch.eye(n, dtype=F64))
    assert torch.allclose(Gamma, expected, atol=1e-12)


def test_membership_ignores_the_signs_of_the_cluster_head_outputs():
    C = sphere(40, 6, seed=5)
    signs = torch.where(torch.arange(40) % 3 == 0, -1.0, 1.0).to(F64)[:, None]
    assert torch.equal(mlc.membership(signs * C, 0.2), mlc.membership(C, 0.2))


def test_mlc_objective_averages_the_views():
    Za, Zb, Ca, Cb = (sphere(30, 5, seed=s) for s in range(4))
    loss_ab, terms, Z, Gamma = mlc.mlc_objective([Za, Zb], [Ca, Cb], 0.5, 0.2, 5)
    loss_ba = mlc.mlc_objective([Zb, Za], [Cb, Ca], 0.5, 0.2, 5)[0]
    assert loss_ab.item() == pytest.approx(loss_ba.item(), abs=1e-12)
    assert torch.allclose(Gamma, 0.5 * (mlc.membership(Ca, 0.2) + mlc.membership(Cb, 0.2)), atol=1e-14)
    assert torch.allclose(Z, F.normalize(Za + Zb, dim=1), atol=1e-14)
    assert terms["delta_R"] == pytest.approx(mlc.rate_reduction(Z, Gamma, 0.5).item(), rel=1e-12)


def test_sinkhorn_rejects_a_non_positive_eta():
    with pytest.raises(ValueError, match="eta = 0"):
        mlc.sinkhorn(torch.eye(3), 0.0)


def test_eta_sweep_from_uniform_to_blocks_to_a_permutation():
    """The note's table (B6) on 4 orthogonal 3-D subspaces in R^32, ε² = 0.1, kernel |ZZᵀ|: large η spreads Γ
    over all points, η = 0.1 recovers the true blocks, and too small an η overshoots the true-block ΔR and
    drifts to the permutation Γ = I (one-hot rows: every point its own cluster)."""
    d, k, r, per, eps = 32, 4, 3, 30, math.sqrt(0.1)
    Z, y, truth = orthogonal_subspaces(d, k, r, per, seed=0, tight=False)
    K = (Z @ Z.T).abs()
    off_block = truth == 0
    results = {}
    for eta in (1.0, 0.1, 0.03, 0.003):
        Gamma = mlc.sinkhorn(K, eta, n_iter=300)
        results[eta] = (Gamma[off_block].sum().item() / len(y), mlc.rate_reduction(Z, Gamma, eps).item(),
                        Gamma.diagonal().mean().item())
    true_gain = mlc.rate_reduction(Z, truth, eps).item()
    assert results[1.0][0] > 0.5 and results[1.0][1] < 0.1 * true_gain  # too smooth
    assert results[0.1][0] < 0.01 and results[0.1][1] > 0.9 * true_gain  # ≈ the true blocks
    assert results[0.03][1] > true_gain  # past the true blocks: drifting
    off, gain, diagonal = results[0.003]
    assert diagonal > 0.95  # ≈ I
    permutation = mlc.sinkhorn(K, 0.003, n_iter=300).argmax(1)
    assert torch.equal(permutation, torch.arange(len(y)))
    assert gain > true_gain
    assert [results[e][2] for e in (1.0, 0.1, 0.03, 0.003)] == sorted(results[e][2] for e in (1.0, 0.1, 0.03, 0.003))


def test_membership_of_the_one_shot_init_equals_sinkhorn_of_the_features():
    torch.manual_seed(0)
    net = mlc.MLCNet(10, hidden=16, feature_dim=4).double().eval()
    net.copy_feature_head_to_cluster_head()
    x = torch.randn(25, 10, dtype=F64)
    Z, C = net(x)
    assert torch.equal(Z, C)
    assert torch.allclose(mlc.membership(C, 0.2, 10), mlc.sinkhorn((Z @ Z.T).abs(), 0.2, 10))


# --- metrics ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hungarian_accuracy_is_invariant_to_label_permutations(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 5, 200))
    base = mlc.clustering_accuracy(y, pred)
    for _ in range(5):
        perm = rng.permutation(5)
        assert mlc.clustering_accuracy(y, perm[pred]) == pytest.approx(base, abs=1e-12)
        assert mlc.nmi(y, perm[pred]) == pytest.approx(mlc.nmi(y, pred), abs=1e-12)
    assert mlc.clustering_accuracy(y, rng.permutation(5)[y]) == 1.0
    assert 0.6 <= base <= 1.0


def test_hungarian_accuracy_known_values():
    assert mlc.clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert mlc.clustering_accuracy([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5
    assert mlc.clustering_accuracy([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(4 / 6)  # 3 clusters vs 2


def test_numerical_rank():
    g = torch.Generator().manual_seed(0)
    U = torch.linalg.qr(torch.randn(20, 3, generator=g, dtype=F64))[0]
    Z = torch.randn(100, 3, generator=g, dtype=F64) @ U.T  # rank 3 exactly
    assert mlc.numerical_rank(Z) <= 3
    diag = torch.diag(torch.tensor([3.0, 1.0, 0.1], dtype=F64))  # energies 9, 1, 0.01: 90 % then 99.9 %
    assert mlc.numerical_rank(diag) == 2 and mlc.numerical_rank(diag, energy=0.8) == 1
    labels = np.array([0] * 50 + [1] * 50)
    two = torch.cat([Z[:50], torch.randn(50, 20, generator=g, dtype=F64)])
    ranks = mlc.per_cluster_ranks(two, labels)
    assert ranks[0] <= 3 < ranks[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_labels_recover_weakly_linked_blocks_of_unequal_size(seed):
    # blocks of 5, 20 and 60 samples with random positive weights inside, a faint uniform link across
    rng = np.random.default_rng(seed)
    sizes = [5, 20, 60]
    y = np.repeat(np.arange(3), sizes)
    A = np.where(y[:, None] == y[None, :], rng.uniform(0.5, 1.0, (85, 85)), 1e-3)
    labels = mlc.spectral_labels(torch.as_tensor(A), 3, seed)
    assert mlc.clustering_accuracy(y, labels) == 1.0


@pytest.mark.parametrize("k", [2, 4])
def test_membership_leak_of_true_blocks_and_of_the_uniform_membership(k):
    per = 6
    y = np.repeat(np.arange(k), per)
    blocks = torch.as_tensor((y[:, None] == y[None, :]) / per)
    assert mlc.membership_leak(blocks, y) == 0.0
    n = k * per
    assert mlc.membership_leak(torch.full((n, n), 1 / n), y) == pytest.approx((k - 1) / k, abs=1e-12)
    assert mlc.membership_leak(torch.eye(n), y) == 0.0  # blind to the permutation degeneracy: it measures mixing only


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")  # that is the point: one block per subspace
def test_cluster_view_reads_out_orthogonal_subspaces_exactly():
    Z, y, Gamma = orthogonal_subspaces(d=12, k=3, r=2, per=8, seed=0)
    shuffle = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    Z, y, Gamma = Z[shuffle], y[shuffle].numpy(), Gamma[shuffle][:, shuffle]
    view = mlc.ClusterView(Z, Gamma, 3, y)
    assert view.accuracy == 1.0 and len(set(view.labels.tolist())) == 3
    assert (np.diff(view.labels[view.order]) >= 0).all()  # sorted by predicted cluster
    assert np.allclose(view.cosine, (Z @ Z.T).abs().numpy())
    for s in view.spectra.values():  # ±basis vectors of a 2-D subspace: two equal singular values, the rest 0
        assert np.allclose(s, [1, 1] + [0] * (len(s) - 2), atol=1e-12)
    coords = view.coordinates(3)
    assert coords.shape == (24, 3) and np.allclose(coords.mean(0), 0, atol=1e-12)
    given = mlc.ClusterView(Z, Gamma, 3, labels=np.zeros(24, int))
    assert given.labels.tolist() == [0] * 24 and given.accuracy is None  # given labels are kept; no y, no accuracy


# --- data --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
def test_datasets_are_seeded_and_labelled(name):
    k = 2 if name in ("moons", "circles") else 4
    X, y = make_dataset(name, 200, k, ambient_dim=16, manifold_dim=2, noise=0.05, seed=3)
    X2, y2 = make_dataset(name, 200, k, ambient_dim=16, manifold_dim=2, noise=0.05, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert X.shape[0] == y.shape[0] == 200 and X.dtype == np.float32
    assert sorted(np.unique(y)) == list(range(k)) and np.bincount(y).min() >= 200 // k - 1


def test_digits_subset_is_stratified_and_in_unit_range():
    X, y = make_dataset("digits", 300, 10, seed=0)
    assert X.shape == (300, 64) and 0 <= X.min() and X.max() <= 1
    assert np.bincount(y).tolist() == [30] * 10
    X, y = make_dataset("digits", 100_000, 3)
    assert len(y) == int((y < 3).sum()) and len(y) > 500  # all images of the classes 0, 1, 2


def test_digit_augmentation_is_small_and_identity_without_randomness():
    X, _ = make_dataset("digits", 50, 10)
    x = torch.as_tensor(X)
    assert torch.allclose(digit_augmenter(0.0, max_degrees=0, max_shift=0)(x), x, atol=1e-5)
    moved = digit_augmenter(0.05, generator=torch.Generator().manual_seed(0))(x)
    assert moved.shape == x.shape and 0 < (moved - x).abs().mean() < 0.2


# --- baselines ---------------------------------------------------------------------------------------------

def test_manifolds_defeat_kmeans_but_not_subspace_clustering_on_subspaces():
    X, y = make_dataset("subspaces", 300, 3, ambient_dim=20, manifold_dim=3, noise=0.0, seed=0)
    assert mlc.clustering_accuracy(y, cluster_baseline("ssc", X, 3, ssc_kmax=5)) > 0.95
    assert mlc.clustering_accuracy(y, cluster_baseline("ensc", X, 3)) > 0.95
    assert mlc.clustering_accuracy(y, cluster_baseline("kmeans", X, 3)) < 0.8
    X, y = make_dataset("manifolds", 300, 3, ambient_dim=20, manifold_dim=1, noise=0.02, seed=0)
    table = run_baselines(X, y, 3, ["kmeans", "spectral"])
    assert table["kmeans"]["accuracy"] < 0.8 < table["spectral"]["accuracy"]  # one centre, curved clusters


def test_self_expression_connectivity_is_zero_for_split_clusters_and_m_over_m_minus_1_for_cliques():
    y = np.repeat([0, 1], 4)
    C = np.kron(np.eye(2), np.ones((4, 4)) - np.eye(4))  # two cliques of 4, no edge between them
    assert self_expression_connectivity(C, y) == pytest.approx(4 / 3)
    C[:2, 2:4] = C[2:4, :2] = C[4:6, 6:] = C[6:, 4:6] = 0  # each cluster falls apart into two pairs
    assert self_expression_connectivity(C, y) == pytest.approx(0, abs=1e-12)


def test_self_expressive_baselines_report_connectivity_and_leak():
    X, y = make_dataset("subspaces", 150, 3, ambient_dim=20, manifold_dim=3, noise=0.0, seed=0)
    table = run_baselines(X, y, 3, ["ssc", "ensc"])
    for scores in table.values():
        assert scores["accuracy"] > 0.95 and scores["leak"] < 1e-3 and scores["connectivity"] > 0


# --- training pieces ---------------------------------------------------------------------------------------------

def test_fit_runs_both_phases_and_increases_the_rate_reduction():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    U = [torch.linalg.qr(torch.randn(10, 2, generator=g))[0] for _ in range(2)]
    X = torch.cat([torch.randn(60, 2, generator=g) @ u.T for u in U])  # (120, 10)
    y = np.array([0] * 60 + [1] * 60)
    net = mlc.MLCNet(10, hidden=64, feature_dim=8)
    log = []
    steps = mlc.fit(net, X, lambda x: x + 0.02 * torch.randn_like(x), tcr_steps=30, mlc_steps=30, eps=0.5, eta=0.2,
                    tcr_lr=1e-3, mlc_lr=1e-3, callback=log.append, cadence=Cadence(60, every=1, seconds=None))
    assert steps == 60 and [e.step for e in log] == list(range(1, 61))
    assert [sorted(e.metrics) for e in log] == ([["tcr.train_R", "tcr.train_invariance"]] * 30
                                                + [["mlc.train_R", "mlc.train_R_c", "mlc.train_delta_R"]] * 30)
    mlc_terms = [e.metrics["mlc.train_delta_R"] for e in log[30:]]
    assert mlc_terms[-1] > mlc_terms[0]
    Z, Gamma = mlc.embed(net, X, eta=0.2)
    assert Z.shape == (120, 8) and Gamma.shape == (120, 120)
    assert torch.allclose(Z.norm(dim=1), torch.ones(120), atol=1e-5)
    assert mlc.spectral_labels(Gamma, 2).shape == y.shape


def test_fit_reports_the_mean_of_each_term_since_the_previous_report():
    def run(every):
        torch.manual_seed(0)
        net, events = mlc.MLCNet(4, hidden=8, feature_dim=3), []
        X = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
        steps = mlc.fit(net, X, lambda x: x, tcr_steps=5, mlc_steps=4, eps=0.5, eta=0.5, callback=events.append,
                        cadence=Cadence(9, every=every, seconds=None))
        return steps, events

    steps, each = run(1)
    assert steps == 9 and [e.step for e in each] == list(range(1, 10)) and {e.total for e in each} == {9}
    steps, events = run(3)
    assert steps == 9 and [e.step for e in events] == [3, 6, 9]
    # the report at step 6 spans both phases: TCR's steps 4, 5 and MLC's step 6, each term averaged over its own
    assert events[1].metrics["tcr.train_R"] == pytest.approx(np.mean([e.metrics["tcr.train_R"] for e in each[3:5]]))
    assert events[1].metrics["mlc.train_delta_R"] == pytest.approx(each[5].metrics["mlc.train_delta_R"])
    assert events[2].metrics["mlc.train_R_c"] == pytest.approx(np.mean([e.metrics["mlc.train_R_c"] for e in each[6:]]))
    assert set(events[0].metrics) == {"tcr.train_R", "tcr.train_invariance"} and "tcr.train_R" not in events[2].metrics


def test_fit_copies_the_head_and_calls_on_pretrained_before_the_last_pretraining_report():
    seen = []

    def on_pretrained(net):
        seen.append(("pretrained", torch.equal(net.cluster_head[0].weight, net.feature_head[0].weight)))

    for tcr_steps in (3, 0):
        seen.clear()
        net = mlc.MLCNet(4, hidden=8, feature_dim=3)
        mlc.fit(net, torch.randn(20, 4), lambda x: x, tcr_steps=tcr_steps, mlc_steps=2, eps=0.5, eta=0.5,
                callback=lambda event: seen.append(event.step), on_pretrained=on_pretrained,
                cadence=Cadence(tcr_steps + 2, every=1, seconds=None))
        assert seen == [*range(1, tcr_steps), ("pretrained", True), *range(max(tcr_steps, 1), tcr_steps + 3)]


def test_fit_stops_when_asked():
    net = mlc.MLCNet(4, hidden=8, feature_dim=3)
    calls = []
    steps = mlc.fit(net, torch.randn(20, 4), lambda x: x, tcr_steps=10, mlc_steps=10, eps=0.5, eta=0.5,
                    callback=lambda event: calls.append(event.step), stop=lambda: len(calls) >= 3,
                    cadence=Cadence(20, every=1, seconds=None))
    assert steps == 3 and calls == [1, 2, 3]


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_fit_runs_on_the_device_of_its_data(device):
    X = torch.randn(64, 6, device=device)
    net = mlc.MLCNet(6, hidden=16, feature_dim=4).to(device)
    mlc.fit(net, X, lambda x: x + 0.01 * torch.randn_like(x), tcr_steps=3, mlc_steps=3, eps=0.5, eta=0.3)
    Z, Gamma = mlc.embed(net, X, eta=0.3)
    assert Z.device.type == device and Gamma.device.type == device

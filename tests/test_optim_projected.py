"""Subspace optimizers (GaLore, DCT-AdamW, APOLLO, FRUGAL) and their shared projectors.

Ground truths: the SVD truncation (Eckart-Young) for GaLore's subspace, scipy's orthonormal DCT-II
for the DCT basis, torch.optim.AdamW for FRUGAL with the whole space state-full, each method's first
update and DCT-AdamW over several refreshes written out from the equations in float64, exact hand
counts of state bytes, exact state-free FRUGAL steps on grids, and the reference packages galore-torch and
apollo-torch (the `test` extra, installed by `make test`; after 20 steps max|Δp| = 0.0 for GaLore
and at most 3.6e-7 for APOLLO, which folds its factors into s instead of rescaling G̃).
"""

import io
import math

import apollo_torch
import galore_torch
import numpy as np
import pytest
import scipy.fft
import torch

from workbench.optim import APOLLO, FRUGAL, APOLLOMini, DCTAdamW, GaLoreAdamW, optimizer_state_bytes, projectors, subspace
from workbench.optim.apollo import norm_growth_divisor, scaled_norm, scaling_factor
from workbench.optim.projectors import project, project_back, refresh

SHAPES = [(12, 5), (5, 12), (8, 8)]  # tall, wide, square
ORTHONORMAL = ["svd", "dct", "orthogonal", "randperm"]


def grad(shape, seed, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def fresh_state(seed=1):
    return {"seed": seed}


# ---------------------------------------------------------------- projectors


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_dct_basis_is_scipys_orthonormal_dct2(n):
    C = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)  # C @ x = DCT-II(x)
    Q = projectors.dct_basis(n, torch.float64, torch.device("cpu"))
    np.testing.assert_allclose(Q.numpy(), C, atol=1e-13)
    np.testing.assert_allclose((Q @ Q.T).numpy(), np.eye(n), atol=1e-13)


@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (8, 8), (9, 1), (1, 6), (16, 12)])
def test_fft_dct3_equals_the_product_with_the_basis(shape):
    """dct3(G, 1) = G Q and dct3(G, 0) = Qᵀ G: Makhoul's FFT gives the alignments without the O(n²) product."""
    G = grad(shape, 2)
    for dim in (0, 1):
        Q = projectors.dct_basis(shape[dim], torch.float64, torch.device("cpu"))
        torch.testing.assert_close(projectors.dct3(G, dim), G @ Q if dim == 1 else Q.T @ G, atol=1e-13, rtol=0)


@pytest.mark.parametrize("kind", ["svd", "orthogonal", "random"])
@pytest.mark.parametrize("shape", SHAPES)
def test_stored_projection_matrix_shape_and_orthonormality(kind, shape):
    r = 3
    state = fresh_state()
    refresh(grad(shape, 0), state, kind, r)
    P = state["P"]
    right = shape[0] >= shape[1]
    assert P.shape == ((r, shape[1]) if right else (shape[0], r))
    if kind != "random":  # APOLLO's Gaussian is not orthonormal
        gram = P @ P.T if right else P.T @ P
        torch.testing.assert_close(gram, torch.eye(r, dtype=P.dtype), atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ORTHONORMAL)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_orthonormal_kinds_project_back_then_project_is_identity(kind, shape, seed):
    """P Pᵀ = I on the compressed side ⟺ project(back(N)) = N; and back∘project is idempotent."""
    G, r = grad(shape, seed), 3
    state = fresh_state(seed + 1)
    R = refresh(G, state, kind, r)
    torch.testing.assert_close(R, project(G, state))
    N = grad(R.shape, seed + 10)
    torch.testing.assert_close(project(project_back(N, state, shape), state), N, atol=1e-12, rtol=0)
    PG = project_back(R, state, shape)
    torch.testing.assert_close(project_back(project(PG, state), state, shape), PG, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("r", [1, 3])
def test_svd_subspace_gives_the_best_rank_r_approximation(shape, r):
    G = grad(shape, 3)
    state = {}
    G_r = project_back(refresh(G, state, "svd", r), state, shape)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    torch.testing.assert_close(G_r, U[:, :r] @ torch.diag(S[:r]) @ Vh[:r], atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("r", [1, 3])
def test_dct_subspace_keeps_the_r_highest_scoring_coefficients(shape, r):
    """back(project(G)) keeps the r DCT coefficient columns (rows) of G with the largest ℓ1 norm."""
    G = grad(shape, 4)
    right = shape[0] >= shape[1]
    C = scipy.fft.dct(np.eye(min(shape)), type=2, norm="ortho", axis=0)  # basis = columns of C
    S = G.numpy() @ C if right else C.T @ G.numpy()
    score = np.abs(S).sum(axis=0 if right else 1)
    keep = np.argsort(-score)[:r]
    expected = S[:, keep] @ C[:, keep].T if right else C[:, keep] @ S[keep]
    state = {}
    R = refresh(G, state, "dct", r)
    assert state["dct_idx"].dtype == torch.int32 and set(state["dct_idx"].tolist()) == set(keep.tolist())
    np.testing.assert_allclose(project_back(R, state, shape).numpy(), expected, atol=1e-12)


def test_dct_works_for_several_sizes_at_once():
    for shape in [(6, 4), (9, 3), (3, 9), (5, 5)]:
        state = {}
        R = refresh(grad(shape, 5), state, "dct", 2)
        assert R.shape == ((shape[0], 2) if shape[0] >= shape[1] else (2, shape[1]))


@pytest.mark.parametrize("shape", SHAPES)
def test_random_projection_is_apollos_seeded_gaussian_and_seed_chain(shape):
    r, seed = 2, 7
    state = fresh_state(seed)
    refresh(grad(shape, 0, torch.float32), state, "random", r)
    right = shape[0] >= shape[1]
    gaussian = torch.randn((r, shape[1]) if right else (shape[0], r), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(state["P"], gaussian / math.sqrt(r), atol=0, rtol=0)
    chained = torch.randint(0, 2**63 - 1, (15,), generator=torch.Generator().manual_seed(seed))[-1].item()
    assert state["seed"] == projectors.next_seed(seed) == chained


def test_random_kinds_are_reproducible_from_the_state_seed():
    for kind in ["random", "orthogonal", "randperm"]:
        a, b = fresh_state(3), fresh_state(3)
        torch.testing.assert_close(refresh(grad((9, 4), 0), a, kind, 2), refresh(grad((9, 4), 0), b, kind, 2))
        assert a["seed"] == b["seed"] != 3


def test_projector_state_loads_with_weights_only():
    state = {}
    for kind in projectors.KINDS:
        state[kind] = fresh_state()
        refresh(grad((7, 4), 0), state[kind], kind, 2)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    for kind in projectors.KINDS:
        torch.testing.assert_close(project(grad((7, 4), 1), loaded[kind]), project(grad((7, 4), 1), state[kind]))


@pytest.mark.parametrize(
    "kind, rank, message",
    [
        ("svd", 0, r"rank=0 is not allowed for a parameter of shape \(6, 4\): choose an integer in \[1, 4\]"),
        ("dct", 5, r"rank=5 is not allowed for a parameter of shape \(6, 4\): choose an integer in \[1, 4\]"),
        ("svd", 1.5, r"rank=1.5 is not allowed"),
        ("qr", 2, r"proj='qr' is not allowed: choose one of \('svd', 'dct', 'random', 'orthogonal', 'randperm'\)"),
    ],
)
def test_refresh_rejects_bad_rank_and_kind(kind, rank, message):
    with pytest.raises(ValueError, match=message):
        refresh(grad((6, 4), 0), fresh_state(), kind, rank)


# ---------------------------------------------------------------- optimizers

# name: (class, options of the projected group, key that turns projection off)
OPTIMIZERS = {
    "galore": (GaLoreAdamW, dict(rank=2, update_proj_gap=3, scale=0.5), "rank"),
    "galore-dct": (GaLoreAdamW, dict(rank=2, update_proj_gap=3, proj="dct"), "rank"),
    "galore-orthogonal": (GaLoreAdamW, dict(rank=2, update_proj_gap=3, proj="orthogonal"), "rank"),
    "galore-randperm": (GaLoreAdamW, dict(rank=2, update_proj_gap=3, proj="randperm"), "rank"),
    "dct": (DCTAdamW, dict(rank=2, update_proj_gap=3), "rank"),
    "apollo": (APOLLO, dict(rank=2, update_proj_gap=3), "rank"),
    "apollo-svd": (APOLLO, dict(rank=2, update_proj_gap=3, proj="svd", scale_front=True), "rank"),
    "apollo-mini": (APOLLOMini, dict(update_proj_gap=3), "rank"),
    "frugal": (FRUGAL, dict(density=0.5, update_proj_gap=3), "density"),
    "frugal-orthogonal": (FRUGAL, dict(density=0.5, update_proj_gap=3, proj="orthogonal", inactive_update_rule="sgd"), "density"),
    "frugal-randperm": (FRUGAL, dict(density=0.5, update_proj_gap=3, proj="randperm", reset_statistics=False), "density"),
    "frugal-dct": (FRUGAL, dict(density=0.5, update_proj_gap=3, proj="dct"), "density"),
    "frugal-block": (FRUGAL, dict(density=0.5, update_proj_gap=3, proj="block"), "density"),
}
MIXED_SHAPES = [(6, 4), (4, 6), (5, 5), (5,), (2, 3, 2), ()]  # tall, wide, square, 1-D, 3-D, scalar


def make_params(shapes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in shapes]


def make_optimizer(name, projected, plain):
    """The projected params in a group with the method's options, the plain ones in a group with projection off."""
    cls, options, key = OPTIMIZERS[name]
    return cls([{"params": projected, **options}, {"params": plain, key: None}], lr=1e-2, weight_decay=0.1)


def train(params, opt, start, stop):
    """Steps start..stop-1 on ½‖W − 1‖² plus seeded noise, so gradients depend on the weights."""
    for t in range(start, stop):
        for i, p in enumerate(params):
            noise = torch.randn(p.shape, generator=torch.Generator().manual_seed(100 * t + i)).to(p.dtype)
            p.grad = p.detach() - 1 + 0.5 * noise
        opt.step()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_mixed_shapes_and_groups_train_and_keep_the_expected_state(name):
    params = make_params(MIXED_SHAPES + [(6, 4)])
    opt = make_optimizer(name, params[:-1], params[-1:])
    before = [p.detach().clone() for p in params]
    train(params, opt, 0, 5)
    for p, p0 in zip(params, before):
        assert torch.isfinite(p).all() and not torch.equal(p, p0)
    cls, options, key = OPTIMIZERS[name]
    for p in params:
        state = opt.state[p]
        projected = p is not params[-1] and (p.ndim == 2 or options.get("proj") == "block")
        if not projected:  # plain Adam on the full shape
            assert state["exp_avg"].shape == p.shape and state["step"] == 5
        elif options.get("proj") == "block":
            assert "exp_avg" not in state or state["exp_avg"].shape == p.shape
        else:
            m, n = p.shape
            r = 1 if cls is APOLLOMini else options.get("rank") or max(1, round(options["density"] * min(m, n)))
            assert state["exp_avg"].shape == ((m, r) if m >= n else (r, n))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_with_weights_only_resumes_bit_identically(name):
    shapes = MIXED_SHAPES + [(6, 4)]
    full = make_params(shapes)
    opt_full = make_optimizer(name, full[:-1], full[-1:])
    train(full, opt_full, 0, 11)

    first = make_params(shapes)
    opt_first = make_optimizer(name, first[:-1], first[-1:])
    train(first, opt_first, 0, 5)  # the checkpoint falls between refreshes (gap 3)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "opt": opt_first.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    resumed = [torch.nn.Parameter(p.clone()) for p in checkpoint["params"]]
    opt_resumed = make_optimizer(name, resumed[:-1], resumed[-1:])
    opt_resumed.load_state_dict(checkpoint["opt"])
    train(resumed, opt_resumed, 5, 11)
    for a, b in zip(resumed, full):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["dct", "galore-randperm", "frugal-dct"])
def test_bfloat16_parameters_keep_exact_integer_indices_through_a_checkpoint(name):
    params = make_params([(300, 280)], dtype=torch.bfloat16)  # 257, 259, … are not bfloat16 numbers
    cls, options, key = OPTIMIZERS[name]
    options = {**options, "update_proj_gap": 100, **({"rank": 100} if "rank" in options else {})}
    opt = cls(params, **options)
    train(params, opt, 0, 1)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    opt2 = cls(params, **options)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    for k in ("dct_idx", "coord_idx"):
        if k in opt.state[params[0]]:
            assert torch.equal(opt2.state[params[0]][k], opt.state[params[0]][k])


@pytest.mark.parametrize(
    "name, refreshes",
    [("galore", [1, 4, 7, 10]), ("apollo", [1, 4, 7, 10]), ("frugal", [1, 4, 7, 10]), ("dct", [1, 3, 6, 9])],
)
def test_refresh_schedule(name, refreshes, monkeypatch):
    """GaLore, APOLLO and FRUGAL refresh at updates 1, T+1, 2T+1, …; DCT-AdamW at 1, T, 2T, … (T = 3)."""
    calls = []
    original = subspace.refresh
    monkeypatch.setattr(subspace, "refresh", lambda G, state, kind, rank: calls.append(t) or original(G, state, kind, rank))
    params = make_params([(6, 4)])
    opt = make_optimizer(name, params, [])
    for t in range(1, 11):
        train(params, opt, t, t + 1)
    assert calls == refreshes


# bytes a projected m×n matrix keeps at rank r besides its two moments (max(m, n)·r each, in the
# parameter's dtype of s bytes), by subspace kind: P (r×n or m×r), dct_idx (r,) int32, coord_idx (r,) int64
SUBSPACE_BYTES = {
    "P": lambda m, n, r, s: s * r * min(m, n),
    "dct": lambda m, n, r, s: 4 * r,
    "randperm": lambda m, n, r, s: 8 * r,
}
STATE_BYTES = [  # (optimizer, options, r, kind, limiter: 1 if each projected matrix also keeps the limiter's last norm)
    pytest.param(GaLoreAdamW, dict(rank=2), 2, "P", 0, id="galore"),
    pytest.param(GaLoreAdamW, dict(rank=2, proj="dct"), 2, "dct", 0, id="galore-dct"),
    pytest.param(GaLoreAdamW, dict(rank=2, proj="orthogonal"), 2, "P", 0, id="galore-orthogonal"),
    pytest.param(GaLoreAdamW, dict(rank=2, proj="randperm"), 2, "randperm", 0, id="galore-randperm"),
    pytest.param(DCTAdamW, dict(rank=2), 2, "dct", 0, id="dct"),
    pytest.param(APOLLO, dict(rank=2), 2, "P", 1, id="apollo"),  # the norm: () in the parameter's dtype
    pytest.param(APOLLO, dict(rank=2, proj="svd"), 2, "P", 1, id="apollo-svd"),
    pytest.param(APOLLOMini, dict(), 1, "P", 1, id="apollo-mini"),
    pytest.param(FRUGAL, dict(density=0.4), 2, "P", 0, id="frugal"),  # r = round(0.4·min(m, n)) = 2
    pytest.param(FRUGAL, dict(density=0.4, proj="orthogonal"), 2, "P", 0, id="frugal-orthogonal"),
    pytest.param(FRUGAL, dict(density=0.4, proj="dct"), 2, "dct", 0, id="frugal-dct"),
    pytest.param(FRUGAL, dict(density=0.4, proj="randperm"), 2, "randperm", 0, id="frugal-randperm"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("cls, options, r, kind, limiter", STATE_BYTES)
def test_state_bytes_of_projected_optimizers_by_hand(cls, options, r, kind, limiter, dtype):
    """optimizer_state_bytes after 4 updates (a refresh at t = 3 or 4) on a tall and a wide projected matrix,
    a vector in the projected group and a matrix in a plain group, against the count written out by hand."""
    tall, wide, vector, plain = make_params([(12, 5), (5, 12), (7,), (6, 4)], dtype=dtype)
    key = "density" if cls is FRUGAL else "rank"
    opt = cls([{"params": [tall, wide, vector], **options, "update_proj_gap": 3}, {"params": [plain], key: None}])
    train([tall, wide, vector, plain], opt, 0, 4)
    s = dtype.itemsize
    expected = sum(2 * s * r * max(m, n) + SUBSPACE_BYTES[kind](m, n, r, s) + limiter * s for m, n in [(12, 5), (5, 12)])
    expected += 2 * s * (7 + 6 * 4)  # plain Adam's m and v; "step" and "seed" are ints (0 bytes)
    assert optimizer_state_bytes(opt) == expected


@pytest.mark.parametrize("name", ["galore", "galore-dct", "galore-orthogonal", "galore-randperm", "dct"])
@pytest.mark.parametrize("shape", SHAPES)
def test_between_refreshes_the_weights_move_inside_one_subspace(name, shape):
    """With update_proj_gap large and no decay, W_t − W_0 = back(·) stays in the first subspace."""
    cls, options, key = OPTIMIZERS[name]
    params = make_params([shape])
    W0 = params[0].detach().clone()
    opt = cls(params, lr=1e-2, **{**options, "rank": 3, "update_proj_gap": 1000})
    train(params, opt, 0, 6)
    state = opt.state[params[0]]
    dW = params[0].detach() - W0
    torch.testing.assert_close(project_back(project(dW, state), state, shape), dW, atol=1e-6, rtol=0)
    assert state["step"] == 6 and state["exp_avg"].shape == project(dW, state).shape


@pytest.mark.parametrize("proj", ["randperm", "block"])
@pytest.mark.parametrize("seed", [0, 1])
def test_frugal_with_the_whole_space_state_full_is_adamw(proj, seed):
    shapes = MIXED_SHAPES
    ours, ref = make_params(shapes, seed), make_params(shapes, seed)
    hyper = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    train(ours, FRUGAL(ours, density=1.0, proj=proj, update_proj_gap=1000, **hyper), 0, 10)
    train(ref, torch.optim.AdamW(ref, foreach=False, **hyper), 0, 10)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# first updates written out from each method's equations, in float64
LR, WD, B1, B2, EPS = 1e-2, 0.1, 0.9, 0.999, 1e-6
BC1, BC2 = 1 - B1, 1 - B2  # t = 1


def first_adam(R, eps_scaled):
    """m, v from zero after one step; N and α = lr·√bc2/bc1."""
    m, v = (1 - B1) * R, (1 - B2) * R * R
    return m / (v.sqrt() + (EPS * math.sqrt(BC2) if eps_scaled else EPS)), LR * math.sqrt(BC2) / BC1


def expected_first_step(name, W, G, state):
    right = W.shape[0] >= W.shape[1]
    if name in ("galore", "dct"):
        if name == "galore":
            U, _, Vh = torch.linalg.svd(G, full_matrices=False)
            P = Vh[:2] if right else U[:, :2]  # as GaLore: (r, n) or (m, r)
        else:
            C = torch.from_numpy(scipy.fft.dct(np.eye(min(W.shape)), type=2, norm="ortho", axis=0))
            P = C[:, state["dct_idx"].long()].T if right else C[:, state["dct_idx"].long()]
        R = G @ P.T if right else P.T @ G
        N, alpha = first_adam(R, eps_scaled=name == "dct")
        back = N @ P if right else P @ N
        if name == "galore":  # update, then W ← W − lr·λ·W
            W1 = W - alpha * 0.5 * back
            return W1 - LR * WD * W1
        return W * (1 - LR * WD) - alpha * back  # decay, then update
    if name.startswith("apollo"):
        P = state["P"]  # seeded Gaussian: checked against its formula above
        R = G @ P.T if right else P.T @ G
        N, alpha = first_adam(R, eps_scaled=False)
        if name == "apollo":  # channel: per row (tall) or column (wide) over the rank axis
            s = N.norm(dim=1 if right else 0, keepdim=True) / (R.norm(dim=1 if right else 0, keepdim=True) + 1e-8)
        else:  # mini: tensor-wise
            s = N.norm() / (R.norm() + 1e-8)
        W1 = W - alpha * math.sqrt(128.0 if name == "apollo-mini" else 1.0) * G * s  # no limiter at t = 1
        return W1 - LR * WD * W1
    # frugal, svd subspace: W ← W(1 − lr·λ) − α·back(N) − lr_f·rule(E), E = G − back(R), lr_f = 0.5·lr,
    # rule(E) = sign(E) (the default 'sign_sgd') or E ('sgd')
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    P = Vh[:2] if right else U[:, :2]
    R = G @ P.T if right else P.T @ G
    N, alpha = first_adam(R, eps_scaled=True)
    back_N, back_R = (N @ P, R @ P) if right else (P @ N, P @ R)
    E = G - back_R  # (m, n), no entry near 0 for these seeds, so sign(E) is the same in float64 and in the optimizer
    return W * (1 - LR * WD) - alpha * back_N - LR * 0.5 * (E.sign() if name == "frugal" else E)


FIRST_STEP = {
    "galore": lambda p: GaLoreAdamW(p, lr=LR, weight_decay=WD, eps=EPS, rank=2, scale=0.5),
    "dct": lambda p: DCTAdamW(p, lr=LR, weight_decay=WD, eps=EPS, rank=2),
    "apollo": lambda p: APOLLO(p, lr=LR, weight_decay=WD, eps=EPS, rank=2),
    "apollo-mini": lambda p: APOLLOMini(p, lr=LR, weight_decay=WD, eps=EPS),
    "frugal": lambda p: FRUGAL(p, lr=LR, weight_decay=WD, eps=EPS, density=0.5, inactive_lr_scale=0.5),  # 'sign_sgd'
    "frugal-sgd": lambda p: FRUGAL(
        p, lr=LR, weight_decay=WD, eps=EPS, density=0.5, inactive_update_rule="sgd", inactive_lr_scale=0.5
    ),
}


@pytest.mark.parametrize("name", FIRST_STEP)
@pytest.mark.parametrize("shape", [(7, 4), (4, 7)])
def test_first_update_matches_the_written_equations(name, shape):
    W = torch.nn.Parameter(grad(shape, 0))
    W0, G = W.detach().clone(), grad(shape, 1)
    W.grad = G
    opt = FIRST_STEP[name]([W])
    opt.step()
    expected = expected_first_step(name, W0, G, opt.state[W])
    torch.testing.assert_close(W.detach(), expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_dct_adamw_over_refreshes_matches_a_float64_reference(shape):
    """7 updates, T = 3: new subspaces at t = 1, 3, 6 (refresh_offset 0), moments kept across them
    (not reset, not remapped), decay first, ε·√bc2, scale; written out with scipy's DCT-II in float64.
    The optimizer runs in float64 too (its FFT scores and the reference's products: ~1e-15 apart)."""
    lr, betas, eps, wd, scale, r, T = 1e-2, (0.9, 0.999), 1e-6, 0.1, 0.5, 2, 3
    right = shape[0] >= shape[1]
    C = torch.from_numpy(scipy.fft.dct(np.eye(min(shape)), type=2, norm="ortho", axis=0))  # (k, k), basis = columns
    W = torch.nn.Parameter(grad(shape, 0))  # (m, n) float64
    opt = DCTAdamW([W], lr=lr, betas=betas, eps=eps, weight_decay=wd, rank=r, update_proj_gap=T, scale=scale)
    W_ref = W.detach().clone()
    m = v = torch.zeros((shape[0], r) if right else (r, shape[1]), dtype=torch.float64)  # (m, r) or (r, n)
    for t in range(1, 8):
        G = grad(shape, 10 + t)  # (m, n)
        W.grad = G.clone()
        opt.step()
        idx = opt.state[W]["dct_idx"].long()  # (r,): topk is unsorted, so the slot order is the optimizer's
        if t == 1 or t % T == 0:  # the r columns (rows) of S = G C (Cᵀ G) with the largest ℓ1 norms
            S = G @ C if right else C.T @ G  # (m, k) or (k, n)
            score = S.abs().sum(dim=0 if right else 1)  # (k,)
            top = set(score.argsort(descending=True)[:r].tolist())
            assert set(idx.tolist()) == top, f"update {t}: not the top-{r} columns"
        else:
            assert torch.equal(idx, previous), f"update {t}: a new subspace between refreshes"
        previous = idx
        B = C[:, idx]  # (k, r)
        R = G @ B if right else B.T @ G  # (m, r) or (r, n)
        m = betas[0] * m + (1 - betas[0]) * R
        v = betas[1] * v + (1 - betas[1]) * R * R
        bc1, bc2 = 1 - betas[0] ** t, 1 - betas[1] ** t
        u = m / (v.sqrt() + eps * math.sqrt(bc2))
        back = u @ B.T if right else B @ u  # (m, n)
        W_ref = W_ref * (1 - lr * wd) - lr * math.sqrt(bc2) / bc1 * scale * back
        torch.testing.assert_close(W.detach(), W_ref, atol=1e-12, rtol=0, msg=lambda msg: f"update {t}: {msg}")


@pytest.mark.parametrize("shape", SHAPES)
def test_apollo_scaling_factors_match_the_direct_formula(shape):
    R, N = grad(shape, 0), grad(shape, 1)
    right = shape[0] >= shape[1]
    channels = range(shape[0] if right else shape[1])
    row = (lambda X, i: X[i]) if right else (lambda X, i: X[:, i])
    direct = torch.tensor([row(N, i).norm() / (row(R, i).norm() + 1e-8) for i in channels], dtype=R.dtype)
    s = scaling_factor(R, N, "channel", right)
    assert s.shape == ((shape[0], 1) if right else (1, shape[1]))
    torch.testing.assert_close(s.flatten(), direct)
    torch.testing.assert_close(scaling_factor(R, N, "tensor", right), N.norm() / (R.norm() + 1e-8))


@pytest.mark.parametrize("shape", SHAPES)
def test_scaled_norm_is_the_norm_of_the_scaled_gradient(shape):
    G, right = grad(shape, 0), shape[0] >= shape[1]
    channel = torch.rand((shape[0], 1) if right else (1, shape[1]), dtype=G.dtype, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(scaled_norm(G, channel, "channel", right), (G * channel).norm())
    torch.testing.assert_close(scaled_norm(G, torch.tensor(0.3, dtype=G.dtype), "tensor", right), (0.3 * G).norm())


def test_norm_growth_limiter_caps_growth_at_one_percent():
    state, norm = {}, torch.tensor(2.0, dtype=torch.float64)
    assert norm_growth_divisor(norm, state) == 1.0  # first call: nothing to compare with
    gamma = norm_growth_divisor(3 * norm, state)  # γ = 3/1.01, so ‖G̃‖/γ = 1.01·‖G_prev‖
    torch.testing.assert_close(3 * norm / gamma, 1.01 * norm, rtol=1e-8, atol=0)
    torch.testing.assert_close(state["limiter_norm"], 1.01 * norm, rtol=1e-8, atol=0)
    assert norm_growth_divisor(0.5 * norm, state) == 1.0  # shrinking passes untouched
    assert norm_growth_divisor(1.005 * 0.5 * norm, state) == 1.0  # growing by less than 1 % too


def test_apollo_seeds_number_parameters_across_groups_frozen_ones_included():
    params = make_params([(4, 3), (3,), (3, 4), (2, 2)])
    params[1].requires_grad_(False)
    opt = APOLLO([{"params": params[:2], "rank": 1}, {"params": params[2:]}])
    assert [opt.state[p].get("seed") for p in params] == [1, None, 3, 4]


def test_frugal_reset_statistics_restarts_adam_at_each_refresh():
    for reset, steps in [(True, [1, 2, 3, 1, 2]), (False, [1, 2, 3, 4, 5])]:
        params = make_params([(6, 4)])
        opt = FRUGAL(params, density=0.5, update_proj_gap=3, reset_statistics=reset)
        seen = []
        for t in range(5):
            train(params, opt, t, t + 1)
            seen.append(opt.state[params[0]]["step"])
        assert seen == steps


@pytest.mark.parametrize("order", ["random", "ascending"])
def test_frugal_block_mode_updates_inactive_tensors_by_sign_sgd(order):
    params = make_params([(3, 2)] * 4 + [(5,)] * 2)
    opt = FRUGAL(params, density=0.5, proj="block", block_order=order, weight_decay=0.0, inactive_lr_scale=0.5, update_proj_gap=2)
    for t in range(4):
        before = [p.detach().clone() for p in params]
        train(params, opt, t, t + 1)
        active = [i for i, p in enumerate(params) if "exp_avg" in opt.state[p]]
        assert len(active) == 3
        for i, p in enumerate(params):
            if i not in active:
                torch.testing.assert_close(p.detach(), before[i] - 1e-3 * 0.5 * p.grad.sign(), atol=0, rtol=0)
        if order == "ascending":  # a window of 3 tensors moving by 3 at each refresh (every 2 steps)
            assert active == sorted((3 * (t // 2) + k) % 6 for k in range(3))


@pytest.mark.parametrize("rule", ["sign_sgd", "sgd", "no"])
@pytest.mark.parametrize("shape", [(12, 5), (5, 12)])  # randperm picks r columns (tall) or rows (wide)
def test_frugal_state_free_rule_moves_the_coordinates_outside_the_subspace_exactly(rule, shape):
    """'randperm': outside the r chosen columns (rows) E = G, so each such coordinate moves by exactly
    −lr_f·sign(G) ('sign_sgd', 0 where G = 0), −lr_f·G ('sgd') or 0 ('no'): all on grids, so exact."""
    g = torch.Generator().manual_seed(0)
    lr_f = 2.0**-8  # lr·inactive_lr_scale
    W = torch.nn.Parameter(torch.randint(-1000, 1000, shape, generator=g).float() * 2.0**-10)  # (m, n) on a 2^-10 grid
    opt = FRUGAL([W], lr=2.0**-6, inactive_lr_scale=0.25, weight_decay=0.0, density=0.4, proj="randperm",
                 update_proj_gap=1000, inactive_update_rule=rule)
    for _ in range(4):
        G = torch.randint(-8, 9, shape, generator=g).float() * 2.0**-3  # (m, n) on a 2^-3 grid, some zeros
        W.grad = G
        before = W.detach().clone()
        opt.step()
        side = 1 if shape[0] >= shape[1] else 0
        outside = torch.ones(shape, dtype=torch.bool).index_fill_(side, opt.state[W]["coord_idx"], False)  # (m, n)
        assert outside.sum() == 3 * max(shape)  # r = round(0.4·5) = 2 of the 5 columns (rows) are state-full
        expected = {"sign_sgd": -lr_f * G.sign(), "sgd": -lr_f * G, "no": torch.zeros(shape)}[rule]
        assert torch.equal((W.detach() - before)[outside], expected[outside])


def test_closure_is_evaluated_with_grad_enabled_and_its_loss_returned():
    W = torch.nn.Parameter(torch.ones(4, 3))
    opt = GaLoreAdamW([W], rank=2)

    def closure():
        opt.zero_grad()
        loss = (W**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 12.0 and opt.state[W]["step"] == 1


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: GaLoreAdamW(p, lr=-0.1, rank=2), r"lr=-0\.1 is out of range: allowed \[0, inf\)"),
        (lambda p: GaLoreAdamW(p, rank=0), r"rank=0 is out of range: allowed \[1, inf\)"),
        (lambda p: DCTAdamW(p, rank=5), r"rank=5 is not allowed for a parameter of shape \(6, 4\): choose an integer in \[1, 4\]"),
        (lambda p: APOLLO(p, rank=2.5), r"rank=2\.5 is not allowed for a parameter of shape \(6, 4\)"),
        (lambda p: GaLoreAdamW(p, rank=2, proj="random"), r"proj='random' is not allowed: choose one of \('svd', 'dct', 'orthogonal', 'randperm'\)"),
        (lambda p: APOLLO(p, rank=2, proj="dct"), r"proj='dct' is not allowed: choose one of \('random', 'svd'\)"),
        (lambda p: APOLLO(p, rank=2, scale_type="row"), r"scale_type='row' is not allowed: choose one of \('channel', 'tensor'\)"),
        (lambda p: GaLoreAdamW(p, rank=2, update_proj_gap=0), r"update_proj_gap=0 is out of range: allowed \[1, inf\)"),
        (lambda p: DCTAdamW(p, rank=2, update_proj_gap=2.5), r"update_proj_gap=2\.5 is not allowed: choose an integer in \[1, inf\]"),
        (lambda p: GaLoreAdamW(p, rank=2, betas=(0.9, 1.0)), r"betas\[1\]=1\.0 is out of range: allowed \[0, 1\)"),
        (lambda p: FRUGAL(p, density=0.0), r"density=0\.0 is out of range: allowed \(0, 1\]"),
        (lambda p: FRUGAL(p, density=0.5, inactive_update_rule="adam"), r"inactive_update_rule='adam' is not allowed: choose one of \('sign_sgd', 'sgd', 'no'\)"),
        (lambda p: FRUGAL(p, density=0.5, inactive_lr_scale=-1.0), r"inactive_lr_scale=-1\.0 is out of range: allowed \[0, inf\)"),
        (lambda p: FRUGAL(p, density=0.5, proj="random"), r"proj='random' is not allowed: choose one of \('svd', 'orthogonal', 'randperm', 'dct', 'block'\)"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_value_and_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build(make_params([(6, 4), (4,)]))


def svd_with_canonical_signs(svd):
    """torch.linalg.svd with each singular pair's sign fixed: the largest |entry| of each row of Vᵀ positive.
    LAPACK's signs are not a continuous function of the input: at apollo-svd's step-6 refresh, gradients 1.6e-9
    apart (APOLLO's rounding, below) got 3 of their 8 right singular vectors with opposite signs on an AVX-512
    CPU, and the low-rank Adam moments, kept across the refresh, then see flipped coordinates (max|Δp| 3.7e-2
    after 20 steps). With one sign rule for both optimizers, the comparison measures the update rules."""

    def canonical(A, full_matrices=True, **kwargs):
        U, S, Vh = svd(A, full_matrices=full_matrices, **kwargs)
        k = S.shape[-1]
        pivot = Vh[..., :k, :].abs().argmax(-1, keepdim=True)  # (…, k, 1)
        sign = torch.where(Vh[..., :k, :].gather(-1, pivot) < 0, -1.0, 1.0).to(Vh.dtype)  # (…, k, 1)
        U, Vh = U.clone(), Vh.clone()
        U[..., :, :k] *= sign.mT
        Vh[..., :k, :] *= sign
        return U, S, Vh

    return canonical


def mlp_section9(make, steps=20):
    """§9 of the method note: the 3-layer MLP (weights 64×32, 32×64, 32×32 + biases, init seed 0) on fixed X, Y
    with an MSE loss, `steps` optimizer steps; make(weights, biases) builds the optimizer. Returns the parameters."""
    X, Y = torch.randn(64, 32, generator=torch.Generator().manual_seed(1)), torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32))
    weights, biases = [m.weight for m in model[::2]], [m.bias for m in model[::2]]
    opt = make(weights, biases)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    return list(model.parameters())


@pytest.mark.parametrize("name", ["galore", "apollo", "apollo-mini", "apollo-svd"])
def test_matches_the_official_package(name, monkeypatch):
    """§9 of the method note: 3-layer MLP, 20 steps, gap 5, λ > 0, same process: GaLore identical to the
    last bit; APOLLO to float rounding (it rescales s instead of G̃: max|Δp| 6e-8 to 3.6e-7 measured).
    Both optimizers factorize through the same torch.linalg.svd, with one sign convention (see above)."""
    monkeypatch.setattr(torch.linalg, "svd", svd_with_canonical_signs(torch.linalg.svd))
    reference = galore_torch if name == "galore" else apollo_torch
    group = dict(rank=8, update_proj_gap=5, scale=0.25 if name == "galore" else 1.0)
    group.update({"apollo-mini": dict(rank=1, scale=128.0, scale_type="tensor"), "apollo-svd": dict(proj="svd")}.get(name, {}))
    if name.startswith("apollo"):
        group = {"proj": "random", "scale_type": "channel", **group}

    ours_cls = GaLoreAdamW if name == "galore" else APOLLO
    ref_cls = reference.GaLoreAdamW if name == "galore" else reference.APOLLOAdamW
    ours = mlp_section9(lambda w, b: ours_cls([{"params": b, "rank": None}, {"params": w, **group}], lr=1e-2, weight_decay=0.01))
    ref = mlp_section9(lambda w, b: ref_cls([{"params": b}, {"params": w, **group, "proj_type": "std"}], lr=1e-2, weight_decay=0.01))
    for a, b in zip(ours, ref):  # GaLore: bit for bit. APOLLO rescales s, not G̃:
        torch.testing.assert_close(a, b, rtol=0, atol=0 if name == "galore" else 1e-6)  # measured ≤ 3.6e-7

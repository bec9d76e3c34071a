"""Muon, SOAP, COSMOS and their shared Newton–Schulz iteration.

Ground truths: the quintic applied to the singular values (float64 SVD), hand-computed first steps,
Adam written out in float64, eigenvectors from float64 eigh, and the references on the method note's
§9 harness (`mlp_section9`: 20 steps, refreshes, weight decay > 0, one thread), each bit for bit:
torch.optim.Muon (+ torch.optim.AdamW for the biases), pytorch-optimizer 4.1.0's SOAP (the `test`
extra), and for COSMOS, which is not on PyPI, a step-by-step transcription of the official
`lliu606/COSMOS`@61de180 `COSMOS_optim.py` written below.
"""

import io
import math

import pytest
import pytorch_optimizer
import torch

from test_optim_projected import mlp_section9
from workbench.optim import COSMOS, SOAP, Muon, optimizer_state_bytes
from workbench.optim.muon import adjusted_lr
from workbench.optim.newton_schulz import NS_COEFFICIENTS, newton_schulz
from workbench.optim.soap import merged_shape


SHAPES = [(12, 5), (5, 12), (8, 8)]  # tall, wide, square


def randn(shape, seed, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class Together:
    """Several optimizers stepped as one: torch.optim.Muon takes matrices only, AdamW gets the rest."""

    def __init__(self, *optimizers):
        self.optimizers = optimizers

    def zero_grad(self):
        for opt in self.optimizers:
            opt.zero_grad()

    def step(self):
        for opt in self.optimizers:
            opt.step()


# ------------------------------------------------------------------------------------- Newton–Schulz


@pytest.mark.parametrize("form", ["muon", "cosmos"])
@pytest.mark.parametrize("shape", SHAPES + [(64, 32)])
@pytest.mark.parametrize("seed", [0, 1])
def test_newton_schulz_applies_the_quintic_to_the_singular_values(form, shape, seed):
    """NS₅(G) = U p⁵(S/‖G‖_F) Vᵀ, p(s) = a·s + b·s³ + c·s⁵, from G's float64 SVD. In bfloat16 (both references):
    measured max |Δ| 0.008-0.041 over these cases (bfloat16's ulp at 1 is 0.008); four iterations instead of five,
    or one coefficient off by 0.1, are ≥ 0.1 away. The singular values land in [0.68, 1.14] (module docstring)."""
    G = randn(shape, seed)
    U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    a, b, c = NS_COEFFICIENTS
    s = S / S.norm()
    for _ in range(5):
        s = a * s + b * s**3 + c * s**5
    X = newton_schulz(G, form=form)
    assert X.dtype == torch.bfloat16 and X.shape == G.shape
    torch.testing.assert_close(X.double(), U @ torch.diag(s) @ Vh, atol=0.06, rtol=0)
    singular = torch.linalg.svdvals(X.double())
    assert 0.66 <= singular.min() and singular.max() <= 1.16


def test_newton_schulz_leaves_its_input_alone_and_names_bad_arguments():
    G = randn((6, 4), 0).bfloat16()
    before = G.clone()
    newton_schulz(G)
    assert torch.equal(G, before)
    with pytest.raises(ValueError, match=r"needs a matrix, got a tensor of shape \(3, 2, 2\)"):
        newton_schulz(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match=r"form='svd' is not allowed: choose one of \('muon', 'cosmos'\)"):
        newton_schulz(G, form="svd")


# ---------------------------------------------------------------------------------------------- Muon


MUON_CASES = {
    "default": dict(lr=2e-2, weight_decay=0.1),
    "no-nesterov": dict(lr=2e-2, weight_decay=0.05, momentum=0.9, nesterov=False),
    "match-rms-adamw": dict(lr=1e-2, weight_decay=0.1, adjust_lr_fn="match_rms_adamw", ns_steps=3),
}


@pytest.mark.parametrize("case", MUON_CASES)
def test_muon_matches_torch_muon_with_adamw_for_the_rest(case):
    """§9 harness: our Muon (weights) with its AdamW groups (biases) against torch.optim.Muon on the weights plus
    torch.optim.AdamW(foreach=False) on the biases: identical to the last bit (parameters move 0.2-0.4). Any op-order
    change shows: a bfloat16 Newton–Schulz input one rounding apart moves whole entries by a bfloat16 ulp."""
    kw = MUON_CASES[case]
    adamw = dict(lr=kw["lr"], weight_decay=kw["weight_decay"])
    ours = mlp_section9(lambda w, b: Muon([{"params": w}, {"params": b, "use_muon": False}], **kw))
    ref = mlp_section9(lambda w, b: Together(torch.optim.Muon(w, **kw), torch.optim.AdamW(b, foreach=False, **adamw)))
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


def test_muon_first_step_by_hand():
    """From M = 0: M = (1 − μ)G and the Nesterov mix (1 − μ)G + μM = (1 − μ²)G, so O = NS((1 − μ²)G);
    W₁ = W₀(1 − lr·λ) − lr·√(A/B)·O (the decay first, "original" scaling, A = 12 ≥ B = 5)."""
    lr, wd, mu = 0.02, 0.1, 0.95
    W = torch.nn.Parameter(randn((12, 5), 0))
    W0, G = W.detach().clone(), randn((12, 5), 1)
    W.grad = G
    opt = Muon([W], lr=lr, weight_decay=wd, momentum=mu)
    opt.step()
    torch.testing.assert_close(opt.state[W]["momentum_buffer"], (1 - mu) * G, rtol=1e-6, atol=0)
    O = newton_schulz((1 - mu) * G + mu * ((1 - mu) * G)).float()
    torch.testing.assert_close(W.detach(), W0 * (1 - lr * wd) - lr * math.sqrt(12 / 5) * O, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "fn, shape, factor",
    [(None, (64, 32), math.sqrt(2)), ("original", (32, 64), 1.0), ("match_rms_adamw", (64, 32), 0.2 * 8), ("match_rms_adamw", (9, 100), 2.0)],
)
def test_muon_adjusted_lr(fn, shape, factor):
    assert adjusted_lr(0.5, fn, torch.Size(shape)) == pytest.approx(0.5 * factor, rel=1e-15)


# ---------------------------------------------------------------------------------------------- SOAP


SOAP_CASES = {
    "default-gap-5": dict(lr=1e-2, weight_decay=0.01, precondition_frequency=5),
    "shampoo-beta-partial": dict(lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1, precondition_frequency=3, shampoo_beta=0.9,
                                 max_precond_dim=40),  # the 64-long axes are not preconditioned
    "1d-no-bias-correction": dict(lr=3e-3, weight_decay=0.1, precondition_frequency=4, precondition_1d=True, correct_bias=False),
}


@pytest.mark.parametrize("case", SOAP_CASES)
def test_soap_matches_pytorch_optimizer(case):
    """§9 harness, every parameter in SOAP, 20 steps with refreshes every 3-5 updates: identical to the last bit.
    (SOAP is chaotic here, see the module docstring: op-order rounding alone moves the parameters ~1e-2.)"""
    kw = SOAP_CASES[case]
    ref_kw = {{"max_precond_dim": "max_precondition_dim"}.get(k, k): v for k, v in kw.items()}
    ours = mlp_section9(lambda w, b: SOAP(b + w, **kw))
    ref = mlp_section9(lambda w, b: pytorch_optimizer.SOAP(b + w, **ref_kw))
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("shape", SHAPES)
def test_soap_first_step_only_builds_the_eigenbases(shape):
    """The first gradient does not move W; it makes GG_i = (1 − β2)·(G Gᵀ or Gᵀ G) and Q_i their eigenvectors
    by descending eigenvalue: Q_iᵀ GG_i Q_i is diagonal and decreasing (checked against float64 eigh)."""
    W = torch.nn.Parameter(randn(shape, 0, torch.float64))
    W0, G = W.detach().clone(), randn(shape, 1, torch.float64)
    W.grad = G
    opt = SOAP([W], betas=(0.9, 0.95))
    opt.step()
    state = opt.state[W]
    assert torch.equal(W.detach(), W0) and state["step"] == 0
    for i, GG_expected in enumerate([0.05 * G @ G.T, 0.05 * G.T @ G]):
        torch.testing.assert_close(state[f"GG{i}"], GG_expected, rtol=1e-12, atol=1e-15)
        Q = state[f"Q{i}"]
        D = Q.T @ GG_expected @ Q
        eigenvalues = torch.linalg.eigvalsh(GG_expected).flip(0)
        torch.testing.assert_close(D, torch.diag(eigenvalues), atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_soap_without_factors_is_adam_from_the_second_step(seed):
    """max_precond_dim=1: no axis gets a factor, so SOAP is Adam that skips the first gradient, with ε outside
    the bias correction and the decay after the update, written out in float64:
    W ← W − lr·(√bc2/bc1)·m/(√v + ε),  W ← W·(1 − lr·λ),  t = 1, 2, … counted from the second gradient."""
    lr, (b1, b2), eps, wd = 1e-2, (0.9, 0.99), 1e-8, 0.1
    shape = (6, 4)
    W = torch.nn.Parameter(randn(shape, seed, torch.float64))
    W_ref = W.detach().clone()
    opt = SOAP([W], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, max_precond_dim=1)
    m = v = torch.zeros(shape, dtype=torch.float64)
    for k in range(6):
        G = randn(shape, 10 + k + 100 * seed, torch.float64)
        W.grad = G
        opt.step()
        if k == 0:
            continue
        t = k
        m, v = b1 * m + (1 - b1) * G, b2 * v + (1 - b2) * G * G
        W_ref = W_ref - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
        W_ref = W_ref * (1 - lr * wd)
        torch.testing.assert_close(W.detach(), W_ref, rtol=1e-12, atol=1e-14)
    assert not any(key.startswith(("GG", "Q")) for key in opt.state[W])


def test_soap_normalize_grads_gives_steps_of_rms_lr_times_the_bias_correction():
    """normalize_grads: N ← N / (1e-30 + RMS(N)), so without decay RMS(ΔW) = lr·√bc2/bc1 at each update t."""
    lr, (b1, b2) = 1e-2, (0.9, 0.99)
    W = torch.nn.Parameter(randn((6, 4), 0, torch.float64))
    opt = SOAP([W], lr=lr, betas=(b1, b2), weight_decay=0.0, normalize_grads=True)
    W.grad = randn((6, 4), 1, torch.float64)
    opt.step()  # builds the bases only
    for t in range(1, 4):
        before = W.detach().clone()
        W.grad = randn((6, 4), 1 + t, torch.float64)
        opt.step()
        rms = (W.detach() - before).pow(2).mean().sqrt().item()
        assert rms == pytest.approx(lr * math.sqrt(1 - b2**t) / (1 - b1**t), rel=1e-12)


def test_soap_refreshes_the_bases_every_precondition_frequency_updates(monkeypatch):
    """The first call only builds the bases; the Adam updates t = 1, 2, … refresh them by QR at t ≡ 0 (mod 3)."""
    calls = []
    qr = torch.linalg.qr
    monkeypatch.setattr(torch.linalg, "qr", lambda A, *a, **k: calls.append(call) or qr(A, *a, **k))
    W = torch.nn.Parameter(randn((6, 4), 0))
    opt = SOAP([W], precondition_frequency=3)
    for call in range(1, 11):
        W.grad = randn((6, 4), call)
        opt.step()
    assert calls == [4, 4, 7, 7, 10, 10]  # updates 3, 6, 9; one QR per factor


@pytest.mark.parametrize(
    "shape, max_dim, merged",
    [((1, 2, 512, 1, 2048), 1024, (1024, 2048)), ((2, 3, 4, 5), 12, (6, 4, 5)), ((64, 32), 10000, (2048,)),
     ((64, 32), 40, (64, 32)), ((3, 3, 3, 3), 10, (9, 9)), ((1, 1), 10, (1,)), ((100, 3, 3), 30, (100, 9))],
)
def test_merged_shape_follows_the_official_rule(shape, max_dim, merged):
    """Expected values from the official `SOAP.merge_dims` (nikhilvyas/SOAP@a1e5535), run on these shapes."""
    assert merged_shape(shape, max_dim) == merged


def test_soap_merge_dims_preconditions_the_merged_axes():
    """A (4, 3, 2, 2) tensor with max_precond_dim 12 is merged to (12, 4): factors 12×12 and 4×4; a vector is never merged."""
    conv, vector = torch.nn.Parameter(randn((4, 3, 2, 2), 0)), torch.nn.Parameter(randn((5,), 1))
    opt = SOAP([conv, vector], merge_dims=True, max_precond_dim=12)
    for k in range(3):
        conv.grad, vector.grad = randn((4, 3, 2, 2), 10 + k), randn((5,), 20 + k)
        opt.step()
    state = opt.state[conv]
    assert state["GG0"].shape == (12, 12) and state["GG1"].shape == (4, 4) and state["exp_avg"].shape == (4, 3, 2, 2)
    assert not any(key.startswith("GG") for key in opt.state[vector])


def test_soap_keeps_float32_state_for_bfloat16_parameters():
    W = torch.nn.Parameter(randn((6, 4), 0).bfloat16())
    opt = SOAP([W], precondition_frequency=2)
    for k in range(4):
        W.grad = randn((6, 4), k).bfloat16()
        opt.step()
    assert W.dtype == torch.bfloat16 and torch.isfinite(W).all()
    assert {v.dtype for v in opt.state[W].values() if torch.is_tensor(v)} == {torch.float32}


# -------------------------------------------------------------------------------------------- COSMOS


def newton_schulz5_transcribed(G, steps=5, eps=1e-7):
    """The reference's `zeropower_via_newtonschulz5`: bfloat16, normalize, make wide, X ← aX + bAX + (cA)(AX)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.bfloat16()
    X /= X.norm() + eps
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        AX = A @ X
        X = a * X + b * AX + (c * A) @ AX
    return X.T if tall else X


def cosmos_transcribed_step(params, states, lr, betas, eps, weight_decay, lr_ratio, rank, gamma, nesterov, amsgrad):
    """One step of COSMOS_optim.py (lliu606/COSMOS@61de180), transcribed line by line in its op order, eagerly.
    Like the reference it overwrites p.grad with Ĝ and keeps, as P, a view of the first SVD's n×n U."""
    b1, b2 = betas
    for p in params:
        g, st = p.grad, states.setdefault(p, {})
        m, n = p.shape if p.ndim == 2 else (0, 0)
        hybrid = p.ndim == 2 and m <= 10000
        if not st:
            st.update(step=0, M=torch.zeros_like(p))
            if hybrid:
                st.update(V=torch.zeros(m, rank), S=torch.zeros(rank, rank), P=torch.zeros(n, rank))
            else:
                st.update(V=torch.zeros_like(p))
            if amsgrad:
                st["Vmax"] = torch.zeros_like(p)
        st["step"] += 1
        t = st["step"]
        bc1, bc2 = (1 - b1**t) / (1 - b1), 1 - b2**t
        if hybrid:
            st["M"].mul_(b1).add_(g)
            P = st["P"]
            if t == 1:
                U = torch.linalg.svd(g.T @ g, full_matrices=False)[0]
                P = st["P"] = U[:, :rank]  # the reference assigns the view to .data
                S = torch.matmul(P.T @ g.T, g @ P) * (1 - b2)
            else:
                old_T = P.clone().T
                P = torch.linalg.qr(b2 * (P @ st["S"]) + (1 - b2) * (g.T @ (g @ P)), mode="reduced")[0]
                T = old_T @ P
                S = b2 * (T.T @ (st["S"] @ T)) + (1 - b2) * ((g @ P).T @ (g @ P))
            R = g @ P
            st["V"].mul_(b2).addcmul_(R, R, value=1 - b2)
            if nesterov:
                g.add_(st["M"], alpha=b1).mul_(1 / (1 + b1 * bc1))
            else:
                g.mul_(1 / bc1)
            GP = g @ P
            U1 = (GP / (st["V"].sqrt() / math.sqrt(bc2)).add_(eps)) @ P.T
            U2 = newton_schulz5_transcribed(g - GP @ P.T)
            scale = (m * n) ** 0.5
            U2 = scale * U2 / (U2.norm() + eps)
            U1.add_(U2, alpha=gamma)
            if weight_decay > 0:
                p.data.mul_(1 - lr * weight_decay)
            p.add_(U1 / (U1.norm() + eps), alpha=-scale * lr_ratio * lr)
            st["P"].copy_(P)
            st["S"].copy_(S)
        else:
            st["M"].mul_(b1).add_(g, alpha=0.1)
            st["V"].mul_(b2).addcmul_(g, g, value=1 - b2)
            V = st["V"]
            if amsgrad:
                torch.maximum(st["Vmax"], st["V"], out=st["Vmax"])
                V = st["Vmax"]
            denom = (V.sqrt() / math.sqrt(bc2)).add_(eps)
            if weight_decay > 0:
                p.data.mul_(1 - lr * weight_decay)
            p.addcdiv_(st["M"], denom, value=-(lr / (1 - 0.9**t)))


class TranscribedCOSMOS:
    def __init__(self, params, **hyper):
        self.params, self.states, self.hyper = list(params), {}, hyper

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        cosmos_transcribed_step(self.params, self.states, **self.hyper)


COSMOS_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, lr_ratio=0.1, rank=64, gamma=0.2,
                       nesterov=True, amsgrad=False)
COSMOS_CASES = {
    "readme": dict(lr=2e-3, betas=(0.95, 0.95), weight_decay=0.1, lr_ratio=0.2, rank=8),
    "plain-momentum-amsgrad-full-rank": dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.05, rank=32, nesterov=False, amsgrad=True),
    "rank-1": dict(lr=1e-3, weight_decay=0.01, rank=1, gamma=0.5),
}


@pytest.mark.parametrize("case", COSMOS_CASES)
def test_cosmos_matches_the_transcribed_reference(case):
    """§9 harness, every parameter in COSMOS (weights: subspace + Newton–Schulz, the 32×32 and 64×32 at rank = n in
    one case; biases: the reference's AdamW), 20 steps, λ > 0: identical to the last bit (parameters move 0.02-0.2).
    The reference itself, run with its torch.compile'd Newton–Schulz, rounds its bfloat16 arithmetic differently."""
    hyper = {**COSMOS_DEFAULTS, **COSMOS_CASES[case]}
    ours = mlp_section9(lambda w, b: COSMOS(b + w, **hyper))
    ref = mlp_section9(lambda w, b: TranscribedCOSMOS(b + w, **hyper))
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(12, 5), (5, 12)])
def test_cosmos_first_subspace_and_step_length(shape):
    """t = 1: P spans the top-r eigenvectors of GᵀG (its projector PPᵀ equals float64 eigh's), S = (1 − β2)(GP)ᵀ(GP),
    and without decay ‖ΔW‖_F = lr·lr_ratio·√(mn)·‖U‖/(‖U‖ + ε), i.e. the normalized step of the update rule."""
    r, lr, lr_ratio, beta2 = 2, 1e-2, 0.2, 0.95
    W = torch.nn.Parameter(randn(shape, 0, torch.float64))
    W0, G = W.detach().clone(), randn(shape, 1, torch.float64)
    W.grad = G.clone()
    opt = COSMOS([W], lr=lr, lr_ratio=lr_ratio, rank=r, betas=(0.95, beta2))
    opt.step()
    P, S = opt.state[W]["exp_avg_P"], opt.state[W]["exp_avg_GG"]
    E = torch.linalg.eigh(G.T @ G).eigenvectors[:, -r:]  # top r
    torch.testing.assert_close(P @ P.T, E @ E.T, atol=1e-12, rtol=0)
    torch.testing.assert_close(P.T @ P, torch.eye(r, dtype=P.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(S, (1 - beta2) * (G @ P).T @ (G @ P), atol=1e-12, rtol=1e-12)
    m, n = shape
    assert (W.detach() - W0).norm().item() == pytest.approx(lr * lr_ratio * math.sqrt(m * n), rel=1e-6)
    assert torch.equal(W.grad, G)  # p.grad left alone


def test_cosmos_subspace_stays_orthonormal_and_tracks_rank():
    W = torch.nn.Parameter(randn((10, 6), 0))
    opt = COSMOS([W], rank=3)
    for k in range(6):
        W.grad = randn((10, 6), 10 + k)
        opt.step()
    state = opt.state[W]
    P = state["exp_avg_P"]
    assert P.shape == (6, 3) and state["exp_avg_sq"].shape == (10, 3) and state["exp_avg_GG"].shape == (3, 3)
    torch.testing.assert_close(P.T @ P, torch.eye(3), atol=1e-6, rtol=0)
    assert P.stride() == (1, 6)  # LAPACK's column-major order, as the reference's (its products round alike)


def test_cosmos_adamw_branch_keeps_the_references_hard_coded_0_9():
    """Vectors: m ← β1·m + 0.1·g and bc1 = 1 − 0.9^t whatever β1. With β1 = 0.95 and a constant g, after two steps
    m = 0.195·g and m̂ = 0.195/0.19·g (Adam: g), written out in float64 with ε and λ = 0."""
    lr, b1, b2 = 1e-2, 0.95, 0.99
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    g = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    opt = COSMOS([w], lr=lr, betas=(b1, b2), eps=0.0)
    for _ in range(2):
        w.grad = g.clone()
        opt.step()
    m_hat, v_hat = 0.195 / 0.19 * g, g * g  # v = (1 − β2^2)·g², debiased: g²
    expected = -lr * torch.sign(g) - lr * m_hat / v_hat.sqrt()  # the first step is lr·sign(g) for any β1
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------ checkpoints, errors


RESUMABLE = {
    "muon": lambda ps: Muon([{"params": ps[:2]}, {"params": ps[2:], "use_muon": False}], lr=2e-2),
    "soap": lambda ps: SOAP(ps, precondition_frequency=3, precondition_1d=True),
    "cosmos": lambda ps: COSMOS([{"params": ps[:2], "rank": 2}, {"params": ps[2:], "amsgrad": True}], weight_decay=0.1),
}


def make_params(seed=0):
    return [torch.nn.Parameter(0.5 * randn(shape, seed + i)) for i, shape in enumerate([(12, 5), (5, 12), (7,), (3, 4, 2)])]


def train(params, opt, start, stop):
    for t in range(start, stop):
        for i, p in enumerate(params):
            p.grad = p.detach() - 1 + 0.5 * randn(p.shape, 100 * t + i)
        opt.step()


@pytest.mark.parametrize("name", RESUMABLE)
def test_state_dict_round_trip_with_weights_only_resumes_bit_identically(name):
    full = make_params()
    train(full, RESUMABLE[name](full), 0, 10)

    first = make_params()
    opt = RESUMABLE[name](first)
    train(first, opt, 0, 5)  # SOAP: the checkpoint falls between refreshes (after updates 3 and before 6)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    resumed = [torch.nn.Parameter(p.clone()) for p in checkpoint["params"]]
    opt = RESUMABLE[name](resumed)
    opt.load_state_dict(checkpoint["opt"])
    train(resumed, opt, 5, 10)
    for a, b in zip(resumed, full):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", RESUMABLE)
def test_state_bytes_by_hand(name, dtype):
    """optimizer_state_bytes after 4 steps on a (12, 5), a (5, 12), a (7,) and a (3, 4, 2), written out per parameter:
    Muon: momentum mn per matrix, AdamW m and v on the rest; SOAP: m, v and per axis of size s a factor and a basis,
    2s² (every axis here, the vector too with precondition_1d); COSMOS at r = 2: M mn, V mr, P nr, S r² per matrix,
    AdamW m, v and amsgrad's v̂ on the rest. Steps are Python ints (0 bytes)."""
    params = [p.to(dtype).detach().requires_grad_() for p in make_params()]
    opt = RESUMABLE[name](params)
    train(params, opt, 0, 4)
    s, r = dtype.itemsize, 2
    matrices, rest = [(12, 5), (5, 12)], [7, 24]
    expected = {
        "muon": sum(m * n for m, n in matrices) + 2 * sum(rest),
        "soap": 2 * (2 * 60 + sum(rest)) + sum(2 * k * k for k in [12, 5, 5, 12, 7, 3, 4, 2]),
        "cosmos": sum(m * n + m * r + n * r + r * r for m, n in matrices) + 3 * sum(rest),
    }[name]
    assert optimizer_state_bytes(opt) == s * expected


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda ps: Muon(ps), r"Muon updates matrices only, got a parameter of shape \(4,\) in a group with use_muon=True"),
        (lambda ps: Muon(ps[:1], momentum=1.0), r"momentum=1\.0 is out of range: allowed \[0, 1\)"),
        (lambda ps: Muon(ps[:1], ns_steps=0), r"ns_steps=0 is not allowed: choose an integer in \[1, 99\]"),
        (lambda ps: Muon(ps[:1], adjust_lr_fn="spectral"), r"adjust_lr_fn='spectral' is not allowed: choose one of \(None, 'original', 'match_rms_adamw'\)"),
        (lambda ps: Muon(ps[:1], ns_coefficients=(1.0, 2.0)), r"ns_coefficients=\(1\.0, 2\.0\) is not allowed: give three numbers"),
        (lambda ps: Muon(ps, use_muon=False, adamw_betas=(0.9, 1.0)), r"adamw_betas\[1\]=1\.0 is out of range: allowed \[0, 1\)"),
        (lambda ps: SOAP(ps, precondition_frequency=0), r"precondition_frequency=0 is not allowed: choose an integer in \[1, inf\]"),
        (lambda ps: SOAP(ps, shampoo_beta=1.5), r"shampoo_beta=1\.5 is out of range: allowed \[0, 1\)"),
        (lambda ps: SOAP(ps, betas=(0.95, -0.1)), r"betas\[1\]=-0\.1 is out of range: allowed \[0, 1\)"),
        (lambda ps: COSMOS(ps, rank=5), r"rank=5 is not allowed for a parameter of shape \(6, 4\): choose an integer in \[1, 4\]"),
        (lambda ps: COSMOS(ps, lr_ratio=-1.0), r"lr_ratio=-1\.0 is out of range: allowed \[0, inf\)"),
        (lambda ps: COSMOS(ps, gamma=-0.2), r"gamma=-0\.2 is out of range: allowed \[0, inf\)"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_value_and_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build([torch.nn.Parameter(torch.zeros(6, 4)), torch.nn.Parameter(torch.zeros(4))])

"""Q-GaLore, Natural GaLore and BAdam.

Ground truths: the reference packages q-galore-torch and badam, and an independent step-by-step
re-implementation of the official Natural GaLore update (its code is not on PyPI), each on the §9 harness of
the method note (`mlp_section9`: 20 steps, refreshes or block switches, λ > 0, one thread); tensorly's Tucker
decomposition for Natural GaLore's factors; the damped inverse Fisher solved directly; Q-GaLore's own
quantizer; refresh and block schedules and state bytes counted by hand.
Measured on this CPU: every cross-check 0.0 after 20 steps (parameters moved 0.01 to 0.2), except Q-GaLore
with float32 moments, 3.3e-7: bitsandbytes' fp32 path orders Adam's arithmetic differently.
"""

import io
import math
import types

import badam
import pytest
import q_galore_torch
import tensorly
import torch
from bitsandbytes.optim.optimizer import Optimizer2State
from tensorly import tenalg
from tensorly.decomposition import tucker
from tensorly.tenalg.svd import svd_flip

from test_optim_projected import MIXED_SHAPES, make_params, mlp_section9, svd_with_canonical_signs, train
from workbench.optim import BAdam, NaturalGaLoreAdamW, QGaLoreAdamW8bit, natural_galore, optimizer_state_bytes, q_galore
from workbench.optim.natural_galore import leading_singular_vectors, natural_gradient
from workbench.optim.q_galore import dequantize_uniform, quantize_uniform

pytestmark = pytest.mark.filterwarnings("ignore:BAdam expect")


def built(made, key, opt):
    """Keep the optimizer that an `mlp_section9` factory builds (made[key]) and return it."""
    made[key] = opt
    return opt


def resumes_bit_identically(make, shapes, steps=11, cut=5):
    """Train `steps` in one go, and again with a weights_only checkpoint (parameters, optimizer, global RNG)
    taken after `cut` steps and loaded into a new optimizer: the same parameters, bit for bit?"""
    torch.manual_seed(0)
    full = make_params(shapes)
    train(full, make(full), 0, steps)

    torch.manual_seed(0)
    first = make_params(shapes)
    opt = make(first)
    train(first, opt, 0, cut)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "opt": opt.state_dict(), "rng": torch.get_rng_state()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed = [torch.nn.Parameter(p.clone()) for p in checkpoint["params"]]
    opt = make(resumed)
    opt.load_state_dict(checkpoint["opt"])
    torch.set_rng_state(checkpoint["rng"])
    train(resumed, opt, cut, steps)
    return all(torch.equal(a, b) for a, b in zip(resumed, full))


# ------------------------------------------------------------------------------------------- Q-GaLore


class QGaLoreOnCurrentBitsandbytes(q_galore_torch.QGaLoreAdamW8bit):
    """q-galore-torch 1.0 with the bitsandbytes settings it was written for. Its `update_step` calls a bitsandbytes
    API that 0.50.2 no longer has (config keys percentile_clipping and block_wise, no beta3 and alpha): the step is
    bitsandbytes 0.50.2's own Optimizer2State.update_step (the same Adam), with the update-norm clip and skip_zeros,
    which the package's positional arguments now switch on by mistake, off."""

    def get_config(self, gindex, pindex, group):
        config = super().get_config(gindex, pindex, group)
        config.update(max_unorm=0.0, skip_zeros=False)
        return config

    def update_step(self, group, p, gindex, pindex, flag_use_float_grad=False):
        Optimizer2State.update_step(self, group, p, gindex, pindex)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("group_size", [None, 4, 12])
@pytest.mark.parametrize("shape", [(3, 8), (6, 2)])
def test_uniform_quantization_is_q_galores_and_within_half_a_step(bits, group_size, shape):
    """P̂ equals the package's `_quantize` then its dequantization; codes fit in `bits` (two per byte up to 4 bits);
    |P − P̂| ≤ s/2 in every group whose entries span 0 (the zero point is clamped to the code range, so the grid
    always holds 0: a group of one sign saturates beyond max − min, as in the package)."""
    P = torch.randn(shape, generator=torch.Generator().manual_seed(bits)) / 3
    codes, scales, zeros = quantize_uniform(P, bits, group_size)
    P_hat = dequantize_uniform(codes, scales, zeros, P.shape, bits)
    q, s, z, _ = q_galore_torch.q_galore_projector.GaLoreProjector(1)._quantize(P, q_group_size=group_size or -1, n_bit=bits)
    assert torch.equal(P_hat, (s * (q.to(s.dtype) - z)).reshape(shape))
    assert codes.dtype == torch.uint8 and codes.numel() == (math.ceil(P.numel() / 2) if bits <= 4 else P.numel())
    assert int(codes.max()) < 2 ** (8 if bits <= 4 else bits)
    groups, error = P.reshape(scales.shape[0], -1), (P - P_hat).reshape(scales.shape[0], -1)  # (groups, entries)
    spans_zero = (groups.amin(dim=1) <= 0) & (groups.amax(dim=1) >= 0)  # (groups,)
    assert spans_zero.any()
    assert (error[spans_zero].abs() <= scales[spans_zero] / 2 + 1e-7).all()


Q_GALORE_CASES = {  # name: (group keys, min_8bit_size, tolerance)
    "int4-8bit-states": (dict(quant=True), 0, 0.0),
    "int4-per-row": (dict(quant=True, quant_group_size=None, cos_threshold=-1.0), 0, 0.0),
    "fp32-projection": (dict(quant=False, cos_threshold=-1.0), 0, 0.0),
    # bitsandbytes' fp32 Adam (tensors < 4096 elements) adds ε·√bc2 to √v, AdamW8bit's fp32 path (this class's)
    # divides √v by √bc2 first: ~1e-8 apart per step, 3.3e-7 after 20 (the parameters moved 0.02 to 0.2)
    "fp32-states": (dict(quant=True, queue_size=5), 4096, 1e-6),
}


@pytest.mark.parametrize("name", Q_GALORE_CASES)
def test_q_galore_matches_the_package(name, monkeypatch):
    """§9: rank 8, INT4 codes (groups of 256 or per row), λ > 0 in both groups, gap 2 with a queue of 2 cosines
    (threshold −1: the gap doubles at every refresh once the queue is full, refreshes at updates 1, 3, 5, 9, 17).
    The package calls torch.cuda.synchronize() in each step (a no-op here); its 8-bit Adam is bitsandbytes',
    which this class reproduces with rounding='bnb_lut' and fused=False. The per-layer gaps end equal."""
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    monkeypatch.setattr(torch.linalg, "svd", svd_with_canonical_signs(torch.linalg.svd))
    keys, min_8bit_size, tolerance = Q_GALORE_CASES[name]
    group = dict(rank=8, update_proj_gap=2, scale=0.25, quant_n_bit=4, quant_group_size=256, cos_threshold=0.4, gamma_proj=2,
                 queue_size=2) | keys
    kw = dict(lr=1e-2, weight_decay=0.01, min_8bit_size=min_8bit_size)
    ref_group = group | {"proj_type": "std", "quant_group_size": group["quant_group_size"] or -1}
    made = {}
    ours = mlp_section9(lambda w, b: built(made, "ours", QGaLoreAdamW8bit(
        [{"params": b, "rank": None}, {"params": w, **group}], rounding="bnb_lut", fused=False, **kw)))
    ref = mlp_section9(lambda w, b: built(made, "ref", QGaLoreOnCurrentBitsandbytes(
        [{"params": b}, {"params": w, **ref_group}], **kw)))
    torch.testing.assert_close(ours, ref, rtol=0, atol=tolerance)
    for W, W_ref in zip(ours[::2], ref[::2]):
        state = made["ours"].state[W]
        assert state["proj_gap"] == made["ref"].state[W_ref]["projector"].update_proj_gap
        if group["cos_threshold"] == -1.0:
            assert state["proj_gap"] == 16
        assert ("P_codes" in state) == group["quant"] and (state["exp_avg"].dtype == torch.uint8) == (min_8bit_size == 0)


@pytest.mark.parametrize("cos_threshold, refreshes", [(-1.0, [1, 3, 5, 9, 17]), (1.0, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19])])
def test_q_galore_layer_adaptive_refresh_schedule(cos_threshold, refreshes, monkeypatch):
    """Gap 2, queue 2, γ 2: with threshold −1 the gap doubles at each refresh from the third on (the queue is not
    emptied), and a refresh falls where (t − 1) % gap = 0 for the current gap (t = 9 with gap 4, not 5 + 4);
    threshold 1 (cosines of different vectors stay below 1) keeps gap 2."""
    calls = []
    original = q_galore.refresh
    monkeypatch.setattr(q_galore, "refresh", lambda G, state, kind, rank: calls.append(t) or original(G, state, kind, rank))
    params = make_params([(6, 4)])
    opt = QGaLoreAdamW8bit(params, rank=2, update_proj_gap=2, queue_size=2, cos_threshold=cos_threshold, quant_group_size=None)
    for t in range(1, 21):
        train(params, opt, t, t + 1)
    assert calls == refreshes and len(opt.state[params[0]]["cos_queue"]) == 2


@pytest.mark.parametrize("min_8bit_size", [0, 4096])
def test_q_galore_state_bytes_by_hand(min_8bit_size):
    """optimizer_state_bytes against a hand count: per projected m×n matrix at rank r = 2, 4-bit codes two per
    byte, one fp32 scale and zero per row of P, the last leading vector (min(m, n) floats), Adam's moments of
    R (fp32, or 8-bit codes plus one fp32 absmax per 256) and the fp32 step; the plain ones likewise on the
    full shape; and the two 256-entry code books of the 8-bit maps."""
    tall, wide, vector, plain = make_params([(12, 5), (5, 12), (7,), (6, 4)])
    opt = QGaLoreAdamW8bit([{"params": [tall, wide, vector], "rank": 2, "quant_group_size": None}, {"params": [plain], "rank": None}],
                           update_proj_gap=3, min_8bit_size=min_8bit_size)
    train([tall, wide, vector, plain], opt, 0, 4)

    def adam(n):
        return 2 * n + 2 * 4 * math.ceil(n / 256) + 4 if min_8bit_size == 0 else 2 * 4 * n + 4

    rows_of_P = {(12, 5): 2, (5, 12): 5}  # P is r×n (tall) or m×r (wide)
    expected = sum(math.ceil(2 * 5 / 2) + 2 * 4 * rows_of_P[shape] + 4 * 5 + adam(2 * 12) for shape in rows_of_P)
    expected += adam(7) + adam(24) + 2 * 256 * 4
    assert optimizer_state_bytes(opt) == expected


# ------------------------------------------------------------------------------------- Natural GaLore


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 5e-5)])
@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (32, 32)])
def test_leading_singular_vectors_are_tensorlys_tucker_factors(shape, dtype, atol):
    """The official projector's factors, tensorly's `tucker` (HOOI) with rank (r, r): the same singular subspaces
    with the same signs, to HOOI's rounding (float32: its iterated SVDs of G V and Gᵀ U, measured ≤ 1.1e-5);
    and exactly the test's own truncated SVD with tensorly's sign rule."""
    G = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    with tensorly.backend_context("pytorch"):
        _, (A, B) = tucker(G, rank=[8, 8])
        U_ref, V_ref = svd_tucker_factors(G, 8)
    U, V = leading_singular_vectors(G, 8)
    torch.testing.assert_close(U, A, rtol=0, atol=atol)
    torch.testing.assert_close(V, B, rtol=0, atol=atol)
    assert torch.equal(U, U_ref) and torch.equal(V, V_ref)


@pytest.mark.parametrize("s", [1, 3, 6])
def test_natural_gradient_is_the_damped_inverse_fisher_times_g(s):
    """ĝ = (λI + H Hᵀ)⁻¹ g solved directly (k = 9); with one column, g/(λ + ‖g‖²)."""
    gen = torch.Generator().manual_seed(s)
    H = torch.randn(9, s, generator=gen, dtype=torch.float64) * 0.1
    g, damping = H[:, -1], 1e-3
    expected = torch.linalg.solve(damping * torch.eye(9, dtype=torch.float64) + H @ H.T, g)
    torch.testing.assert_close(natural_gradient(g, H, damping), expected, rtol=1e-9, atol=0)
    if s == 1:
        torch.testing.assert_close(expected, g / (damping + g @ g), rtol=1e-12, atol=0)


def svd_tucker_factors(G, rank):
    """The rank-(r, r) Tucker factors of a matrix as HOOI converges to them: the top-r left and right singular
    vectors, each factor sign-fixed by tensorly's `svd_flip` as the U of its own SVD (largest |entry| positive)."""
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    return [svd_flip(U[:, :rank], Vh[:rank])[0], svd_flip(Vh[:rank].T, U[:, :rank].T)[0]]


class NaturalGaLoreProjector:
    """The official `GaLoreProjectorTensor` with proj_type='natural_galore', rewritten step by step: a FIFO list of
    the last `history` flattened projected gradients, Woodbury with λ = 1e-3, tensorly's `multi_mode_dot` to project
    and back. Its Tucker factors come from `factors_of` (`svd_tucker_factors`, the test above compares it with tucker)."""

    def __init__(self, rank, update_proj_gap, scale, history, factors_of):
        self.rank, self.update_proj_gap, self.scale, self.history_size = rank, update_proj_gap, scale, history
        self.factors_of, self.factors, self.grad_history = factors_of, None, []

    def project(self, full_rank_grad, iteration):
        if self.factors is None or iteration % self.update_proj_gap == 0:
            self.factors = self.factors_of(full_rank_grad, self.rank)
        low_rank = tenalg.multi_mode_dot(full_rank_grad, self.factors, transpose=True)
        grad_vector = low_rank.reshape(-1)
        if len(self.grad_history) >= self.history_size:
            self.grad_history.pop(0)
        self.grad_history.append(grad_vector.detach())
        G = torch.stack(self.grad_history, dim=1)
        lambda_inv = 1.0 / 1e-3
        S = lambda_inv * torch.mm(G.t(), G)
        S.diagonal().add_(1.0)
        L = torch.linalg.cholesky(S)
        temp = torch.cholesky_solve(torch.mv(G.t(), grad_vector).unsqueeze(1), L).squeeze(1)
        return ((lambda_inv * grad_vector) - ((lambda_inv**2) * torch.mv(G, temp))).view_as(low_rank)

    def project_back(self, low_rank_grad):
        return tenalg.multi_mode_dot(low_rank_grad, self.factors) * self.scale


class NaturalGaLoreReference(torch.optim.Optimizer):
    """The official `SubSpaceAdamW.step` + `adamw` (correct_bias, no amsgrad), rewritten step by step."""

    def __init__(self, params, lr, weight_decay, factors_of):
        super().__init__(params, dict(lr=lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=weight_decay))
        self.factors_of = factors_of

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                state.setdefault("step", 0)
                grad = p.grad
                if "rank" in group:
                    if "projector" not in state:
                        state["projector"] = NaturalGaLoreProjector(group["rank"], group["update_proj_gap"], group["scale"],
                                                                    group["natural_history"], self.factors_of)
                    grad = state["projector"].project(grad, state["step"])
                if "exp_avg" not in state:
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(grad), torch.zeros_like(grad)
                state["step"] += 1
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1.0 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
                step = state["step"]
                step_size = group["lr"] * ((1.0 - beta2**step) ** 0.5) / (1.0 - beta1**step)
                norm_grad = state["exp_avg"] / denom
                if "rank" in group:
                    norm_grad = state["projector"].project_back(norm_grad)
                p.add_(norm_grad, alpha=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=(-group["lr"] * group["weight_decay"]))


@pytest.mark.parametrize("history", [4, 20])
def test_natural_galore_matches_the_official_update(history):
    """§9: rank 8, gap 5 (refreshes at 1, 6, 11, 16), scale 0.25, λ > 0; a history of 4 wraps around, 20 does not.
    Bit for bit with the same factors. With tensorly's HOOI factors instead (1e-5 apart in float32) the runs end
    3.4e-2 apart: Adam's first steps are sign-like, and flip on r×r entries near 0."""
    group = dict(rank=8, update_proj_gap=5, scale=0.25, natural_history=history)
    ours = mlp_section9(lambda w, b: NaturalGaLoreAdamW([{"params": b}, {"params": w, **group}], lr=1e-2, weight_decay=0.01))
    with tensorly.backend_context("pytorch"):
        ref = mlp_section9(lambda w, b: NaturalGaLoreReference([{"params": b}, {"params": w, **group}], lr=1e-2, weight_decay=0.01,
                                                            factors_of=svd_tucker_factors))
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_natural_galore_refreshes_and_keeps_the_last_gradients(monkeypatch):
    """New factors at updates 1, 4, 7 (T = 3); after 8 updates the history holds vec(U_rᵀ G V_r) of the last s = 3,
    oldest first, each in the subspace of its own update."""
    calls, projected = [], []
    original = natural_galore.leading_singular_vectors
    monkeypatch.setattr(natural_galore, "leading_singular_vectors", lambda G, r: calls.append(t) or original(G, r))
    params = make_params([(6, 4)])
    opt = NaturalGaLoreAdamW(params, rank=2, update_proj_gap=3, natural_history=3)
    for t in range(1, 9):
        train(params, opt, t, t + 1)
        state = opt.state[params[0]]
        projected.append((state["U"].T @ params[0].grad @ state["V"]).reshape(-1))
    assert calls == [1, 4, 7]
    torch.testing.assert_close(opt.state[params[0]]["history"], torch.stack(projected[-3:], dim=1), rtol=0, atol=0)


def test_natural_galore_state_bytes_by_hand():
    """Per projected m×n matrix at rank r = 2: U (m×r), V (n×r), m and v (r×r), the history (r²×min(t, s));
    plain Adam's m and v for the others; "step" and "seed" are ints."""
    tall, wide, vector, plain = make_params([(12, 5), (5, 12), (7,), (6, 4)])
    opt = NaturalGaLoreAdamW([{"params": [tall, wide, vector], "rank": 2, "natural_history": 3}, {"params": [plain], "rank": None}])
    train([tall, wide, vector, plain], opt, 0, 5)
    expected = 2 * 4 * ((12 + 5) * 2 + 2 * 4 + 4 * 3) + 4 * 2 * (7 + 24)
    assert optimizer_state_bytes(opt) == expected


# ------------------------------------------------------------------------------------------------ BAdam


@pytest.fixture
def no_badam_gc(monkeypatch):
    """badam runs gc.collect() at each block switch: about 1 s with this process's heap, and no effect on the numbers."""
    monkeypatch.setattr(badam.block_optim, "gc", types.SimpleNamespace(collect=lambda: 0))


def badam_reference(weights, biases, mode, always_active=(), start_block=None, K=3):
    """badam.BlockOptimizer around torch.optim.AdamW, one block per layer (named as in nn.Sequential: 0, 2, 4)."""
    named = [(f"{2 * i}.{kind}", p) for i, pair in enumerate(zip(weights, biases)) for kind, p in zip(("weight", "bias"), pair)]
    base = torch.optim.AdamW([p for _, p in named], lr=1e-2, weight_decay=0.01)
    blocks = [[f"{2 * i}."] for i in range(len(weights)) if i not in always_active]
    return badam.BlockOptimizer(base, named, block_prefix_list=blocks, switch_block_every=K, switch_mode=mode,
                                start_block=start_block, active_modules=[f"{2 * i}." for i in always_active], verbose=0)


def layer_groups(weights, biases, always_active=()):
    return [{"params": [w, b], "always_active": i in always_active} for i, (w, b) in enumerate(zip(weights, biases))]


@pytest.mark.parametrize("mode, always_active, start_block", [
    ("descending", (), None), ("ascending", (), None), ("random", (), None), ("random", (2,), None), ("fixed", (), 1),
])
def test_badam_matches_the_package(mode, always_active, start_block, no_badam_gc):
    """§9: a block per layer, a switch every K = 3 steps (after steps 2, 5, 8, …), λ > 0, the head always active or
    not; random order from the global RNG at badam's moments. badam gives every parameter the base AdamW's λ."""
    kw = dict(switch_mode=mode, start_block=start_block)
    ours = mlp_section9(lambda w, b: BAdam(layer_groups(w, b, always_active), lr=1e-2, weight_decay=0.01, switch_block_every=3, **kw))
    ref = mlp_section9(lambda w, b: badam_reference(w, b, mode, always_active, start_block))
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_badam_bfloat16_parameters_train_through_float32_masters(no_badam_gc):
    """bfloat16 parameters: Adam on a float32 copy of the active block, rounded into the parameter after each step,
    the copy dropped at a switch (remade from the rounded parameter), as badam's high-precision copies."""
    shapes = [(6, 4), (6,), (3, 6), (3,)]
    ours, ref = make_params(shapes, dtype=torch.bfloat16), make_params(shapes, dtype=torch.bfloat16)
    opt = BAdam(layer_groups(ours[::2], ours[1::2]), lr=1e-2, weight_decay=0.01, switch_block_every=3)
    train(ours, opt, 0, 7)
    train(ref, badam_reference(ref[::2], ref[1::2], "descending"), 0, 7)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    for p in ours[2:]:  # the block active at step 7 (switches after steps 2 and 5): the second layer again
        assert opt.state[p]["master"].dtype == torch.float32 and torch.equal(opt.state[p]["master"].bfloat16(), p)


@pytest.mark.parametrize("mode, blocks", [
    ("ascending", [0, 0, 1, 1, 1, 2, 2, 2, 0, 0]),
    ("descending", [2, 2, 1, 1, 1, 0, 0, 0, 2, 2]),
])
def test_badam_block_schedule_gradients_and_state(mode, blocks):
    """Which block steps at steps 1-10 (K = 3, switches after steps 2, 5, 8: the first block gets K − 1 = 2 steps,
    as badam): only its parameters get a gradient from backward and keep Adam state, whose step count starts
    over in each block; a switch drops all state."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    layers = [model[0], model[2], model[4]]
    opt = BAdam([{"params": layer.parameters()} for layer in layers], switch_block_every=3, switch_mode=mode)
    X = torch.randn(8, 4)
    steps_in_block = 0
    for s, block in enumerate(blocks, start=1):
        opt.zero_grad()
        model(X).square().mean().backward()
        assert [p.grad is not None for layer in layers for p in layer.parameters()] == [i == block for i in range(3) for _ in range(2)]
        opt.step()
        steps_in_block += 1
        if (s + 1) % 3 == 0:  # switched
            assert not opt.state
            steps_in_block = 0
        else:
            assert set(opt.state) == set(layers[block].parameters())
            assert opt.state[layers[block].weight]["step"].item() == steps_in_block


# ------------------------------------------------------------------------------------------------ all three


FACTORIES = {
    "q-galore": lambda ps: QGaLoreAdamW8bit([{"params": ps[:-1], "rank": 2, "quant_group_size": None, "update_proj_gap": 3},
                                             {"params": ps[-1:], "rank": None}], lr=1e-2, min_8bit_size=16, queue_size=2),
    "natural-galore": lambda ps: NaturalGaLoreAdamW([{"params": ps[:-1], "rank": 2, "update_proj_gap": 3, "natural_history": 3},
                                                     {"params": ps[-1:], "rank": None}], lr=1e-2, weight_decay=0.1),
    "badam-descending": lambda ps: BAdam([{"params": [p]} for p in ps], lr=1e-2, switch_block_every=3),
    "badam-random": lambda ps: BAdam([{"params": ps[:3]}, {"params": ps[3:5]}, {"params": ps[5:]}], switch_block_every=2, switch_mode="random"),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_state_dict_round_trip_with_weights_only_resumes_bit_identically(name):
    """Tall, wide, square, vector, 3-D and scalar parameters; the checkpoint after 5 steps falls between refreshes
    (T = 3) and inside a block; BAdam's schedule (and random order, with the global RNG saved beside) resumes."""
    assert resumes_bit_identically(FACTORIES[name], MIXED_SHAPES + [(6, 4)])


@pytest.mark.parametrize("build, message", [
    (lambda p: QGaLoreAdamW8bit(p, rank=2, quant_group_size=7), r"quant_group_size=7 is not allowed for a parameter of shape \(6, 4\) at rank 2: choose a divisor of its projection's 8"),
    (lambda p: QGaLoreAdamW8bit(p, rank=2, quant_n_bit=9), r"quant_n_bit=9 is out of range: allowed \[1, 8\]"),
    (lambda p: QGaLoreAdamW8bit(p, rank=2, cos_threshold=1.5), r"cos_threshold=1\.5 is out of range: allowed \[-1, 1\]"),
    (lambda p: QGaLoreAdamW8bit(p, rank=2, gamma_proj=0.5), r"gamma_proj=0\.5 is out of range: allowed \[1, inf\)"),
    (lambda p: QGaLoreAdamW8bit(p, rank=2, queue_size=2.5), r"queue_size=2\.5 is not allowed: choose an integer in \[1, inf\]"),
    (lambda p: QGaLoreAdamW8bit(p, rank=5), r"rank=5 is not allowed for a parameter of shape \(6, 4\): choose an integer in \[1, 4\]"),
    (lambda p: NaturalGaLoreAdamW(p, rank=2, natural_history=0), r"natural_history=0 is out of range: allowed \[1, inf\)"),
    (lambda p: NaturalGaLoreAdamW(p, rank=2, damping=0.0), r"damping=0\.0 is out of range: allowed \(0, inf\)"),
    (lambda p: NaturalGaLoreAdamW(p, rank=2, update_proj_gap=1.5), r"update_proj_gap=1\.5 is not allowed: choose an integer"),
    (lambda p: BAdam(p, switch_mode="cyclic"), r"switch_mode='cyclic' is not allowed: choose one of \('descending', 'ascending', 'random', 'fixed'\)"),
    (lambda p: BAdam(p, switch_block_every=0), r"switch_block_every=0 is not allowed: choose an integer in \[1, inf\]"),
    (lambda p: BAdam([{"params": [x]} for x in p], start_block=2), r"start_block=2 is not allowed with 2 blocks: choose an integer in \[0, 1\]"),
    (lambda p: BAdam(p, always_active=True), r"BAdam needs a block to train: every param group has always_active=True"),
    (lambda p: BAdam(p, always_active="yes"), r"always_active='yes' is not allowed: choose True or False"),
])
def test_bad_hyperparameters_raise_naming_the_value_and_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build(make_params([(6, 4), (4,)]))

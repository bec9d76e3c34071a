"""Zeroth-order optimizers (MeZO, Sparse MeZO, ZO-SGD, ZO-Adam).

Ground truths: independent step-by-step re-implementations, written here, of the official MeZO update
(princeton-nlp/MeZO@552cb1b `large_models/trainer.py`: `zo_perturb_parameters`, `zo_step`, `zo_update`),
of ZO-Bench's ZO-SGD / ZO-Adam step (ZO-Bench/ZO-LLM@bf210fa `zo-bench/trainer.py` `zo_step`: the
estimate handed to torch.optim.SGD / torch.optim.Adam, which run here as they are) and of Sparse MeZO's
masked step (arXiv 2402.15751, its official code not available); the exact directional derivative of
a quadratic; the rounding bound of restoring the weights; hand counts of state bytes.
"""

import gc
import io

import pytest
import torch

from workbench.optim import MeZO, SparseMeZO, ZOAdam, ZOSGD, optimizer_state_bytes
from workbench.optim.projectors import next_seed
from workbench.optim.zeroth_order import magnitude_threshold


LR, ZO_EPS, WD = 1e-2, 1e-3, 0.1


def mlp_problem():
    """§9 of the method note: a 3-layer MLP (weights 64×32, 32×64, 32×32 and biases), fixed X, Y, MSE."""
    X = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    Y = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 32))

    def closure():
        return torch.nn.functional.mse_loss(model(X), Y)

    return model, closure


def groups(model, **decayed):
    """Weights with decay, then biases without: the official trainer's name rule as param groups."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if "bias" not in n], **decayed},
            {"params": [p for n, p in named if "bias" in n], "weight_decay": 0.0}]


def in_group_order(model):
    """(name, param) in the order the optimizer draws z: weights, then biases."""
    named = list(model.named_parameters())
    return [(n, p) for n, p in named if "bias" not in n] + [(n, p) for n, p in named if "bias" in n]


def seed_chain(seed, steps):
    seeds = [seed]
    for _ in range(steps - 1):
        seeds.append(next_seed(seeds[-1]))
    return seeds


# ------------------------------------------------------------- independent re-implementations


def official_perturb(named, seed, scaling_factor, eps, keep=None):
    """zo_perturb_parameters: reseed torch's global generator, θ = θ + scaling_factor·z·ε, out of place."""
    torch.manual_seed(seed)
    for name, param in named:
        z = torch.normal(mean=0, std=1, size=param.data.size(), device=param.data.device, dtype=param.data.dtype)
        if keep is not None:
            z = z * keep[name]
        param.data = param.data + scaling_factor * z * eps


def official_estimate(named, forward, seed, eps, keep=None):
    """zo_step: ℓ+ at θ + εz, ℓ− at θ − εz, back to θ; returns (ℓ+, projected_grad)."""
    official_perturb(named, seed, 1, eps, keep)
    with torch.inference_mode():
        loss1 = forward().detach()
    official_perturb(named, seed, -2, eps, keep)
    with torch.inference_mode():
        loss2 = forward().detach()
    projected_grad = ((loss1 - loss2) / (2 * eps)).item()
    official_perturb(named, seed, 1, eps, keep)
    return loss1, projected_grad


def official_mezo_step(named, forward, seed, lr, eps, weight_decay, keep=None):
    """zo_step then zo_update: z resampled from the seed; decay skipped for names with "bias"."""
    loss1, projected_grad = official_estimate(named, forward, seed, eps, keep)
    torch.manual_seed(seed)
    for name, param in named:
        z = torch.normal(mean=0, std=1, size=param.data.size(), device=param.data.device, dtype=param.data.dtype)
        if keep is not None:
            z = z * keep[name]
        if "bias" not in name:
            param.data = param.data - lr * (projected_grad * z + weight_decay * param.data)
        else:
            param.data = param.data - lr * (projected_grad * z)
    return loss1


def zo_bench_step(named, forward, seed, eps, optimizer):
    """ZO-Bench's zo_step: param.grad = projected_grad·z, then optimizer.step(), one parameter at a time."""
    loss1, projected_grad = official_estimate(named, forward, seed, eps)
    torch.manual_seed(seed)
    for _, param in named:
        z = torch.normal(mean=0, std=1, size=param.data.size(), device=param.data.device, dtype=param.data.dtype)
        param.grad = projected_grad * z
        optimizer.step()
        param.grad = None
    return loss1


def run_pair(ours_factory, reference_step, steps=20, seed=5):
    """The same model and data stepped by our optimizer and by a reference step; returns both models, losses."""
    runs = []
    for side in ("ours", "reference"):
        model, closure = mlp_problem()
        p0 = [p.detach().clone() for p in model.parameters()]
        losses = []
        if side == "ours":
            opt = ours_factory(model)
            for _ in range(steps):
                losses.append(opt.step(closure))
            assert all(p.grad is None for p in model.parameters())  # no gradient was ever made
        else:
            step = reference_step(model)
            for s in seed_chain(seed, steps):
                losses.append(step(s, closure))
        runs.append((model, p0, losses))
    return runs


def assert_identical(runs, min_move):
    (ours, p0, ours_losses), (ref, _, ref_losses) = runs
    assert [loss.item() for loss in ours_losses] == [loss.item() for loss in ref_losses]
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    assert max((p - q).abs().max().item() for p, q in zip(ours.parameters(), p0)) > min_move  # it trained


# ------------------------------------------------------------- cross-checks (§9: 20 steps, λ > 0)


def test_mezo_matches_the_official_update():
    """Bit for bit (max |Δp| = 0.0): same seeds, same op order; the parameters move 0.021 (max |p20 − p0|)."""
    runs = run_pair(
        lambda m: MeZO(groups(m, weight_decay=WD), lr=LR, zo_eps=ZO_EPS, seed=5),
        lambda m: lambda s, f: official_mezo_step(in_group_order(m), f, s, LR, ZO_EPS, WD),
    )
    assert_identical(runs, min_move=1e-2)


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_sparse_mezo_matches_the_papers_masked_step(sparsity):
    """Bit for bit. The mask [|θ_t| ≤ h] from the weights at each step's start, h from the first step's weights
    per tensor (here by sorting, ours by kthvalue); the parameters move 0.014 (0.5) and 0.008 (0.8)."""
    thresholds = {}

    def reference(model):
        named = in_group_order(model)

        def step(s, f):
            for name, p in named:
                if name not in thresholds:
                    k = p.numel() - int(sparsity * p.numel())
                    thresholds[name] = p.detach().abs().flatten().sort().values[k - 1]
            keep = {name: p.detach().abs() <= thresholds[name] for name, p in named}
            return official_mezo_step(named, f, s, LR, ZO_EPS, WD, keep)

        return step

    runs = run_pair(lambda m: SparseMeZO(groups(m, weight_decay=WD), lr=LR, zo_eps=ZO_EPS, sparsity=sparsity, seed=5),
                    reference)
    assert_identical(runs, min_move=1e-3)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_zo_sgd_matches_zo_bench_with_torch_sgd(momentum):
    """Bit for bit against torch.optim.SGD fed g·z; the parameters move 0.021 (μ = 0) and 0.13 (μ = 0.9)."""
    def reference(model):
        sgd = torch.optim.SGD(groups(model, weight_decay=WD), lr=LR, momentum=momentum, foreach=False)
        return lambda s, f: zo_bench_step(in_group_order(model), f, s, ZO_EPS, sgd)

    runs = run_pair(lambda m: ZOSGD(groups(m, weight_decay=WD), lr=LR, zo_eps=ZO_EPS, momentum=momentum, seed=5),
                    reference)
    assert_identical(runs, min_move=1e-2)


def test_zo_adam_matches_zo_bench_with_torch_adam():
    """Bit for bit against torch.optim.Adam (L2 decay) fed g·z; the parameters move 0.016."""
    def reference(model):
        adam = torch.optim.Adam(groups(model, weight_decay=WD), lr=1e-3, foreach=False)
        return lambda s, f: zo_bench_step(in_group_order(model), f, s, ZO_EPS, adam)

    runs = run_pair(lambda m: ZOAdam(groups(m, weight_decay=WD), lr=1e-3, zo_eps=ZO_EPS, seed=5), reference)
    assert_identical(runs, min_move=1e-2)


# ------------------------------------------------------------- the estimate and the perturbation


def test_a_step_at_lr_zero_restores_the_weights_up_to_rounding():
    """θ ← θ + εz, θ − 2εz, θ + εz in place: each sum rounds once, so |θ' − θ| ≤ 3 half-ulps of |θ| + 2ε|z|.
    A perturbation left in place would leave ε|z| (~1e-3), four orders of magnitude more."""
    model, closure = mlp_problem()
    p0 = [p.detach().clone() for p in model.parameters()]
    opt = MeZO(model.parameters(), lr=0.0, zo_eps=ZO_EPS, weight_decay=WD, seed=3)
    opt.step(closure)
    g = torch.Generator().manual_seed(3)
    for p, before in zip(model.parameters(), p0):  # about half the coordinates come back bit for bit (53 % measured)
        z = torch.normal(0.0, 1.0, size=p.shape, generator=g)
        bound = 1.5 * torch.finfo(torch.float32).eps * (before.abs() + 2 * ZO_EPS * z.abs())
        assert ((p - before).abs() <= bound).all()


def test_estimate_is_unbiased_on_a_quadratic():
    """f(θ) = ½θᵀAθ + bᵀθ: the central difference is exact, g = zᵀ∇f, so ĝ = (zᵀ∇f)·z with E[ĝ] = ∇f and
    Var(ĝ_i) = ‖∇f‖² + ∇f_i² (Gaussian z). The mean of N estimates lies within 5 σ/√N of ∇f."""
    A = torch.tensor([[3.0, 1.0, 0.0, 0.5], [1.0, 2.0, 0.3, 0.0], [0.0, 0.3, 1.0, 0.2], [0.5, 0.0, 0.2, 4.0]],
                     dtype=torch.float64)
    b = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    theta = torch.nn.Parameter(torch.tensor([1.0, -0.5, 0.25, 2.0], dtype=torch.float64))
    grad = (A @ theta + b).detach()  # ∇f(θ)
    opt = MeZO([theta], lr=0.0, zo_eps=1e-3, seed=11)
    N, estimates = 4000, []
    for _ in range(N):
        seed = opt.state[theta].get("seed", 11)
        opt.step(lambda: 0.5 * theta @ A @ theta + b @ theta)
        z = torch.normal(0.0, 1.0, size=(4,), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        g = opt.state[theta]["projected_grad"]
        assert g == pytest.approx((z @ grad).item(), rel=1e-9, abs=1e-9)  # exact up to the losses' rounding
        estimates.append(g * z)
    mean = torch.stack(estimates).mean(0)
    sigma = ((grad @ grad + grad**2) / N).sqrt()
    assert ((mean - grad).abs() <= 5 * sigma).all()
    assert not ((mean - 2 * grad).abs() <= 5 * sigma).all()  # the test tells a scale error (ε vs 2ε) apart


def test_closure_is_called_twice_under_no_grad_at_the_perturbed_weights():
    W = torch.nn.Parameter(torch.zeros(3, 2))
    seen = []

    def closure():
        seen.append((torch.is_grad_enabled(), W.detach().clone()))
        return (W**2).sum()

    opt = MeZO([W], lr=0.1, zo_eps=0.5, seed=2)
    loss = opt.step(closure)
    z = torch.normal(0.0, 1.0, size=(3, 2), generator=torch.Generator().manual_seed(2))
    assert [enabled for enabled, _ in seen] == [False, False]
    assert torch.equal(seen[0][1], 0.5 * z) and torch.equal(seen[1][1], -0.5 * z)  # θ ± εz from θ = 0: exact
    assert loss.item() == (0.25 * z**2).sum().item()  # ℓ+ is returned
    assert opt.forward_passes == 2
    assert opt.state[W]["func_evals"] == 2 and opt.state[W]["step"] == 1
    opt.step(closure)
    assert len(seen) == 4 and opt.state[W]["func_evals"] == 4


def test_global_random_state_is_untouched_and_seeds_follow_the_chain():
    model, closure = mlp_problem()
    opt = MeZO(model.parameters(), lr=LR, seed=7)
    before = torch.random.get_rng_state()
    for s in seed_chain(7, 4):
        assert opt.state[next(model.parameters())].get("seed", 7) == s
        opt.step(closure)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_different_seeds_take_different_steps():
    moved = []
    for seed in (0, 1):
        model, closure = mlp_problem()
        MeZO(model.parameters(), lr=LR, seed=seed).step(closure)
        moved.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.equal(*moved)


# ------------------------------------------------------------- Sparse MeZO


def test_sparse_mezo_perturbs_and_moves_only_the_small_weights():
    g = torch.Generator().manual_seed(0)
    W = torch.nn.Parameter(torch.randn(20, 10, generator=g))
    W0, sparsity = W.detach().clone(), 0.8
    h = W0.abs().flatten().sort().values[39].item()  # 200 − ⌊0.8·200⌋ = 40 smallest magnitudes
    small = W0.abs() <= h
    perturbations = []

    def closure():
        perturbations.append(W.detach() - W0)
        return (W**3).sum()

    opt = SparseMeZO([W], lr=0.1, zo_eps=1e-2, sparsity=sparsity, seed=4)
    opt.step(closure)
    assert small.sum() == 40 and opt.state[W]["threshold"] == h == magnitude_threshold(W0, sparsity)
    for delta in perturbations + [W.detach() - W0]:  # both forward passes and the update
        assert torch.equal(delta[~small], torch.zeros(160)) and (delta[small] != 0).all()


# ------------------------------------------------------------- memory and state

FACTORIES = {
    "MeZO": lambda ps: MeZO(ps, lr=LR, weight_decay=WD),
    "SparseMeZO": lambda ps: SparseMeZO(ps, lr=LR, weight_decay=WD, sparsity=0.5),
    "ZOSGD": lambda ps: ZOSGD(ps, lr=LR, weight_decay=WD),
    "ZOSGD-momentum": lambda ps: ZOSGD(ps, lr=LR, momentum=0.9, weight_decay=WD),
    "ZOAdam": lambda ps: ZOAdam(ps, lr=1e-3, weight_decay=WD),
}


@pytest.mark.parametrize("name, tensors_per_element", [("MeZO", 0), ("SparseMeZO", 0), ("ZOSGD", 0),
                                                       ("ZOSGD-momentum", 1), ("ZOAdam", 2)])
def test_state_bytes_by_hand(name, tensors_per_element):
    model, closure = mlp_problem()
    opt = FACTORIES[name](list(model.parameters()))
    for _ in range(3):
        opt.step(closure)
    numel = sum(p.numel() for p in model.parameters())
    assert optimizer_state_bytes(opt) == tensors_per_element * 4 * numel  # ints and floats count 0


@pytest.mark.parametrize("name", ["MeZO", "ZOSGD"])
def test_no_copy_of_the_parameters_is_alive_during_the_forward_passes(name):
    """At each forward pass, the only live float tensors of a parameter's size are the parameters themselves."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 13), torch.nn.Tanh(), torch.nn.Linear(13, 3))
    X, Y = torch.randn(5, 7), torch.randn(5, 3)
    params = list(model.parameters())
    sizes = {p.numel() for p in params}
    copies = []

    def closure():
        live = [o for o in gc.get_objects() if issubclass(type(o), torch.Tensor) and o.dtype == torch.float32]
        copies.append([o for o in live if o.numel() in sizes and not any(o is p for p in params)])
        return torch.nn.functional.mse_loss(model(X), Y)

    opt = FACTORIES[name](params)
    for _ in range(2):
        opt.step(closure)
    assert copies == [[], [], [], []]


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_dict_round_trip_with_weights_only_resumes_bit_identically(name):
    model, closure = mlp_problem()
    opt = FACTORIES[name](list(model.parameters()))
    for _ in range(10):
        opt.step(closure)
    straight = [p.detach().clone() for p in model.parameters()]

    model, closure = mlp_problem()
    opt = FACTORIES[name](list(model.parameters()))
    for _ in range(5):
        opt.step(closure)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in model.parameters()], "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    model, closure = mlp_problem()
    with torch.no_grad():
        for p, s in zip(model.parameters(), saved["params"]):
            p.copy_(s)
    opt = FACTORIES[name](list(model.parameters()))
    opt.load_state_dict(saved["opt"])
    for _ in range(5):
        opt.step(closure)
    for a, b in zip(model.parameters(), straight):
        assert torch.equal(a, b)


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda ps: MeZO(ps, zo_eps=0.0), r"zo_eps=0\.0 is out of range: allowed \(0, inf\)"),
        (lambda ps: MeZO(ps, lr=-1.0), r"lr=-1\.0 is out of range: allowed \[0, inf\)"),
        (lambda ps: SparseMeZO(ps, sparsity=1.0), r"sparsity=1\.0 is out of range: allowed \[0, 1\)"),
        (lambda ps: ZOSGD(ps, momentum=1.0), r"momentum=1\.0 is out of range: allowed \[0, 1\)"),
        (lambda ps: ZOAdam(ps, betas=(0.9, 1.0)), r"betas\[1\]=1\.0 is out of range: allowed \[0, 1\)"),
        (lambda ps: MeZO(ps, seed=-1), r"seed=-1 is not allowed: choose an integer in \[0, 9223372036854775807\]"),
        (lambda ps: MeZO([{"params": ps[:1]}, {"params": ps[1:], "zo_eps": 1e-2}], zo_eps=1e-3),
         r"zo_eps=0\.01 in param group 1 is not allowed: every group must share the first group's zo_eps=0\.001"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_value_and_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build([torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))])


def test_step_without_a_closure_says_what_it_needs():
    opt = MeZO([torch.nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match=r"MeZO\.step needs a closure: .*the torch\.optim\.LBFGS interface.* 2 times"):
        opt.step()

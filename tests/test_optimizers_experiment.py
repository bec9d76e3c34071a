"""The optimizers experiment: validation, tiny runs of every task, a hand-computed first step,
Stop, determinism, the param groups of make_optimizer, the live plot."""
import math
import threading

import pytest
import torch

import workbench
from workbench.experiment import ConfigError, configure
from workbench.methods import optim_tasks as ot
from workbench.optim import (APOLLO, COSMOS, FRUGAL, LAMB, SOAP, ZOSGD, APOLLOMini, AdamW8bit, BAdam, DCTAdamW,
                             GaLoreAdamW, Lion, MeZO, Muon, NaturalGaLoreAdamW, QGaLoreAdamW8bit, SparseMeZO, ZOAdam)

TINY_LM = dict(task="lm", steps=3, batch_size=4, d_model=16, n_layers=1, n_heads=2, context=16,
               corpus_chars=20_000, eval_batches=1)
# the class each name of the experiment builds: imported, so a renamed class fails here rather than skipping
CLASSES = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "galore": GaLoreAdamW, "dct": DCTAdamW,
           "apollo": APOLLO, "apollo_mini": APOLLOMini, "frugal": FRUGAL, "lion": Lion, "adamw8bit": AdamW8bit,
           "lamb": LAMB, "adamw_frozen": torch.optim.AdamW, "muon": Muon, "soap": SOAP, "cosmos": COSMOS,
           "q_galore": QGaLoreAdamW8bit, "natural_galore": NaturalGaLoreAdamW, "badam": BAdam, "mezo": MeZO,
           "sparse_mezo": SparseMeZO, "zo_sgd": ZOSGD, "zo_adam": ZOAdam}
EVAL = {"digits": "test_accuracy", "lm": "val_loss", "quadratic": "distance", "rosenbrock": "distance"}


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, fragment", [  # bounds and choices: tests/test_contract.py
    ("optimizers", [], "'optimizers' = [] is not allowed; expected a non-empty list"),
    ("optimizers", ["lion", "lion"], "expected each optimizer at most once"),
])
def test_bad_values_are_config_errors(key, value, fragment):
    with pytest.raises(ConfigError) as error:
        configure("optimizers", **{key: value})
    assert fragment in str(error.value)


@pytest.mark.parametrize("text", ["auto", "AUTO", "none"])
def test_automatic_settings_are_none_and_read_auto_from_strings(text):
    experiment = configure("optimizers", steps=text, lr=text, rank=text, scale=text, eval_every=text)
    assert [experiment.steps, experiment.lr, experiment.rank, experiment.scale, experiment.eval_every] == [None] * 5
    assert configure("optimizers").lr is None and configure("optimizers", lr="0.01").lr == 0.01


def test_heads_must_divide_width_for_the_lm():
    with pytest.raises(ConfigError, match="'n_heads' = 3 is not allowed with d_model = 64; expected a divisor"):
        configure("optimizers", task="lm", n_heads=3)
    configure("optimizers", task="digits", n_heads=3)  # irrelevant to the digits task


# --- tiny runs of every task ---------------------------------------------------------------------

@pytest.mark.parametrize("task, names, params", [
    ("quadratic", ["adamw", "sgd", "lion", "lamb"], dict(steps=4)),
    ("rosenbrock", ["adamw", "lion"], dict(steps=4)),
    ("digits", list(ot.OPTIMIZERS), dict(steps=4, mlp_width=16)),
    ("lm", list(ot.OPTIMIZERS), {**TINY_LM, "lr": 1e-3}),  # the seeds' later optimizers have no default lr there
])
def test_tiny_run_reports_every_optimizer(task, names, params):
    result = workbench.run("optimizers", **{"task": task, "optimizers": names, "eval_every": 2, **params})
    steps = params["steps"]
    assert result.status == "finished" and result.metrics["steps_done"] == steps
    for name in names:
        for metric in ("final_loss", EVAL[task], "state_bytes", "step_ms", "iter_ms", "lr"):
            assert math.isfinite(result.metrics[f"{name}.{metric}"]), (name, metric)
        stateless = name in ("mezo", "sparse_mezo")  # zeroth order: no state, the perturbation regenerated from a seed
        assert (result.metrics[f"{name}.state_bytes"] == 0) == stateless and result.metrics[f"{name}.step_ms"] > 0
        assert result.curves[f"{name}.loss"]["step"] == list(range(1, steps + 1))
        assert result.curves[f"{name}.{EVAL[task]}"]["step"] == ([2, 4] if steps == 4 else [2, 3])
    if task == "digits":
        assert all(0 <= result.metrics[f"{n}.test_accuracy"] <= 1 for n in names)
    if task == "lm":  # untrained: about the uniform cross-entropy log(vocab)
        vocab = result.task.corpus.vocab_size
        assert abs(result.metrics["adamw.val_loss"] - math.log(vocab)) < 0.5
    payload = result.payload
    assert set(payload["curves"]) == set(names) and set(payload["state_bytes"]) == set(names)
    if task in ("quadratic", "rosenbrock"):
        assert all(result.trajectories[n].shape == (steps + 1, 2) for n in names)


def test_lr_zero_takes_the_documented_default_and_lr_overrides_it():
    result = workbench.run("optimizers", task="quadratic", optimizers=["adamw", "sgd"], steps=1)
    assert result.lrs == {"adamw": ot.DEFAULT_LR["quadratic"]["adamw"], "sgd": ot.DEFAULT_LR["quadratic"]["sgd"]}
    result = workbench.run("optimizers", task="quadratic", optimizers=["adamw", "sgd"], steps=1, lr=0.01)
    assert result.lrs == {"adamw": 0.01, "sgd": 0.01}
    assert set(ot.DEFAULT_LR) == set(ot.TASKS) and set(ot.DEFAULT_LR["digits"]) == set(ot.OPTIMIZERS)
    assert all(set(v) <= set(ot.OPTIMIZERS) and "adamw" in v for v in ot.DEFAULT_LR.values())


# --- ground truth ------------------------------------------------------------------------------

def test_test_functions_have_their_known_minimum():
    x_star = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    for f in (ot.quadratic, ot.rosenbrock):
        value = f(x_star)
        (grad,) = torch.autograd.grad(value, x_star)
        assert float(value.detach()) == 0.0 and torch.all(grad == 0)
    assert torch.linalg.cond(ot.QUADRATIC_A) == pytest.approx(20.0)
    # f grows away from x*: a point off the minimum is worse
    assert float(ot.rosenbrock(torch.tensor([-1.2, 1.0]))) == pytest.approx(24.2)


@pytest.mark.parametrize("name", ["adamw", "lion", "sgd", "lamb"])
def test_first_step_on_the_quadratic_matches_the_hand_computed_update(name):
    lr = 0.1
    result = workbench.run("optimizers", task="quadratic", optimizers=[name], steps=1, lr=lr, schedule="constant")
    x0 = torch.tensor(ot.FUNCTIONS["quadratic"].start, dtype=torch.float64)
    g = ot.QUADRATIC_A @ (x0 - 1.0)  # ∇f(x0) = A (x0 − x*)
    if name == "adamw":  # m̂ = g, v̂ = g²: x1 = x0 − lr g / (|g| + ε)
        x1 = x0 - lr * g / (g.abs() + 1e-8)
    elif name == "lion":  # c = (1 − β1) g: x1 = x0 − lr sign(g)
        x1 = x0 - lr * torch.sign(g)
    elif name == "sgd":  # momentum buffer = g at the first step
        x1 = x0 - lr * g
    else:  # LAMB: u ∝ sign(g) at the first step, trust ratio ‖x0‖ / ‖u‖
        x1 = x0 - lr * x0.norm() * torch.sign(g) / math.sqrt(2)
    path = result.trajectories[name]
    assert path[0].tolist() == pytest.approx(x0.tolist())
    assert path[1].tolist() == pytest.approx(x1.tolist(), abs=1e-5)
    assert result.metrics[f"{name}.final_loss"] == pytest.approx(float(ot.quadratic(x1)), rel=1e-4)


def test_cosine_schedule():
    assert ot.lr_factor(1, 10, "cosine") == 1.0
    assert ot.lr_factor(6, 10, "cosine") == pytest.approx(0.5)
    assert ot.lr_factor(11, 10, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert ot.lr_factor(7, 10, "constant") == 1.0


# --- Stop and determinism ------------------------------------------------------------------------

def test_stop_ends_the_run_early():
    stop = threading.Event()

    events = []

    def progress(event):
        events.append(event.step)
        stop.set()

    result = workbench.run("optimizers", **{**TINY_LM, "steps": 1000, "optimizers": ["adamw", "sgd"]},
                           progress=progress, stop=stop)
    assert result.status == "stopped" and result.metrics["steps_done"] == events[0]  # no step after the event
    assert events == result.curves["adamw.loss"]["step"] and events[0] <= 10  # the cadence's first report
    assert math.isfinite(result.metrics["adamw.final_loss"])


def test_stop_from_another_thread_during_an_lm_run():
    stop, training = threading.Event(), threading.Event()
    threading.Thread(target=lambda: training.wait(600) and stop.set(), daemon=True).start()
    result = workbench.run("optimizers", **{**TINY_LM, "steps": 100_000, "optimizers": ["adamw"]}, stop=stop,
                           progress=lambda event: training.set())
    assert result.status == "stopped"
    assert 0 < result.metrics["steps_done"] < 100_000  # 100 000 steps would take minutes: Stop ended it


def test_same_seed_same_results_other_seed_differs():
    params = dict(task="digits", optimizers=["adamw", "lion"], steps=5, mlp_width=16)
    a, b = workbench.run("optimizers", seed=3, **params), workbench.run("optimizers", seed=3, **params)
    c = workbench.run("optimizers", seed=4, **params)
    timeless = lambda r: {k: v for k, v in r.metrics.items() if not k.endswith("_ms")}  # noqa: E731
    assert timeless(a) == timeless(b)
    assert a.curves["adamw.loss"] == b.curves["adamw.loss"]
    assert a.metrics["adamw.final_loss"] != c.metrics["adamw.final_loss"]


# --- make_optimizer ------------------------------------------------------------------------------

def test_body_linear_weights_are_projected_the_rest_is_plain():
    mlp = ot.MLP(64, 32, depth=2)
    projected, plain = ot.split_parameters(mlp)
    assert [tuple(p.shape) for p in projected] == [(32, 32), (32, 32)]
    assert sum(p.numel() for p in projected + plain) == sum(p.numel() for p in mlp.parameters())
    lm = ot.CharTransformer(vocab_size=50, d_model=16, n_layers=2, n_heads=2, context=8)
    projected, plain = ot.split_parameters(lm)
    assert [tuple(p.shape) for p in projected] == [(48, 16), (16, 16), (64, 16), (16, 64)] * 2
    assert not any(p is lm.tok.weight or p is lm.head.weight or p is lm.pos.weight for p in projected)
    assert ot.projection_rank(torch.Size([64, 16]), None, 0.25) == 4
    assert ot.projection_rank(torch.Size([64, 16]), 100, 0.25) == 16


@pytest.mark.parametrize("name", ot.PROJECTED)
def test_projected_optimizers_get_rank_groups_and_a_plain_group(name):
    lm = ot.CharTransformer(vocab_size=50, d_model=16, n_layers=1, n_heads=2, context=8)
    optimizer = ot.make_optimizer(name, lm, lr=1e-3, rank=None, update_proj_gap=7, scale=None,
                                  rank_fraction=0.25)
    key = "density" if name == "frugal" else "rank"
    projected = [g for g in optimizer.param_groups if g[key] is not None]
    plain = [g for g in optimizer.param_groups if g[key] is None]
    assert sum(len(g["params"]) for g in projected) == 4 and len(plain) == 1
    for group in projected:
        assert group["update_proj_gap"] == 7
        if name == "frugal":
            assert group["density"] == 0.25
        else:
            assert group["scale"] == ot.DEFAULT_SCALE[name] and group["rank"] == (1 if name == "apollo_mini" else 4)
    assert {id(p) for g in plain for p in g["params"]} == {id(p) for p in ot.split_parameters(lm)[1]}


@pytest.mark.parametrize("name", ot.OPTIMIZERS)
def test_each_name_builds_its_class(name):
    mlp = ot.MLP(8, 4, depth=2)  # body (4, 4) matrices projected, the rest plain
    assert type(ot.make_optimizer(name, mlp, lr=1e-3)) is CLASSES[name]


def test_muon_and_cosmos_work_on_the_projected_matrices_and_badam_trains_a_layer_at_a_time():
    mlp = ot.MLP(8, 4, depth=2)
    projected, plain = ot.split_parameters(mlp)
    muon = ot.make_optimizer("muon", mlp, lr=1e-3).param_groups
    assert [(len(g["params"]), g["use_muon"]) for g in muon] == [(len(projected), True), (len(plain), False)]
    cosmos = ot.make_optimizer("cosmos", mlp, lr=1e-3, rank_fraction=0.5).param_groups
    assert [g["rank"] for g in cosmos] == [2, None]
    blocks = ot.make_optimizer("badam", mlp, lr=1e-3).param_groups  # one block per layer, the head always trained
    layers = [m for m in mlp.modules() if list(m.parameters(recurse=False))]
    assert [len(g["params"]) for g in blocks] == [len(list(m.parameters(recurse=False))) for m in layers]
    assert [g["always_active"] for g in blocks] == [False] * (len(layers) - 1) + [True]


def test_zeroth_order_optimizers_take_the_run_seed_and_have_defaults_on_digits_only():
    assert ot.make_optimizer("mezo", ot.MLP(8, 4, depth=2), lr=1e-3, seed=7).seed == 7
    assert configure("optimizers", optimizers="mezo,muon").lr_of("mezo") == ot.DEFAULT_LR["digits"]["mezo"]
    with pytest.raises(ConfigError, match="'lr' = auto is not allowed .* 'muon' has no default lr on task 'lm'"):
        configure("optimizers", task="lm", optimizers="adamw,muon")
    assert configure("optimizers", task="lm", optimizers="adamw,muon", lr="3e-3").lr == 3e-3


def test_the_frozen_control_trains_the_plain_group_only():
    mlp = ot.MLP(8, 4, depth=2)
    projected, plain = ot.split_parameters(mlp)
    (group,) = ot.make_optimizer("adamw_frozen", mlp, lr=1e-3).param_groups
    assert [id(p) for p in group["params"]] == [id(p) for p in plain] and projected


def test_unknown_name_in_the_factory():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; allowed: adamw, sgd, galore"):
        ot.make_optimizer("adam", [torch.zeros(2, requires_grad=True)], lr=0.1)


# --- data ----------------------------------------------------------------------------------------

def test_digits_split_is_fixed_by_the_seed_and_standardized():
    X, y, X_test, y_test = ot.load_digits_split(0)
    assert len(X) + len(X_test) == 1797 and len(X_test) == 449
    assert torch.allclose(X.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.equal(ot.load_digits_split(0)[1], y) and not torch.equal(ot.load_digits_split(1)[1], y)


def test_stdlib_corpus_is_the_sorted_source_files():
    text = ot.stdlib_corpus(20_000)
    first = ot.stdlib_files()[0].read_text(encoding="utf-8", errors="replace")
    assert len(text) == 20_000 and text.startswith(first[:1000])
    corpus = ot.CharCorpus(text)
    assert len(corpus.train) == 18_000 and len(corpus.val) == 2_000
    assert corpus.decode(corpus.encode("def f(x):")) == "def f(x):"


# --- the live plot -------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["quadratic", "digits"])
def test_plot_draws_every_optimizer(task):
    from workbench.panels import plot_for

    plot = plot_for("optimizers")
    names = ["adamw", "sgd"]
    events = []
    workbench.run("optimizers", task=task, optimizers=names, steps=3, mlp_width=16, progress=events.append)
    fig = plot(events[-1])
    traces = {t.name for t in fig.data}
    assert set(names) <= traces
    kinds = {t.type for t in fig.data}
    assert {"bar", "table"} <= kinds and (("contour" in kinds) == (task == "quadratic"))
    assert plot(events[0]) is not None  # early events draw too

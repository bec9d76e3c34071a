"""The fused optimizer kernels (workbench.kernels.lion_triton, adamw8bit_triton) against their torch references,
and the host side of their steps: tables built once per set of tensors, no `.item()`, capturable in a CUDA graph.

On CUDA the kernels run compiled; without it through Triton's interpreter (conftest sets TRITON_INTERPRET=1 and
gives the interpreter a GPU's fma and bfloat16 rounding), on small tensors: sizes that are not multiples of the
program's chunk (1024 elements) or of the quantization block (256), one element, several tensors of different
sizes and dtypes in one call. Ground truths: torch's foreach ops (Lion), AdamW8bit's torch path (codes and absmax
bit for bit) and the numba CPU pass (weights bit for bit: the same arithmetic). The optimizers reach the kernels
through their dispatch with WORKBENCH_KERNELS=triton (on a CPU: the interpreter).
"""

import math

import pytest
import torch

from workbench.kernels import lion, lion_triton, multi_tensor, selfcheck
from workbench.kernels.adamw8bit_cpu import adamw8bit_update_
from workbench.kernels.adamw8bit_triton import adamw8bit_triton_
from workbench.kernels.lion import lion_reference_, lion_step_
from workbench.kernels.lion_triton import lion_triton_
from workbench.optim import AdamW8bit, Lion
from workbench.optim.adamw8bit import adamw8bit_torch_
from workbench.optim.quantization import dynamic_map

pytestmark = [
    # the interpreter computes masked-off lanes too (never stored): float16 ones may overflow
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: the interpreter
cuda_only = pytest.mark.skipif(DEVICE != "cuda", reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
LION_SHAPES = [(1,), (1024,), (1025,), (33, 63), (3,)]  # chunks of 1024: one element, whole, partial, several
ADAM_SHAPES = [(1,), (255,), (256,), (17, 61), (4097,), (300,)]  # blocks of 256, chunks of 4 blocks; (300,): g = 0
STATE_KEYS = ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax")


def randn(shapes, dtype, generator, scale=1.0):
    return [(scale * torch.randn(s, generator=generator)).to(DEVICE, dtype) for s in shapes]


def clones(tensors):
    return [t.clone() for t in tensors]


@pytest.fixture
def kernels_everywhere(monkeypatch):
    """The dispatches take the kernels wherever Triton runs (the interpreter on a CPU), after their self-check."""
    monkeypatch.setenv("WORKBENCH_KERNELS", "triton")


# ------------------------------------------------------------------------------------------- Lion


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("betas, weight_decay", [((0.9, 0.99), 0.1), ((0.2, 0.4), 0.0)])  # lerp weights < and > 0.5
def test_lion_kernel_matches_foreach_reference(dtype, betas, weight_decay):
    """Three steps from random W, g, m. Bit for bit, except W in 16-bit dtypes on CPU: there torch rounds alpha = −lr
    to the 16-bit dtype before W + alpha·sign(c) (on CUDA it keeps it float32, as the kernel), so W may differ by
    that rounding, ≤ ½ ulp(lr), plus one rounding of W, ≤ 1 ulp(W), per step."""
    gen = torch.Generator().manual_seed(0)
    W, m = randn(LION_SHAPES, dtype, gen), randn(LION_SHAPES, dtype, gen, scale=0.1)
    W_ref, m_ref = clones(W), clones(m)
    lr, steps = 1e-2, 3
    for _ in range(steps):
        g = randn(LION_SHAPES, dtype, gen)
        lion_triton_(W, g, m, lr=lr, betas=betas, weight_decay=weight_decay)
        lion_reference_(W_ref, g, m_ref, lr=lr, betas=betas, weight_decay=weight_decay)
    for a, b in zip(m, m_ref):
        assert torch.equal(a, b)
    eps = torch.finfo(dtype).eps
    exact = dtype == torch.float32 or DEVICE == "cuda"
    for a, b in zip(W, W_ref):
        torch.testing.assert_close(a, b, rtol=0 if exact else steps * eps, atol=0 if exact else steps * eps * lr)
    assert not torch.equal(W[1], W_ref[1]) or exact  # the tolerance is used: the alpha rounding shows


def test_lion_mixed_dtypes_in_one_call():
    """float32, bfloat16 and float16 parameters in one call (torch's foreach ops need g and m of W's dtype): one
    launch per dtype, each as the reference (16-bit W: as in the test above)."""
    gen = torch.Generator().manual_seed(1)
    shapes = {torch.float32: [(5,), (1030,)], torch.bfloat16: [(7,)], torch.float16: [(2,), (3, 4)]}
    W, g, m = ([t for dtype, ss in shapes.items() for t in randn(ss, dtype, gen, scale)] for scale in (1, 1, 0.1))
    W_ref, m_ref = clones(W), clones(m)
    lion_triton_(W, g, m, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0)
    lion_reference_(W_ref, g, m_ref, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0)
    for a, b in zip(m, m_ref):
        assert torch.equal(a, b)
    for a, b in zip(W, W_ref):
        exact = a.dtype == torch.float32 or DEVICE == "cuda"
        eps = torch.finfo(a.dtype).eps
        torch.testing.assert_close(a, b, rtol=0 if exact else eps, atol=0 if exact else eps * 1e-3)


def test_lion_dispatch(monkeypatch, kernels_everywhere):
    """lion_step_ runs the kernel on dense tensors of kernel dtypes only, and the optimizer goes through it, ending
    where the reference does, bit for bit."""
    gen = torch.Generator().manual_seed(2)
    assert not lion._use_kernel([torch.zeros(3, dtype=torch.float64, device=DEVICE)])  # not a kernel dtype
    assert not lion._use_kernel([torch.zeros(4, 3, device=DEVICE).T])  # not contiguous
    assert selfcheck.passes("lion", torch.float32, torch.device(DEVICE))  # not counted below: its own calls
    calls = []
    kernel = lion_triton.lion_triton_
    monkeypatch.setattr(lion_triton, "lion_triton_", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    W0 = randn([(40, 30), (30,)], torch.float32, gen)
    params = [torch.nn.Parameter(w.clone()) for w in W0]
    reference = clones(W0)
    opt = Lion(params, lr=1e-3, weight_decay=0.5, decoupled_weight_decay=True)
    m_ref = [torch.zeros_like(w) for w in W0]
    for _ in range(3):
        grads = randn([(40, 30), (30,)], torch.float32, gen)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        lion_reference_(reference, grads, m_ref, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.5 / 1e-3)
    assert len(calls) == 3
    for p, w in zip(params, reference):
        assert torch.equal(p.detach(), w)
    lion_step_(clones(W0), clones(W0), clones(W0), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0)  # also a call
    assert len(calls) == 4


# -------------------------------------------------------------------------------------- AdamW8bit


def adam_run(shapes, dtype, rounding, steps=3):
    """The kernel, the torch path and (float32) the numba pass, `steps` updates from the same gradients (spanning
    magnitudes; tensor (300,) gets zero gradients, so its blocks have absmax 0): (W, states) of each."""
    gen = torch.Generator().manual_seed(0)
    W0 = randn(shapes, dtype, gen)
    code_m, code_v = dynamic_map(signed=True), dynamic_map(signed=False)
    hyper = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, rounding=rounding)
    runs = {name: (clones(W0), [AdamW8bit._init_state(w, quantized=True) for w in W0]) for name in ("kernel", "torch")}
    if dtype == torch.float32:  # numba: CPU float32 only
        runs["numba"] = ([w.cpu() for w in W0], [AdamW8bit._init_state(w.cpu(), quantized=True) for w in W0])
    for step in range(steps):
        grads = [g * 10.0**-step if s != (300,) else 0 * g for g, s in zip(randn(shapes, dtype, gen), shapes)]
        for W, states in runs.values():
            for s in states:
                s["step"] += 1
        W, states = runs["kernel"]
        adamw8bit_triton_(W, grads, states, code_m, code_v, **hyper)
        for p, s, g in zip(*runs["torch"], grads):
            p.grad = g
            adamw8bit_torch_(p, s, code_m.to(DEVICE), code_v.to(DEVICE), **hyper)
        if "numba" in runs:
            for p, s, g in zip(*runs["numba"], grads):
                adamw8bit_update_(p, g.cpu(), s, code_m, code_v, **hyper)
    return runs


@pytest.mark.parametrize("rounding", ["nearest", "bnb_lut"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw8bit_kernel_codes_and_absmax_bit_identical(dtype, rounding):
    """Codes and absmax equal the torch path's bit for bit. float32 weights equal the numba pass's (same arithmetic,
    correctly rounded √ and /) and the torch path's up to its rounding of √v/√(1 − β2^t) (torch's CPU sqrt is off
    by an ulp at times; on CUDA it divides by the reciprocal): per step a few ulp of the update (|update| ≤
    lr·|m̂|/√v̂ ≤ 3·lr here) and one rounding of W, so rtol = steps·2^-23, atol = steps·4·2^-23·3·lr (measured:
    ≤ 1.2e-7 at |W| ≈ 1). 16-bit weights: that may flip their final rounding, one ulp of the dtype per step."""
    runs, steps = adam_run(ADAM_SHAPES, dtype, rounding), 3
    (W, states), (W_torch, states_torch) = runs["kernel"], runs["torch"]
    for s, s_torch in zip(states, states_torch):
        for key in STATE_KEYS:
            assert torch.equal(s[key], s_torch[key]), key
    assert (states[-1]["exp_avg_absmax"] == 0).all() and (states[0]["exp_avg_absmax"] > 0).all()
    if dtype == torch.float32:
        for w, w_numba in zip(W, runs["numba"][0]):
            assert torch.equal(w.cpu(), w_numba)
        rtol, atol = steps * 2.0**-23, steps * 4 * 2.0**-23 * 3e-2
    else:
        rtol, atol = steps * torch.finfo(dtype).eps, steps * 4 * 2.0**-23 * 3e-2
    for w, w_torch in zip(W, W_torch):
        torch.testing.assert_close(w, w_torch, rtol=rtol, atol=atol)


def test_adamw8bit_optimizer_uses_the_kernel(monkeypatch, kernels_everywhere):
    """AdamW8bit sends the 8-bit states of a group to one kernel call (the fp32-state bias to the torch path) and
    ends where fused=False does: codes and absmax bit for bit."""
    from workbench.kernels import adamw8bit_triton

    assert selfcheck.passes("adamw8bit", torch.float32, torch.device(DEVICE))  # not counted below: its own calls
    calls = []
    kernel = adamw8bit_triton.adamw8bit_triton_
    monkeypatch.setattr(adamw8bit_triton, "adamw8bit_triton_", 
                        lambda W, *a, **k: calls.append(len(W)) or kernel(W, *a, **k))
    gen = torch.Generator().manual_seed(3)
    shapes = [(64, 70), (4100,), (30,)]
    W0 = randn(shapes, torch.float32, gen)
    params = {fused: [torch.nn.Parameter(w.clone()) for w in W0] for fused in (True, False)}
    opts = {fused: AdamW8bit(ps, lr=1e-2, fused=fused) for fused, ps in params.items()}
    for _ in range(2):
        grads = randn(shapes, torch.float32, gen)
        for fused, ps in params.items():
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            opts[fused].step()
    assert calls == [2, 2]
    for p, p_plain in zip(params[True], params[False]):
        s, s_plain = opts[True].state[p], opts[False].state[p_plain]
        for key in s:
            assert torch.equal(s[key], s_plain[key]), key


# ------------------------------------------------------------------------------ host side of a step


def make_optimizer(name, shapes, gen):
    """Parameters of `shapes` with zero gradients to refill in place, and their Lion or AdamW8bit (8-bit states)."""
    params = [torch.nn.Parameter(w) for w in randn(shapes, torch.float32, gen)]
    for p in params:
        p.grad = torch.zeros_like(p)
    if name == "lion":
        return params, Lion(params, lr=1e-2, weight_decay=0.1)
    return params, AdamW8bit(params, lr=1e-2, min_8bit_size=0)


@pytest.mark.parametrize("name", ["lion", "adamw8bit"])
def test_a_kernel_step_builds_its_tables_once_and_reads_nothing_on_the_host(name, monkeypatch, kernels_everywhere):
    """Ten steps over the same parameters, gradients (refilled in place) and states: the first builds one table of
    addresses and one of chunks (and AdamW8bit its code-book tables), the other nine reuse them and call .item() on
    no tensor (on a GPU that would wait for the device). A gradient at a new address gets a new table of addresses
    (a stale one would make the kernel read freed memory). All along, the steps equal the references'
    (WORKBENCH_KERNELS=torch): bit for bit Lion's foreach ops and, on a CPU, AdamW8bit's numba pass; on CUDA, its
    torch path up to the rounding of √v/√(1 − β2^t), as in test_adamw8bit_kernel_codes_and_absmax_bit_identical."""
    from workbench.kernels import adamw8bit_triton

    assert selfcheck.passes(name, torch.float32, torch.device(DEVICE))  # the probe builds its own tables
    for cache in (multi_tensor._tensor_table, multi_tensor.chunk_table, adamw8bit_triton._code_tables):
        cache.cache_clear()
    builds, build = [], multi_tensor.build
    monkeypatch.setattr(multi_tensor, "build", lambda values, width, device: builds.append(len(values) // width) or
                        build(values, width, device))
    shapes = [(40, 30), (1030,), (33,)]
    params, opt = make_optimizer(name, shapes, torch.Generator().manual_seed(4))
    reference, opt_ref = make_optimizer(name, shapes, torch.Generator().manual_seed(4))
    gen, items, item = torch.Generator().manual_seed(5), [], torch.Tensor.item
    chunks = sum(-(-math.prod(shape) // 1024) for shape in shapes)  # both kernels take 1024 elements a program
    assert lion_triton.BLOCK == adamw8bit_triton.ROWS * adamw8bit_triton.BLOCK == 1024

    def step(new_gradients=False):
        grads = randn(shapes, torch.float32, gen)
        for p, p_ref, g in zip(params, reference, grads):
            p_ref.grad.copy_(g)
            if new_gradients:
                p.grad = g  # allocated while the old gradient lives: a new address
            else:
                p.grad.copy_(g)
        monkeypatch.setattr(torch.Tensor, "item", lambda self: items.append(self) or item(self))
        opt.step()
        monkeypatch.setattr(torch.Tensor, "item", item)
        monkeypatch.setenv("WORKBENCH_KERNELS", "torch")
        opt_ref.step()
        monkeypatch.setenv("WORKBENCH_KERNELS", "triton")

    step()
    assert builds == [3, chunks]
    for _ in range(9):
        step()
    assert builds == [3, chunks] and items == []
    if name == "adamw8bit":
        assert adamw8bit_triton._code_tables.cache_info().misses == 1
    step(new_gradients=True)
    assert builds == [3, chunks, 3]  # the addresses again; the chunks of the same sizes are reused
    steps = 0 if name == "lion" or DEVICE == "cpu" else 11  # the tolerance: none, or that of 11 steps
    for p, p_ref in zip(params, reference):
        torch.testing.assert_close(p, p_ref, rtol=steps * 2.0**-23, atol=steps * 4 * 2.0**-23 * 3e-2)


@cuda_only
@pytest.mark.parametrize("name", ["lion", "adamw8bit"])
def test_a_step_captured_in_a_cuda_graph_replays_as_eager_steps(name, kernels_everywhere):
    """After one step (the self-check, compilation, tables), a step is captured in a CUDA graph. Replayed with new
    gradients copied into the same tensors, it gives what eager steps give, bit for bit, AdamW8bit's step count
    advancing on the device; and eager steps never synchronise with the device."""
    shapes = [(64, 70), (4100,), (33,)]
    (params, opt), (eager_params, eager) = (make_optimizer(name, shapes, torch.Generator().manual_seed(6))
                                            for _ in range(2))
    assert lion._use_kernel(params) if name == "lion" else opt._fused_pass(params[2]) == "triton"
    gen = torch.Generator().manual_seed(7)

    def load(ps, grads):
        for p, g in zip(ps, grads):
            p.grad.copy_(g)

    grads = [randn(shapes, torch.float32, gen) for _ in range(4)]
    load(eager_params, grads[0])
    eager.step()
    load(params, grads[0])
    side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graphs' documentation does
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for g in grads[1:]:
        load(params, g)
        graph.replay()
        load(eager_params, g)
        torch.cuda.set_sync_debug_mode("error")  # a synchronising call raises
        try:
            eager.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for p, p_eager in zip(params, eager_params):
        assert torch.equal(p, p_eager)
        for key, value in opt.state[p].items():
            assert torch.equal(value, eager.state[p_eager][key]), key

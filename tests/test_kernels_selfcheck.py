"""The switch WORKBENCH_KERNELS and the kernels' self-check on first use (workbench.kernels.selfcheck).

On a CPU, WORKBENCH_KERNELS=triton runs the kernels through Triton's interpreter (conftest sets TRITON_INTERPRET=1),
so the dispatches of the methods and optimizers, and the self-check, run here as on a GPU. Each launch is counted
by kernel module (Triton's interpreter runs every launch through `InterpretedFunction.run`), which shows that
the work went through the kernels; deliberately broken kernels show the fallback.
"""
import subprocess
import sys
import warnings

import pytest
import torch
from triton.runtime.interpreter import InterpretedFunction, InterpreterBuilder, TensorHandle

from workbench.kernels import adamw8bit_triton, lightsb_lse_triton, selfcheck, selfcheck_report, spd_sqrt_triton
from workbench.kernels.selfcheck import KernelFallbackWarning
from workbench.kernels.spd_sqrt import sqrt_and_invsqrt
from workbench.methods.lightsb import LightSB, fit
from workbench.optim import AdamW8bit, Lion

interpreter_only = pytest.mark.skipif(torch.cuda.is_available(), reason="runs kernels on the CPU, by the interpreter")

CPU = torch.device("cpu")
SHAPES = [(40, 30), (1030,), (33,)]


@pytest.fixture
def launches(monkeypatch):
    """Kernel launches, counted by the module of the kernel (e.g. "lion_triton")."""
    counts: dict[str, int] = {}
    run = InterpretedFunction.run

    def counting(self, *args, **kwargs):
        module = self.fn.__module__.rsplit(".", 1)[-1]
        counts[module] = counts.get(module, 0) + 1
        return run(self, *args, **kwargs)

    monkeypatch.setattr(InterpretedFunction, "run", counting)
    return counts


@pytest.fixture
def fresh_verdicts(monkeypatch):
    """A process that has run no self-check yet (this test's verdicts do not outlive it)."""
    monkeypatch.setattr(selfcheck, "_verdicts", {})


# ------------------------------------------------------------------------------- workloads, deterministic


def optimizer_steps(make, state_keys=()):
    """Two steps of make(params) on SHAPES with seeded gradients: the parameters, then the states named."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in SHAPES]
    opt = make(params)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach() for p in params] + [s[k] for s in opt.state.values() for k in state_keys]


def lion_steps():
    return optimizer_steps(lambda params: Lion(params, lr=1e-2, weight_decay=0.1))


def adamw8bit_steps():
    return optimizer_steps(lambda params: AdamW8bit(params, lr=1e-2, min_8bit_size=0), ("exp_avg", "exp_avg_sq"))


LIGHTSB_STEPS = 3


def lightsb_fit():
    torch.manual_seed(0)
    model = LightSB(3, 6, epsilon=0.3, S_init=0.5)
    x0, x1 = torch.randn(40, 3), torch.randn(40, 3) + 1
    fit(model, lambda n: x0[:n], lambda n: x1[:n], steps=LIGHTSB_STEPS, batch_size=40, lr=5e-2)
    with torch.no_grad():
        weights = model.mixture_weights(x0)
    return [p.detach() for p in model.parameters()] + [weights]


def spd_roots():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(4, 9, 18, generator=gen)
    return list(sqrt_and_invsqrt(A @ A.mT / 18 + 0.1 * torch.eye(9)))


def run_with(mode, workload, monkeypatch):
    monkeypatch.setenv("WORKBENCH_KERNELS", mode)
    return workload()


# ------------------------------------------------------------------------------------------------- the switch


@pytest.mark.parametrize("value", ["cuda", "", "Triton"])
def test_a_bad_value_of_the_switch_is_a_clear_error(value, monkeypatch):
    monkeypatch.setenv("WORKBENCH_KERNELS", value)
    allowed = "is not allowed: choose one of auto, torch, triton"
    with pytest.raises(ValueError, match=rf"WORKBENCH_KERNELS='{value}' {allowed}"):
        lion_steps()


@pytest.mark.parametrize("mode, cuda, cpu", [("auto", True, False), ("torch", False, False), ("triton", True, True)])
def test_the_switch_decides_where_kernels_run(mode, cuda, cpu, monkeypatch):
    """CUDA unless torch; the CPU with triton, and only while the interpreter is on (else Triton cannot run there)."""
    monkeypatch.setenv("WORKBENCH_KERNELS", mode)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert selfcheck.triton_runs_on(torch.device("cuda", 0)) == cuda
    assert selfcheck.triton_runs_on(CPU) == cpu
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not selfcheck.triton_runs_on(CPU)
    monkeypatch.delenv("WORKBENCH_KERNELS")
    assert selfcheck.mode() == "auto"


@interpreter_only
@pytest.mark.parametrize("workload, kernels", [
    (lion_steps, {"lion_triton": 2}),  # a launch a step
    (adamw8bit_steps, {"adamw8bit_triton": 2}),
    (spd_roots, {"spd_sqrt_triton": 1}),
    (lightsb_fit, {"lightsb_lse_triton": 4 * LIGHTSB_STEPS + 1}),  # a step: log c_θ, log v_θ and their η-gradients
], ids=["lion", "adamw8bit", "spd_sqrt", "lightsb_fit"])
def test_with_the_switch_on_triton_the_methods_and_optimizers_run_through_the_kernels(workload, kernels, launches,
                                                                                       monkeypatch):
    """WORKBENCH_KERNELS=triton: Lion and AdamW8bit steps, SPD square roots and a short LightSB fit launch their
    kernels (after the self-check, run first here so that its own launches are not counted) and end where the
    references do (WORKBENCH_KERNELS=torch, which launches nothing): the optimizers bit for bit (float32; AdamW8bit's
    reference on a CPU is its numba pass), the others within the kernels' float32 rounding."""
    monkeypatch.setenv("WORKBENCH_KERNELS", "triton")
    for kernel in ("lion", "adamw8bit", "spd_sqrt", "lightsb_lse"):
        assert selfcheck.passes(kernel, torch.float32, CPU)
    launches.clear()
    got = workload()
    assert launches == kernels
    launches.clear()
    expected = run_with("torch", workload, monkeypatch)
    assert launches == {}
    exact = workload in (lion_steps, adamw8bit_steps)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0 if exact else 1e-4, atol=0 if exact else 1e-5)


# ------------------------------------------------------------------------------------------- the self-check


def fma_rounding_twice(self, x, y, z):
    """The interpreter's own fma, x·y + z in float32 with two roundings: a device whose arithmetic is not the one the
    kernel was written for (tests/triton_interpreter.py gives the interpreter a GPU's single rounding)."""
    return TensorHandle(x.data * y.data + z.data, z.dtype.scalar)


def compile_error(*args, **kwargs):
    raise RuntimeError("PTX assembly aborted: out of resource (simulated)")


def wrong_by(relative, fn):
    """fn with its first output scaled by 1 + relative: a kernel that computes something slightly wrong."""

    def wrong(*args, **kwargs):
        out = fn(*args, **kwargs)
        return (out[0] * (1 + relative), *out[1:]) if isinstance(out, tuple) else out * (1 + relative)

    return wrong


BREAKAGES = {  # kernel: (workload, what breaks it: (owner, attribute, replacement of the original))
    "lion": (lion_steps, (InterpreterBuilder, "create_fma", lambda original: fma_rounding_twice)),
    "adamw8bit": (adamw8bit_steps, (adamw8bit_triton, "adamw8bit_triton_", lambda original: compile_error)),
    "lightsb_lse": (lightsb_fit, (lightsb_lse_triton, "mixture_logsumexp_triton", lambda fn: wrong_by(1e-4, fn))),
    "spd_sqrt": (spd_roots, (spd_sqrt_triton, "newton_schulz_triton", lambda fn: wrong_by(1e-4, fn))),
}


@interpreter_only
@pytest.mark.parametrize("kernel", BREAKAGES)
def test_a_broken_kernel_warns_once_and_the_reference_runs_in_its_place(kernel, fresh_verdicts, launches,
                                                                        monkeypatch):
    """A kernel that computes differently on this device (one rounding off), fails to compile, or is slightly wrong:
    its self-check warns once, naming the kernel, the device and the error, and from then on the work equals
    WORKBENCH_KERNELS=torch's exactly (a second run: no new warning, no new probe)."""
    workload, (owner, name, breaking) = BREAKAGES[kernel]
    expected = run_with("torch", workload, monkeypatch)
    monkeypatch.setattr(owner, name, breaking(getattr(owner, name)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_with("triton", workload, monkeypatch)
    fallbacks = [w for w in caught if issubclass(w.category, KernelFallbackWarning)]
    assert len(fallbacks) == 1
    message = str(fallbacks[0].message)
    assert f"the {kernel} kernel failed its self-check for torch.float32 on cpu (Triton's interpreter)" in message
    assert ("PTX assembly aborted" if kernel == "adamw8bit" else "AssertionError") in message
    assert selfcheck._verdicts == {(kernel, torch.float32, CPU): False}
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    launches.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelFallbackWarning)
        again = workload()
    assert launches == {}  # no probe, no kernel
    for a, b in zip(again, expected, strict=True):
        assert torch.equal(a, b)


@interpreter_only
def test_the_self_check_runs_once_per_kernel_dtype_and_device(fresh_verdicts, monkeypatch):
    """Lion over float32 and bfloat16 parameters, three steps: two probes, one per dtype."""
    probed = []
    probe = selfcheck._probes["lion"]
    monkeypatch.setitem(selfcheck._probes, "lion", lambda dtype, device: probed.append((dtype, device)) or
                        probe(dtype, device))
    monkeypatch.setenv("WORKBENCH_KERNELS", "triton")
    params = [torch.nn.Parameter(torch.ones(5, dtype=dtype)) for dtype in (torch.float32, torch.bfloat16)]
    opt = Lion(params)
    for _ in range(3):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    assert sorted(probed, key=str) == [(torch.bfloat16, CPU), (torch.float32, CPU)]
    assert selfcheck._verdicts == {("lion", torch.bfloat16, CPU): True, ("lion", torch.float32, CPU): True}


def test_the_self_check_report(fresh_verdicts, monkeypatch, capsys):
    """`python -m workbench.kernels.selfcheck`: every registered probe in every dtype, as a table; exit status 1
    when one fails (here with two stand-in probes)."""

    def bad(dtype, device):
        if dtype == torch.float16:
            raise AssertionError("Tensor-likes are not close!")

    monkeypatch.setattr(selfcheck, "_probes", {"good": lambda dtype, device: None, "bad": bad})
    monkeypatch.setattr(sys, "argv", ["selfcheck", "--device", "cpu"])
    with pytest.raises(SystemExit) as exit_status:
        selfcheck_report.main()
    assert exit_status.value.code == 1
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| good") or
            line.startswith("| bad")]
    verdicts = [row.split(" | ")[:3] for row in rows]
    assert verdicts == [["| bad", "float32", "pass"], ["| bad", "bfloat16", "pass"],
                        ["| bad", "float16", "FAIL: workbench.kernels: the bad kernel failed its self-check for "
                         "torch.float16 on cpu (Triton's interpreter): AssertionError: Tensor-likes are not close! "
                         "The torch reference runs in its place for the rest of this process (as with "
                         "WORKBENCH_KERNELS=torch)."],
                        ["| good", "float32", "pass"], ["| good", "bfloat16", "pass"], ["| good", "float16", "pass"]]


@pytest.mark.slow
def test_python_m_selfcheck_runs_the_report_over_every_family():
    """`python -m workbench.kernels.selfcheck`, the README's command, reaches `selfcheck_report.main`, and importing
    that module registers the probe of every kernel family (fresh processes: this file imports the families)."""
    command = subprocess.run([sys.executable, "-m", "workbench.kernels.selfcheck", "--help"], capture_output=True,
                             text=True, timeout=600)
    assert command.returncode == 0, command.stderr
    assert "Run the kernels' self-checks and print their verdicts." in command.stdout
    kernels = subprocess.run([sys.executable, "-c", "from workbench.kernels import selfcheck, selfcheck_report; "
                              "print(*selfcheck.registered())"], capture_output=True, text=True, timeout=600)
    assert kernels.stdout.split() == ["adamw8bit", "lightsb_lse", "lion", "spd_sqrt"], kernels.stderr

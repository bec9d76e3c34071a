"""Batched SPD square roots by coupled Newton–Schulz (workbench.kernels.spd_sqrt_triton) against float64 eigh.

Without CUDA the kernel runs through Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1)."""
import math

import pytest
import torch

from workbench.kernels import spd_sqrt
from workbench.kernels.spd_sqrt import ACCEPT, sqrt_and_invsqrt, sqrt_and_invsqrt_reference
from workbench.kernels.spd_sqrt_triton import newton_schulz_triton


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# the interpreter's numpy reports the overflow of the iterations that diverge on purpose below
diverges = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def spd(batch, n, kappa, seed=0, scale=3.0):
    """SPD matrices Q diag(λ) Qᵀ with Haar Q and λ log-spaced from scale down to scale/κ, float32 (batch, n, n)."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(batch, n, n, dtype=torch.float64, generator=gen))
    lam = scale * torch.logspace(0, -math.log10(kappa), n, dtype=torch.float64).expand(batch, n)
    return ((Q * lam.unsqueeze(-2)) @ Q.mT).float().to(DEVICE)


def relative_errors(X, S, S_inv):
    """max over the batch of ‖S − X^½‖_F / ‖X^½‖_F and likewise for X^{−½}, truth by float64 eigh of X."""
    lam, U = torch.linalg.eigh(X.double())
    truth = [(U * lam.pow(p).unsqueeze(-2)) @ U.mT for p in (0.5, -0.5)]
    return [((A.double() - T).norm(dim=(-2, -1)) / T.norm(dim=(-2, -1))).max().item()
            for A, T in zip((S, S_inv), truth)]


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 33, 64])
@pytest.mark.parametrize("kappa", [10.0, 1e4])
def test_newton_schulz_matches_float64_eigh(n, kappa):
    X = spd(3, n, kappa, seed=n)
    S, S_inv, rho = newton_schulz_triton(X)
    assert S.dtype == S_inv.dtype == torch.float32 and rho.shape == (3,)
    sqrt_error, inv_error = relative_errors(X, S, S_inv)
    assert sqrt_error < 1e-5 and inv_error < (2e-6 if kappa == 10 else 3e-4)
    assert (rho <= ACCEPT).all()


@diverges
def test_the_docstring_accuracy_at_large_condition_numbers():
    """κ = 10⁶: X^½ to 3e-5 and X^{−½} to 1e-2 (float32 eigh: 2e-4 and 1e-1); κ = 10¹² is not numerically
    SPD in float32, and the residual says so (at κ = 10⁹, the edge, some draws still end below ACCEPT)."""
    X = spd(2, 64, 1e6)
    S, S_inv, rho = newton_schulz_triton(X)
    sqrt_error, inv_error = relative_errors(X, S, S_inv)
    assert sqrt_error < 3e-5 and inv_error < 1e-2 and (rho <= ACCEPT).all()
    _, _, rho = newton_schulz_triton(spd(2, 16, 1e12))
    assert not (rho <= ACCEPT).any()


def test_products_through_memory_equal_the_products_from_registers():
    """Past n = 32 each product takes its operands through the program's output matrices, between barriers of its
    threads: the same numbers, bit for bit, as from the registers that hold them (on a GPU, a missing barrier
    would show here)."""
    from workbench.kernels import spd_sqrt_triton as kernel

    n, X = 40, spd(2, 40, 100.0, seed=4)
    results = []
    for through_memory in (False, True):
        S, S_inv, rho = torch.empty_like(X), torch.empty_like(X), torch.empty(2, device=DEVICE)
        kernel._newton_schulz_kernel[(2,)](X, S, S_inv, rho, n, MAX_ITER=kernel.MAX_ITER, TOL=kernel.TOL,
                                           STALL=kernel.STALL, BLOCK=64, THROUGH_MEMORY=through_memory,
                                           PRECISION=kernel.PRECISION, num_warps=16)
        results.append((S, S_inv, rho))
    assert (results[0][2] <= ACCEPT).all()
    for register_path, memory_path in zip(*results):
        assert torch.equal(register_path, memory_path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
    X = spd(3, 17, 10.0).to(dtype)
    S, S_inv, _ = newton_schulz_triton(X)
    assert S.dtype == S_inv.dtype == dtype
    S_ref, S_inv_ref = sqrt_and_invsqrt_reference(X)  # eigh in float32 of the same half values
    tol = 1e-2 if dtype == torch.float16 else 3e-2
    torch.testing.assert_close(S.float(), S_ref.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(S_inv.float(), S_inv_ref.float(), rtol=tol, atol=tol)


def test_leading_dimensions_and_an_empty_batch():
    X = spd(6, 9, 100.0).reshape(2, 3, 9, 9)
    S, S_inv, rho = newton_schulz_triton(X)
    assert S.shape == S_inv.shape == (2, 3, 9, 9) and rho.shape == (2, 3)
    torch.testing.assert_close(S @ S, X, rtol=1e-5, atol=1e-5)
    S, S_inv, rho = newton_schulz_triton(X[:0, 0])
    assert S.shape == (0, 9, 9) and rho.shape == (0,)
    with pytest.raises(ValueError, match=r"1 <= n <= 64"):
        newton_schulz_triton(torch.eye(65, device=DEVICE))


@diverges
def test_dispatch_recomputes_rejected_matrices_by_eigh(monkeypatch):
    """An indefinite matrix and a κ = 10¹² one fail the residual check and get eigh's answer; the rest keep
    Newton–Schulz's."""
    monkeypatch.setattr(spd_sqrt, "_use_kernel", lambda X: True)
    X = spd(4, 16, 10.0)
    X[1] = spd(1, 16, 1e12)[0]
    X[2] -= 2 * torch.eye(16, device=DEVICE)  # indefinite
    S, S_inv = sqrt_and_invsqrt(X)
    S_ref, S_inv_ref = sqrt_and_invsqrt_reference(X)
    for i in (1, 2):
        assert torch.equal(S[i], S_ref[i]) and torch.equal(S_inv[i], S_inv_ref[i])
    S_ns, S_inv_ns, _ = newton_schulz_triton(X)
    for i in (0, 3):
        assert torch.equal(S[i], S_ns[i]) and torch.equal(S_inv[i], S_inv_ns[i])
        torch.testing.assert_close(S[i], S_ref[i], rtol=1e-5, atol=1e-5)


def test_dispatch_keeps_eigh_where_the_kernel_does_not_apply():
    """float64, or a graph to differentiate: the reference, with its Daleckii–Krein backward."""
    X = spd(2, 5, 10.0).double().requires_grad_()
    S, S_inv = sqrt_and_invsqrt(X)
    S_ref, S_inv_ref = sqrt_and_invsqrt_reference(X)
    assert S.dtype == torch.float64 and torch.equal(S, S_ref) and torch.equal(S_inv, S_inv_ref)
    (S.sum() + S_inv.sum()).backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()


def test_the_spd_geometry_and_batch_norm_take_their_square_roots_through_the_dispatch(monkeypatch):
    """With the kernel chosen (as on CUDA), the BW transport map and an eval-mode GBWBN use Newton–Schulz and
    agree with their eigh results."""
    from workbench.methods.spd import SPDBatchNorm, transport_map

    calls = []
    monkeypatch.setattr(spd_sqrt, "_use_kernel", lambda X: calls.append(X.shape) or not X.requires_grad)
    A, B = spd(3, 6, 10.0), spd(3, 6, 10.0, seed=1)
    T = transport_map(A, B)
    assert calls, "transport_map did not go through the dispatch"
    calls.clear()
    bn = SPDBatchNorm(6, metric="gbw", theta=0.5).to(DEVICE).eval()
    with torch.no_grad():
        Y = bn(A)
    assert calls, "SPDBatchNorm did not go through the dispatch"
    monkeypatch.setattr(spd_sqrt, "_use_kernel", lambda X: False)  # the eigh reference
    torch.testing.assert_close(T, transport_map(A, B), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(Y, bn(A), rtol=1e-4, atol=1e-4)

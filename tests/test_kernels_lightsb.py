"""The fused LightSB mixture log-sum-exp (workbench.kernels.lightsb_lse_triton) against its torch reference.

Without CUDA the kernels run through Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1), with
16-wide tiles so that the small irregular shapes below still span several blocks in N, K and D."""
import pytest
import torch

from workbench.kernels import lightsb_lse
from workbench.kernels.lightsb_lse import logsumexp_reference, weights_reference
from workbench.kernels.lightsb_lse_triton import Blocks, mixture_logsumexp_triton, mixture_weights_triton
from workbench.methods.lightsb import LightSB, fit


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SMALL = Blocks(16, 16, 16)
SHAPES = [(37, 21, 19), (1, 1, 1), (5, 1, 3), (20, 33, 1), (16, 16, 16), (50, 40, 40)]  # (N, K, D)
HALF_TOL = {torch.float16: 2e-3, torch.bfloat16: 2e-2}  # relative, on lse (the output's rounding)


def problem(N, K, D, kind="potential", dtype=torch.float32, seed=0):
    """x (N, D) and η (K, 2D + 1) of a random diagonal LightSB: its log c_θ ("normalizer") or log v_θ terms."""
    torch.manual_seed(seed)
    model = LightSB(D, K, epsilon=0.5, S_init=0.5)
    with torch.no_grad():
        model.S_log_diagonal.add_(0.3 * torch.randn(K, D))
        model.log_alpha_raw.add_(0.2 * torch.randn(K))
        s, U = model._eigen()
        eta = model._mixture_eta(s, U) if kind == "normalizer" else model._potential_eta(s, U)
    x = torch.randn(N, D)
    return x.to(DEVICE, dtype), eta.to(DEVICE, dtype)


@pytest.mark.parametrize("kind", ["normalizer", "potential"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_logsumexp_and_weights_match_the_reference(shape, kind):
    x, eta = problem(*shape, kind)
    expected = logsumexp_reference(x.double(), eta.double())  # (N,)
    lse = mixture_logsumexp_triton(x, eta, SMALL)
    assert lse.dtype == torch.float32 and lse.shape == (shape[0],)
    torch.testing.assert_close(lse.double(), expected, rtol=1e-5, atol=1e-5)
    weights = mixture_weights_triton(x, eta, SMALL)  # (N, K)
    torch.testing.assert_close(weights.double(), weights_reference(x.double(), eta.double()), rtol=1e-4, atol=1e-6)


def assert_gradients_match(x, eta, blocks):
    """∂/∂x and ∂/∂η of Σ_n g_n lse_n by the kernels (tiles `blocks`) against autograd through the float64 reference."""
    g = torch.randn(x.shape[0], device=DEVICE)
    x64, eta64 = x.double().requires_grad_(), eta.double().requires_grad_()
    dx_ref, deta_ref = torch.autograd.grad(logsumexp_reference(x64, eta64), (x64, eta64), g.double())
    x, eta = x.requires_grad_(), eta.requires_grad_()
    dx, deta = torch.autograd.grad(mixture_logsumexp_triton(x, eta, blocks), (x, eta), g)
    scale_x, scale_eta = dx_ref.abs().max().item(), deta_ref.abs().max().item()
    torch.testing.assert_close(dx.double(), dx_ref, rtol=1e-4, atol=1e-5 * max(scale_x, 1))
    torch.testing.assert_close(deta.double(), deta_ref, rtol=1e-4, atol=1e-5 * max(scale_eta, 1))


@pytest.mark.parametrize("shape", [(70, 65, 20), (40, 33, 5)], ids=str)
def test_default_tiles_match_the_reference(shape):
    """The dispatch's tiles, per kernel: a gradient program writes 64 columns of D past D = 16 (here 20 of them,
    the rest masked) while its products step through D by 16, and 16 columns up to D = 16."""
    x, eta = problem(*shape)
    torch.testing.assert_close(mixture_logsumexp_triton(x, eta).double(),
                               logsumexp_reference(x.double(), eta.double()), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixture_weights_triton(x, eta).double(), weights_reference(x.double(), eta.double()),
                               rtol=1e-4, atol=1e-6)
    assert_gradients_match(x, eta, None)


def test_gradient_programs_wider_than_the_products_step():
    """BLOCK_O = 32 columns of D per gradient program (the second one 8 wide), the products over D in steps of 16."""
    assert_gradients_match(*problem(50, 40, 40), Blocks(16, 16, 16, 32))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
    x, eta = problem(37, 21, 19, dtype=dtype)
    lse = mixture_logsumexp_triton(x, eta, SMALL)
    weights = mixture_weights_triton(x, eta, SMALL)
    assert lse.dtype == weights.dtype == dtype
    expected = logsumexp_reference(x.double(), eta.double())  # the same half values, exactly
    torch.testing.assert_close(lse.double(), expected, rtol=HALF_TOL[dtype], atol=HALF_TOL[dtype])
    torch.testing.assert_close(weights.double(), weights_reference(x.double(), eta.double()),
                               rtol=HALF_TOL[dtype], atol=HALF_TOL[dtype] / 10)


@pytest.mark.parametrize("kind", ["normalizer", "potential"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradients_match_autograd_through_the_reference(shape, kind):
    assert_gradients_match(*problem(*shape, kind), SMALL)


def test_eta_gradient_alone_skips_the_x_kernel():
    """Training LightSB differentiates η only: the backward returns no x gradient (and launches no x kernel)."""
    x, eta = problem(37, 21, 19)
    eta.requires_grad_()
    (deta,) = torch.autograd.grad(mixture_logsumexp_triton(x, eta, SMALL).sum(), eta)
    eta64 = eta.detach().double().requires_grad_()
    (deta_ref,) = torch.autograd.grad(logsumexp_reference(x.double(), eta64).sum(), eta64)
    torch.testing.assert_close(deta.double(), deta_ref, rtol=1e-4, atol=1e-4)


@pytest.fixture
def kernel_everywhere(monkeypatch):
    """Route LightSB's diagonal path through the kernel on this device (the interpreter on a CPU)."""
    monkeypatch.setattr(lightsb_lse, "_use_kernel", lambda x, eta: True)


def model_and_batches(seed=0):
    torch.manual_seed(seed)
    model = LightSB(3, 6, epsilon=0.3, S_init=0.5).to(DEVICE)
    return model, torch.randn(40, 3, device=DEVICE), torch.randn(40, 3, device=DEVICE) + 1


def test_lightsb_loss_and_gradients_through_the_kernel_match_the_torch_path(kernel_everywhere, monkeypatch):
    model, x0, x1 = model_and_batches()
    loss = model.loss(x0, x1)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    weights = model.mixture_weights(x0)  # parameters require grad: the reference
    with torch.no_grad():
        weights_kernel = model.mixture_weights(x0)  # no graph: the kernel
    monkeypatch.setattr(lightsb_lse, "_use_kernel", lambda x, eta: False)
    loss_ref = model.loss(x0, x1)
    grads_ref = torch.autograd.grad(loss_ref, list(model.parameters()))
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)
    assert weights.grad_fn is not None and weights_kernel.grad_fn is None
    torch.testing.assert_close(weights_kernel, weights, rtol=1e-5, atol=1e-6)


def test_fit_trains_through_the_kernel(monkeypatch):
    """Adam through the kernel's backward lowers L(θ) as through torch's (same steps, same batches)."""
    losses = {}
    for route in (True, False):
        monkeypatch.setattr(lightsb_lse, "_use_kernel", lambda x, eta, route=route: route)
        model, x0, x1 = model_and_batches(seed=1)
        before = model.loss(x0, x1).item()
        fit(model, lambda n: x0[:n], lambda n: x1[:n], steps=20, batch_size=40, lr=5e-2)
        losses[route] = before, model.loss(x0, x1).item()
    assert losses[True][1] < losses[True][0] - 0.1
    assert losses[True][1] == pytest.approx(losses[False][1], abs=1e-3)

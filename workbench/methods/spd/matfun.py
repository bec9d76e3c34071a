"""Matrix functions of symmetric matrices through one eigendecomposition, with a Daleckii–Krein backward,
and the Lyapunov solve with its implicit backward.

For X = U diag(λ) Uᵀ and a scalar function f, f(X) = U diag(f(λ)) Uᵀ. Its Fréchet derivative is given by
the Daleckii–Krein formula (Daleckii & Krein 1965; Bhatia, *Matrix Analysis*, Thm V.3.3):

    ∂L/∂X = U [K ∘ (Uᵀ sym(Ḡ) U)] Uᵀ,   K_ij = (f(λ_i) − f(λ_j)) / (λ_i − λ_j),   K_ii = f'(λ_i),

with Ḡ = ∂L/∂f(X). **Deliberate difference from the official GBWBN / Brooks code** (method note §4): there the
entry is set to 0 where the divided difference is 0/0 (tied eigenvalues), which is wrong at M = I (the metric's
initial value) and after ReEig clamps several eigenvalues to the same ε. Here every pair with
|λ_i − λ_j| ≤ tol · max(|λ_i|, |λ_j|) (tol = √eps of the dtype) uses the mean of f'(λ_i) and f'(λ_j), the
limit of the divided difference, so gradients are right (and finite) on ties and near-ties
(as yetanotherspdnet does). Several functions of one matrix share one eigendecomposition
(:func:`eig_functions`), and their backward sums the Daleckii–Krein terms.

The Lyapunov operator L_P[V] solves P Z + Z P = V (P SPD, V symmetric); with P = U diag(λ) Uᵀ,
Z = U [(Uᵀ V U)_ij / (λ_i + λ_j)] Uᵀ. Its backward is implicit (never through ``eigh``): with C = L_P[Ḡ],

    ∂L/∂V = C,   ∂L/∂P = −(C Z + Z C)        (P, Z symmetric).

Shapes: every function is batched over leading dimensions, (..., n, n) -> (..., n, n), float32 or float64.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

ScalarFn = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def sym(X: torch.Tensor) -> torch.Tensor:
    """The symmetric part ½ (X + Xᵀ): (..., n, n) -> (..., n, n)."""
    return 0.5 * (X + X.mT)


def tie_tolerance(dtype: torch.dtype) -> float:
    """Relative gap below which two eigenvalues count as tied: √eps (1.5e-8 in float64, 3.5e-4 in float32)."""
    return math.sqrt(torch.finfo(dtype).eps)


def divided_differences(lam: torch.Tensor, f_lam: torch.Tensor, df_lam: torch.Tensor) -> torch.Tensor:
    """The Loewner matrix K_ij = (f(λ_i) − f(λ_j)) / (λ_i − λ_j), and (f'(λ_i) + f'(λ_j)) / 2 on ties and near-ties
    (|λ_i − λ_j| ≤ √eps · max(|λ_i|, |λ_j|)). (..., n) -> (..., n, n)."""
    gap = lam.unsqueeze(-1) - lam.unsqueeze(-2)  # (..., n, n)
    scale = torch.maximum(lam.abs().unsqueeze(-1), lam.abs().unsqueeze(-2))  # (..., n, n)
    tied = gap.abs() <= tie_tolerance(lam.dtype) * scale.clamp_min(torch.finfo(lam.dtype).tiny)
    quotient = (f_lam.unsqueeze(-1) - f_lam.unsqueeze(-2)) / torch.where(tied, torch.ones_like(gap), gap)
    return torch.where(tied, 0.5 * (df_lam.unsqueeze(-1) + df_lam.unsqueeze(-2)), quotient)


def _compose(U: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """U diag(d) Uᵀ: (..., n, n), (..., n) -> (..., n, n)."""
    return (U * d.unsqueeze(-2)) @ U.mT


class _EigFunctions(torch.autograd.Function):
    """(f_1(X), ..., f_k(X)) from one ``eigh``; Daleckii–Krein backward with f' on ties."""

    @staticmethod
    def forward(ctx, X, fns):
        lam, U = torch.linalg.eigh(X)  # (..., n), (..., n, n)
        outputs = tuple(_compose(U, f(lam)) for f, _ in fns)
        ctx.fns = fns
        ctx.save_for_backward(lam, U)
        return outputs

    @staticmethod
    def backward(ctx, *grads):
        lam, U = ctx.saved_tensors
        inner = torch.zeros_like(U)  # Σ_k K_k ∘ (Uᵀ sym(Ḡ_k) U), (..., n, n)
        for (f, df), grad in zip(ctx.fns, grads):
            if grad is None:
                continue
            K = divided_differences(lam, f(lam), df(lam))  # (..., n, n)
            inner = inner + K * (U.mT @ sym(grad) @ U)
        return U @ inner @ U.mT, None


def eig_functions(X: torch.Tensor, fns: tuple[ScalarFn, ...]) -> tuple[torch.Tensor, ...]:
    """f_k(X) = U diag(f_k(λ)) Uᵀ for each (f_k, f_k') in ``fns``, from one eigendecomposition of sym(X).
    Differentiable (Daleckii–Krein, f' on near-ties). (..., n, n) -> tuple of (..., n, n)."""
    return _EigFunctions.apply(sym(X), tuple(fns))


def eig_function(X: torch.Tensor, f, df) -> torch.Tensor:
    """f(X) for symmetric X with the Daleckii–Krein backward; (..., n, n) -> (..., n, n)."""
    return eig_functions(X, ((f, df),))[0]


# --- the scalar functions, with their derivatives ----------------------------------------------------------
# Eigenvalues are floored where the function needs them positive, so round-off negatives (float32 at κ ≳ 1e7)
# give finite values; below the floor the function is constant and its derivative 0.

def _floor(lam: torch.Tensor) -> torch.Tensor:
    """The floor for positive-only functions: eps · max|λ| per matrix (and at least the dtype's tiny)."""
    top = lam.abs().amax(dim=-1, keepdim=True)  # (..., 1)
    return (torch.finfo(lam.dtype).eps * top).clamp_min(torch.finfo(lam.dtype).tiny)


def _power_pair(p: float) -> ScalarFn:
    def f(lam):
        return torch.maximum(lam, _floor(lam)).pow(p)

    def df(lam):
        floor = _floor(lam)
        return torch.where(lam > floor, p * torch.maximum(lam, floor).pow(p - 1), torch.zeros_like(lam))
    return f, df


SQRT = _power_pair(0.5)
INV_SQRT = _power_pair(-0.5)
LOG = (lambda lam: torch.maximum(lam, _floor(lam)).log(),
       lambda lam: torch.where(lam > _floor(lam), 1 / torch.maximum(lam, _floor(lam)), torch.zeros_like(lam)))
EXP = (torch.exp, torch.exp)
ABS = (torch.abs, torch.sign)


def sqrtm(X: torch.Tensor) -> torch.Tensor:
    """X^½ of an SPD (or PSD) matrix; (..., n, n) -> (..., n, n)."""
    return eig_function(X, *SQRT)


def invsqrtm(X: torch.Tensor) -> torch.Tensor:
    """X^{−½} of an SPD matrix; (..., n, n) -> (..., n, n)."""
    return eig_function(X, *INV_SQRT)


def sqrtm_invsqrtm(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X^½, X^{−½}) from one eigendecomposition; (..., n, n) -> 2 × (..., n, n)."""
    return eig_functions(X, (SQRT, INV_SQRT))


def logm(X: torch.Tensor) -> torch.Tensor:
    """The principal logarithm of an SPD matrix; (..., n, n) -> (..., n, n)."""
    return eig_function(X, *LOG)


def expm(X: torch.Tensor) -> torch.Tensor:
    """The exponential of a symmetric matrix; (..., n, n) -> (..., n, n)."""
    return eig_function(X, *EXP)


def powm(X: torch.Tensor, p: float) -> torch.Tensor:
    """X^p of an SPD matrix for a real p (fixed, not learned); (..., n, n) -> (..., n, n)."""
    return eig_function(X, *_power_pair(float(p)))


def powm_learnable(X: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """X^p = exp(p log X) with gradients to both X and the tensor exponent p (two eigendecompositions)."""
    return expm(p * logm(X))


def clampm(X: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """U max(λ, ε) Uᵀ (ReEig, Huang & Van Gool 2017); f' = 1 above ε, 0 below. ``eps`` a number or a
    (..., 1) tensor (one threshold per matrix). (..., n, n) -> (..., n, n)."""
    return eig_function(X, lambda lam: torch.maximum(lam, torch.as_tensor(eps, dtype=lam.dtype, device=lam.device)),
                        lambda lam: (lam > torch.as_tensor(eps, dtype=lam.dtype, device=lam.device)).to(lam.dtype))


def absm(X: torch.Tensor) -> torch.Tensor:
    """|X| = U |Λ| Uᵀ = (X²)^½ of a symmetric matrix; (..., n, n) -> (..., n, n)."""
    return eig_function(X, *ABS)


def trace_sqrtm(X: torch.Tensor) -> torch.Tensor:
    """tr X^½ = Σ √λ_i of a PSD matrix (round-off negatives clamped to 0); (..., n, n) -> (...,).
    Without autograd it uses ``eigvalsh`` only; with autograd its gradient is ½ X^{−½} (through :func:`sqrtm`)."""
    if torch.is_grad_enabled() and X.requires_grad:
        return sqrtm(X).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.linalg.eigvalsh(sym(X)).clamp_min(0).sqrt().sum(-1)


def sqrtm_near_diagonal(Z: torch.Tensor, target: float, start: torch.Tensor | None = None,
                        steps: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Z^½ of SPD matrices Z that are close to diagonal (no autograd), by the chord Newton iteration: Newton's step
    for S² = Z with its Sylvester operator S E + E S frozen at D = diag(z_11, ..., z_nn)^½, so solved entrywise,

        S_{k+1} = S_k + (Z − S_k²) ⊘ (d_i + d_j),

    from S_0 = D or from S_0 = μ ``start`` (an earlier root of a nearby Z, in the same basis), rescaled to the right
    Frobenius norm, μ² = tr Z / ‖start‖²_F. It converges linearly, at a rate of the order of Z's off-diagonal part
    relative to the d_i + d_j, from an initial error of the size of Z's change since ``start``. A matrix has
    converged once a correction is at most ``target`` · ‖Z^½‖_F (‖Z^½‖²_F = tr Z); the iteration ends when every
    matrix has converged or stalled (a correction above a quarter of the one before), or after ``steps`` steps.
    Z, start (K, n, n) -> S (K, n, n), converged (K,) bool."""
    z = Z.diagonal(dim1=-2, dim2=-1)  # (K, n)
    d = z.clamp_min(0).sqrt()
    denominator = d.unsqueeze(-1) + d.unsqueeze(-2)  # (K, n, n)
    threshold = target * d.norm(dim=-1)  # (K,)
    if start is None:
        S = torch.diag_embed(d)
    else:
        S = start * (z.sum(-1) / start.square().sum((-2, -1))).sqrt()[:, None, None]
    converged = torch.zeros_like(threshold, dtype=torch.bool)
    last = torch.full_like(threshold, float("inf"))
    for _ in range(steps):
        E = torch.baddbmm(Z, S, S, alpha=-1).div_(denominator)  # (Z − S²) ⊘ (d_i + d_j)
        S.add_(E)
        size = E.norm(dim=(-2, -1))  # (K,)
        converged |= size <= threshold
        if bool((converged | (size > 0.25 * last)).all()):
            break
        last = size
    return S, converged


# --- Lyapunov ----------------------------------------------------------------------------------------------

def _lyap_solve(lam: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """U [(Uᵀ V U)_ij / (λ_i + λ_j)] Uᵀ, the solution of P Z + Z P = V for P = U diag(λ) Uᵀ."""
    return U @ ((U.mT @ V @ U) / (lam.unsqueeze(-1) + lam.unsqueeze(-2))) @ U.mT


def sum_to_shape(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape`` (the leading dimensions a broadcast added or expanded)."""
    while t.dim() > len(shape):
        t = t.sum(0)
    for axis, size in enumerate(shape):
        if size == 1 and t.shape[axis] != 1:
            t = t.sum(axis, keepdim=True)
    return t


class _Lyapunov(torch.autograd.Function):
    @staticmethod
    def forward(ctx, P, V):
        lam, U = torch.linalg.eigh(P)  # (..., n), (..., n, n): one decomposition per P, broadcast over V
        lam = torch.maximum(lam, _floor(lam))  # round-off negatives (float32 at κ ≳ 1e7)
        Z = _lyap_solve(lam, U, V)
        ctx.save_for_backward(lam, U, Z)
        ctx.shapes = P.shape, V.shape
        return Z

    @staticmethod
    def backward(ctx, grad):
        lam, U, Z = ctx.saved_tensors
        C = _lyap_solve(lam, U, grad)  # L_P[Ḡ] (L_P is self-adjoint)
        dP = sym(-(C @ Z.mT + Z.mT @ C))
        return sum_to_shape(dP, ctx.shapes[0]), sum_to_shape(C, ctx.shapes[1])


def lyap(P: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """L_P[V]: the solution Z of P Z + Z P = V for SPD P, with the implicit backward ∂L/∂V = L_P[Ḡ],
    ∂L/∂P = −(L_P[Ḡ] Z + Z L_P[Ḡ]). P (..., n, n), V (..., n, n), broadcast -> (..., n, n)."""
    return _Lyapunov.apply(sym(P), V)

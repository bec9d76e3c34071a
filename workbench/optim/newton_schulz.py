"""Newton–Schulz orthogonalization, shared by Muon and COSMOS.

For G ∈ R^{m×n} with SVD G = U S Vᵀ, the zeroth power G⁰ = U Vᵀ is the nearest semi-orthogonal
matrix. Keller Jordan's quintic iteration (https://kellerjordan.github.io/posts/muon/) approximates
it with matrix products only:

    X₀ = G / ‖G‖_F                        (so every singular value is ≤ 1)
    X_{k+1} = a·X_k + b·A_k X_k + c·A_k² X_k,   A_k = X_k X_kᵀ,   (a, b, c) = (3.4445, −4.7750, 2.0315)

Each step maps every singular value s of X_k to p(s) = a·s + b·s³ + c·s⁵ and keeps U and V, so after
k steps X_k = U p^{∘k}(S/‖G‖_F) Vᵀ. The coefficients maximize the slope at 0 rather than converge:
five steps map every s/‖G‖_F in [0.01, 1] into [0.68, 1.14] (from 0.001: into [0.47, 1.21]) instead
of onto 1, which Muon's author found not to hurt. X is transposed to be wide (m ≤ n) so that A is
the smaller Gram matrix, and the iteration runs in bfloat16, as both references do.

The two references evaluate the polynomial differently; the results are equal in exact arithmetic
but round differently in bfloat16 (entries ~1e-2 apart), so `form` picks the reference to match
bit for bit:

    "muon"    torch.optim.Muon (torch 2.13 `_zeropower_via_newtonschulz`): transpose, X ← X / max(‖X‖, ε),
              then B = b·A + c·A·A (one addmm) and X ← a·X + B·X (one addmm)
    "cosmos"  COSMOS (`lliu606/COSMOS`@61de180 `zeropower_via_newtonschulz5`): X ← X / (‖X‖ + ε), transpose,
              then B = A·X and X ← a·X + b·B + (c·A)·B
"""

from __future__ import annotations

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
FORMS = ("muon", "cosmos")


def newton_schulz(
    G: torch.Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    form: str = "muon",
) -> torch.Tensor:
    """`steps` Newton–Schulz iterations on the matrix G (m, n); returns a new bfloat16 (m, n) tensor ≈ U Vᵀ.

    G itself is never modified (torch's version divides its bfloat16 input in place, which for a
    bfloat16 G is G itself)."""
    if G.ndim != 2:
        raise ValueError(f"Newton–Schulz needs a matrix, got a tensor of shape {tuple(G.shape)}")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not allowed: choose one of {FORMS}")
    a, b, c = coefficients
    tall = G.size(0) > G.size(1)
    X = G.bfloat16()
    if form == "muon":
        X = X.T if tall else X
        X = X / X.norm().clamp(min=eps)  # (k, l), k ≤ l
        for _ in range(steps):
            A = X @ X.T  # (k, k)
            B = torch.addmm(A, A, A, beta=b, alpha=c)  # b·A + c·A²
            X = torch.addmm(X, B, X, beta=a)  # a·X + B·X
    else:
        X = X / (X.norm() + eps)
        X = X.T if tall else X  # (k, l), k ≤ l
        for _ in range(steps):
            A = X @ X.T  # (k, k)
            B = A @ X  # (k, l)
            X = a * X + b * B + c * A @ B  # (c·A)·B, as the reference's precedence has it
    return X.T if tall else X

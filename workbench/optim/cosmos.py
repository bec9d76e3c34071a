"""COSMOS: SOAP-like adaptivity on a leading eigen-subspace, Muon on the rest (Liu et al. 2025, "COSMOS: A
Hybrid Adaptive Optimizer for Memory-Efficient Training of LLMs", arXiv 2502.17410; conventions of the
official `lliu606/COSMOS`@61de180 `COSMOS_optim.py`; the method note's §8).

For each matrix W ∈ R^{m×n} with m ≤ 10000 rows in a group with a `rank` r (1 ≤ r ≤ n), G its gradient,
t the parameter's update count (1-based), bc1 = Σ_{k<t} β1^k = (1 − β1^t)/(1 − β1), bc2 = 1 − β2^t:

    M ← β1·M + G                                              momentum, a sum (not an average)
    subspace P ∈ R^{n×r} (orthonormal columns) and its r×r second moment S:
        t = 1:  P = top-r eigenvectors of GᵀG (SVD),   S = (1 − β2)·(GP)ᵀ(GP)
        t > 1:  P' = QR(β2·P S + (1 − β2)·Gᵀ(G P)),   T = Pᵀ P',
                S ← β2·Tᵀ S T + (1 − β2)·(GP')ᵀ(GP'),   P ← P'   (one step of Oja-like power iteration)
    V ← β2·V + (1 − β2)·(G P)²                                Adam's second moment in the subspace (m×r)
    Ĝ = (G + β1·M) / (1 + β1·bc1)   (nesterov)   or   Ĝ = M / bc1
    U1 = [ĜP / (√(V/bc2) + ε)] Pᵀ                             Adam on the leading subspace
    U2 = NS₅(Ĝ − ĜPPᵀ),  U2 ← √(mn)·U2 / (‖U2‖_F + ε)         Muon on the rest (`newton_schulz`, form "cosmos")
    U = U1 + γ·U2
    W ← W·(1 − lr·λ) − lr·lr_ratio·√(mn)·U / (‖U‖_F + ε)      (the decay only if λ > 0)

Every other parameter (vectors, tensors with more dimensions, matrices with more than 10000 rows, every
parameter of a group with rank=None) gets the reference's AdamW branch, which hard-codes 0.9:

    m ← β1·m + 0.1·g,   v ← β2·v + (1 − β2)·g²   (amsgrad: v̂ = max(v̂, v) in place of v)
    W ← W·(1 − lr·λ) − lr/(1 − 0.9^t) · m / (√(v/bc2) + ε)

so for β1 ≠ 0.9 (the README's β1 = 0.95) m̂ tends to 0.1/(1 − β1)·g, not g. Kept as the reference has it.

Defaults as the reference (lr 1e-3, betas (0.9, 0.999), ε 1e-8, lr_ratio 0.1, rank 64, λ 0, γ 0.2,
nesterov, no amsgrad); its README trains with lr 2e-3, betas (0.95, 0.95), λ 0.1, lr_ratio 0.2
("the ratio of learning rate for hidden layers to that for embedding layer"). With the reference's
op order the parameters agree bit for bit with an independent step-by-step transcription of its
update (test, the method note's §9 harness). The transcription is eager: the reference wraps its
Newton–Schulz in torch.compile, whose fused bfloat16 arithmetic rounds differently (the reference
compiled against itself eager: 2.5e-3 apart after those 20 steps, the parameters moving 0.05).

Deliberate differences from the reference:
- `lr_ratio`, `rank`, `gamma` and `nesterov` (the reference's `nestrov`) are per-group keys (the
  reference: optimizer-wide attributes); a group with rank=None is all AdamW. `rank` must satisfy
  1 ≤ r ≤ n for every matrix of the group (the reference fails with a shape error); no `maximize`.
- p.grad is left as it was (the reference overwrites it with Ĝ).
- The state keeps P as a compact n×r tensor: a copy of the SVD's first r columns, then QR's Q (the
  reference keeps a view of the first SVD's n×n U, and all of U with it, copying each new P into
  it). Both keep LAPACK's column-major order, so the products with P round as the reference's.
  The products G P, equal in the reference's several places, are computed once.
- No second moment, P or S is allocated for AdamW parameters, nor v̂ for matrices.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from workbench.optim.base import Optimizer
from workbench.optim.newton_schulz import newton_schulz
from workbench.optim.projectors import check_int

MAX_ROWS = 10000  # matrices with more rows (the reference's bound; large vocabularies) take the AdamW branch


def initial_subspace(G: torch.Tensor, rank: int, beta2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, S) at t = 1: P = the top-r left singular vectors of GᵀG (n, r), S = (1 − β2)·(PᵀGᵀ)(GP) (r, r)."""
    U, _, _ = torch.linalg.svd(G.T @ G, full_matrices=False)  # (n, n)
    P = U[:, :rank]
    P = torch.empty_like(P).copy_(P)  # compact, keeping U's column-major strides
    return P, torch.matmul(P.T @ G.T, G @ P) * (1 - beta2)


def tracked_subspace(G, P, S, beta2: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(P', S', G P') at t > 1: P' = QR(β2·P S + (1 − β2)·Gᵀ(G P)), T = Pᵀ P',
    S' = β2·Tᵀ S T + (1 − β2)·(GP')ᵀ(GP')."""
    P_new = beta2 * (P @ S) + (1 - beta2) * (G.T @ (G @ P))  # (n, r)
    P_new, _ = torch.linalg.qr(P_new, mode="reduced")
    T = P.T @ P_new  # (r, r)
    GP = G @ P_new  # (m, r)
    return P_new, beta2 * (T.T @ (S @ T)) + (1 - beta2) * (GP.T @ GP), GP


class COSMOS(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        lr_ratio: float = 0.1,
        rank: int | None = 64,
        weight_decay: float = 0.0,
        gamma: float = 0.2,
        nesterov: bool = True,
        amsgrad: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, lr_ratio=lr_ratio, rank=rank, weight_decay=weight_decay,
            gamma=gamma, nesterov=nesterov, amsgrad=amsgrad,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            if self._hybrid(group, p):
                check_int("rank", group["rank"], 1, p.shape[1], f" for a parameter of shape {tuple(p.shape)}")

    @staticmethod
    def _hybrid(group: dict[str, Any], p: torch.Tensor) -> bool:
        """Whether p takes the subspace + Newton–Schulz step: a matrix of ≤ MAX_ROWS rows in a group with a rank."""
        return group["rank"] is not None and p.ndim == 2 and p.shape[0] <= MAX_ROWS

    def _hybrid_step(self, p: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """Adam on the tracked subspace plus Newton–Schulz on the rest, the sum's step normalized (module docstring).

        State: "step", M "exp_avg" (m, n), V "exp_avg_sq" (m, r), P "exp_avg_P" (n, r), S "exp_avg_GG" (r, r)."""
        G, (beta1, beta2), eps, lr = p.grad, group["betas"], group["eps"], group["lr"]  # (m, n)
        if "step" not in state:
            state["step"], state["exp_avg"] = 0, torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros(p.shape[0], group["rank"], dtype=p.dtype, device=p.device)  # V (m, r)
        t = state["step"] = state["step"] + 1
        bc1, bc2 = (1 - beta1**t) / (1 - beta1), 1 - beta2**t
        M, V = state["exp_avg"].mul_(beta1).add_(G), state["exp_avg_sq"]
        if t == 1:
            P, S = initial_subspace(G, group["rank"], beta2)
            GP = G @ P  # (m, r)
        else:
            P, S, GP = tracked_subspace(G, state["exp_avg_P"], state["exp_avg_GG"], beta2)
        state["exp_avg_P"], state["exp_avg_GG"] = P, S  # (n, r) column-major, (r, r)
        V.mul_(beta2).addcmul_(GP, GP, value=1 - beta2)
        G_hat = torch.add(G, M, alpha=beta1).mul_(1 / (1 + beta1 * bc1)) if group["nesterov"] else G.mul(1 / bc1)
        G_hat_P = G_hat @ P  # (m, r)
        U1 = (G_hat_P / (V.sqrt() / math.sqrt(bc2)).add_(eps)) @ P.T  # (m, n)
        U2 = newton_schulz(G_hat - G_hat_P @ P.T, steps=5, form="cosmos")  # (m, n) bfloat16
        scale = (G.shape[0] * G.shape[1]) ** 0.5
        U2 = scale * U2 / (U2.norm() + eps)
        U1.add_(U2, alpha=group["gamma"])
        if group["weight_decay"] > 0:
            p.mul_(1 - lr * group["weight_decay"])
        p.add_(U1 / (U1.norm() + eps), alpha=-scale * group["lr_ratio"] * lr)

    def _adamw_step(self, p: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """The reference's AdamW branch, 0.9 hard-coded in the momentum weight and bc1 (module docstring)."""
        g, (beta1, beta2), eps, lr = p.grad, group["betas"], group["eps"], group["lr"]
        if "step" not in state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        t = state["step"] = state["step"] + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=0.1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        if group["weight_decay"] > 0:
            p.mul_(1 - lr * group["weight_decay"])
        p.addcdiv_(m, denom, value=-(lr / (1 - 0.9**t)))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group, p in self._with_grads():
            if self._hybrid(group, p):
                self._hybrid_step(p, self.state[p], group)
            else:
                self._adamw_step(p, self.state[p], group)
        return loss

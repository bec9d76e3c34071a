"""SOAP: ShampoO with Adam in the Preconditioner's eigenbasis (Vyas et al. 2024, "SOAP: Improving and
Stabilizing Shampoo using Adam", arXiv 2409.11321; conventions of the official `nikhilvyas/SOAP`@a1e5535
`soap.py`, op order of pytorch-optimizer 4.1.0 `SOAP`).

For a matrix W ∈ R^{m×n} with gradient G (every dimension of size ≤ max_precond_dim preconditioned;
tensors with more dimensions take one factor per dimension, vectors only with precondition_1d):

    L ← β_s·L + (1 − β_s)·G Gᵀ,   R ← β_s·R + (1 − β_s)·Gᵀ G        Shampoo's factors, β_s = shampoo_beta or β2
    Q_L, Q_R: eigenvectors of L, R (descending eigenvalues)           eigh on the first step, which only
                                                                      builds them (W does not move)
    G' = Q_Lᵀ G Q_R                                                   the gradient in the eigenbasis
    M ← β1·M + (1 − β1)·G                                             momentum, in the original basis
    V ← β2·V + (1 − β2)·G'²                                           Adam's second moment, in the eigenbasis
    N = Q_L [ (Q_Lᵀ M Q_R) / (√V + ε) ] Q_Rᵀ
    W ← W − lr·(√bc2/bc1)·N,   then W ← W·(1 − lr·λ)                  bc = 1 − β^t, t = Adam updates so far
    L, R updated with G (after the step, so a gradient never preconditions itself)
    every precondition_frequency updates (t ≡ 0): one power iteration per factor instead of eigh:
        order Q's columns by the estimated eigenvalues diag(Qᵀ L Q), descending, reorder V's axis
        alike, Q ← QR(L Q)

With merge_dims, adjacent dimensions are merged while their product stays ≤ max_precond_dim (the
official rule, `merged_shape`) and the factors belong to the merged shape. With normalize_grads,
N ← N / (1e-30 + RMS(N)) (the official; pytorch-optimizer divides by RMS(N) + ε).

Defaults as the official (lr 3e-3, betas (0.95, 0.95), ε 1e-8, λ 0.01, precondition_frequency 10,
max_precond_dim 10000, no merging, no 1-D preconditioning, no normalization, bias correction).
With the op order of pytorch-optimizer 4.1.0 the parameters agree with it bit for bit on CPU (test,
the method note's §9 harness). SOAP is chaotic there: the first eigenbases come from a factor of
rank ≤ 32 (a 64×32 gradient), whose null-space eigenvectors are whatever LAPACK returns, so op-order
rounding alone moves the parameters after 20 steps (they move 0.33): the official code against
pytorch-optimizer by 2.9e-3, the official with the momentum in the eigenbasis against in the original
basis by 0.12, although in float64 these two agree to 4e-11 up to the first refresh. Bit-exactness
needs one op order.

Deliberate differences:
- From the official: the momentum M is kept in the original basis, as the official before Dec 2024
  and pytorch-optimizer (since then the official keeps it in the eigenbasis, projecting it back and
  forth at every step: equal in exact arithmetic, two more products per step). The decay is
  W·(1 − lr·λ), pytorch-optimizer's op order for the official's W − lr·λ·W. `shampoo_beta` None
  means β2 (the official's −1). No `data_format`: 4-D tensors are merged as NCHW (channels_first).
  L, R, Q, M, V are kept in float32 or wider, eigh and QR run in that dtype (the official always
  computes L, R and Q in float32 and fails on bfloat16 parameters).
- From pytorch-optimizer: the official's per-parameter step count (pytorch-optimizer counts steps per
  group, so a parameter whose first gradient comes late is preconditioned with that same gradient),
  merge rule and normalization; no `maximize`.
- The state holds the factors and bases as plain tensors "GG{i}", "Q{i}" (i: a preconditioned
  dimension of the merged shape), so `state_dict()` loads with weights_only=True.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Callable

import torch

from workbench.optim.base import Optimizer
from workbench.optim.projectors import check_int


def merged_shape(shape: tuple[int, ...], max_precond_dim: int) -> tuple[int, ...]:
    """The official `merge_dims`: merge adjacent dimensions while their product stays ≤ max_precond_dim.

    (2, 3, 4, 5) with 12 → (6, 4, 5); (1, 2, 512, 1, 2048) with 1024 → (1024, 2048); (64, 32) with 10000 → (2048,)."""
    merged, current = [], 1
    for size in shape:
        if current * size > max_precond_dim:
            if current > 1:
                merged.append(current)
                current = size
            else:
                merged.append(size)
                current = 1
        else:
            current *= size
    if current > 1 or not merged:
        merged.append(current)
    return tuple(merged)


def change_basis(X: torch.Tensor, Q: list[torch.Tensor | None], shape: tuple[int, ...], back: bool = False) -> torch.Tensor:
    """X (of any shape with shape's numel) in the eigenbasis, Q_1ᵀ ⋯ X ⋯ Q_k (back: Q_1 ⋯ X ⋯ Q_kᵀ), in X's shape.

    Contracts each axis of X (viewed as `shape`) with its Q in turn, as the references do; an axis
    without Q is only rotated to the end."""
    Y = X.reshape(shape)
    for Q_i in Q:
        Y = torch.tensordot(Y, Q_i, dims=[[0], [1 if back else 0]]) if Q_i is not None else Y.permute(*range(1, Y.ndim), 0)
    return Y.reshape(X.shape)


def eigenbasis(GG: torch.Tensor) -> torch.Tensor:
    """Eigenvectors of the symmetric GG by descending eigenvalue (the references' eigh of GG + 1e-30·I, flipped)."""
    eye = torch.eye(GG.shape[0], device=GG.device, dtype=GG.dtype)
    try:
        _, Q = torch.linalg.eigh(GG + 1e-30 * eye)
    except torch.linalg.LinAlgError:  # the references retry in float64
        _, Q = torch.linalg.eigh(GG.double() + 1e-30 * eye.double())
        Q = Q.to(GG.dtype)
    return torch.flip(Q, dims=[1])


class SOAP(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        merge_dims: bool = False,
        precondition_1d: bool = False,
        normalize_grads: bool = False,
        correct_bias: bool = True,
    ):
        defaults = dict(
            lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps, weight_decay=weight_decay,
            precondition_frequency=precondition_frequency, max_precond_dim=max_precond_dim, merge_dims=merge_dims,
            precondition_1d=precondition_1d, normalize_grads=normalize_grads, correct_bias=correct_bias,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_int("precondition_frequency", group["precondition_frequency"], 1)
        check_int("max_precond_dim", group["max_precond_dim"], 1)

    @staticmethod
    def _shape(p: torch.Tensor, group: dict[str, Any]) -> tuple[int, ...]:
        """The shape whose axes are preconditioned: p's own, or merged (merge_dims; vectors are never merged)."""
        if group["merge_dims"] and p.ndim > 1:
            return merged_shape(tuple(p.shape), group["max_precond_dim"])
        return tuple(p.shape)

    @staticmethod
    def _preconditioned(size: int, ndim: int, group: dict[str, Any]) -> bool:
        """Whether an axis of this size gets a factor; ndim is the parameter's own (vectors: only with precondition_1d)."""
        return size <= group["max_precond_dim"] and (ndim != 1 or group["precondition_1d"])

    @staticmethod
    def _bases(state: dict, ndim: int) -> list[torch.Tensor | None]:
        """Q_i of every axis i, None where the axis has no factor."""
        return [state.get(f"Q{i}") for i in range(ndim)]

    def _init_state(self, g: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """Zero moments and factors; the factors take g, and the bases are their eigenvectors."""
        shape = self._shape(g, group)
        state["step"] = 0
        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(g), torch.zeros_like(g)
        for i, size in enumerate(shape):
            if self._preconditioned(size, g.ndim, group):
                state[f"GG{i}"] = torch.zeros(size, size, dtype=g.dtype, device=g.device)
        self._update_factors(g, state, group)
        for i in range(len(shape)):
            if f"GG{i}" in state:
                state[f"Q{i}"] = eigenbasis(state[f"GG{i}"])

    def _update_factors(self, g: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """GG_i ← β_s·GG_i + (1 − β_s)·(g contracted with itself over every axis but i)."""
        beta = group["shampoo_beta"] if group["shampoo_beta"] is not None else group["betas"][1]
        g = g.reshape(self._shape(g, group))
        for i in range(g.ndim):
            if f"GG{i}" in state:
                others = [*chain(range(i), range(i + 1, g.ndim))]
                state[f"GG{i}"].lerp_(torch.tensordot(g, g, dims=[others, others]), 1.0 - beta)

    def _refresh_bases(self, state: dict, group: dict[str, Any]) -> None:
        """One power iteration per factor: sort Q's columns by diag(Qᵀ GG Q), reorder V alike, Q ← QR(GG Q)."""
        shape = self._shape(state["exp_avg_sq"], group)
        V = state["exp_avg_sq"].reshape(shape)
        for i in range(len(shape)):
            if f"GG{i}" not in state:
                continue
            GG_Q = state[f"GG{i}"] @ state[f"Q{i}"]  # (s, s)
            order = torch.argsort((state[f"Q{i}"] * GG_Q).sum(dim=0), descending=True)  # estimated eigenvalues
            V = V.index_select(i, order)
            state[f"Q{i}"] = torch.linalg.qr(GG_Q.index_select(1, order)).Q
        state["exp_avg_sq"] = V.reshape(state["exp_avg_sq"].shape)

    def _update(self, p: torch.Tensor, g: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """Adam in the eigenbasis, the decay, then the factors (and every precondition_frequency updates, the bases)."""
        (beta1, beta2), shape = group["betas"], self._shape(g, group)
        Q = self._bases(state, len(shape))
        t = state["step"] = state["step"] + 1
        M, V = state["exp_avg"], state["exp_avg_sq"]
        M.lerp_(g, 1.0 - beta1)
        V.lerp_(change_basis(g, Q, shape).square(), 1.0 - beta2)
        N = change_basis(change_basis(M, Q, shape) / V.sqrt().add_(group["eps"]), Q, shape, back=True)
        if group["normalize_grads"]:
            N = N / (1e-30 + torch.mean(N**2) ** 0.5)
        step_size = group["lr"]
        if group["correct_bias"]:
            step_size *= math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        p.add_(N, alpha=-step_size)
        if group["weight_decay"] != 0:
            p.mul_(1.0 - group["weight_decay"] * group["lr"])
        self._update_factors(g, state, group)
        if t % group["precondition_frequency"] == 0:
            self._refresh_bases(state, group)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group, p in self._with_grads():
            g = p.grad.to(torch.promote_types(p.dtype, torch.float32))
            state = self.state[p]
            if "step" not in state:
                self._init_state(g, state, group)  # the first gradient only builds the bases
            else:
                self._update(p, g, state, group)
        return loss

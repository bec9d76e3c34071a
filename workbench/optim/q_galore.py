"""Q-GaLore: GaLore with INT4 projection matrices, layer-adaptive refresh and 8-bit Adam states (Zhang
et al. 2024, "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients",
arXiv 2407.08296; conventions of the official `VITA-Group/Q-GaLore`@5bd2f1c = PyPI q-galore-torch 1.0,
`q_galore_adamw8bit.py` + `q_galore_projector.py`).

For each matrix W ∈ R^{m×n} of a group with a `rank` r, with G its gradient and t its update count:

    when (t − 1) % T_W == 0 (t = 1, T+1, …; T_W starts at update_proj_gap):
        P ← top-r singular vectors of G, as GaLore (m ≥ n: P = Vᵀ[:r] (r×n); m < n: P = U[:, :r] (m×r))
        layer-adaptive gap: c = cos(p_prev, p), p = first row (m ≥ n) or first column of P; keep the last
            `queue_size` values of c; when that many are kept and their mean ≥ cos_threshold:
            T_W ← int(T_W·gamma_proj)   (the queue is not emptied: the gap can grow at every refresh)
        quantize P (quant=True): groups of `quant_group_size` consecutive entries (None: one row of P),
            per group s = max(max − min, 1e-5)/(2^b − 1), z = clamp(−round(min/s), 0, 2^b − 1),
            q = clamp(round(P/s) + z, 0, 2^b − 1) with b = quant_n_bit;  P̂ = s·(q − z)
            (z is clamped, so the grid always holds 0: a group whose entries share a sign saturates
            beyond max − min, as in the package)
    R = G P̂ᵀ (m ≥ n) or P̂ᵀ G
    U = −(lr/(1 − β1^t))·m/(√v/√(1 − β2^t) + ε)      bitsandbytes' 8-bit Adam of R, λ withheld
    W ← W + scale·back(U),   back(U) = U P̂ or P̂ U
    W ← W − lr·λ·W                                    (decoupled decay, after the update, as GaLore)

Parameters that are not matrices, and groups with rank=None, get bitsandbytes' AdamW8bit (decay first,
W ← W·(1 − lr·λ)). Adam's moments are 8-bit block-wise (`adamw8bit`: blocks of 256, dynamic maps) for
tensors of at least `min_8bit_size` = 4096 elements, else float32, as bitsandbytes; they are neither reset
nor rotated at a refresh. With b ≤ 4 the codes are stored two per byte.

State per projected matrix (tensors and plain numbers: `state_dict()` loads with weights_only=True):
"step", "exp_avg", "exp_avg_sq" (+ "exp_avg_absmax", "exp_avg_sq_absmax") as `AdamW8bit`; "P" (quant=False)
or "P_codes" (uint8), "P_scales", "P_zeros" (P's dtype, one per group); "proj_gap" (T_W, int);
"past_vector" (p of the last refresh) and "cos_queue" (list of floats).

Defaults: lr 1e-3, betas (0.9, 0.999), ε 1e-8, λ 1e-2 (the package's class); update_proj_gap 200,
scale 0.25 and the INT4 projection (quant=True, 4 bits, groups of 256) as its README and scripts;
cos_threshold 0.4, gamma_proj 2, queue_size 5 (its command line defaults).

Deliberate differences from q-galore-torch 1.0:
- No INT8 weights. The package's optimizer re-quantizes weights that carry Q-GaLore's own layer type
  (`QGaLoreLinear`: int8 data, a `float_grad`, stochastic rounding after each update, CUDA only); that is
  the model's storage, not an optimizer rule. Here the weights stay in their dtype.
- The package fails on CPU (`torch.cuda.synchronize()` in step) and with bitsandbytes 0.50.2 (its
  `update_step` reads the config keys `percentile_clipping` and `block_wise`, which bitsandbytes no longer
  has, and calls its 8-bit update without the `beta3` and `alpha` arguments it now takes; its positional
  arguments land `percentile_clipping=100` in `max_unorm`). This class is the package's rule with the
  settings it was written for: no percentile clipping, block-wise 8-bit, no update-norm clip.
  Float32 moments (tensors under min_8bit_size) use AdamW8bit's arithmetic, which bitsandbytes' fp32 path
  orders differently (ε·√bc2 added to √v: ~1e-8 apart per step).
- The INT4 codes are stored two per byte (the package keeps one uint8 per code: INT4 values, 8-bit
  memory). As `AdamW8bit` (this class's base): group key `rounding`, "nearest" by default, "bnb_lut" for
  bitsandbytes' CPU quantizer of the moments; `fused=True` runs 8-bit states of float32 CPU tensors
  through AdamW8bit's compiled pass (its square root is correctly rounded, torch's is not: an ulp apart
  per step). With rounding="bnb_lut" and fused=False the 8-bit path is bitsandbytes' bit for bit.
- Only 2-D parameters of a group with a rank are projected; the rank must satisfy 1 ≤ r ≤ min(m, n) and
  quant_group_size must divide r·min(m, n) (checked at construction; the package asserts at the first
  refresh). The SVD runs in float32 or wider, as `galore`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from workbench.optim.adamw8bit import AdamW8bit, adamw8bit_torch_
from workbench.optim.projectors import check_int, check_rank, project, project_back, refresh, right_side

CODE_KEYS = ("P_codes", "P_scales", "P_zeros")


def quantize_uniform(P: torch.Tensor, bits: int, group_size: int | None) -> tuple[torch.Tensor, ...]:
    """(codes, scales, zeros) of P: asymmetric min-max quantization to `bits` bits per group (Q-GaLore's `_quantize`).

    Groups are `group_size` consecutive entries of P in row-major order, or the rows of P (None). Codes
    are uint8, flat in row-major order, two per byte when bits ≤ 4 (low nibble first); scales and zeros
    are (groups, 1) in P's dtype.
    """
    groups = P.reshape(-1, group_size) if group_size else P  # (N/gs, gs) or P's rows
    top = 2**bits - 1
    low, high = groups.amin(dim=1, keepdim=True), groups.amax(dim=1, keepdim=True)  # (groups, 1)
    scales = (high - low).clamp(min=1e-5) / top
    zeros = (-torch.round(low / scales)).clamp_(0, top)
    q = torch.clamp(torch.round(groups / scales) + zeros, 0, top).to(torch.uint8).reshape(-1)  # (N,)
    if bits <= 4:
        q = F.pad(q, (0, q.numel() % 2))
        q = q[0::2] | (q[1::2] << 4)  # (⌈N/2⌉,)
    return q, scales, zeros


def dequantize_uniform(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, shape: torch.Size, bits: int) -> torch.Tensor:
    """P̂ = s·(q − z) of `shape`, from `quantize_uniform`'s output."""
    if bits <= 4:
        codes = torch.stack((codes & 15, codes >> 4), dim=-1).reshape(-1)[: math.prod(shape)]  # (N,)
    q = codes.reshape(scales.shape[0], -1)  # (groups, entries per group)
    return (scales * (q.to(scales.dtype) - zeros)).reshape(shape)


class QGaLoreAdamW8bit(AdamW8bit):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        rank: int | None = None,
        update_proj_gap: int = 200,
        scale: float = 0.25,
        quant: bool = True,
        quant_n_bit: int = 4,
        quant_group_size: int | None = 256,
        cos_threshold: float = 0.4,
        gamma_proj: float = 2,
        queue_size: int = 5,
        min_8bit_size: int = 4096,
        rounding: str = "nearest",
        fused: bool = True,
    ):
        projection = dict(
            rank=rank, update_proj_gap=update_proj_gap, scale=scale, quant=quant, quant_n_bit=quant_n_bit,
            quant_group_size=quant_group_size, cos_threshold=cos_threshold, gamma_proj=gamma_proj, queue_size=queue_size,
        )
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        super().__init__([projection | group for group in groups], lr=lr, betas=betas, eps=eps,
                         weight_decay=weight_decay, min_8bit_size=min_8bit_size, rounding=rounding, fused=fused)
        self.defaults.update(projection)  # for groups added later

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["rank"] is None:
            return
        check_int("update_proj_gap", group["update_proj_gap"], 1)
        check_int("queue_size", group["queue_size"], 1)
        check_int("quant_n_bit", group["quant_n_bit"], 1, 8)
        for p in group["params"]:
            if p.ndim == 2:
                check_rank(group["rank"], p.shape)
                self._check_group_size(group, p.shape)

    @staticmethod
    def _check_group_size(group: dict[str, Any], shape: torch.Size) -> None:
        """quant_group_size must divide the r·min(m, n) entries of P (None: one group per row)."""
        size, entries = group["quant_group_size"], group["rank"] * min(shape)
        if not group["quant"] or size is None:
            return
        check_int("quant_group_size", size, 1)
        if entries % size:
            raise ValueError(
                f"quant_group_size={size} is not allowed for a parameter of shape {tuple(shape)} at rank "
                f"{group['rank']}: choose a divisor of its projection's {entries} entries, or None (one group per row)")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self._closure_loss(closure)

        for group, p in self._with_grads():
            if group["rank"] is not None and p.ndim == 2:
                self._low_rank_step(p, group)
            else:
                self._adam8bit(p, self.state[p], group, group["weight_decay"])
        return loss

    def _adam8bit(self, W: torch.Tensor, state: dict, group: dict[str, Any], weight_decay: float) -> None:
        """AdamW8bit's update of W with gradient W.grad, its state made on first use; an 8-bit state of a float32
        CPU tensor takes AdamW8bit's compiled pass (fused=True), everything else its torch ops."""
        if "exp_avg" not in state:
            state.update(self._init_state(W, W.numel() >= group["min_8bit_size"]))
        state["step"] += 1
        code_m, code_v = self._code_books_on(W.device)
        hyper = dict(lr=group["lr"], betas=group["betas"], eps=group["eps"], weight_decay=weight_decay, rounding=group["rounding"])
        if W.device.type == "cpu" and "exp_avg_absmax" in state and self._fused_pass(W) == "numba":
            from workbench.kernels.adamw8bit_cpu import adamw8bit_update_  # imports numba: only when used

            adamw8bit_update_(W, W.grad, state, code_m, code_v, **hyper)
        else:
            adamw8bit_torch_(W, state, code_m, code_v, **hyper)

    def _low_rank_step(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """W ← W + scale·back(U), U = 8-bit Adam's update of R from zero (λ withheld); then W ← W − lr·λ·W."""
        G, state = p.grad, self.state[p]  # (m, n)
        subspace = {"P": self._subspace(G, state, group)}  # P̂: (r, n) or (m, r)
        R = project(G, subspace)  # (m, r) or (r, n)
        U = torch.zeros_like(R)
        U.grad = R
        self._adam8bit(U, state, group, weight_decay=0.0)  # U = −(lr/bc1)·m/(√v̂ + ε)
        p.add_(project_back(U, subspace, G.shape).mul_(group["scale"]))
        if group["weight_decay"] > 0:
            p.add_(p, alpha=-group["lr"] * group["weight_decay"])

    def _subspace(self, G: torch.Tensor, state: dict, group: dict[str, Any]) -> torch.Tensor:
        """P̂ for this update: a new P from G when one is due (then the gap adapts and P is quantized)."""
        t = int(state["step"].item()) if "step" in state else 0  # updates before this one
        right = right_side(G.shape)
        if "proj_gap" not in state or t % state["proj_gap"] == 0:
            state.setdefault("proj_gap", group["update_proj_gap"])
            refresh(G, state, "svd", group["rank"])
            self._adapt_gap(state["P"][:1, :] if right else state["P"][:, :1], state, group)
            if group["quant"]:
                codes = quantize_uniform(state.pop("P"), group["quant_n_bit"], group["quant_group_size"])
                state.update(zip(CODE_KEYS, codes))
        if not group["quant"]:
            return state["P"]
        shape = (group["rank"], G.shape[1]) if right else (G.shape[0], group["rank"])
        return dequantize_uniform(*(state[k] for k in CODE_KEYS), shape, group["quant_n_bit"])

    @staticmethod
    def _adapt_gap(leading: torch.Tensor, state: dict, group: dict[str, Any]) -> None:
        """Q-GaLore's lazy refresh: grow this layer's gap while successive leading singular vectors stay aligned."""
        vector = leading.flatten()  # (n,) or (m,): the first row (m ≥ n) or column of P
        if "past_vector" in state:
            queue = state.setdefault("cos_queue", [])
            if len(queue) == group["queue_size"]:
                queue.pop(0)
            queue.append(F.cosine_similarity(state["past_vector"], vector, dim=0).item())
            if len(queue) == group["queue_size"] and sum(queue) / group["queue_size"] >= group["cos_threshold"]:
                state["proj_gap"] = int(state["proj_gap"] * group["gamma_proj"])
        state["past_vector"] = vector.clone()

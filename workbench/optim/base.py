"""What every workbench optimizer shares: hyperparameter checks and a dtype-keeping `load_state_dict`.

`check_group` checks the keys it knows in a param group and raises a `ValueError` that names
the key, the value and the allowed range, e.g. ``betas[1]=1.0 is out of range: allowed [0, 1)``.
`Optimizer` runs it on every group, the constructor's defaults and later `add_param_group`
calls alike, so a bad value fails before the first step.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Callable

import torch

from workbench.optim.quantization import ROUNDINGS

# key: (low, high, low included, high included); a group value of None is not checked
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0.0, math.inf, True, False),
    "eps": (0.0, math.inf, True, False),
    "weight_decay": (0.0, math.inf, True, False),
    "betas": (0.0, 1.0, True, False),  # each entry
    "clamp_value": (0.0, math.inf, False, True),
    "min_8bit_size": (0.0, math.inf, True, True),
    "rank": (1.0, math.inf, True, False),
    "update_proj_gap": (1.0, math.inf, True, False),
    "scale": (0.0, math.inf, False, False),
    "zo_eps": (0.0, math.inf, False, False),  # zeroth-order perturbation scale
    "momentum": (0.0, 1.0, True, False),
    "sparsity": (0.0, 1.0, True, False),  # fraction of each tensor that Sparse MeZO leaves alone
    "natural_history": (1.0, math.inf, True, False),  # Natural GaLore: gradients kept for the Fisher
    "damping": (0.0, math.inf, False, False),  # Natural GaLore: λ of (λI + H Hᵀ)⁻¹
    "quant_n_bit": (1.0, 8.0, True, True),  # Q-GaLore: bits of the projection's codes
    "quant_group_size": (1.0, math.inf, True, False),
    "cos_threshold": (-1.0, 1.0, True, True),  # Q-GaLore: mean cosine above which a layer's gap grows
    "gamma_proj": (1.0, math.inf, True, False),  # Q-GaLore: the factor it grows by
    "queue_size": (1.0, math.inf, True, False),
    "shampoo_beta": (0.0, 1.0, True, False),  # SOAP: β of the Shampoo factors (None: β2)
    "lr_ratio": (0.0, math.inf, True, False),  # COSMOS: step of the hybrid matrices relative to lr
    "gamma": (0.0, math.inf, True, False),  # COSMOS: weight of the Newton–Schulz part
}
CHOICES: dict[str, tuple[Any, ...]] = {
    "rounding": ROUNDINGS,
}


def check_range(name: str, value: float, low: float, high: float, low_in: bool = True, high_in: bool = False) -> None:
    """Raise ValueError unless low ≤ value ≤ high (strict where the bound is excluded); NaN always fails."""
    above = value >= low if low_in else value > low
    below = value <= high if high_in else value < high
    if not (above and below):
        interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise ValueError(f"{name}={value!r} is out of range: allowed {interval}")


def check_group(group: dict[str, Any]) -> None:
    """Check every key of `group` that appears in RANGES or CHOICES; other keys pass untouched."""
    for key, value in group.items():
        if value is None:
            continue
        if key == "betas":
            for i, beta in enumerate(value):
                check_range(f"betas[{i}]", beta, *RANGES["betas"])
        elif key in RANGES:
            check_range(key, value, *RANGES[key])
        elif key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"{key}={value!r} is not allowed: choose one of {CHOICES[key]}")


class Optimizer(torch.optim.Optimizer):
    """`torch.optim.Optimizer` with checked param groups and a `load_state_dict` that keeps dtypes.

    torch's `load_state_dict` casts every state tensor of a floating-point parameter to the
    parameter's dtype (only "step" is exempt). That would turn uint8 quantization codes, int32
    indices or int64 seeds into floats; here each top-level state tensor gets back the dtype
    it was saved with (it is only moved to the parameter's device).
    """

    @staticmethod
    def _closure_loss(closure: Callable[[], float] | None) -> float | None:
        """torch.optim's convention: re-evaluate the model (gradients enabled) and return its loss."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def _with_grads(self, groups: list[dict[str, Any]] | None = None):
        """(group, p) for every parameter of `groups` (default: all) that has a gradient, in order; a sparse
        gradient is refused, naming the optimizer."""
        for group in self.param_groups if groups is None else groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                yield group, p

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        check_group(self.param_groups[-1])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for param_id, p in zip(saved_ids, params):
            for key, value in state_dict["state"].get(param_id, {}).items():
                if torch.is_tensor(value):
                    self.state[p][key] = value.to(device=p.device)

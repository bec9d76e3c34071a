"""The questions asked of every fitted Koopman model, the autoencoder, DMD and EDMD alike: its forecast from one
state or many, its latents and its eigenvalues.

Each model has ``state_dim`` and ``predict(x0, n_steps)``; the autoencoder also ``encode`` and ``K``, EDMD a
``dictionary`` and ``eigenvalues``, DMD ``modes`` and ``eigenvalues``. The functions here compute on the model's
device and dtype and return float64 (complex128 for eigenvalues) tensors on the CPU, whatever the model.
"""
from __future__ import annotations

import functools

import torch


def one_or_many_states(predict):
    """Let ``predict(x0, n_steps)`` take one state x0 (D,) as well as a batch (B, D), as PyDMD users expect:
    (D,) -> (n_steps + 1, D), (B, D) -> (B, n_steps + 1, D). Any other shape is refused with a message naming
    the expected ones and the model's D (``self.state_dim``)."""

    @functools.wraps(predict)
    def wrapper(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        D = self.state_dim
        if x0.ndim not in (1, 2) or x0.shape[-1] != D:
            raise ValueError(f"x0 has shape {tuple(x0.shape)}; expected one state ({D},) or a batch of states "
                             f"(B, {D})")
        return predict(self, x0, n_steps) if x0.ndim == 2 else predict(self, x0.unsqueeze(0), n_steps)[0]

    return wrapper


def device_dtype(model) -> tuple[torch.device, torch.dtype]:
    """Where the model computes: (device, real dtype) of its parameters (autoencoder), modes (DMD) or K (EDMD)."""
    if hasattr(model, "parameters"):
        p = next(model.parameters())
        return p.device, p.dtype
    if hasattr(model, "modes"):
        return model.modes.device, model.modes.real.dtype
    return model.K.device, model.K.dtype


@torch.no_grad()
def rollout(model, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
    """x̂_h, h = 0..n: ``model.predict(x0, n_steps)`` on the model's device and dtype, (B, D) -> (B, n + 1, D)
    float64 on the CPU."""
    device, dtype = device_dtype(model)
    return model.predict(x0.to(device, dtype), n_steps).to("cpu", torch.float64)


@torch.no_grad()
def latents(model, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The coordinates the model is linear in, (..., D) -> (..., d) float64 on the CPU: z = φ(x) for the
    autoencoder, the dictionary ψ(x) for EDMD, the state x itself for DMD. Encoded ``chunk`` snapshots at a time."""
    device, dtype = device_dtype(model)
    flat = x.reshape(-1, x.shape[-1])  # (n, D)
    if hasattr(model, "encode"):
        features = model.encode
    elif hasattr(model, "dictionary"):
        features = model.dictionary
    else:
        features = lambda snapshots: snapshots  # noqa: E731
    z = torch.cat([features(part.to(device, dtype)).to("cpu", torch.float64) for part in flat.split(chunk)])
    return z.reshape(*x.shape[:-1], -1)


@torch.no_grad()
def eigenvalues(model) -> torch.Tensor:
    """The eigenvalues of the model's one-step operator (K, or DMD's reduced Ã), complex128 on the CPU."""
    if hasattr(model, "eigenvalues"):
        return model.eigenvalues.to("cpu", torch.complex128)
    return torch.linalg.eigvals(model.K.detach().to("cpu", torch.float64))


"""2×2 SPD matrices as ellipses: the teaching picture of Bures–Wasserstein geodesics and of BN's centring.

An SPD matrix S is drawn as the ellipse {S^½ u + c : ‖u‖ = 1}. :func:`geodesic_ellipses` gives, at a progress
t ∈ [0, 1], the ellipses of the picture the SPD normalization panel draws (fixed matrices, independent of training):
an ellipse moving from A to B along the BW geodesic γ(t), and a batch X_i moving along its BW geodesics to its
centred version Z_i = Exp_I(Γ_{μ→I} Log_μ X_i), μ the batch's BW mean, so that the centred batch has BW mean I.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from workbench.methods.spd.geometry import bw_exp_identity, bw_geodesic, bw_log, bw_mean, bw_transport_to_identity

N_ELLIPSE_POINTS = 60
GEODESIC_ROW, BATCH_ROW = 2.2, -2.0  # heights of the two rows of the picture: A → B above, the batch below


def ellipse(S, centre=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Boundary (x, y), each (N_ELLIPSE_POINTS,), of {S^½ u + c : ‖u‖ = 1} for a 2×2 SPD S."""
    S = np.asarray(S, dtype=float)
    lam, U = np.linalg.eigh(0.5 * (S + S.T))
    root = U @ np.diag(np.sqrt(np.clip(lam, 0, None))) @ U.T
    t = np.linspace(0, 2 * np.pi, N_ELLIPSE_POINTS)
    points = root @ np.stack([np.cos(t), np.sin(t)])  # (2, P)
    return points[0] + centre[0], points[1] + centre[1]


def _spd(l1: float, l2: float, angle: float) -> torch.Tensor:
    """R diag(l1, l2) Rᵀ with R the rotation by ``angle``, float64."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return torch.tensor(R @ np.diag([l1, l2]) @ R.T)


@functools.lru_cache(maxsize=1)
def teaching_matrices() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, B, batch X (5, 2, 2), centred Z (5, 2, 2)) as float64 tensors; Z_i = Exp_I(Γ_{μ→I} Log_μ X_i)."""
    A, B = _spd(2.5, 0.25, 0.5), _spd(0.4, 1.6, -0.4)
    X = torch.stack([_spd(3.0, 0.6, 0.9), _spd(2.0, 0.3, 0.5), _spd(1.6, 0.9, 1.4), _spd(3.4, 0.4, 0.7),
                     _spd(2.2, 1.1, 0.2)])
    mu = bw_mean(X, n_iter=100)
    Z = bw_exp_identity(bw_transport_to_identity(mu, bw_log(mu, X)))
    return A, B, X, Z


def geodesic_ellipses(t: float) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The picture's ellipse boundaries at progress t ∈ [0, 1], by role:

    - ``path``: γ(s) from A to B at s = 0, ¼, ½, ¾, 1, each at x = 4s − 2 (the upper row);
    - ``now``: γ(t), at x = 4t − 2;
    - ``batch``: the batch X_i, all centred at (0, BATCH_ROW);
    - ``centring``: each X_i at t along its geodesic to its centred Z_i;
    - ``identity``: I, the centred batch's mean."""
    A, B, X, Z = teaching_matrices()
    below = (0.0, BATCH_ROW)
    return {
        "path": [ellipse(bw_geodesic(A, B, float(s)).numpy(), (4 * s - 2, GEODESIC_ROW)) for s in np.linspace(0, 1, 5)],
        "now": [ellipse(bw_geodesic(A, B, t).numpy(), (4 * t - 2, GEODESIC_ROW))],
        "batch": [ellipse(S.numpy(), below) for S in X],
        "centring": [ellipse(S, below) for S in bw_geodesic(X, Z, t).numpy()],  # (5, 2, 2): each on its way
        "identity": [ellipse(np.eye(2), below)],
    }

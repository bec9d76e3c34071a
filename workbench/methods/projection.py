"""Principal-component projections for pictures: high-dimensional samples drawn in their two leading directions.

For samples X (n, D) with mean μ, the SVD of the centred samples X − 1μᵀ = U S Vᵀ gives the principal axes, the
first k columns of V; the coordinates of a point x are (x − μ)ᵀ V[:, :k]. Fitting the axes on one set (the target
samples) and projecting others on them keeps every set in the same frame.
"""
from __future__ import annotations

import numpy as np


def principal_axes(X: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(μ (D,), the (D, k) matrix of the first k principal axes of ``X`` (n, D))."""
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean, vt[:k].T  # (D,), (D, k)


def principal_coordinates(X: np.ndarray, k: int = 2) -> np.ndarray:
    """``X`` (n, D) in its own first k principal axes: (n, k)."""
    mean, axes = principal_axes(X, k)
    return (X - mean) @ axes

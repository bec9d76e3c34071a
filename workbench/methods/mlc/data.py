"""The datasets of manifold clustering, as rows of samples with their ground-truth clusters, and their augmentations.

- ``digits``: scikit-learn's bundled 8×8 digits (1797 images, 10 classes), pixels scaled to [0, 1]; a seeded
  stratified subset of ``n_samples`` images of the first ``n_clusters`` classes. Augmentations for training:
  rotation ±12°, shift ±1 px, Gaussian pixel noise (:func:`digit_augmenter`).
- ``manifolds``: a seeded union of ``n_clusters`` curved ``manifold_dim``-dimensional manifolds (random
  trigonometric curves or tori-like surfaces in R⁶) each embedded in R^D by its own random orthonormal map,
  all through the same centre (so the clusters share a mean and k-means has no centroid to use), plus
  Gaussian noise ``noise``. Augmentation: Gaussian jitter (:func:`jitter_augmenter`).
- ``subspaces``: a union of ``n_clusters`` random ``manifold_dim``-dimensional linear subspaces of R^D with
  noise (what subspace clustering is built for).
- ``moons`` and ``circles``: scikit-learn's two-cluster 2-D toys with ``noise``.

:func:`make_dataset` returns the data as generated; :func:`training_data` as MLC trains on it (the synthetic
sets standardised) and :func:`augmenter` the augmentation that goes with it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

DATASETS = ("digits", "manifolds", "subspaces", "moons", "circles")


def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a seeded subset of size n with the classes as balanced as the data allow, sorted."""
    classes = np.unique(y)
    per = [np.flatnonzero(y == c) for c in classes]
    take = np.zeros(len(classes), int)
    for i in range(n):  # round robin
        j = i % len(classes)
        while take[j] >= len(per[j]):
            j = (j + 1) % len(classes)
        take[j] += 1
    chosen = [rng.choice(idx, t, replace=False) for idx, t in zip(per, take)]
    return np.sort(np.concatenate(chosen))


def load_digits_subset(n_samples: int, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, 64) in [0, 1], y (n,)): a stratified seeded subset of the digits 0 … n_clusters − 1."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = digits.target < n_clusters
    X, y = digits.data[keep] / 16.0, digits.target[keep]
    if n_samples < len(y):
        index = _stratified(y, n_samples, np.random.default_rng(seed))
        X, y = X[index], y[index]
    return X.astype(np.float32), y


def _trig_manifold(n: int, manifold_dim: int, rng: np.random.Generator) -> np.ndarray:
    """n points on a random smooth closed curve (dim 1) or torus-like surface (dim 2) in R⁶, (n, 6)."""
    if manifold_dim == 1:
        t = rng.uniform(0, 2 * np.pi, n)
        phase, amp = rng.uniform(0, 2 * np.pi, 3), np.array([1.0, 0.6, 0.35]) * rng.uniform(0.8, 1.2, 3)
        cols = [c(m * t + p) * a for m, p, a in zip((1, 2, 3), phase, amp) for c in (np.cos, np.sin)]
    else:
        t, s = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
        amp = np.array([1.0, 0.7, 0.4]) * rng.uniform(0.8, 1.2, 3)
        cols = [c(u) * a for u, a in zip((t, s, t + s), amp) for c in (np.cos, np.sin)]
    return np.stack(cols, 1)  # (n, 6)


def make_manifolds(n_samples: int, n_clusters: int, ambient_dim: int, manifold_dim: int, noise: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A union of curved manifolds: cluster c is U_c f_c(t) + noise, f_c a random trigonometric curve or
    surface in R⁶ with zero mean, U_c (D, 6) a random orthonormal map (R^D needs D ≥ 6). (X (n, D), y (n,))."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_clusters, n_samples // n_clusters) + (np.arange(n_clusters) < n_samples % n_clusters)
    X, y = [], []
    for c, n_c in enumerate(sizes):
        U = np.linalg.qr(rng.standard_normal((ambient_dim, 6)))[0]  # (D, 6)
        X.append(_trig_manifold(n_c, manifold_dim, rng) @ U.T)
        y.append(np.full(n_c, c))
    X = np.concatenate(X) + noise * rng.standard_normal((n_samples, ambient_dim))
    return X.astype(np.float32), np.concatenate(y)


def make_subspaces(n_samples: int, n_clusters: int, ambient_dim: int, subspace_dim: int, noise: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A union of random linear subspaces: cluster c is U_c a + noise, a ~ N(0, I/r), U_c (D, r) orthonormal."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_clusters, n_samples // n_clusters) + (np.arange(n_clusters) < n_samples % n_clusters)
    X, y = [], []
    for c, n_c in enumerate(sizes):
        U = np.linalg.qr(rng.standard_normal((ambient_dim, subspace_dim)))[0]  # (D, r)
        X.append(rng.standard_normal((n_c, subspace_dim)) / math.sqrt(subspace_dim) @ U.T)
        y.append(np.full(n_c, c))
    X = np.concatenate(X) + noise * rng.standard_normal((n_samples, ambient_dim))
    return X.astype(np.float32), np.concatenate(y)


def make_dataset(name: str, n_samples: int, n_clusters: int, ambient_dim: int = 32, manifold_dim: int = 1,
                 noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, D) float32, y (n,) int) for any of :data:`DATASETS`."""
    if name == "digits":
        return load_digits_subset(n_samples, n_clusters, seed)
    if name == "manifolds":
        return make_manifolds(n_samples, n_clusters, ambient_dim, manifold_dim, noise, seed)
    if name == "subspaces":
        return make_subspaces(n_samples, n_clusters, ambient_dim, manifold_dim, noise, seed)
    from sklearn.datasets import make_circles, make_moons

    if name == "moons":
        X, y = make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        X, y = make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    else:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return X.astype(np.float32), y


def digit_augmenter(noise: float, max_degrees: float = 12.0, max_shift: float = 1.0,
                    generator: torch.Generator | None = None):
    """Augment flattened 8×8 digits (n, 64) in [0, 1]: a random rotation in ±max_degrees, a random shift in
    ±max_shift pixels (bilinear ``grid_sample``, zero padding) and Gaussian pixel noise σ = noise."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        u = torch.rand(n, 3, generator=generator).to(x.device) * 2 - 1  # (n, 3) in [−1, 1]
        angle = u[:, 0] * math.radians(max_degrees)
        shift = u[:, 1:] * max_shift * 2 / 8  # pixels -> normalised coordinates of an 8-px image
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (n, 2, 3)
        images = x.reshape(n, 1, 8, 8)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (n, 8, 8, 2)
        moved = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros").reshape(n, 64)
        return moved + noise * torch.randn(moved.shape, generator=generator).to(x.device)

    return augment


def jitter_augmenter(noise: float, generator: torch.Generator | None = None):
    """Augment vectors (n, D) by Gaussian jitter of standard deviation ``noise``."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        return x + noise * torch.randn(x.shape, generator=generator).to(x.device)

    return augment


def dataset_size(name: str, n_samples: int, n_clusters: int) -> int:
    """The number of samples :func:`make_dataset` returns (digits: at most the images of the classes
    0 … n_clusters − 1, 1797 for all ten)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        return min(n_samples, int((load_digits().target < n_clusters).sum()))
    return n_samples


def training_data(name: str, n_samples: int, n_clusters: int, ambient_dim: int = 32, manifold_dim: int = 1,
                  noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`make_dataset` as MLC trains on it: the synthetic sets standardised (zero mean, unit overall
    standard deviation: the MLP likes unit-scale inputs); the digits as they are, in [0, 1]."""
    X, y = make_dataset(name, n_samples, n_clusters, ambient_dim, manifold_dim, noise, seed)
    if name != "digits":
        X = (X - X.mean(0)) / X.std()
    return X, y


def augmenter(name: str, noise: float, generator: torch.Generator | None = None):
    """The training augmentation of dataset ``name``: :func:`digit_augmenter` for the digits, Gaussian jitter
    (:func:`jitter_augmenter`) for the others; ``noise`` is the pixel noise or the jitter's σ."""
    if name == "digits":
        return digit_augmenter(noise, generator=generator)
    return jitter_augmenter(noise, generator=generator)


__all__ = ["DATASETS", "augmenter", "dataset_size", "digit_augmenter", "jitter_augmenter", "load_digits_subset",
           "make_dataset", "make_manifolds", "make_subspaces", "training_data"]

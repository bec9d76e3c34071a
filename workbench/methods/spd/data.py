"""SPD data: region-covariance descriptors of scikit-learn's bundled digits, and synthetic SPD batches with a
controlled condition number.

Digits (``sklearn.datasets.load_digits``: 1797 8×8 images, 10 balanced classes, shipped in the wheel, offline),
50/50 stratified split with seed 0 (method note §6), and optionally a validation split carved from the training half
(stratified, its own seed) for model selection that never looks at the test half:

- ``digits_region``: region covariance (Tuzel, Porikli, Meer, ECCV 2006) of the image scaled to [0, 1].
  Per pixel the features
  (x/W, y/H, I, |I_x|, |I_y|, √(I_x² + I_y²), |I_xx|, |I_yy|) with ``np.gradient`` derivatives, covariance over the
  64 pixels + 1e-4 I → 8×8, well conditioned (median κ ≈ 260).
- ``digits_illcond``: the row Gram C = I Iᵀ / 8 + 1e-5 I of the image scaled to [0, 1] (pixels / 16): median
  κ ≈ 1.5e5, 97 % above 1e5 (like HDM05's covariances). pyriemann's MDM gets 0.766 (AIM) and 0.860 (BW) here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DATASETS = ("digits_region", "digits_illcond")


@dataclass
class SPDDataset:
    """Train/validation/test SPD matrices (N, n, n) with integer labels (N,); the validation split may be empty."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n(self) -> int:
        return self.X_train.shape[-1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def region_covariances(images: np.ndarray) -> np.ndarray:
    """Tuzel region covariance of each (H, W) image over its pixels, 8 features, + 1e-4 I. (N, H, W) -> (N, 8, 8)."""
    N, H, W = images.shape
    yy, xx = np.meshgrid(np.arange(H) / H, np.arange(W) / W, indexing="ij")  # (H, W)
    Iy, Ix = np.gradient(images, axis=(1, 2))  # (N, H, W) each
    Iyy = np.gradient(Iy, axis=1)
    Ixx = np.gradient(Ix, axis=2)
    features = np.stack([np.broadcast_to(xx, images.shape), np.broadcast_to(yy, images.shape), images, np.abs(Ix),
                         np.abs(Iy), np.hypot(Ix, Iy), np.abs(Ixx), np.abs(Iyy)], axis=-1).reshape(N, H * W, 8)
    centred = features - features.mean(axis=1, keepdims=True)  # (N, 64, 8)
    C = centred.transpose(0, 2, 1) @ centred / (H * W - 1)  # (N, 8, 8)
    return C + 1e-4 * np.eye(8)


def row_grams(images: np.ndarray) -> np.ndarray:
    """C = I Iᵀ / W + 1e-5 I for images scaled to [0, 1]. (N, H, W) -> (N, H, H)."""
    W = images.shape[-1]
    return images @ images.transpose(0, 2, 1) / W + 1e-5 * np.eye(images.shape[1])


def load_digits_spd(name: str = "digits_illcond", dtype: torch.dtype = torch.float64, seed: int = 0,
                    validation: float = 0.0, validation_seed: int = 0) -> SPDDataset:
    """One of :data:`DATASETS` as torch tensors; 50/50 stratified train/test split (``seed`` 0 is the note's split),
    then a fraction ``validation`` in [0, 1) of the training half held out, stratified, with ``validation_seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not known; expected one of {', '.join(map(repr, DATASETS))}")
    if not 0 <= validation < 1:
        raise ValueError(f"load_digits_spd: validation = {validation!r} is not allowed; expected a fraction in [0, 1)")
    digits = load_digits()
    images, labels = digits.images.astype(np.float64), digits.target
    images = images / 16.0  # pixels in [0, 1]
    X = region_covariances(images) if name == "digits_region" else row_grams(images)
    X_tr, X_te, y_tr, y_te = train_test_split(X, labels, test_size=0.5, stratify=labels, random_state=seed)
    if validation > 0:
        X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=validation, stratify=y_tr,
                                                  random_state=validation_seed)
    else:
        X_va, y_va = X_tr[:0], y_tr[:0]
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return SPDDataset(name, t(X_tr), torch.as_tensor(y_tr), t(X_va), torch.as_tensor(y_va), t(X_te),
                      torch.as_tensor(y_te))


def condition_numbers(X: torch.Tensor) -> torch.Tensor:
    """κ(X) = λ_max / λ_min per matrix; (..., n, n) -> (...,)."""
    lam = torch.linalg.eigvalsh(X)
    return lam[..., -1] / lam[..., 0]


def random_spd(N: int, n: int, cond: float = 10.0, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64, device=None, scale: float = 1.0) -> torch.Tensor:
    """N random SPD matrices Q diag(λ) Qᵀ with Haar-random Q and eigenvalues log-uniform in [scale/cond, scale],
    both ends included, so κ = cond exactly (up to round-off). (N, n, n)."""
    if not cond >= 1:
        raise ValueError(f"random_spd: cond = {cond!r} is not allowed; expected a number >= 1")
    Z = torch.randn(N, n, n, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(Z)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar measure
    u = torch.rand(N, n, generator=generator, dtype=torch.float64)
    u[:, 0], u[:, -1] = 0.0, 1.0
    lam = scale * torch.as_tensor(cond, dtype=torch.float64) ** (u - 1)  # (N, n) in [scale/cond, scale]
    X = (Q * lam.unsqueeze(-2)) @ Q.mT
    return (0.5 * (X + X.mT)).to(dtype=dtype, device=device)

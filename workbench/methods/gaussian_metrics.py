"""Gaussian distances for entropic OT evaluation: Bures–Wasserstein, BW2-UVP and conditional BW2-UVP.

For Gaussians N(m1, C1) and N(m2, C2) the squared 2-Wasserstein distance has the closed form

    BW2(m1, C1, m2, C2) = ‖m1 − m2‖² + tr C1 + tr C2 − 2 tr (C1^½ C2 C1^½)^½

(Dowson & Landau 1982; Bures metric). The EOT benchmark of Gushchin et al. (NeurIPS 2023,
``ngushchin/EntropicOTBenchmark`` ``benchmark/metrics.py``) reports it as an unexplained-variance
percentage, with ½ factors on both the distance and the normaliser that cancel:

    BW2-UVP  = 100 · ½ BW2(model, P1) / (½ tr Cov P1)
    cBW2-UVP = 100 · ½ mean_x BW2(π̂(·|x), π*(·|x)) / (½ y_var),   y_var = tr Cov P1.

Evaluation metrics (no gradients): every function takes torch tensors or numpy arrays, computes in
float64 and is batched over leading dimensions where shapes say so.
"""
from __future__ import annotations

import torch


def _float64(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to(torch.float64)


def sym_power(C: torch.Tensor, p: float) -> torch.Tensor:
    """C^p of a symmetric positive semi-definite matrix through its eigendecomposition,
    C = V diag(λ) Vᵀ ⇒ C^p = V diag(λ^p) Vᵀ; negative round-off eigenvalues are clamped to 0 for p > 0.
    Batched over leading dimensions: (..., D, D) -> (..., D, D); keeps C's dtype."""
    lam, V = torch.linalg.eigh(0.5 * (C + C.mT))  # (..., D), (..., D, D)
    if p > 0:
        lam = lam.clamp(min=0)
    return (V * lam.pow(p).unsqueeze(-2)) @ V.mT


def gaussian_moments(samples) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample mean and unbiased covariance (``np.cov`` convention) along the second-last axis:
    (..., N, D) -> mean (..., D), cov (..., D, D)."""
    x = _float64(samples)
    mean = x.mean(dim=-2)  # (..., D)
    centred = x - mean.unsqueeze(-2)  # (..., N, D)
    return mean, centred.mT @ centred / (x.shape[-2] - 1)


def bw2(m1, C1, m2, C2) -> torch.Tensor:
    """Squared Bures–Wasserstein distance W2²(N(m1, C1), N(m2, C2)), batched:

        ‖m1 − m2‖² + tr C1 + tr C2 − 2 tr (C1^½ C2 C1^½)^½,

    with tr M^½ = Σ √λ_i(M) for the symmetric PSD M = C1^½ C2 C1^½.
    Shapes: means (..., D), covariances (..., D, D) -> (...)."""
    m1, C1, m2, C2 = (_float64(a) for a in (m1, C1, m2, C2))
    C1_half = sym_power(C1, 0.5)  # (..., D, D)
    M = C1_half @ C2 @ C1_half
    cross = torch.linalg.eigvalsh(0.5 * (M + M.mT)).clamp(min=0).sqrt().sum(-1)  # (...)
    traces = C1.diagonal(dim1=-2, dim2=-1).sum(-1) + C2.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (m1 - m2).square().sum(-1) + traces - 2 * cross


def bw2_uvp(samples_model, samples_true) -> float:
    """BW2-UVP (%) between the Gaussian fits of two sample sets (N, D):

        100 · ½ BW2(m̂, Ĉ, m, C) / (½ tr C),

    where (m, C) are the moments of ``samples_true`` (the target P1) and (m̂, Ĉ) of the model's samples
    (``compute_BW_UVP_by_gt_samples`` in the benchmark). Predicting the target mean with no spread scores 100."""
    m_hat, C_hat = gaussian_moments(samples_model)
    m, C = gaussian_moments(samples_true)
    return float(100 * (0.5 * bw2(m_hat, C_hat, m, C)) / (0.5 * C.trace()))


def cbw2_uvp_from_moments(model_mean, model_cov, true_mean, true_cov, y_var: float) -> float:
    """Analytic conditional BW2-UVP (%): the model's conditional moments against the exact ones at B
    test points x_b,

        100 · mean_b ½ BW2(m̂(x_b), Ĉ(x_b), m*(x_b), C*(x_b)) / (½ y_var),   y_var = tr Cov P1.

    Shapes: means (B, D), covariances (B, D, D). Free of the Monte-Carlo floor of the sampled score."""
    return float(100 * (0.5 * bw2(model_mean, model_cov, true_mean, true_cov)).mean() / (0.5 * y_var))


def cbw2_uvp_from_samples(samples, true_mean, true_cov, y_var: float) -> float:
    """Sampled conditional BW2-UVP (%), as the benchmark's ``calculate_cond_bw``: ``samples`` (B, N, D)
    holds N model draws from π̂(·|x_b) for each test point; their sample moments replace the analytic
    ones in :func:`cbw2_uvp_from_moments`."""
    mean, cov = gaussian_moments(samples)  # (B, D), (B, D, D)
    return cbw2_uvp_from_moments(mean, cov, true_mean, true_cov, y_var)

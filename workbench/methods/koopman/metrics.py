"""How the Koopman lab scores a forecast: NRMSE at fixed horizons on test rollouts, and eigenvalues against the
true ones.

NRMSE@n = RMSE at step n / σ, σ the pooled standard deviation of the test data (1 ≈ as bad as predicting the
mean); rollouts start every ``stride`` snapshots of the test trajectories.
"""
from __future__ import annotations

import torch

from workbench.methods.koopman.analysis import rollout
from workbench.methods.koopman.systems import windows

HORIZONS = (5, 20, 50)


def data_std(X: torch.Tensor) -> float:
    """σ = sqrt(mean ‖x − x̄‖² / D) over every snapshot of X (..., D), x̄ the per-channel mean:
    the pooled standard deviation that normalises the NRMSE."""
    flat = X.reshape(-1, X.shape[-1])
    return float((flat - flat.mean(dim=0)).square().mean().sqrt())


def nrmse(prediction: torch.Tensor, truth: torch.Tensor, std: float,
          horizons: tuple[int, ...] = HORIZONS) -> dict[int, float]:
    """NRMSE@n = RMSE_n / σ, RMSE_n = sqrt(mean over rollouts and channels of (x̂_n − x_n)²), the error *at*
    step n (not averaged over 1..n); σ = :func:`data_std` of the test data. prediction, truth (B, H + 1, D)
    with index 0 the start. 1 ≈ the error of predicting the mean; a method that drifts can exceed it."""
    return {n: float((prediction[:, n] - truth[:, n]).square().mean().sqrt()) / std for n in horizons}


def eigenvalue_error(estimated: torch.Tensor, true: torch.Tensor) -> float:
    """max_i |λ_i − λ̂_{π(i)}| under the best one-to-one matching π of the true eigenvalues to the estimated
    ones (Hungarian algorithm on |λ_i − λ̂_j|)."""
    from scipy.optimize import linear_sum_assignment

    cost = (true.reshape(-1, 1).to(torch.complex128) - estimated.reshape(1, -1).to(torch.complex128)).abs()
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return float(cost[rows, cols].max())


def forecast_nrmse(model, test: torch.Tensor, std: float, stride: int = 10,
                   horizons: tuple[int, ...] = HORIZONS) -> dict[int, float]:
    """{n: NRMSE@n} of ``model``'s rollouts (:func:`~workbench.methods.koopman.analysis.rollout`, on the model's
    device and dtype) from every ``stride``-th snapshot of the test trajectories (N, T + 1, D), each as long as
    the longest horizon, against the trajectories themselves, in float64."""
    W = windows(test, max(horizons) + 1, stride).to("cpu", torch.float64)  # (M, H + 1, D)
    return nrmse(rollout(model, W[:, 0], max(horizons)), W, std, horizons)

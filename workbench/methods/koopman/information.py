"""The information-theoretic terms of the Koopman autoencoder's Lagrangian (Cheng, Yuan et al., ICLR 2026):

    Î     = InfoNCE over temporal neighbours P_n = {z_{n±i}, 1 ≤ i ≤ k}, temperature τ
    S     = −Σ_j λ_j log λ_j,  λ = eig(C / tr C),  C the covariance of the latents (von Neumann entropy)
    d_eff = exp(S) ∈ [1, d]                                     (effective dimension)

InfoNCE follows the released code's form (cosine similarity, τ = 0.1, anchors n ∈ [k, T − k], the 2k neighbours
as positives, loss −log Σ_pos e^s / Σ_{j≠n} e^s); negatives are the other steps of the same window (code) or
every other latent of the batch (``negatives="batch"``, the paper's Σ_{j∈batch}).
"""
from __future__ import annotations

import torch

ENTROPY_SIGNS = {"paper": 1.0, "code": -1.0}
"""s in L = ... − s·γ·S: the paper maximises S (s = +1); the released code adds +γ·S (s = −1)."""


def von_neumann_entropy(Z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """S(ρ) = −Σ_j λ_j log λ_j, λ = eig(ρ), ρ = C / tr C, C = (1/(n−1)) Σ_i (z_i − z̄)(z_i − z̄)ᵀ + eps·I,
    natural log, eigenvalues clamped at eps (as the released code). Z (n, d) -> scalar; S ∈ [0, log d]:
    log d for isotropic latents, 0 for latents on a line. Differentiable (``eigvalsh``)."""
    Zc = Z - Z.mean(dim=0, keepdim=True)  # (n, d)
    C = Zc.T @ Zc / max(Z.shape[0] - 1, 1)  # (d, d)
    C = C + eps * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    rho = C / C.diagonal().sum()
    lam = torch.linalg.eigvalsh(rho).clamp(min=eps)  # (d,)
    return -(lam * lam.log()).sum()


def effective_dimension(Z: torch.Tensor) -> float:
    """d_eff = exp(S(C / tr C)) ∈ [1, d] of latents Z (n, d)."""
    with torch.no_grad():
        return float(von_neumann_entropy(Z.double()).exp())


def info_nce(Z: torch.Tensor, k: int = 3, tau: float = 0.1, negatives: str = "window") -> torch.Tensor:
    """InfoNCE loss over temporal neighbours (released code's form; the estimate is Î = −loss up to a constant):

        loss = mean_{b, n} −log [ Σ_{p∈P_n} e^{s(z_n, z_p)/τ} / Σ_{j≠n} e^{s(z_n, z_j)/τ} ],
        P_n = {z_{n±i} : 1 ≤ i ≤ k},   s = cosine similarity,   anchors n ∈ [k, T − k].

    ``negatives="window"``: j runs over the other steps of the same window (code); ``"batch"``: over every
    other latent of the batch (the paper's Σ_{j∈batch}). Z (B, L, d) with L ≥ 2k + 1 -> scalar ≥ 0; it is
    smallest when each anchor is aligned with its neighbours and far from the rest."""
    B, L, d = Z.shape
    if L < 2 * k + 1:
        raise ValueError(f"info_nce needs windows of at least 2k + 1 = {2 * k + 1} steps; got {L}")
    z = torch.nn.functional.normalize(Z, dim=-1)  # (B, L, d)
    anchors = torch.arange(k, L - k, device=Z.device)  # (A,)
    steps = torch.arange(L, device=Z.device)
    offset = steps.unsqueeze(0) - anchors.unsqueeze(1)  # (A, L)
    positive = (offset.abs() >= 1) & (offset.abs() <= k)  # (A, L)
    self_mask = offset == 0  # (A, L)
    za = z[:, anchors]  # (B, A, d)
    if negatives == "window":
        logits = za @ z.mT / tau  # (B, A, L)
        pos_mask, keep = positive.expand(B, -1, -1), ~self_mask.expand(B, -1, -1)
    elif negatives == "batch":
        logits = za @ z.reshape(B * L, d).T / tau  # (B, A, B·L)
        own = torch.eye(B, dtype=torch.bool, device=Z.device)[:, None, :, None]  # (B, 1, B, 1)
        pos_mask = (own & positive[None, :, None, :]).reshape(B, len(anchors), B * L)
        keep = ~(own & self_mask[None, :, None, :]).reshape(B, len(anchors), B * L)
    else:
        raise ValueError(f"negatives = {negatives!r}; allowed: 'window', 'batch'")
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = logits.masked_fill(~pos_mask, neg_inf).logsumexp(dim=-1)  # (B, A)
    log_all = logits.masked_fill(~keep, neg_inf).logsumexp(dim=-1)  # (B, A)
    return (log_all - log_pos).mean()

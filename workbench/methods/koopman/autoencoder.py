"""The Koopman autoencoder of Cheng, Yuan et al., "Information Shapes Koopman Representation", ICLR 2026
(arXiv 2510.13025; released code ``Wenxuan52/InformationKoopman``), and its training loop.

The Koopman operator 𝒦 of a map x_{t+1} = F(x_t) acts linearly on observables g: (𝒦g)(x) = g(F(x)). The
autoencoder learns features z = φ(x) on which the dynamics is (nearly) linear: an encoder z = φ(x), a decoder
x̂ = ψ(z) and a linear K acting on rows, z_{t+1} ≈ z_t K, trained on windows x_0..x_T with the Lagrangian
(paper Alg. 2, eq. 8)

    L = L_rec + L_pred − α·Î(z_n; P_n) + β·‖z_{n+1} − z_n K‖² − s·γ·S(C / tr C)

    L_rec  = mean_t ‖ψ(φ(x_t)) − x_t‖²
    L_pred = mean_{h=1..H} ‖ψ(z_0 Kʰ) − x_h‖²                   (multi-step rollout from each window's start)

with Î (InfoNCE) and S (von Neumann entropy) from :mod:`workbench.methods.koopman.information`.

Where the released code and the paper disagree, this module follows:

- **entropy sign**: the paper (s = +1, S is *maximised*: anti-collapse) by default; ``entropy_sign="code"``
  gives the released code's +0.1·S (s = −1, S minimised). See :data:`ENTROPY_SIGNS`.
- **K**: the paper's learned K (``nn.Linear`` without bias, with the β consistency term) by default;
  ``koopman="ridge"`` is the released code's closed-form ridge fit per window (λ = 0.1), averaged over the
  batch and detached (no gradient flows through K).
- **prediction loss**: multi-step (the mean error of a K-rollout over the window) by default;
  ``forecast="one_step_sum"`` is the released code's one-step loss summed over the window.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from workbench.methods.koopman.analysis import one_or_many_states
from workbench.methods.koopman.information import ENTROPY_SIGNS, info_nce, von_neumann_entropy
from workbench.progress import Cadence, Event


def ridge_koopman(Z: torch.Tensor, Z_next: torch.Tensor, lam: float = 0.1) -> torch.Tensor:
    """Closed-form ridge fit of z' = z K (the released code's K): K = (ZᵀZ + λI)⁻¹ Zᵀ Z', or the equal
    Zᵀ(ZZᵀ + λI)⁻¹ Z' when there are fewer snapshots than latent dimensions (push-through identity).
    Batched over leading dimensions: Z, Z' (..., n, d) -> K (..., d, d)."""
    n, d = Z.shape[-2:]
    if n < d:
        eye = torch.eye(n, dtype=Z.dtype, device=Z.device)
        return Z.mT @ torch.linalg.solve(Z @ Z.mT + lam * eye, Z_next)
    eye = torch.eye(d, dtype=Z.dtype, device=Z.device)
    return torch.linalg.solve(Z.mT @ Z + lam * eye, Z.mT @ Z_next)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


FORECAST_LOSSES = ("rollout_mean", "one_step_sum")


@dataclass
class LossWeights:
    """The Lagrangian's weights and settings. α: InfoNCE, β: consistency ‖z_{n+1} − z_n K‖², γ: entropy S;
    ``entropy_sign`` 'paper' (maximise S) or 'code' (minimise S, the released code); k, τ, negatives: InfoNCE;
    ``forecast``: 'rollout_mean' (the mean error of z_0 Kʰ over the whole window, h = 1..L − 1) or
    'one_step_sum' (the released code: one-step errors of z_t K summed over the window's steps, and the
    reconstruction summed the same way); ``reconstruction``: the weight of L_rec (released code: 0.1).
    The forecast horizon is the window's: training windows of L snapshots forecast L − 1 steps."""

    alpha: float = 2.0
    beta: float = 1.0
    gamma: float = 0.1
    entropy_sign: str = "paper"
    k: int = 3
    tau: float = 0.1
    negatives: str = "window"
    forecast: str = "rollout_mean"
    reconstruction: float = 1.0

    def __post_init__(self) -> None:
        if self.forecast not in FORECAST_LOSSES:
            raise ValueError(f"forecast = {self.forecast!r}; allowed: {', '.join(map(repr, FORECAST_LOSSES))}")


class KoopmanAutoencoder(nn.Module):
    """Encoder φ: R^D → R^d, decoder ψ: R^d → R^D (MLPs) and a linear K acting on rows, z_{t+1} = z_t K.

    ``koopman="learned"``: K is the (transposed) weight of ``nn.Linear(d, d, bias=False)``, initialised at
    the identity and trained by the prediction and consistency losses (paper). ``koopman="ridge"``: K is
    refitted in closed form on every batch (per window, λ = ``ridge_lambda``, averaged, detached) as the
    released code does; the buffer ``K_ridge`` keeps the latest fit for prediction (:meth:`refit_koopman`
    sets it from whole data sets after training)."""

    def __init__(self, input_dim: int, latent_dim: int = 8, hidden: int = 64, koopman: str = "learned",
                 ridge_lambda: float = 0.1, depth: int = 2):
        super().__init__()
        if koopman not in ("learned", "ridge"):
            raise ValueError(f"koopman = {koopman!r}; allowed: 'learned', 'ridge'")
        if latent_dim < 1 or input_dim < 1 or hidden < 1:
            raise ValueError(f"input_dim, latent_dim, hidden = {input_dim}, {latent_dim}, {hidden}; all must be >= 1")
        self.input_dim, self.latent_dim, self.koopman, self.ridge_lambda = input_dim, latent_dim, koopman, ridge_lambda
        self.encoder = mlp([input_dim] + [hidden] * depth + [latent_dim])
        self.decoder = mlp([latent_dim] + [hidden] * depth + [input_dim])
        self.K_linear = nn.Linear(latent_dim, latent_dim, bias=False)
        with torch.no_grad():
            self.K_linear.weight.copy_(torch.eye(latent_dim))
        self.K_linear.requires_grad_(koopman == "learned")
        self.register_buffer("K_ridge", torch.eye(latent_dim))
        self.register_buffer("x_mean", torch.zeros(input_dim))
        self.register_buffer("x_scale", torch.ones(input_dim))

    @torch.no_grad()
    def set_normalization(self, x: torch.Tensor) -> None:
        """Standardise inputs per channel with the mean and standard deviation of x (..., D), as the released
        code's data set does; the losses are measured in these standardised units."""
        flat = x.reshape(-1, x.shape[-1])
        self.x_mean.copy_(flat.mean(dim=0))
        self.x_scale.copy_(flat.std(dim=0).clamp(min=1e-8))

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, koopman={self.koopman!r}"

    @property
    def K(self) -> torch.Tensor:
        """K (d, d) in the row convention z_{t+1} = z_t K."""
        return self.K_linear.weight.T if self.koopman == "learned" else self.K_ridge

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = φ((x − mean) / scale): (..., D) -> (..., d)."""
        return self.encoder((x - self.x_mean) / self.x_scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = ψ(z) · scale + mean: (..., d) -> (..., D)."""
        return self.decoder(z) * self.x_scale + self.x_mean

    @staticmethod
    def rollout_latent(z0: torch.Tensor, K: torch.Tensor, n_steps: int) -> torch.Tensor:
        """z_h = z_0 Kʰ, h = 0..n: (B, d) -> (B, n + 1, d)."""
        path = [z0]
        for _ in range(n_steps):
            path.append(path[-1] @ K)
        return torch.stack(path, dim=1)

    @property
    def state_dim(self) -> int:
        return self.input_dim

    @torch.no_grad()
    @one_or_many_states
    def predict(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """x̂_h = ψ(φ(x_0) Kʰ): (B, D) -> (B, n_steps + 1, D)."""
        return self.decode(self.rollout_latent(self.encode(x0), self.K, n_steps))

    @torch.no_grad()
    def refit_koopman(self, x_windows: torch.Tensor) -> None:
        """Ridge mode: K_ridge ← the mean of the per-window ridge fits over ``x_windows`` (M, L, D) at the
        current encoder (the code's epoch-averaged K). Learned mode: nothing to do."""
        if self.koopman == "ridge":
            Z = torch.cat([self.encode(chunk) for chunk in x_windows.split(4096)])  # (M, L, d)
            self.K_ridge.copy_(ridge_koopman(Z[:, :-1], Z[:, 1:], self.ridge_lambda).mean(dim=0))

    def loss(self, x: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The Lagrangian on a batch of windows x (B, L, D), in standardised units:

            L = w_rec·L_rec + L_pred + α·L_NCE + β·‖z_{n+1} − z_n K‖² − s·γ·S,   (L_NCE = −Î)

        ``rollout_mean`` (forecast the whole window from its first snapshot, as scored):
            L_rec = mean_t ‖ψ(z_t) − x_t‖²/D,   L_pred = mean_{h=1..L−1} ‖ψ(z_0 Kʰ) − x_h‖²/D;
        ``one_step_sum`` (the released code's ``trainer.py``: L_fwd = Σ_t MSE(ψ(z_t K), x_{t+1}), L_id = Σ_t MSE(ψ(z_t), x_t)):
            L_rec = Σ_{t=0..L−1} ‖ψ(z_t) − x_t‖²/D,   L_pred = Σ_{t=0..L−2} ‖ψ(z_t K) − x_{t+1}‖²/D
        (each term averaged over the batch). Returns (L, parts) with parts rec, pred, nce, consistency,
        entropy (S) and d_eff = exp(S), detached."""
        B, L, D = x.shape
        x = (x - self.x_mean) / self.x_scale  # standardised units
        z = self.encoder(x)  # (B, L, d)
        if self.koopman == "ridge":
            K = ridge_koopman(z[:, :-1].detach(), z[:, 1:].detach(), self.ridge_lambda).mean(dim=0)  # (d, d)
            self.K_ridge.copy_(K)
        else:
            K = self.K  # (d, d)
        if w.forecast == "rollout_mean":
            z_ahead = self.rollout_latent(z[:, 0], K, L - 1)[:, 1:]  # (B, L − 1, d): z_0 Kʰ, h = 1..L − 1
        else:
            z_ahead = z[:, :-1] @ K  # (B, L − 1, d): z_t K, t = 0..L − 2

        def reduce(error: torch.Tensor) -> torch.Tensor:  # (B, L', D) -> the mean, or Σ_t of the per-step MSE
            return error.mean() if w.forecast == "rollout_mean" else error.mean(dim=(0, 2)).sum()

        rec = reduce((self.decoder(z) - x).square())
        pred = reduce((self.decoder(z_ahead) - x[:, 1:]).square())
        consistency = (z[:, 1:] - z[:, :-1] @ K).square().sum(-1).mean()
        S = von_neumann_entropy(z.reshape(B * L, -1))
        total = w.reconstruction * rec + pred + w.beta * consistency - ENTROPY_SIGNS[w.entropy_sign] * w.gamma * S
        nce = info_nce(z, w.k, w.tau, w.negatives) if w.alpha > 0 else torch.zeros((), device=x.device)
        total = total + w.alpha * nce
        parts = {"rec": rec, "pred": pred, "nce": nce, "consistency": consistency, "entropy": S, "d_eff": S.exp()}
        return total, {name: value.detach() for name, value in parts.items()}


def fit(model: KoopmanAutoencoder, train_windows: torch.Tensor, weights: LossWeights, steps: int,
        batch_size: int = 64, lr: float = 1e-3, clip: float = 1.0, seed: int = 0, lr_step: int = 0,
        lr_gamma: float = 0.8, callback: Callable[[Event], None] | None = None,
        stop: Callable[[], bool] | None = None, cadence: Cadence | None = None) -> int:
    """Minimise the Lagrangian with Adam (gradient norm clipped at ``clip``, as the released code) on
    random batches of ``train_windows`` (M, L, D), already on the model's device and dtype. ``lr_step`` > 0:
    the learning rate is multiplied by ``lr_gamma`` every ``lr_step`` steps (the released code's
    StepLR(20 epochs, 0.8)); 0 keeps it constant.
    ``callback(Event(step, steps, means))`` gets the mean of every loss part (rec, pred, nce, consistency,
    entropy, d_eff) and of the total ``loss`` since the previous call whenever ``cadence(step)`` is due (default
    :class:`Cadence`: every 1 % of the steps, the last one and every half second); ``stop()`` returning True ends
    training before the next step. Returns steps taken.
    Ridge mode: K_ridge is refitted on all training windows at the end."""
    device = train_windows.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, lr_step, lr_gamma) if lr_step > 0 else None
    cadence = cadence if cadence is not None else Cadence(steps)
    running: dict[str, torch.Tensor] = {}
    count, step = 0, 0
    while step < steps and not (stop is not None and stop()):
        index = torch.randint(train_windows.shape[0], (batch_size,), generator=generator).to(device)
        total, parts = model.loss(train_windows[index], weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        step, count = step + 1, count + 1
        for name, value in (parts | {"loss": total.detach()}).items():
            running[name] = running.get(name, 0) + value
        if callback is not None and cadence(step):
            callback(Event(step, steps, {name: float(value) / count for name, value in running.items()}))
            running, count = {}, 0
    model.refit_koopman(train_windows)
    return step

"""The settings the notebook tests run the method notebooks with, and the breakages each notebook must catch.

``OVERRIDES``: small papermill parameters per case (notebook name, or ``name/variant``); the unbroken
notebook passes its own checks with them (`test_notebooks_papermill.py`). ``MUTATIONS``: deliberate
breakages of a method, applied by a cell run before the notebook's first cell; under each, the
notebook's checks must fail with an AssertionError (`test_notebook_mutations.py`), at the settings of
the case named. README "Adding a method", step 4: every new notebook adds its cases here.
"""
from dataclasses import dataclass

OVERRIDES = {
    "lightsb": {"seed": 2, "pair_seed": 2, "toy_steps": 200},
    "lightsb/mixture_benchmark": {"dataset": "mixture_benchmark", "dim": 2, "toy_steps": 200},
    "optimizers": {"seed": 1, "lm_steps": 60, "lm_optimizers": ["adamw", "galore"]},
    "koopman": {"steps": 600, "ablation_steps": 200, "paper_steps": 500},
    "manifold_clustering": {"seed": 1},
    "spd_normalization": {"seed": 1, "epochs": 2, "compare": ["none"]},
}


@dataclass(frozen=True)
class Mutation:
    case: str  # a key of OVERRIDES: the notebook and the settings it runs with
    name: str
    patch: str  # Python source run in the notebook's kernel before its first cell
    expect: str = ""  # a fragment of the failing check's message, when the check names what failed

    @property
    def notebook(self) -> str:
        return self.case.split("/")[0]


ADAM_STEP_DOES_NOTHING = "import torch\ntorch.optim.Adam.step = lambda self, closure=None: None\n"

MUTATIONS = [
    Mutation("lightsb", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING, expect="parameter tensors in 2 Adam steps"),
    Mutation("lightsb/mixture_benchmark", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING,
             expect="parameter tensors in 2 Adam steps"),
    Mutation("lightsb", "bridge_noise_without_square_root", '''
import torch
from workbench.methods.lightsb import LightSB

def sample_bridge(self, x0, x1, t, generator=None):  # the old reference bug: ε t (1 − t) as the standard deviation
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return t * x1 + (1 - t) * x0 + self.epsilon * t * (1 - t) * z

LightSB.sample_bridge = sample_bridge
''', expect="bridge"),
    Mutation("lightsb", "drift_without_one_over_one_minus_t", '''
from workbench.methods.lightsb import LightSB

exact_drift = LightSB.drift
LightSB.drift = lambda self, x, t: exact_drift(self, x, t) * (1 - t)  # E[X1 | X_t = x] − x, not divided by 1 − t
''', expect="drift at t = 0.5"),
    Mutation("lightsb", "n_components_ignored", '''
from workbench.labs.lightsb import LightSBExperiment

# n_components silently ignored: always the automatic K (1 for the Gaussian pair, 50 otherwise)
LightSBExperiment.components = property(lambda self: 1 if self.dataset == "gaussian" else 50)
''', expect="the run trained a model with"),
    Mutation("optimizers", "projected_update_does_nothing", '''
from workbench.optim import apollo, frugal, subspace

for cls in (subspace.SubspaceAdam, apollo.APOLLO, frugal.FRUGAL):  # GaLore, DCT, APOLLO(-Mini), FRUGAL
    cls._low_rank_step = lambda self, p, state, group: None
''', expect="parameter tensors where they were"),
    Mutation("optimizers", "lion_step_does_nothing", '''
from workbench import optim

optim.Lion.step = lambda self, closure=None: None
''', expect="lion"),
    Mutation("optimizers", "galore_keeps_all_of_V", '''
import torch
from workbench.optim import subspace

low_rank_refresh = subspace.refresh

def refresh(G, state, proj, rank):  # also keeps every right singular vector, not only the top r
    state["V_full"] = torch.linalg.svd(G, full_matrices=False)[2]
    return low_rank_refresh(G, state, proj, rank)

subspace.refresh = refresh
''', expect="state bytes"),
    Mutation("optimizers", "cosmos_newton_schulz_skipped", '''
import torch
from workbench.optim import cosmos

# COSMOS's Muon part without Newton–Schulz: the residual itself (in bfloat16, as Newton–Schulz returns it)
cosmos.newton_schulz = lambda X, *args, **kwargs: X.to(torch.bfloat16)
''', expect="COSMOS's step outside its subspace is not orthogonalized"),
    Mutation("optimizers", "mezo_perturbation_not_undone", '''
from workbench.optim import zeroth_order

exact_perturb = zeroth_order.ZerothOrder._perturb

def _perturb(self, seed, scale, frozen):  # θ − εz left in place: the last perturbation, +εz, is skipped
    if scale == 1 and getattr(self, "after_minus", False):
        self.after_minus = False
        return
    self.after_minus = scale == -2
    exact_perturb(self, seed, scale, frozen)

zeroth_order.ZerothOrder._perturb = _perturb
''', expect="MeZO did not restore the weights"),
    Mutation("optimizers", "rank_ignored", '''
from workbench.methods import optim_tasks

exact_rank = optim_tasks.projection_rank
# rank = 4 or 64 accepted, but every projected matrix gets rank_fraction · min(m, n), as if rank were auto
optim_tasks.projection_rank = lambda shape, rank, rank_fraction: exact_rank(shape, None, rank_fraction)
''', expect="state bytes did not grow with the rank"),
    Mutation("spd_normalization", "bw_distance_half_cross_term", '''
import workbench.methods.spd as spd
from workbench.methods.spd import batchnorm, geometry

exact_distance = geometry.bw_distance

def bw_distance(A, B, squared=False):  # d² = tr A + tr B − tr (A^½ B A^½)^½: the cross term's factor 2 lost
    trace = lambda X: X.diagonal(dim1=-2, dim2=-1).sum(-1)
    cross = 0.5 * (trace(A) + trace(B) - exact_distance(A, B, squared=True))
    d2 = trace(A) + trace(B) - cross
    return d2 if squared else d2.sqrt()

spd.bw_distance = geometry.bw_distance = batchnorm.bw_distance = bw_distance
''', expect="BW distance at the identity"),
    Mutation("spd_normalization", "transport_to_identity_skipped", '''
from workbench.methods.spd import batchnorm, geometry

skip = lambda P, V: V  # centring by Log_μ alone: the tangent vectors stay in μ's metric
geometry.bw_transport_to_identity = batchnorm.bw_transport_to_identity = skip
''', expect="GBWBN output"),
    Mutation("spd_normalization", "riemannian_adam_step_does_nothing", '''
import geoopt

geoopt.optim.RiemannianAdam.step = lambda self, closure=None: None
''', expect="2 training steps did not move its weights"),
    Mutation("spd_normalization", "daleckii_krein_zero_on_ties", '''
import torch
from workbench.methods.spd import matfun

exact_differences = matfun.divided_differences

def divided_differences(lam, f_lam, df_lam):  # the official code's backward: 0 where (f(λ_i) − f(λ_j))/(λ_i − λ_j) is 0/0
    K = exact_differences(lam, f_lam, df_lam)
    scale = torch.maximum(lam.abs().unsqueeze(-1), lam.abs().unsqueeze(-2))
    tied = (lam.unsqueeze(-1) - lam.unsqueeze(-2)).abs() <= matfun.tie_tolerance(lam.dtype) * scale
    off_diagonal = ~torch.eye(lam.shape[-1], dtype=torch.bool, device=lam.device)
    return torch.where(tied & off_diagonal, torch.zeros_like(K), K)

matfun.divided_differences = divided_differences
''', expect="tied eigenvalues"),
    Mutation("spd_normalization", "bn_identity_inside_spdnet", '''
from workbench.methods.spd import net

build = net.SPDNet.__init__

def __init__(self, *args, **kwargs):  # the BN is built and its parameters train, but it passes its input through
    build(self, *args, **kwargs)
    self.bn.forward = lambda X: X

net.SPDNet.__init__ = __init__
''', expect="BN inside SPDNet, after 2 steps"),
    Mutation("spd_normalization", "logeig_without_rotating_back", '''
import torch
from workbench.methods.spd import layers

def forward(self, X):  # log of the eigenvalues, but never rotated back: diag(log λ) instead of U diag(log λ) Uᵀ
    return torch.diag_embed(torch.linalg.eigvalsh(X).log())

layers.LogEig.forward = forward
''', expect="LogEig of a rotated matrix"),
    Mutation("spd_normalization", "reeig_floor_at_zero", '''
from workbench.methods.spd import layers

layers.ReEig.forward = lambda self, X: layers.clampm(X, 0.0)  # max(λ, 0): the ε floor lost
''', expect="ReEig: relative error"),
    Mutation("spd_normalization", "bimap_weights_plain_parameter", '''
from torch import nn
from workbench.methods.spd import layers

build = layers.BiMap.__init__

def __init__(self, *args, **kwargs):  # W a plain parameter: RiemannianAdam takes Euclidean Adam steps, no retraction
    build(self, *args, **kwargs)
    self.weight = nn.Parameter(self.weight.data.clone())

layers.BiMap.__init__ = __init__
''', expect="after 2 training steps (W left the Stiefel manifold)"),
    Mutation("spd_normalization", "stiefel_step_skipped", '''
import geoopt

build = geoopt.optim.RiemannianAdam.__init__

def __init__(self, params, *args, **kwargs):  # the BiMap weights never reach the optimizer (official MixOptimizer)
    params = [p for p in params if not isinstance(getattr(p, "manifold", None), geoopt.Stiefel)]
    build(self, params, *args, **kwargs)

geoopt.optim.RiemannianAdam.__init__ = __init__
''', expect="2 training steps did not move its weights"),
    Mutation("spd_normalization", "running_mean_not_updated", '''
from workbench.methods.spd import batchnorm

def _stat_update(self, new_mean, var):  # the running variance and count move, the running mean stays at I
    self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach().to(self.running_var))
    self.num_batches_tracked += 1

batchnorm.SPDBatchNorm._stat_update = _stat_update
''', expect="BN running mean: still I after 2 training steps"),
    Mutation("spd_normalization", "dispersion_divided_by_variance", '''
import inspect
import textwrap
from workbench.methods.spd import batchnorm

source = textwrap.dedent(inspect.getsource(batchnorm.SPDBatchNorm._forward_bw))
broken = source.replace("self.shift / torch.sqrt(var + self.eps)", "self.shift / (var + self.eps)")  # k = s/σ², not s/σ
assert broken != source
namespace = {}
exec(broken, vars(batchnorm), namespace)
batchnorm.SPDBatchNorm._forward_bw = namespace["_forward_bw"]
''', expect="GBWBN output dispersion"),
    Mutation("spd_normalization", "undeform_with_theta", '''
import inspect
import textwrap
from workbench.methods.spd import batchnorm

source = textwrap.dedent(inspect.getsource(batchnorm.SPDBatchNorm._forward_bw))
broken = source.replace("else 1 / theta_f)", "else theta_f)")  # undeform with Y^θ instead of Y^{1/θ}
assert broken != source
namespace = {}
exec(broken, vars(batchnorm), namespace)
batchnorm.SPDBatchNorm._forward_bw = namespace["_forward_bw"]
''', expect="GBWBN output mean"),
    Mutation("spd_normalization", "dispersion_identity_ignored", '''
from workbench.methods.spd import batchnorm

build = batchnorm.SPDBatchNorm.__init__

def __init__(self, *args, **kwargs):  # dispersion = "identity" accepted, but the spread is measured around the mean
    build(self, *args, **kwargs)
    self.dispersion = "mean"

batchnorm.SPDBatchNorm.__init__ = __init__
''', expect="dispersion = identity: the output dispersion"),
    Mutation("koopman", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING, expect="weight tensors in 3 Adam steps"),
    Mutation("koopman", "entropy_sign_flipped", '''
import workbench.methods.koopman as koopman

koopman.ENTROPY_SIGNS["paper"] = -1.0  # the paper's sign now minimises S, as the released code does
''', expect="Lagrangian term 'total'"),
    Mutation("koopman", "dmd_singular_values_off_by_ten_percent", '''
import torch

exact_svd = torch.linalg.svd

def svd(A, full_matrices=True):
    U, s, Vh = exact_svd(A, full_matrices=full_matrices)
    return U, 1.1 * s, Vh

torch.linalg.svd = svd
''', expect="DMD eigenvalues"),
    Mutation("koopman", "predict_rolls_out_one_step_short", '''
import torch
from workbench.methods.koopman import KoopmanAutoencoder

@torch.no_grad()
def predict(self, x0, n_steps):  # the path is padded with x̂_0 in front: index n holds only n − 1 steps of K
    x = self.decode(self.rollout_latent(self.encode(x0), self.K, n_steps - 1))  # (B, n_steps, D)
    return torch.cat([x[:, :1], x], dim=1)

KoopmanAutoencoder.predict = predict
''', expect="a rollout of exactly"),
    Mutation("koopman", "rollout_uses_K_transposed", '''
import torch
from workbench.methods.koopman import KoopmanAutoencoder

def rollout_latent(z0, K, n_steps):  # the column convention K z written on row vectors: z Kᵀ
    path = [z0]
    for _ in range(n_steps):
        path.append(path[-1] @ K.mT)
    return torch.stack(path, dim=1)

KoopmanAutoencoder.rollout_latent = staticmethod(rollout_latent)
''', expect="latent rollout z_0 K^n with the known K"),
    Mutation("koopman", "info_nce_temperature_ignored", '''
import workbench.methods.koopman as koopman_methods
from workbench.methods.koopman import autoencoder

exact_info_nce = koopman_methods.info_nce
info_nce = lambda Z, k=3, tau=0.1, negatives="window": exact_info_nce(Z, k, 1.0, negatives)  # τ lost
koopman_methods.info_nce = autoencoder.info_nce = info_nce  # as the notebook and the loss call it
''', expect="InfoNCE on a circle"),
    Mutation("koopman", "nrmse_divided_by_per_trajectory_std", '''
from importlib import import_module

import workbench.methods.koopman as koopman_methods

def data_std(X):  # each trajectory's own spread around its own mean, averaged: smaller than the pooled one
    return float((X - X.mean(dim=-2, keepdim=True)).square().mean(dim=(-2, -1)).sqrt().mean())

koopman_methods.data_std = import_module("workbench.labs.koopman").data_std = data_std
''', expect="NRMSE normaliser"),
    Mutation("koopman", "encoder_standardisation_skipped_at_predict", '''
from workbench.methods.koopman import KoopmanAutoencoder

KoopmanAutoencoder.encode = lambda self, x: self.encoder(x)  # trained on (x − mean) / scale, fed the raw x
''', expect="a rollout of exactly"),
    Mutation("koopman", "consistency_term_uses_z_n", '''
import torch
import workbench.methods.koopman as koopman_methods
from workbench.methods.koopman import ENTROPY_SIGNS, KoopmanAutoencoder, von_neumann_entropy

def loss(self, x, w):  # the released loss with one slip: ‖z_n − z_n K‖² instead of ‖z_{n+1} − z_n K‖²
    B, L, D = x.shape
    x = (x - self.x_mean) / self.x_scale
    z = self.encoder(x)
    if self.koopman == "ridge":
        K = koopman_methods.ridge_koopman(z[:, :-1].detach(), z[:, 1:].detach(), self.ridge_lambda).mean(dim=0)
        self.K_ridge.copy_(K)
    else:
        K = self.K
    if w.forecast == "rollout_mean":
        z_ahead, reduce = self.rollout_latent(z[:, 0], K, L - 1)[:, 1:], torch.mean
    else:
        z_ahead, reduce = z[:, :-1] @ K, lambda error: error.mean(dim=(0, 2)).sum()
    rec = reduce((self.decoder(z) - x).square())
    pred = reduce((self.decoder(z_ahead) - x[:, 1:]).square())
    consistency = (z[:, :-1] - z[:, :-1] @ K).square().sum(-1).mean()
    S = von_neumann_entropy(z.reshape(B * L, -1))
    nce = koopman_methods.info_nce(z, w.k, w.tau, w.negatives) if w.alpha > 0 else torch.zeros((), device=x.device)
    total = (w.reconstruction * rec + pred + w.beta * consistency - ENTROPY_SIGNS[w.entropy_sign] * w.gamma * S
             + w.alpha * nce)
    parts = {"rec": rec, "pred": pred, "nce": nce, "consistency": consistency, "entropy": S, "d_eff": S.exp()}
    return total, {name: value.detach() for name, value in parts.items()}

KoopmanAutoencoder.loss = loss
''', expect="Lagrangian term 'consistency'"),
    Mutation("koopman", "info_nce_gradient_detached", '''
import workbench.methods.koopman as koopman_methods
from workbench.methods.koopman import autoencoder

exact_info_nce = koopman_methods.info_nce

def info_nce(Z, k=3, tau=0.1, negatives="window"):  # the right value, but no gradient reaches the encoder
    return exact_info_nce(Z.detach(), k, tau, negatives)

koopman_methods.info_nce = autoencoder.info_nce = info_nce  # as the notebook and the loss call it
''', expect="InfoNCE term sends no gradient to the encoder"),
    Mutation("koopman", "dmd_energy_rank_drops_the_last_mode", '''
import torch
from importlib import import_module

import workbench.methods.koopman as koopman_methods

exact_dmd = koopman_methods.dmd

def dmd(X, Y, rank=None):  # rank = the modes holding 99.99 % of the energy, counted one short
    if rank is None:
        s = torch.linalg.svdvals(X.T)
        rank = int((s.square().cumsum(0) / s.square().sum() < 0.9999).sum())
    return exact_dmd(X, Y, rank)

koopman_methods.dmd = import_module("workbench.labs.koopman").dmd = dmd
''', expect="DMD eigenvalues of the linear system"),
    Mutation("koopman", "protocol_overrides_the_set_train_horizon", '''
from workbench.labs.koopman import PROTOCOLS, KoopmanExperiment

def setting(self, key):  # precedence reversed: the protocol's value wins over the one the user set
    return PROTOCOLS[self.protocol].get(key, getattr(self, key))

KoopmanExperiment.setting = setting
''', expect="settings set to the"),
    Mutation("manifold_clustering", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING,
             expect="weight tensors in 2 TCR and 2 MLC Adam steps"),
    Mutation("manifold_clustering", "sinkhorn_skipped", '''
import torch
from workbench.methods import mlc

mlc.core.sinkhorn = mlc.sinkhorn = lambda K, eta, n_iter=5: torch.softmax(K / eta, dim=1)  # rows sum to 1, columns do not
''', expect="not doubly stochastic"),
    Mutation("manifold_clustering", "mcr2_half_factor", '''
from workbench.methods import mlc

coding_rate = mlc.coding_rate
mlc.core.coding_rate = mlc.coding_rate = lambda Z, eps: 0.5 * coding_rate(Z, eps)  # MCR²'s ½, which the MLC paper drops
''', expect="closed form"),
    Mutation("manifold_clustering", "accuracy_without_matching", '''
import numpy as np
from workbench.methods import mlc

def clustering_accuracy(y_true, y_pred):  # ids compared as they are
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))

mlc.core.clustering_accuracy = mlc.clustering_accuracy = clustering_accuracy
''', expect="Hungarian accuracy: renaming"),
    Mutation("manifold_clustering", "features_not_normalised", '''
from torch.nn import functional as F
from workbench.methods import mlc

def forward(self, x):  # the cluster head's output is put on the sphere, the features Z are not
    h = self.backbone(x)
    return self.feature_head(h), F.normalize(self.cluster_head(h), dim=-1)

mlc.MLCNet.forward = forward
''', expect="features off the sphere"),
    Mutation("manifold_clustering", "sinkhorn_one_pass", '''
import math
import torch
from workbench.methods import mlc

def sinkhorn(K, eta, n_iter=5):  # one column update and one row update, whatever n_iter asks for
    m, n = K.shape
    logits = K / eta
    g = math.log(m / n) - torch.logsumexp(logits, dim=0)
    f = -torch.logsumexp(logits + g.unsqueeze(0), dim=1)
    return torch.exp(logits + f.unsqueeze(1) + g.unsqueeze(0))

mlc.core.sinkhorn = mlc.sinkhorn = sinkhorn
''', expect="Sinkhorn: not doubly stochastic"),
    Mutation("manifold_clustering", "sinkhorn_column_update_last", '''
import math
import torch
from workbench.methods import mlc

def sinkhorn(K, eta, n_iter=5):  # the updates swapped: rows first, columns last, so rows only approach 1
    m, n = K.shape
    logits = K / eta
    g = torch.zeros(n, dtype=K.dtype, device=K.device)
    for _ in range(n_iter):
        f = -torch.logsumexp(logits + g.unsqueeze(0), dim=1)
        g = math.log(m / n) - torch.logsumexp(logits + f.unsqueeze(1), dim=0)
    return torch.exp(logits + f.unsqueeze(1) + g.unsqueeze(0))

mlc.core.sinkhorn = mlc.sinkhorn = sinkhorn
''', expect="rows do not sum to 1"),
    Mutation("manifold_clustering", "kernel_without_absolute_value", '''
from workbench.methods import mlc

mlc.core.membership = mlc.membership = lambda C, eta, n_iter=5: mlc.sinkhorn(C @ C.mT, eta, n_iter)  # CCᵀ, not |CCᵀ|
''', expect="flipping the signs"),
    Mutation("manifold_clustering", "compressed_rate_with_one_over_n", '''
import torch
from workbench.methods import mlc

def compressed_coding_rate(Z, Gamma, eps):  # R's d/(nε²) copied into R_c, whose rows each code one neighbourhood
    n, d = Z.shape
    outer = (Z.unsqueeze(-1) * Z.unsqueeze(-2)).reshape(n, d * d)
    covs = (Gamma @ outer).reshape(-1, d, d)
    I = torch.eye(d, dtype=Z.dtype, device=Z.device)
    return mlc.logdet_spd(I + d / (n * eps**2) * covs).mean()

mlc.core.compressed_coding_rate = mlc.compressed_coding_rate = compressed_coding_rate
''', expect="closed form: R_c"),
    Mutation("manifold_clustering", "one_shot_copy_skipped", '''
from workbench.methods import mlc

mlc.MLCNet.copy_feature_head_to_cluster_head = lambda self: None  # the cluster head keeps its random initialisation
''', expect="one-shot initialisation: Γ₀ is not"),
    Mutation("manifold_clustering", "spectral_largest_eigenvectors", '''
import numpy as np
import torch
from workbench.methods import mlc

def spectral_labels(affinity, n_clusters, seed=0):  # the k eigenvectors of L with the largest eigenvalues
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    A = affinity.detach().double().cpu().numpy() if isinstance(affinity, torch.Tensor) else np.asarray(affinity, float)
    W = 0.5 * (A + A.T)
    degree = W.sum(1)
    L = np.eye(len(W)) - W / np.sqrt(np.outer(degree, degree))
    U = np.linalg.eigh(L)[1][:, -n_clusters:]
    return KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(normalize(U))

mlc.core.spectral_labels = mlc.spectral_labels = spectral_labels
''', expect="spectral read-out"),
    Mutation("manifold_clustering", "membership_of_one_view", '''
import torch
from torch.nn import functional as F
from workbench.methods import mlc

def mlc_objective(Z_views, C_views, eps, eta, n_iter):  # Γ of the first view, not the mean over the views
    Z = F.normalize(torch.stack(Z_views).mean(0), dim=-1)
    Gamma = mlc.membership(C_views[0], eta, n_iter)
    R, Rc = mlc.coding_rate(Z, eps), mlc.compressed_coding_rate(Z, Gamma, eps)
    return -(R - Rc), {"R": R.item(), "R_c": Rc.item(), "delta_R": (R - Rc).item()}, Z.detach(), Gamma.detach()

mlc.core.mlc_objective = mlc.mlc_objective = mlc_objective
''', expect="two views"),
    Mutation("manifold_clustering", "membership_ignores_eta", '''
from workbench.methods import mlc

exact_membership = mlc.membership
# eta = 0.03 or 0.5 accepted, but every membership is P(|CCᵀ|) at the default η = 0.15
mlc.core.membership = mlc.membership = lambda C, eta, n_iter=5: exact_membership(C, 0.15, n_iter)
''', expect="Γ = P(|CCᵀ|) at η = 0.05"),
]

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
    "koopman": {"steps": 600, "ablation_steps": 200},
    "manifold_clustering": {"seed": 1},
    "spd_normalization": {"seed": 1, "epochs": 3, "compare": ["none"]},
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
    Mutation("lightsb", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING),
    Mutation("lightsb/mixture_benchmark", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING, expect="cBW2-UVP"),
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
    Mutation("optimizers", "projected_update_does_nothing", '''
from workbench.optim import apollo, frugal, subspace

for cls in (subspace.SubspaceAdam, apollo.APOLLO, frugal.FRUGAL):  # GaLore, DCT, APOLLO(-Mini), FRUGAL
    cls._low_rank_step = lambda self, p, state, group: None
''', expect="did not learn through its projected matrices"),
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
''', expect="SPDNet did not learn"),
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
    Mutation("koopman", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING, expect="prediction loss"),
    Mutation("koopman", "entropy_sign_flipped", '''
import workbench.methods.koopman as koopman

koopman.ENTROPY_SIGNS["paper"] = -1.0  # the paper's sign now minimises S, as the released code does
''', expect="entropy term (paper sign)"),
    Mutation("koopman", "dmd_singular_values_off_by_ten_percent", '''
import torch

exact_svd = torch.linalg.svd

def svd(A, full_matrices=True):
    U, s, Vh = exact_svd(A, full_matrices=full_matrices)
    return U, 1.1 * s, Vh

torch.linalg.svd = svd
''', expect="DMD eigenvalues"),
    Mutation("manifold_clustering", "optimizer_step_does_nothing", ADAM_STEP_DOES_NOTHING, expect="MLC did not raise ΔR"),
    Mutation("manifold_clustering", "sinkhorn_skipped", '''
import torch
from workbench.methods import mlc

mlc.sinkhorn = lambda K, eta, n_iter=5: torch.softmax(K / eta, dim=1)  # rows sum to 1, columns do not
''', expect="not doubly stochastic"),
    Mutation("manifold_clustering", "mcr2_half_factor", '''
from workbench.methods import mlc

coding_rate = mlc.coding_rate
mlc.coding_rate = lambda Z, eps: 0.5 * coding_rate(Z, eps)  # MCR²'s ½, which the MLC paper drops
''', expect="closed form"),
]

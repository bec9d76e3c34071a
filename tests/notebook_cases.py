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
]

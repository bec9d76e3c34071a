"""The optimizer family as torch.optim.Optimizer classes."""

from workbench.optim.apollo import APOLLO, APOLLOMini
from workbench.optim.badam import BAdam
from workbench.optim.cosmos import COSMOS
from workbench.optim.dct import DCTAdamW
from workbench.optim.frugal import FRUGAL
from workbench.optim.galore import GaLoreAdamW
from workbench.optim.adamw8bit import AdamW8bit
from workbench.optim.lamb import LAMB
from workbench.optim.lion import Lion
from workbench.optim.memory import optimizer_state_bytes
from workbench.optim.muon import Muon
from workbench.optim.natural_galore import NaturalGaLoreAdamW
from workbench.optim.q_galore import QGaLoreAdamW8bit
from workbench.optim.soap import SOAP
from workbench.optim.zeroth_order import MeZO, SparseMeZO, ZerothOrder, ZOAdam, ZOSGD

"""The optimizer family as torch.optim.Optimizer classes."""

from workbench.optim.apollo import APOLLO, APOLLOMini
from workbench.optim.dct import DCTAdamW
from workbench.optim.frugal import FRUGAL
from workbench.optim.galore import GaLoreAdamW
from workbench.optim.adamw8bit import AdamW8bit
from workbench.optim.lamb import LAMB
from workbench.optim.lion import Lion
from workbench.optim.memory import optimizer_state_bytes

"""How a Triton kernel of workbench.kernels is launched: its tiles fixed by its launcher, its warps and pipeline
stages chosen on the GPU from a short list of configurations that do not spill.

A kernel's tiles set the order of its floating-point sums, and so its results: its launcher fixes them per shape,
and the tests run the same tiles through the interpreter. Warps (how many threads share a tile) and stages (how
many loop iterations' loads are in flight) spread and schedule a tile's work, trading registers and shared memory
for parallelism, and which pair is fastest depends on the device; of the arithmetic they can change at most how
a sum across a tile is grouped between warps. So `Tuned` launches a kernel at one of a few (num_warps,
num_stages) pairs, each of which compiles without a byte of spill for sm_80, sm_90 and sm_100
(`workbench.kernels.compile_report`; the test suite checks the first pair of each for sm_80 and sm_90):

- one pair: launched with it;
- several, on a GPU: `triton.autotune`, keyed on the launcher's shape arguments (each new key times the pairs
  once, on its first launch), after `prune_configs_by` has dropped the pairs whose kernel, compiled for this
  device and these arguments, spills (the driver's count of local-memory bytes): the lists were measured for
  three architectures, and another one or another Triton version can differ. Where every pair spills, the one
  that spills least stays, with a warning.
- under Triton's interpreter, which ignores warps and stages and cannot time a launch: the first pair.
"""
from __future__ import annotations

import functools
import warnings

import triton
from triton.runtime.errors import OutOfResources
from triton.runtime.interpreter import InterpretedFunction

TUNED: list[Tuned] = []  # every Tuned kernel, so that `forget` reaches their autotuners


class Tuned:
    """kernel[grid](*args, **constexprs) at one of `configs`, (num_warps, num_stages) pairs, first the one to
    use where nothing is timed (see the module docstring); `key`: the argument names of the shape."""

    def __init__(self, kernel, configs: list[tuple[int, int]], key: list[str]):
        self.kernel = kernel
        self.configs = [triton.Config({}, num_warps=warps, num_stages=stages) for warps, stages in configs]
        self.autotuner = None
        if len(self.configs) > 1 and not isinstance(kernel, InterpretedFunction):
            prune = {"early_config_prune": self.spill_free}
            self.autotuner = triton.autotune(self.configs, key, prune_configs_by=prune)(kernel)
        TUNED.append(self)

    def __getitem__(self, grid):
        if self.autotuner is None:
            return functools.partial(self.kernel[grid], **self.configs[0].all_kwargs())
        return self.autotuner[grid]

    def spill_free(self, configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        """The configs whose kernel, compiled for these arguments on this device, spills nothing; else the one that
        spills least. A kernel that was not compiled (the compile report records launches instead) counts as 0."""
        kwargs = {k: v for k, v in kwargs.items() if k not in ("grid", "warmup")}
        spills = {}
        for config in configs:
            compiled = self.kernel.warmup(*named_args.values(), grid=(1,), **kwargs, **config.all_kwargs())
            spills[config] = spill_bytes(compiled)
        free = [config for config in configs if spills[config] == 0]
        if free:
            return free
        least = min(configs, key=spills.get)
        warnings.warn(f"{self.kernel.__name__}: every configuration spills on this device "
                      f"({', '.join(f'{c}: {s} bytes' for c, s in spills.items())}); running {least}", stacklevel=2)
        return [least]


def spill_bytes(compiled) -> float:
    """Local-memory bytes per thread of a compiled kernel, as the driver loads it (inf where it cannot load: not
    enough shared memory or threads); 0 for None, a launch that compiled nothing."""
    if compiled is None:
        return 0
    try:
        compiled._init_handles()  # loads the binary: n_regs, n_spills
    except OutOfResources:
        return float("inf")
    return compiled.n_spills


def forget() -> None:
    """Drops every tuning result, so that the next launch of each shape prunes and times its configs again."""
    for tuned in TUNED:
        if tuned.autotuner is not None:
            tuned.autotuner.cache.clear()

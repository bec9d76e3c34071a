"""How many bytes an optimizer's state really holds.

    bytes = Σ over distinct storages s reachable from the optimizer's state: s.nbytes()

The walk covers `optimizer.state` (every value, inside dicts, lists, tuples and other objects'
attributes: moments, step counters, projection matrices, indices, absmax, a reference package's
projector objects) and the optimizer's own attributes (a code book kept once for all parameters),
but not the parameters or their gradients. Tensors cached outside the optimizer (a module-level
basis shared by every optimizer) are not reachable and not counted.
Tensors sharing a storage (views, one matrix referenced by several parameters) count once, with
the whole storage, since that is what stays allocated. Python numbers (an int step) count 0.

`peak_step_bytes` measures instead of counting: the peak of the bytes a call allocates on top of those
alive when it starts, from torch.profiler's memory events (every allocation and free, on CPU too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Any, Callable

import torch


_OPAQUE = (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType)


def _tensors(obj: Any, seen: set[int]):
    """Yield every tensor reachable from obj through dicts, lists, tuples, sets and object attributes."""
    if id(obj) in seen or isinstance(obj, _OPAQUE):
        return
    seen.add(id(obj))
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for value in obj:
            yield from _tensors(value, seen)
    elif hasattr(obj, "__dict__"):  # e.g. galore-torch's projector objects
        yield from _tensors(vars(obj), seen)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the distinct storages held in `optimizer.state` and the optimizer's attributes."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    skip = {p.untyped_storage().data_ptr() for p in params}
    skip |= {p.grad.untyped_storage().data_ptr() for p in params if p.grad is not None}
    attributes = {k: v for k, v in vars(optimizer).items() if k not in ("param_groups", "defaults", "state")}
    storages = {}
    for t in _tensors([optimizer.state, attributes], set()):
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


def peak_step_bytes(call: Callable[[], object]) -> int:
    """max over time of (bytes allocated − bytes freed) during `call()`: torch.profiler's memory events summed in
    time order (activations kept for backward, gradients, temporaries, state created by the call)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with _quiet_stderr(), profile(activities=activities, profile_memory=True) as prof:
        call()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _quiet_stderr():
    """The profiler's C++ start/stop and allocator notices go to file descriptor 2, around the call only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

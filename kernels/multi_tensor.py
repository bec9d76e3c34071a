"""Many tensors in one Triton launch (the fused optimizer steps): a table of their addresses and a table of chunks.

Tensor i of a launch is row i of an int64 `tensors` table: its data addresses and its element count. The grid has
one program per chunk; program p takes the `chunk` consecutive elements of tensor chunks[p, 0] that start at
element chunks[p, 1]. So tensors of any sizes share one launch, the last chunk of each tensor is masked, and no
tensor is copied or concatenated. The kernel reads the tensors through raw addresses, so they must outlive the
launch's stream work (the optimizer's parameters, gradients and states do).

The tables are built once per set of tensors and reused: `tensor_table` and `chunk_table` keep the device tables
they built, keyed on their contents (the addresses and sizes), so a step over the same parameters, gradients and
states copies nothing to the device and a CUDA graph can capture it (a captured launch reads the cached table).
Nothing in a table changes from step to step: what does (the step count t of AdamW8bit) is read by the kernel
from device memory, and the hyperparameters are launch arguments. Building a table copies it to the device, which
a CUDA graph capture cannot hold, so a new table inside a capture raises (run one step before capturing).
"""

from __future__ import annotations

import functools
import struct

import torch
import triton
import triton.language as tl

DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


def launches(*lists: list[torch.Tensor]) -> dict[tuple, list[int]]:
    """Indices i grouped by (device, lists[0][i].dtype, lists[1][i].dtype, ...): one launch per group, as a launch
    runs on one device and the kernels take dtypes as compile-time constants."""
    groups: dict[tuple, list[int]] = {}
    for i, tensors in enumerate(zip(*lists)):
        groups.setdefault((tensors[0].device, *(t.dtype for t in tensors)), []).append(i)
    return groups


def current(device: torch.device) -> torch.cuda.device:
    """Makes `device` the current CUDA device, where Triton launches (no-op for the interpreter's CPU tensors)."""
    return torch.cuda.device(device if device.type == "cuda" else -1)


def double_bits(x: float) -> int:
    """The bits of the float64 x as an int, a launch argument that `double` turns back into x (Triton passes a
    Python float as a float32)."""
    return struct.unpack("<q", struct.pack("<d", x))[0]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """t on `device`, a CPU tensor copied to CUDA through pinned memory without waiting for the GPU (a copy from
    pageable memory waits for the stream's queued work, so the host could not queue the next step ahead)."""
    if t.device != device and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def tensor_table(rows: list[list[torch.Tensor | int]], device: torch.device) -> torch.Tensor:
    """(T, k) int64 on `device`: a tensor entry becomes its data address, an int stays as is; cached on its values
    (a flat tuple, the quickest key to build: the only per-step host work, about a microsecond per entry)."""
    return _tensor_table(tuple([v if type(v) is int else v.data_ptr() for row in rows for v in row]), len(rows[0]),
                         device)


@functools.lru_cache(maxsize=256)
def _tensor_table(values: tuple[int, ...], width: int, device: torch.device) -> torch.Tensor:
    return build(values, width, device)


@functools.lru_cache(maxsize=256)
def chunk_table(numels: tuple[int, ...], chunk: int, device: torch.device) -> torch.Tensor:
    """(C, 2) int64 on `device`: (tensor index, first element) of every chunk, tensor by tensor; cached."""
    return build(tuple(v for i, n in enumerate(numels) for start in range(0, n, chunk) for v in (i, start)), 2, device)


def build(values: tuple[int, ...], width: int, device: torch.device) -> torch.Tensor:
    """The (len(values) / width, width) int64 table of `values` on `device`, for the caches above (which a captured
    CUDA graph reads: with 256 entries each, a table is dropped only after 256 newer ones in the process)."""
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise RuntimeError("workbench.kernels: an optimizer step met new tensors (parameters, gradients or states at "
                           "new addresses) inside a CUDA graph capture; its tables are built outside: make one step "
                           "with the same tensors before capturing")
    return to_device(torch.tensor(values, dtype=torch.int64).view(-1, width), device)


@triton.jit
def pointer(row, k, DTYPE: tl.constexpr):
    """The address in slot k of a tensor's row, as a pointer to DTYPE."""
    return tl.load(row + k).to(tl.pointer_type(DTYPE))


@triton.jit
def double(bits):
    """The float64 whose bits `double_bits` passed (an int32 argument when they fit, 0.0 and subnormals)."""
    return bits.to(tl.int64).to(tl.float64, bitcast=True)

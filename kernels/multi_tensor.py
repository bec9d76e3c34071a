"""Many tensors in one Triton launch (the fused optimizer steps): a table of their addresses and a table of chunks.

Tensor i of a launch is row i of an int64 `tensors` table: its data addresses, its element count and per-tensor
float32 scalars (stored as their bits). The grid has one program per chunk; program p takes the `chunk`
consecutive elements of tensor chunks[p, 0] that start at element chunks[p, 1]. So tensors of any sizes share
one launch, the last chunk of each tensor is masked, and no tensor is copied or concatenated.

`on_device(tensors)` is the one test the dispatching callers use: every tensor dense, on CUDA and of a kernel
dtype. The kernel then reads the tensors through raw addresses, so they must outlive the launch's stream work
(the optimizer's parameters, gradients and states do).
"""

from __future__ import annotations

import functools
import struct

import torch
import triton
import triton.language as tl

DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


def on_device(tensors: list[torch.Tensor]) -> bool:
    """The kernels apply: every tensor on CUDA, contiguous, and float32, bfloat16 or float16."""
    return all(t.is_cuda and t.is_contiguous() and t.dtype in DTYPES for t in tensors)


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


def float_bits(x: float) -> int:
    """The bits of float32(x) as an int (signed, so that an int64 slot truncated to int32 gives them back)."""
    return struct.unpack("<i", struct.pack("<f", x))[0]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """t on `device`, a CPU tensor copied to CUDA through pinned memory without waiting for the GPU (a copy from
    pageable memory waits for the stream's queued work, so the host could not queue the next step ahead)."""
    if t.device != device and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def tensor_table(rows: list[list[torch.Tensor | int]], device: torch.device) -> torch.Tensor:
    """(T, k) int64 on `device`: a tensor entry becomes its data address, an int stays as is."""
    values = [[v.data_ptr() if isinstance(v, torch.Tensor) else v for v in row] for row in rows]
    return to_device(torch.tensor(values, dtype=torch.int64), device)


@functools.lru_cache(maxsize=64)
def chunk_table(numels: tuple[int, ...], chunk: int, device: torch.device) -> torch.Tensor:
    """(C, 2) int64 on `device`: (tensor index, first element) of every chunk, tensor by tensor."""
    rows = [(i, start) for i, n in enumerate(numels) for start in range(0, n, chunk)]
    return to_device(torch.tensor(rows, dtype=torch.int64).view(-1, 2), device)


@triton.jit
def pointer(row, k, DTYPE: tl.constexpr):
    """The address in slot k of a tensor's row, as a pointer to DTYPE."""
    return tl.load(row + k).to(tl.pointer_type(DTYPE))


@triton.jit
def scalar(row, k):
    """The float32 stored (as bits) in slot k of a tensor's row."""
    return tl.load(row + k).to(tl.int32).to(tl.float32, bitcast=True)

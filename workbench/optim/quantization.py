"""Block-wise dynamic 8-bit quantization (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
Quantization", arXiv 2110.02861; maps and layout of bitsandbytes 0.50.2, method note §6).

A tensor x is flattened and cut into blocks of B = 256 consecutive elements (the last one may be
shorter). Per block b, with a sorted code book c ∈ [−1, 1]^256:

    a_b = max_{i∈b} |x_i|                           one fp32 absmax per block, stored exactly
    q_i = argmin_k |x_i / a_b − c_k|                uint8 code word index (nearest code word)
    x̂_i = c[q_i] · a_b                              dequantized value

so |x_i − x̂_i| ≤ a_b · (largest gap between adjacent code words) / 2, and exact zeros stay zero
(0 is a code word). An all-zero block has a_b = 0 and decodes to zeros whatever its codes.

Rounding (`rounding=`):
- "nearest" (default): the exact nearest code word, ties to the smaller one. Found with a table
  over fp32 bit patterns instead of a binary search (torch.bucketize costs ~30 ns per element):
  the sign, the 8 exponent bits and the top 8 mantissa bits of y = x/a_b pick one of 2^17 cells,
  each narrower (relative width ≤ 2^-8) than the gap between two decision boundaries of the
  dynamic maps (≥ 0.5 % relative), so a cell holds at most one boundary. Per cell the table keeps
  the code index of its lowest value and that boundary: q = first[cell] + (y > boundary[cell]).
  The construction checks the one-boundary property and refuses code books that break it.
- "bnb_lut": bitsandbytes' CPU quantizer (`csrc/cpu_ops.cpp`, PR #1901): y is rounded to a grid
  of 65,536 points on [−1, 1], j = trunc((clamp(y, −1, 1) + 1)·0.5·65535 + 0.5), and a table
  gives the code nearest to grid point j. Bit-identical to bitsandbytes on CPU, but values below
  the grid step 2/65535 ≈ 3e-5 lose the small code words, and 0 is coded as ≈2e-5 (signed map)
  or ≈1.6e-5 (unsigned map) times a_b instead of 0.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK = 256
ROUNDINGS = ("nearest", "bnb_lut")
_LUT_SIZE = 65536  # bitsandbytes' CPU grid
_SPLIT_SIZE = 2**16  # work on at least this many elements is split over threads (in_pieces)
_MANTISSA_BITS = 8  # top mantissa bits kept in a "nearest" table cell (2^17 cells with sign and exponent)
CELL_SHIFT = 31 - 8 - _MANTISSA_BITS  # low bits of an fp32 pattern dropped to get its cell
CELL_OFFSET = 2 ** (8 + _MANTISSA_BITS)  # added to the arithmetic shift so that cells count from 0


def dynamic_map(signed: bool = True) -> Tensor:
    """The dynamic tree map (bitsandbytes `create_dynamic_map`, 7 exponent bits, 8 bits total), (256,) sorted.

    For e = 0 … 6 it holds the k midpoints of linspace(0.1, 1, k + 1) scaled by 10^(e−6),
    k = 2^e with both signs (signed) or k = 2^(e+1) positive only (unsigned), plus 0 and 1.
    Signed spans [−0.99297, 1] (not symmetric), unsigned [0, 1]; smallest nonzero magnitudes
    5.5e-7 (signed) and 3.3e-7 (unsigned). Computed in fp32 in bitsandbytes' order, so equal to it.
    """
    parts = [torch.tensor([0.0, 1.0])]
    for e in range(7):
        k = 2**e if signed else 2 ** (e + 1)
        edges = torch.linspace(0.1, 1.0, k + 1)  # (k+1,)
        means = (edges[:-1] + edges[1:]) / 2.0 * 10.0 ** (e - 6)  # (k,)
        parts += [means, -means] if signed else [means]
    return torch.cat(parts).sort().values  # (256,)


def _blocks(flat: Tensor, block: int) -> Tensor:
    """(N,) -> (⌈N/B⌉, B): a view, or a zero-padded copy when B does not divide N."""
    pad = -flat.numel() % block
    return (F.pad(flat, (0, pad)) if pad else flat).view(-1, block)


def lookup_tables(code: Tensor, rounding: str, device: torch.device | str) -> tuple[Tensor, ...]:
    """The rounding's tables for a code book: (first, threshold) for "nearest", (lut,) for "bnb_lut"."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} is not allowed: choose one of {ROUNDINGS}")
    return _tables(code.detach().float().cpu().numpy().tobytes(), rounding, str(device))


@functools.lru_cache(maxsize=16)
def _tables(code_bytes: bytes, rounding: str, device: str) -> tuple[Tensor, ...]:
    """Lookup tables of one code book, cached on its bytes: see the module docstring."""
    code = torch.frombuffer(bytearray(code_bytes), dtype=torch.float32)  # (256,)
    boundary = (code[:-1] + code[1:]) * 0.5  # (255,) decision boundaries between neighbours
    if rounding == "bnb_lut":
        grid = torch.arange(_LUT_SIZE, dtype=torch.float32).mul(2.0).div(_LUT_SIZE - 1).add(-1.0)  # (65536,)
        return (torch.bucketize(grid, boundary).to(torch.uint8).to(device),)
    start = torch.arange(-CELL_OFFSET, CELL_OFFSET, dtype=torch.int32) << CELL_SHIFT  # (2^17,) first pattern per cell
    a, b = start.view(torch.float32), (start | (2**CELL_SHIFT - 1)).view(torch.float32)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)  # (2^17,) value range of each cell
    first = torch.bucketize(lo, boundary)  # (2^17,) #{boundaries < lo} = code index of lo
    finite = (start >> 23) & 0xFF != 0xFF  # (2^17,) exponent not all ones: no inf/NaN in the cell
    if ((torch.bucketize(hi, boundary) - first)[finite] > 1).any():
        raise ValueError("code book too dense for the bit-pattern table: two decision boundaries share a cell")
    threshold = torch.cat([boundary, torch.tensor([torch.inf])])[first]  # (2^17,)
    return first.to(torch.uint8).to(device), threshold.to(device)


@functools.lru_cache(maxsize=None)
def _thread_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="workbench")


def in_pieces(n: int, work: Callable[[int, int], object], size: int, device: torch.device) -> None:
    """work(start, end) over contiguous pieces of range(n), one per torch thread, in Python threads.

    For CPU work of `size` elements that runs on one thread but releases the GIL (a 1-D
    index_select, the compiled AdamW8bit pass); one call when size < 2^16 or off the CPU.
    """
    threads = torch.get_num_threads() if device.type == "cpu" and size >= _SPLIT_SIZE else 1
    if threads == 1:
        work(0, n)
        return
    cuts = [n * k // threads for k in range(threads + 1)]
    list(_thread_pool(threads).map(lambda k: work(cuts[k], cuts[k + 1]), range(threads)))


def _gather(table: Tensor, index: Tensor) -> Tensor:
    """table[index] for a 1-D table and a 1-D int32 index.

    torch's CPU index_select runs a 1-D gather on one thread, and it is the costliest op here,
    so on CPU the index is split over torch.get_num_threads() Python threads (`in_pieces`).
    """
    out, n = table.new_empty(index.shape), index.numel()
    in_pieces(n, lambda a, b: torch.index_select(table, 0, index[a:b], out=out[a:b]), n, index.device)
    return out


def _cell_of(y: Tensor) -> Tensor:
    """Cell index in [0, 2^17) of each fp32 value: its sign, exponent and top mantissa bits, ordered as int32."""
    return (y.view(torch.int32) >> CELL_SHIFT).add_(CELL_OFFSET)


def quantize_blockwise(
    x: Tensor, code: Tensor, block: int = BLOCK, rounding: str = "nearest"
) -> tuple[Tensor, Tensor]:
    """x (any shape) -> (q uint8 of x's shape, absmax fp32 (⌈N/B⌉,)) with q_i = nearest code to x_i / a_b."""
    tables = lookup_tables(code, rounding, x.device)
    n = x.numel()
    blocks = _blocks(x.reshape(-1).float(), block)  # (nb, B)
    absmax = torch.maximum(blocks.amax(dim=1), blocks.amin(dim=1).neg())  # (nb,) a_b = max |x|
    inv = torch.where(absmax > 0, absmax.reciprocal(), 0.0)  # (nb,) 1/a_b, 0 for an all-zero block
    y = (blocks * inv[:, None]).view(-1)  # (nb·B,) x / a_b ∈ [−1, 1]
    if rounding == "nearest":
        first, threshold = tables
        cell = _cell_of(y)  # (nb·B,) int32
        q = _gather(first, cell).add_(y > _gather(threshold, cell))  # (nb·B,) uint8
    else:
        (lut,) = tables
        j = y.clamp(-1.0, 1.0).add_(1.0).mul_(0.5).mul_(_LUT_SIZE - 1).add_(0.5).to(torch.int32)  # (nb·B,) grid
        q = _gather(lut, j)  # (nb·B,) uint8
    return q[:n].view(x.shape), absmax


def dequantize_blockwise(q: Tensor, absmax: Tensor, code: Tensor, block: int = BLOCK) -> Tensor:
    """(q uint8, absmax (⌈N/B⌉,)) -> fp32 tensor of q's shape, x̂_i = c[q_i] · a_b."""
    n = q.numel()
    values = _gather(code, q.reshape(-1).int())  # (N,) c[q]
    return _blocks(values, block).mul_(absmax[:, None]).view(-1)[:n].view(q.shape)

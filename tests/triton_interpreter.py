"""Three arithmetic defects of Triton 3.7's interpreter (`TRITON_INTERPRET=1`), fixed for the tests (conftest applies
`fix()` when it turns the interpreter on), so that a kernel's interpreted arithmetic is the arithmetic it has on a GPU:

- `tl.fma(x, y, z)` is interpreted as x·y + z in the operands' numpy type, two roundings in float32; on a GPU it
  is one rounding. Fixed: the product of two float32 is exact in float64, the sum is rounded to odd there (its
  exact error by TwoSum), and float64 → float32 is then the correctly rounded fma (53 ≥ 24 + 2 bits).
- a float32 → bfloat16 cast truncates the mantissa; on a GPU it rounds to nearest even. Fixed: torch's conversion.
- a Python float argument stays a Python float, so arithmetic between two scalars (`weight - 1.0`) runs in
  float64; on a GPU the argument is a float32 and so is that arithmetic. Fixed: float arguments become float32.
"""

from __future__ import annotations

import numpy as np
import torch
from triton.runtime import interpreter
from triton.runtime.interpreter import InterpreterBuilder, TensorHandle

import triton.language as tl


def _fma(self, x, y, z):
    """x·y + z with one rounding, for float32 (other types keep the interpreter's own expression)."""
    if z.data.dtype != np.float32:
        return TensorHandle(x.data * y.data + z.data, z.dtype.scalar)
    p, c = x.data.astype(np.float64) * y.data.astype(np.float64), z.data.astype(np.float64)  # p exact
    s = p + c
    b = s - p
    err = (p - (s - b)) + (c - b)  # TwoSum: s + err = p + c exactly
    even = (s.view(np.int64) & 1) == 0
    s = np.where((err != 0) & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)  # round to odd
    return TensorHandle(s.astype(np.float32), z.dtype.scalar)


_cast_impl = InterpreterBuilder.cast_impl


def _cast(self, src, dst_type):
    """Float32 → bfloat16 rounds to nearest even (the interpreter stores bfloat16 as uint16 bits)."""
    if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
        bits = torch.from_numpy(np.array(src.data, order="C")).to(torch.bfloat16).view(torch.int16).numpy()
        return TensorHandle(bits.view(np.uint16), dst_type.scalar)
    return _cast_impl(self, src, dst_type)


_implicit_cvt = interpreter._implicit_cvt


def _float32_args(arg):
    """A kernel argument as the interpreter passes it, a Python float as a float32 scalar (as a GPU launch does)."""
    if isinstance(arg, float):
        return tl.tensor(TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
    return _implicit_cvt(arg)


def fix() -> None:
    interpreter._implicit_cvt = _float32_args
    InterpreterBuilder.create_fma = _fma
    InterpreterBuilder.cast_impl = _cast  # create_fp_trunc & co. look it up on self at each call

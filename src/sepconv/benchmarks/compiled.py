"""What XLA made of a program: the convolutions in each fused computation."""

from __future__ import annotations

import re
from typing import Callable

import jax

__all__ = ["fused_convolutions", "compiled_fusions"]


def fused_convolutions(fn: Callable, *args) -> list[int]:
    """Convolutions per fused computation of XLA's compiled ``jax.jit(fn)(*args)``, largest first.

    On XLA CPU each convolution normally gets a fusion of its own (a list of ones); a larger
    number means the compiler merged several layers into one library call. Backends that
    call convolutions as custom calls (GPU) report an empty list.
    """
    text = jax.jit(fn).lower(*args).compile().as_text()
    computations = re.split(r"\n(?=%\S+ \()", text)
    counts = [c.count(" convolution(") for c in computations if c.startswith("%fused_computation")]
    return sorted((n for n in counts if n), reverse=True)


def compiled_fusions(fn: Callable, *args) -> list[tuple[str, str, str]]:
    """The fusions of the entry computation of XLA's compiled ``jax.jit(fn)(*args)`` that write one
    float32 array: ``(name, shape, operands)`` as the compiled text spells them, in program order
    (``("fusion.1", "1,58,58,128", "x")`` reads ``x`` and writes an ``f32[1,58,58,128]``)."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    return re.findall(r"%(\S+) = f32\[([\d,]+)\]\S* fusion\(([^)]*)\)", text[text.index("ENTRY"):])

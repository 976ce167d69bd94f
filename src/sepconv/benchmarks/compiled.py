"""What XLA made of a program: the convolutions in each fused computation."""

from __future__ import annotations

import re
from typing import Callable

import jax

__all__ = ["fused_convolutions", "convolutions_per_fusion", "entry_steps"]


def fused_convolutions(fn: Callable, *args) -> list[int]:
    """Convolutions per fused computation of XLA's compiled ``jax.jit(fn)(*args)``, largest first.

    On XLA CPU each convolution normally gets a fusion of its own (a list of ones); a larger
    number means the compiler merged several layers into one library call. Backends that
    call convolutions as custom calls (GPU), and XLA CPU versions that keep convolutions outside
    fusions (jaxlib 0.7), report an empty list.
    """
    return convolutions_per_fusion(jax.jit(fn).lower(*args).compile().as_text())


def convolutions_per_fusion(hlo: str) -> list[int]:
    """``fused_convolutions`` of a compiled module's text: the ``convolution(`` instructions of each
    ``%fused_computation``, largest first; those of the entry computation (not a fusion) are not counted."""
    computations = re.split(r"\n(?=(?:ENTRY )?%\S+ \()", hlo)
    counts = [c.count(" convolution(") for c in computations if c.startswith("%fused_computation")]
    return sorted((n for n in counts if n), reverse=True)


def entry_steps(fn: Callable, *args) -> list[tuple[str, str, tuple, list[str]]]:
    """The instructions of the entry computation of XLA's compiled ``jax.jit(fn)(*args)`` that compute
    an array, in program order: ``(name, opcode, shape, operand names)``, leaving out parameters and
    constants. Names differ between XLA versions (``wrapped_pad`` or ``pad.0``); opcodes, shapes and
    which step reads which do not, which is what a reader should rely on."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    entry = text[text.index("ENTRY"):].split("\n}", 1)[0]
    steps = []
    for line in entry.splitlines()[1:]:
        found = re.match(r"\s*(?:ROOT )?%(\S+) = \w+\[([\d,]*)\]\S* ([\w-]+)\(([^)]*)\)", line)
        if found and found.group(3) not in ("parameter", "constant"):
            name, shape, opcode, operands = found.groups()
            steps.append((name, opcode, tuple(int(d) for d in shape.split(",") if d),
                          [o.strip().lstrip("%") for o in operands.split(",") if o.strip()]))
    return steps

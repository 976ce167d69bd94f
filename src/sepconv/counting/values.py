"""Sizes of the values a jaxpr computes: elements, bytes, and whether an operand is a literal."""

from __future__ import annotations

import math

from jax.extend import core


def size(aval) -> int:
    """Elements of a value."""
    return int(math.prod(aval.shape))


def nbytes(aval) -> int:
    """Bytes of a value; ``dtype.itemsize`` also covers JAX's extended dtypes (PRNG keys)."""
    return size(aval) * aval.dtype.itemsize


def is_literal(v) -> bool:
    """Whether an equation's operand is a constant written into the jaxpr (it has no producer)."""
    return isinstance(v, core.Literal)


def sub_jaxprs(eqn):
    """The jaxprs an equation carries in its parameters (also inside tuples, as ``cond`` has them)."""
    for value in eqn.params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, core.Jaxpr):
                yield v

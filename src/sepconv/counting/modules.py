"""NNX modules as the counter reads them: their parameter counts (a module as a pure function is
``sepconv.interop.pure_module``)."""

from __future__ import annotations

import math

import numpy as np

from ..compat import variable_value

__all__ = ["parameter_counts"]


def _value_size(variable) -> int:
    value = variable_value(variable)
    return int(math.prod(np.shape(value))) if not hasattr(value, "shape") else int(math.prod(value.shape))


def parameter_counts(model) -> tuple[int, int]:
    """``(all parameters, parameters outside normalization layers)`` of an NNX module.

    Published tables count convolution and fully connected weights and biases but not
    BatchNorm's scale and offset; the second number follows them. Works on abstract
    (``nnx.eval_shape``) models: only shapes are read.
    """
    from flax import nnx

    norm_types = (nnx.BatchNorm, nnx.LayerNorm, nnx.GroupNorm, nnx.RMSNorm)
    total = norm = 0
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            own = sum(_value_size(v) for v in vars(node).values() if isinstance(v, nnx.Param))
            total += own
            if isinstance(node, norm_types):
                norm += own
    return total, total - norm

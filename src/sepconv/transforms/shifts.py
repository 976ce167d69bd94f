"""Depthwise convolutions as shifted multiply-adds: the same numbers, computed another way.

A ``K x K`` depthwise convolution does ``K^2`` multiply-adds per output element:

    y[n, i, j, c] = sum_{a, b} x_pad[n, s*i + d*a, s*j + d*b, c] * w[a, b, 0, c]

(stride ``s``, dilation ``d``). Written as ``K^2`` strided slices of the padded
input, each scaled by one tap of the kernel and summed, XLA fuses it into one
element-wise loop that streams the input: a memory-bound computation running
near memory bandwidth. XLA CPU's grouped convolution (``feature_group_count =
C``) instead runs far below it (chapter 7 measures both).

``depthwise_by_shifts(fn)`` rewrites a traced function: each depthwise
``conv_general_dilated`` of ``fn`` becomes that sum, everything else runs as
traced. It works on any JAX function, our Flax models and Keras models on the
JAX backend alike; the MACs are unchanged, only how they are executed. Each
rewritten layer is a ``jit`` call whose element-wise body hides its
multiply-accumulates, so this module registers a counter rule for those calls
(``counter.register_call_rule``, keyed by the identity of each traced call): the counter costs a rewritten layer as the
convolution it replaces, and a function counts the same before and after the rewrite.
"""

from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from ..counter import conv_record, register_call_rule
from ..kinds import is_depthwise_equation
from .rewrite import rewrite_equations

__all__ = ["depthwise_by_shifts", "is_depthwise", "shifted_depthwise_conv", "shifted_equation", "REWRITTEN_NAME"]

#: The name of the ``jit`` call each rewritten depthwise convolution becomes (for reading a jaxpr; the
#: counter finds its rule by the call's identity, never by this name).
REWRITTEN_NAME = "depthwise_by_shifts"


def is_depthwise(eqn) -> bool:
    """Whether ``eqn`` is a depthwise convolution this module rewrites: one input channel per
    group, as many groups as input and output channels, no input dilation, no batch groups
    (:func:`sepconv.kinds.is_depthwise_equation`, the one classifier)."""
    return is_depthwise_equation(eqn)


def shifted_depthwise_conv(x, w, *, window_strides, padding, rhs_dilation, dimension_numbers, out_dtype=None):
    """``sum_taps slice(pad(x)) * w[tap]``: what ``lax.conv_general_dilated`` computes for a depthwise
    kernel, in the layouts ``dimension_numbers`` (a ``ConvDimensionNumbers``) gives."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = len(lhs_spec) - 2
    config = [(0, 0, 0)] * x.ndim
    for i in range(spatial):
        config[lhs_spec[2 + i]] = (padding[i][0], padding[i][1], 0)
    x = lax.pad(x, jnp.zeros((), x.dtype), config)
    kernel = [w.shape[rhs_spec[2 + i]] for i in range(spatial)]
    out_size = [(x.shape[lhs_spec[2 + i]] - (kernel[i] - 1) * rhs_dilation[i] - 1) // window_strides[i] + 1
                for i in range(spatial)]
    if min(out_size) < 1:
        raise ValueError(f"kernel {kernel} with dilation {tuple(rhs_dilation)} does not fit the padded input "
                         f"{x.shape}")
    # The kernel as (*spatial taps, C), broadcast against x at its channel axis.
    taps = jnp.transpose(w, [*rhs_spec[2:], rhs_spec[1], rhs_spec[0]]).reshape(*kernel, -1)
    channel_shape = [1] * x.ndim
    channel_shape[lhs_spec[1]] = taps.shape[-1]
    total = None
    for offset in itertools.product(*(range(k) for k in kernel)):
        start, limit, strides = [0] * x.ndim, list(x.shape), [1] * x.ndim
        for i, o in enumerate(offset):
            d = lhs_spec[2 + i]
            start[d] = o * rhs_dilation[i]
            limit[d] = start[d] + (out_size[i] - 1) * window_strides[i] + 1
            strides[d] = window_strides[i]
        term = lax.slice(x, start, limit, strides) * taps[offset].reshape(channel_shape)
        total = term if total is None else total + term
    # Our result has logical dim k (batch, channel, spatial...) at position lhs_spec[k]; the output wants out_spec[k].
    perm = [0] * x.ndim
    for k in range(x.ndim):
        perm[out_spec[k]] = lhs_spec[k]
    if perm != list(range(x.ndim)):
        total = jnp.transpose(total, perm)
    return total.astype(out_dtype) if out_dtype is not None else total


def shifted_equation(eqn, x, w):
    """The output of the depthwise convolution equation ``eqn`` on ``x`` and ``w``, computed by
    ``shifted_depthwise_conv`` as one ``jit`` call the counter costs as the convolution it replaces."""
    p = eqn.params
    geometry = dict(window_strides=tuple(p["window_strides"]), padding=tuple(map(tuple, p["padding"])),
                    rhs_dilation=tuple(p["rhs_dilation"]), dimension_numbers=p["dimension_numbers"],
                    out_dtype=eqn.outvars[0].aval.dtype)

    def rewritten(x, w):
        return shifted_depthwise_conv(x, w, **geometry)

    record = conv_record(eqn)
    rewritten.__name__ = REWRITTEN_NAME
    call = jax.jit(rewritten)
    # the counter's rule for this one call, found by the identity of its traced body (the very
    # object the program's equation carries: ``call(x, w)`` below reuses the trace)
    register_call_rule(call.trace(x, w).jaxpr, lambda _eqn, record=record: record)
    return call(x, w)


def depthwise_by_shifts(fn: Callable) -> Callable:
    """``fn`` with each depthwise convolution computed as shifted multiply-adds (module docstring).

    The result takes and returns what ``fn`` does; ``jax.jit`` it (it retraces ``fn`` on each
    un-jitted call). Convolutions inside ``scan``, ``cond`` or ``while`` bodies are left as they are.
    """
    return rewrite_equations(fn, is_depthwise, lambda eqn, x, w: [shifted_equation(eqn, x, w)])

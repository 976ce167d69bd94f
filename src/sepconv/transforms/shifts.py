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

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from ..kinds import is_depthwise_equation
from .reductions import per_image_sums
from .rewrite import counted_call, rewrite_equations
from .windows import kernel_offsets, output_size, pad_spatial, window_slice

__all__ = ["depthwise_by_shifts", "is_depthwise", "shifted_depthwise_conv", "shifted_equation", "REWRITTEN_NAME"]

#: The name of the ``jit`` call each rewritten depthwise convolution becomes (for reading a jaxpr; the
#: counter finds its rule by the call's identity, never by this name).
REWRITTEN_NAME = "depthwise_by_shifts"


def is_depthwise(eqn) -> bool:
    """Whether ``eqn`` is a depthwise convolution this module rewrites: one input channel per
    group, as many groups as input and output channels, no input dilation, no batch groups
    (:func:`sepconv.kinds.is_depthwise_equation`, the one classifier)."""
    return is_depthwise_equation(eqn)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _sum_of_taps(x, taps, strides, padding, dilation):
    """``y = sum_t slice_t(pad(x)) * taps[t]`` in the canonical layout: ``x`` is ``(N, *spatial, C)``, ``taps``
    ``(*kernel, C)``, ``padding`` non-negative. Its gradient is written out (``_sum_of_taps_backward``)."""
    _, out_size = output_size(x, taps.shape[:-1], strides, padding, dilation)
    return _shifted_sum(pad_spatial(x, padding), taps, out_size, strides, dilation)


def _shifted_sum(xp, taps, out_size, strides, dilation):
    """``sum_t slice_t(xp) * taps[t]`` over the taps of ``taps`` (``(*kernel, C)``), ``xp`` already padded."""
    total = None
    for offset in kernel_offsets(taps.shape[:-1]):
        term = window_slice(xp, offset, out_size, strides, dilation) * taps[offset]
        total = term if total is None else total + term
    return total


def _sum_of_taps_forward(x, taps, strides, padding, dilation):
    return _sum_of_taps(x, taps, strides, padding, dilation), (x, taps)


def _sum_of_taps_backward(strides, padding, dilation, residuals, g):
    """The gradient of ``_sum_of_taps`` from the saved input and taps alone:

        dx = sum_t slice_t(spread(g)) * flipped(taps)[t]   (spread: ``stride - 1`` zeros between the values
                                                          of g, padded so the result has x's shape)
        dtaps[t, c] = sum_{n, positions} slice_t(pad(x))[..., c] * g[..., c]

    JAX's own derivative of the forward keeps every ``slice_t(pad(x))`` (K^2 copies of the input) for the
    weight gradient and reduces each in its own pass over memory; here the K^2 tap sums are one variadic
    ``lax.reduce``, a single pass over ``x`` and ``g`` (XLA fuses the slices and products into it), over each
    image's positions, then a sum over the images (``reductions.per_image_sums``)."""
    x, taps = residuals
    kernel = taps.shape[:-1]
    _, out_size = output_size(x, kernel, strides, padding, dilation)
    offsets = list(kernel_offsets(kernel))
    # dx is the correlation of g, spread out by the stride (stride - 1 zeros between values), with the
    # flipped taps, cropped to x: the forward's shifted sum again, at stride 1.
    config = [(0, 0, 0)]
    for i, (k, d, s, n) in enumerate(zip(kernel, dilation, strides, x.shape[1:-1])):
        low = (k - 1) * d - padding[i][0]
        config.append((low, n + (k - 1) * d - ((out_size[i] - 1) * s + 1) - low, s - 1))
    config.append((0, 0, 0))
    spread = lax.pad(g, jnp.zeros((), g.dtype), config)
    flipped = taps[tuple(slice(None, None, -1) for _ in kernel)]
    dx = _shifted_sum(spread, flipped, x.shape[1:-1], (1,) * len(kernel), dilation)
    xp = pad_spatial(x, padding)
    acc = jnp.promote_types(g.dtype, jnp.float32)
    products = tuple(window_slice(xp, offset, out_size, strides, dilation).astype(acc) * g.astype(acc)
                     for offset in offsets)
    dtaps = jnp.stack(per_image_sums(products)).sum(1).reshape(taps.shape)
    return dx.astype(x.dtype), dtaps.astype(taps.dtype)


_sum_of_taps.defvjp(_sum_of_taps_forward, _sum_of_taps_backward)


def shifted_depthwise_conv(x, w, *, window_strides, padding, rhs_dilation, dimension_numbers, out_dtype=None):
    """``sum_taps slice(pad(x)) * w[tap]``: what ``lax.conv_general_dilated`` computes for a depthwise
    kernel, in the layouts ``dimension_numbers`` (a ``ConvDimensionNumbers``) gives. Its gradient is the
    written-out one of ``_sum_of_taps_backward`` (one pass for the kernel's gradient)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = len(lhs_spec) - 2
    # The canonical layout (N, *spatial, C) and the kernel as (*spatial taps, C).
    x = jnp.transpose(x, [lhs_spec[0], *lhs_spec[2:], lhs_spec[1]])
    kernel = [w.shape[rhs_spec[2 + i]] for i in range(spatial)]
    taps = jnp.transpose(w, [*rhs_spec[2:], rhs_spec[1], rhs_spec[0]]).reshape(*kernel, -1)
    padding = [tuple(q) for q in padding]
    if any(lo < 0 or hi < 0 for lo, hi in padding):  # negative padding crops: crop first, pad the rest
        x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *[(min(lo, 0), min(hi, 0), 0) for lo, hi in padding],
                                                (0, 0, 0)])
        padding = [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
    total = _sum_of_taps(x, taps, tuple(window_strides), tuple(padding), tuple(rhs_dilation))
    # Our result is canonical (batch, spatial..., channel); the output wants logical dim k at out_spec[k].
    logical = [0, spatial + 1, *range(1, spatial + 1)]  # canonical position of logical dim k
    perm = [0] * x.ndim
    for k in range(x.ndim):
        perm[out_spec[k]] = logical[k]
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

    return counted_call(eqn, rewritten, REWRITTEN_NAME, x, w)


def depthwise_by_shifts(fn: Callable) -> Callable:
    """``fn`` with each depthwise convolution computed as shifted multiply-adds (module docstring).

    The result takes and returns what ``fn`` does; ``jax.jit`` it (it retraces ``fn`` on each
    un-jitted call). Convolutions inside ``scan``, ``cond`` or ``while`` bodies are left as they are.
    """
    return rewrite_equations(fn, is_depthwise, lambda eqn, x, w: [shifted_equation(eqn, x, w)])

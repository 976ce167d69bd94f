"""Streaming: the same function computed a slice at a time, so that less of it is in memory at once.

``micro_batched(fn, size)`` computes a batch ``size`` images at a time; ``streamed_inverted_residual``
computes an inverted residual block in slices of its expanded channels (MobileNetV2 sec. 5.2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..blocks import InvertedResidual, activation
from .batchnorm import batchnorm_affine

__all__ = ["micro_batched", "streamed_inverted_residual"]


def micro_batched(fn, size: int):
    """``fn(state, x)`` computed ``size`` images at a time in a ``lax.map`` loop, the results
    concatenated: the same numbers, with a working set of ``size`` images' activations, which on a
    CPU stays in cache where a whole batch's does not. ``x``'s batch must be a multiple of ``size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")

    def batched(state, x):
        if x.shape[0] % size:
            raise ValueError(f"a batch of {x.shape[0]} is not a multiple of the micro-batch {size}")
        if x.shape[0] == size:
            return fn(state, x)
        out = jax.lax.map(lambda chunk: fn(state, chunk), x.reshape(x.shape[0] // size, size, *x.shape[1:]))
        return jax.tree.map(lambda y: y.reshape(x.shape[0], *y.shape[2:]), out)

    return batched


def streamed_inverted_residual(block: InvertedResidual, splits: int):
    """A function computing ``block`` (eval mode) in ``splits`` slices of its expanded channels (sec. 5.2).

    ``y = BN(sum_i P_i relu6(BN(DW_i relu6(BN(E_i x)))))`` (+ x): BatchNorm, ReLU6 and the depthwise
    convolution act on each channel alone, so slice ``i`` of the expansion can be expanded, filtered and
    projected on its own, and the projections summed. The slices run as a ``lax.scan``: one loop body,
    so the compiled program holds one slice of the expanded tensor at a time. (Written as a Python
    loop, the slices are unrolled into one program that XLA is free to schedule at once.)
    """
    if block.conv_pw is None:
        raise ValueError("a block without expansion (t = 1) has nothing to stream")
    expanded = block.conv_dw.conv.kernel.shape[-1]
    if not 1 <= splits <= expanded or expanded % splits:
        raise ValueError(f"splits must divide the {expanded} expanded channels, got {splits}")
    k = expanded // splits
    stride = block.conv_dw.conv.strides
    stride = stride if isinstance(stride, int) else stride[0]
    kernel = block.conv_dw.conv.kernel.shape[0]
    dn = ("NHWC", "HWIO", "NHWC")
    act_e, act_d = activation(block.conv_pw.act), activation(block.conv_dw.act)
    s_e, b_e = batchnorm_affine(block.conv_pw.bn)
    s_d, b_d = batchnorm_affine(block.conv_dw.bn)
    s_p, b_p = batchnorm_affine(block.conv_pwl.bn)
    w_e, w_d, w_p = (block.conv_pw.conv.kernel[...], block.conv_dw.conv.kernel[...], block.conv_pwl.conv.kernel[...])
    # slice i takes expanded channels i*k ... (i+1)*k - 1 of every weight
    slices = (w_e.reshape(1, 1, -1, splits, k).transpose(3, 0, 1, 2, 4), s_e.reshape(splits, k), b_e.reshape(splits, k),
              w_d.reshape(kernel, kernel, 1, splits, k).transpose(3, 0, 1, 2, 4), s_d.reshape(splits, k),
              b_d.reshape(splits, k), w_p.reshape(1, 1, splits, k, -1).transpose(2, 0, 1, 3, 4))
    padding = block.conv_dw.conv.padding

    def forward(x):
        out = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
        total = jnp.zeros((x.shape[0], *out, w_p.shape[-1]), x.dtype)

        def one_slice(total, weights):
            we, se, be, wd, sd, bd, wp = weights
            e = act_e(jax.lax.conv_general_dilated(x, we, (1, 1), "SAME", dimension_numbers=dn) * se + be)
            d = act_d(jax.lax.conv_general_dilated(e, wd, (stride, stride), padding, dimension_numbers=dn,
                                                   feature_group_count=k) * sd + bd)
            return total + jax.lax.conv_general_dilated(d, wp, (1, 1), "SAME", dimension_numbers=dn), None

        total, _ = jax.lax.scan(one_slice, total, slices)
        y = total * s_p + b_p
        return x + y if block.has_skip else y

    return forward

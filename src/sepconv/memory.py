"""Activation memory of a network: what must be materialized, and how to stream a block.

MobileNetV2 sec. 5.1 measures a network by the largest tensor (or pair of
tensors) it must keep in memory at once. For an inverted residual block only
the block's input and output (the thin bottlenecks) need to exist in full:
the expanded tensor can be computed in slices of its channels, each slice
expanded, filtered depthwise and projected, and the projections summed
(sec. 5.2), because BatchNorm, ReLU6 and the depthwise convolution act on
each channel separately.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .blocks import InvertedResidual, activation

__all__ = ["block_output_shapes", "materialized_by_resolution", "streamed_inverted_residual", "compiled_memory"]


def block_output_shapes(resolved) -> list[tuple[str, tuple]]:
    """``(block type, (H, W, C))`` for every block of a ``ResolvedNetwork``, then the pooled vector."""
    shapes, channels = [], 3
    for block, (_, size) in zip(resolved.blocks, resolved.sizes()):
        channels = getattr(block, "c_out", channels)
        shapes.append((type(block).__name__, (size, size, channels)))
    shapes.append(("pooled", (1, 1, resolved.head.c_in)))
    return shapes


def materialized_by_resolution(resolved, fuse_stem: bool = False) -> dict:
    """The widest tensor kept in memory at each spatial size: ``{(H, W): channels}``.

    ``fuse_stem`` drops the stem's output: MobileNetV2 sec. 5.1 computes the
    first convolution together with the first block, so its 32-channel output is
    never held whole.
    """
    widest = {}
    shapes = block_output_shapes(resolved)
    for kind, (h, w, c) in shapes[1:] if fuse_stem else shapes:
        widest[(h, w)] = max(widest.get((h, w), 0), c)
    return widest


def compiled_memory(fn, *args) -> dict:
    """Bytes XLA reserves for ``jax.jit(fn)(*args)``: ``temp`` (intermediate buffers after fusion and
    scheduling), ``arguments`` and ``output``. Arguments may be ``jax.ShapeDtypeStruct``: nothing runs."""
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    return {"temp": int(analysis.temp_size_in_bytes), "arguments": int(analysis.argument_size_in_bytes),
            "output": int(analysis.output_size_in_bytes)}


def _bn_affine(bn) -> tuple:
    """BatchNorm in eval mode as ``x * scale + shift``."""
    scale = bn.scale[...] / jnp.sqrt(bn.var[...] + bn.epsilon)
    return scale, bn.bias[...] - bn.mean[...] * scale


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
    s_e, b_e = _bn_affine(block.conv_pw.bn)
    s_d, b_d = _bn_affine(block.conv_dw.bn)
    s_p, b_p = _bn_affine(block.conv_pwl.bn)
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

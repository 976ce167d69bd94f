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
from flax import nnx

from .blocks import ConvBN, ConvSpec, InvertedResidual

__all__ = ["block_output_shapes", "materialized_by_resolution", "streamed_inverted_residual"]


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


def _slice_convbn(layer: ConvBN, start: int, stop: int, axis: str, rngs: nnx.Rngs) -> ConvBN:
    """A ConvBN computing output channels (``axis='out'``) or reading input channels (``'in'``) start:stop."""
    conv = layer.conv
    kernel = conv.kernel[...]
    groups = conv.feature_group_count
    if axis == "out":
        depthwise = groups > 1
        width = stop - start
        stride = conv.strides if isinstance(conv.strides, int) else conv.strides[0]
        new = ConvBN(ConvSpec(width if depthwise else kernel.shape[2], width, kernel.shape[0], stride,
                              groups=width if depthwise else 1, act=layer.act, padding=conv.padding), rngs=rngs)
        new.conv.kernel[...] = kernel[..., start:stop]
        for name in ("scale", "bias", "mean", "var"):
            getattr(new.bn, name)[...] = getattr(layer.bn, name)[...][start:stop]
    else:
        new = nnx.Conv(stop - start, kernel.shape[3], (1, 1), use_bias=False, rngs=rngs)
        new.kernel[...] = kernel[:, :, start:stop, :]
    return new


def streamed_inverted_residual(block: InvertedResidual, splits: int):
    """A function computing ``block`` in ``splits`` slices of its expanded channels (sec. 5.2).

    ``y = BN(sum_i P_i relu6(BN(DW_i relu6(BN(E_i x)))))`` (+ x): only one slice
    of the expanded tensor is alive at a time. Returns ``f(x)`` equal to
    ``block(x)`` in eval mode.
    """
    if block.conv_pw is None:
        raise ValueError("a block without expansion (t = 1) has nothing to stream")
    expanded = block.conv_dw.conv.kernel.shape[-1]
    if not 1 <= splits <= expanded:
        raise ValueError(f"splits must be between 1 and {expanded} (the expanded channels), got {splits}")
    bounds = [round(i * expanded / splits) for i in range(splits + 1)]
    rngs = nnx.Rngs(0)
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        expand = _slice_convbn(block.conv_pw, start, stop, "out", rngs)
        depthwise = _slice_convbn(block.conv_dw, start, stop, "out", rngs)
        project = _slice_convbn(block.conv_pwl, start, stop, "in", rngs)
        for module in (expand, depthwise):
            module.eval()
        pieces.append((expand, depthwise, project))
    bn = block.conv_pwl.bn

    def forward(x):
        total = None
        for expand, depthwise, project in pieces:
            part = project(depthwise(expand(x)))
            total = part if total is None else total + part
        y = bn(total)
        return x + y if block.has_skip else y

    return forward

"""Activation memory of a network: what must be materialized, and how to stream a block.

MobileNetV2 sec. 5.1 measures a network by the largest tensor (or pair of
tensors) it must keep in memory at once. For an inverted residual block only
the block's input and output (the thin bottlenecks) need to exist in full:
the expanded tensor can be computed in slices of its channels, each slice
expanded, filtered depthwise and projected, and the projections summed
(sec. 5.2), because BatchNorm, ReLU6 and the depthwise convolution act on
each channel separately. That streamed block is a transform and lives in
``sepconv.transforms.streaming``; it is re-exported here.
"""

from __future__ import annotations

import jax

from .transforms.streaming import streamed_inverted_residual  # noqa: F401  (its home: sepconv.transforms)

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

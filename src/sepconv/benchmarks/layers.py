"""Chapter 7's layers: standard, depthwise (two ways) and pointwise convolutions at MobileNet shapes,
each beside its roofline."""

from __future__ import annotations

import functools
from typing import TypedDict

import jax
import jax.numpy as jnp

from ..cost import depthwise_conv_cost, pointwise_conv_cost, standard_conv_cost
from ..transforms.shifts import depthwise_by_shifts
from .budget import MOBILENET_SHAPES
from .harness import time_call

__all__ = ["SHIFTS_LAYER", "LAYERS", "LayerTiming", "layer_cost", "layer_benchmarks", "conv_nhwc"]

#: The layer name of a depthwise convolution computed by ``depthwise_by_shifts``.
SHIFTS_LAYER = "depthwise 3x3, shifts"

#: The layers timed per shape, in order: (name, kernel size, depthwise?).
LAYERS = (("standard 3x3", 3, False), ("depthwise 3x3", 3, True), (SHIFTS_LAYER, 3, True), ("pointwise 1x1", 1, False))


def layer_cost(size: int, channels: int, kernel: int, depthwise: bool):
    """The ``LayerCost`` of one image through a ``channels -> channels`` layer of ``LAYERS``."""
    if depthwise:
        return depthwise_conv_cost(size, size, channels, kernel)
    if kernel == 1:
        return pointwise_conv_cost(size, size, channels, channels)
    return standard_conv_cost(size, size, channels, channels, kernel)


class LayerTiming(TypedDict):
    """One row of ``layers.json``: a layer at one shape, its cost, its time and its roofline."""

    layer: str
    size: int
    channels: int
    batch: int
    macs: int
    bytes: int
    intensity: float
    median_s: float
    spread: float
    achieved_flops: float
    roofline_flops: float


def conv_nhwc(x, w, groups=1):
    """A stride-1, ``SAME`` convolution of an NHWC input by an HWIO kernel with ``groups`` groups."""
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=groups)


def layer_benchmarks(peaks: dict, batch: int = 1, repeats: int = 20, shapes=MOBILENET_SHAPES,
                     dtype=jnp.float32) -> list[LayerTiming]:
    """Standard 3x3, depthwise 3x3 (as XLA's grouped convolution and as shifted multiply-adds) and
    pointwise convolutions at MobileNet shapes (``(size, channels)``): time, GFLOP/s, intensity
    (bytes at ``dtype``'s size). MACs and values moved come from ``sepconv.cost``: ``batch`` times
    the layer's MACs, and ``itemsize * (batch * (input + output activations) + weights)`` bytes, each
    read or written once."""
    rows = []
    itemsize = jnp.dtype(dtype).itemsize
    for size, c in shapes:
        x = jnp.ones((batch, size, size, c), dtype)
        for kind, kernel, depthwise in LAYERS:
            cost = layer_cost(size, c, kernel, depthwise)
            w = jnp.ones((kernel, kernel, 1 if depthwise else c, c), dtype)
            conv = functools.partial(conv_nhwc, groups=c if depthwise else 1)
            fn = jax.jit(depthwise_by_shifts(conv) if kind == SHIFTS_LAYER else conv)
            t = time_call(fn, x, w, repeats=repeats)
            macs = batch * cost.macs
            moved = itemsize * (batch * (cost.input_activations + cost.output_activations) + cost.params)
            intensity = 2 * macs / moved
            bound = min(peaks["peak_flops"], intensity * peaks["peak_bandwidth"])
            rows.append(LayerTiming(layer=kind, size=size, channels=c, batch=batch, macs=macs, bytes=moved,
                                    intensity=intensity, median_s=t.median_s, spread=t.spread,
                                    achieved_flops=2 * macs / t.median_s, roofline_flops=bound))
    return rows

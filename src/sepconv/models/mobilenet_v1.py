"""MobileNet v1 (Howard et al. 2017), one spec read like the paper's Table 1.

The spec drives the closed-form cost (``mobilenet_v1_layers``) and the Flax
NNX model (``MobileNetV1``). Width multiplier: every layer has
``max(int(c * alpha), 8)`` channels (TF-slim ``mobilenet_v1.py``), the first
convolution included. The resolution multiplier is the input size itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from flax import nnx

from ..cost import LayerCost, depthwise_conv_cost, pointwise_conv_cost, standard_conv_cost
from ..layers import ConvBN, DepthwiseSeparable
from .common import Conv, FeatureStack, check_classes, check_resolution, classifier_cost
from .rounding import v1_depth

__all__ = ["Conv", "DepSepConv", "MOBILENET_V1", "mobilenet_v1_layers", "MobileNetV1"]


@dataclass(frozen=True)
class DepSepConv:
    """A depthwise (carrying the stride) and a pointwise convolution, each -> BN -> ReLU."""
    kernel: int
    stride: int
    depth: int


#: Table 1 of the paper, row by row. The paper prints ``s2`` on the last depthwise
#: layer but keeps the map at 7x7; the reference implementations use stride 1.
MOBILENET_V1 = (
    Conv(3, 2, 32),
    DepSepConv(3, 1, 64),
    DepSepConv(3, 2, 128),
    DepSepConv(3, 1, 128),
    DepSepConv(3, 2, 256),
    DepSepConv(3, 1, 256),
    DepSepConv(3, 2, 512),
    DepSepConv(3, 1, 512),
    DepSepConv(3, 1, 512),
    DepSepConv(3, 1, 512),
    DepSepConv(3, 1, 512),
    DepSepConv(3, 1, 512),
    DepSepConv(3, 2, 1024),
    DepSepConv(3, 1, 1024),
)

#: The spec as Table 1 prints it, with stride 2 on the last depthwise layer.
MOBILENET_V1_AS_PRINTED = MOBILENET_V1[:-1] + (replace(MOBILENET_V1[-1], stride=2),)


def mobilenet_v1_layers(alpha: float = 1.0, resolution: int = 224, classes: int | None = 1000,
                        spec: Sequence = MOBILENET_V1) -> list[LayerCost]:
    """Closed-form cost of every layer, in order, ending with the FC layer (omitted if ``classes`` is None)."""
    size = check_resolution(resolution)
    channels, layers = 3, []
    for i, op in enumerate(spec):
        depth = v1_depth(op.depth, alpha)
        if isinstance(op, Conv):
            layer = standard_conv_cost(size, size, channels, depth, op.kernel, op.stride)
            layers.append(replace(layer, name=f"conv{i}"))
        else:
            dw = depthwise_conv_cost(size, size, channels, op.kernel, op.stride)
            size = dw.output_shape[0]
            pw = pointwise_conv_cost(size, size, channels, depth)
            layers += [replace(dw, name=f"conv{i}_dw"), replace(pw, name=f"conv{i}_pw")]
        size, channels = layers[-1].output_shape[0], depth
    if classes is not None:
        layers.append(replace(classifier_cost(channels, check_classes(classes)), name="fc"))
    return layers


class MobileNetV1(FeatureStack):
    """MobileNet v1 in Flax NNX, built from ``spec``; input ``(B, H, W, 3)``, output logits."""

    def __init__(self, alpha: float = 1.0, classes: int = 1000, spec: Sequence = MOBILENET_V1, *,
                 rngs: nnx.Rngs):
        self.alpha, self.spec = alpha, tuple(spec)
        blocks, channels = [], 3
        for op in self.spec:
            depth = v1_depth(op.depth, alpha)
            if isinstance(op, Conv):
                blocks.append(ConvBN(channels, depth, op.kernel, op.stride, rngs=rngs))
            else:
                blocks.append(DepthwiseSeparable(channels, depth, op.stride, op.kernel, rngs=rngs))
            channels = depth
        self._set_blocks(blocks, channels, classes, rngs)

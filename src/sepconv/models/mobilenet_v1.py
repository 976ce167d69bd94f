"""MobileNet v1 (Howard et al. 2017), one spec read like the paper's Table 1.

``resolve_mobilenet_v1`` turns the spec into typed blocks (``sepconv.blocks``); the closed-form
cost, the Flax NNX model and the checks all read those blocks. Width multiplier: every layer has
``max(int(c * alpha), 8)`` channels (TF-slim ``mobilenet_v1.py``, ``v1_depth``), the first
convolution included. The resolution multiplier is the input size itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from ..blocks import ClassifierSpec, ConvSpec, SeparableSpec
from .common import ALPHA, Conv, check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model
from .rounding import v1_depth

__all__ = ["Conv", "DepSepConv", "MOBILENET_V1", "MOBILENET_V1_AS_PRINTED", "resolve_mobilenet_v1", "full_conv_twin"]


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


def full_conv_twin(spec: Sequence) -> tuple:
    """The same network with every depthwise separable row replaced by a standard convolution
    (the paper's "Conv MobileNet", Table 4)."""
    return tuple(Conv(op.kernel, op.stride, op.depth) for op in spec)


def resolve_mobilenet_v1(spec: Sequence = MOBILENET_V1, alpha: float = 1.0, resolution: int = 224,
                         classes: int = 1000, name: str = "mobilenet_v1", act: str = "relu") -> ResolvedNetwork:
    """Typed blocks of a MobileNet v1 ``spec``: ``Conv`` rows become ``ConvSpec``, ``DepSepConv`` rows
    ``SeparableSpec``, each with ``v1_depth(depth, alpha)`` output channels and ``act`` (the paper's
    ReLU; TF-slim's checkpoints use ReLU6)."""
    check_resolution(resolution)
    blocks, channels = [], 3
    for op in spec:
        depth = v1_depth(op.depth, alpha)
        if isinstance(op, Conv):
            blocks.append(ConvSpec(channels, depth, op.kernel, op.stride, act=act))
        elif isinstance(op, DepSepConv):
            blocks.append(SeparableSpec(channels, depth, op.kernel, op.stride, act=act))
        else:
            raise TypeError(f"a MobileNet v1 spec row is Conv or DepSepConv, got {op!r}")
        channels = depth
    return ResolvedNetwork(name, resolution, tuple(blocks), ClassifierSpec(channels, check_classes(classes)))


@register_model("mobilenet_v1", ALPHA, summary="MobileNet v1 (Howard et al. 2017, Table 1)", family="MobileNet",
                reference="TF-slim mobilenet_v1.py; keras.applications.MobileNet")
def mobilenet_v1(alpha=1.0, resolution=224, classes=1000):
    return resolve_mobilenet_v1(MOBILENET_V1, alpha, resolution, classes)

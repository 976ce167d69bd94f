"""MobileNetV4 (Qin et al. 2024): Conv-S, Conv-M, Conv-L, Hybrid-M and Hybrid-L, specs read like the
paper's appendix tables of blocks (DW K1, DW K2, expansion, output channels, stride).

Every block is a Universal Inverted Bottleneck (``sepconv.blocks.UIBSpec``) but for the stem, the
plain convolutions of Conv-S's first two stages, one FusedIB (EfficientNetV2's Fused-MBConv) in the
others, and, in the hybrid models, Mobile MQA attention blocks (``MobileMQASpec``) in the last two
stages. The rows below are the block specifications of the reference implementations, TensorFlow
Model Garden (``official/vision/modeling/backbones/mobilenet.py``) and timm
(``_gen_mobilenet_v4`` in ``timm/models/mobilenetv3.py``), which agree with each other.

Rules shared by both references:

* a block's expanded width is ``make_divisible(c_in * e, 8)``;
* the start depthwise layer has BatchNorm and no activation, the expansion and middle depthwise
  layers BatchNorm and the activation (ReLU; GELU in Hybrid-L), the projection BatchNorm only;
* the hybrid models scale every UIB and MQA block's output by a learned per-channel ``gamma``
  initialized to 1e-5 (layer scale), whether or not the block has a skip;
* the head is a 1x1 convolution to 960 channels, global average pooling, a 1x1 convolution to 1280
  channels without bias, with BatchNorm and the activation (applied to the pooled 1x1 map, so it
  costs 960 x 1280 MACs at any resolution), and the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..blocks import ClassifierSpec, ConvSpec, GlobalPoolSpec, MobileMQASpec, UIBSpec, fused_ib
from .common import Conv, check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model
from .rounding import make_divisible

__all__ = ["FusedIB", "UIB", "MQA", "MOBILENET_V4", "resolve_mobilenet_v4"]


@dataclass(frozen=True)
class FusedIB:
    """A ``kernel x kernel`` convolution expanding by ``e``, then a 1x1 projection to ``c``."""
    kernel: int
    stride: int
    e: float
    c: int


@dataclass(frozen=True)
class UIB:
    """``n`` Universal Inverted Bottlenecks: start depthwise ``start x start`` (0: none), expansion by ``e``,
    middle depthwise ``mid x mid`` (0: none), projection to ``c``; the first has stride ``s``."""
    start: int
    mid: int
    s: int
    e: float
    c: int
    n: int = 1


@dataclass(frozen=True)
class MQA:
    """A Mobile MQA block: ``heads`` query heads of ``dim`` channels, one shared key and value of ``dim``
    channels computed on the map downsampled by ``kv_stride``; output ``c`` channels."""
    heads: int
    dim: int
    kv_stride: int
    c: int


_CONV_S = (
    Conv(3, 2, 32),
    Conv(3, 2, 32), Conv(1, 1, 32),
    Conv(3, 2, 96), Conv(1, 1, 64),
    UIB(5, 5, 2, 3, 96), UIB(0, 3, 1, 2, 96, n=4), UIB(3, 0, 1, 4, 96),
    UIB(3, 3, 2, 6, 128), UIB(5, 5, 1, 4, 128), UIB(0, 5, 1, 4, 128), UIB(0, 5, 1, 3, 128), UIB(0, 3, 1, 4, 128, n=2),
    Conv(1, 1, 960),
)

_CONV_M = (
    Conv(3, 2, 32),
    FusedIB(3, 2, 4, 48),
    UIB(3, 5, 2, 4, 80), UIB(3, 3, 1, 2, 80),
    UIB(3, 5, 2, 6, 160), UIB(3, 3, 1, 4, 160, n=2), UIB(3, 5, 1, 4, 160), UIB(3, 3, 1, 4, 160),
    UIB(3, 0, 1, 4, 160), UIB(0, 0, 1, 2, 160), UIB(3, 0, 1, 4, 160),
    UIB(5, 5, 2, 6, 256), UIB(5, 5, 1, 4, 256), UIB(3, 5, 1, 4, 256, n=2), UIB(0, 0, 1, 4, 256), UIB(3, 0, 1, 4, 256),
    UIB(3, 5, 1, 2, 256), UIB(5, 5, 1, 4, 256), UIB(0, 0, 1, 4, 256, n=2), UIB(5, 0, 1, 2, 256),
    Conv(1, 1, 960),
)

_CONV_L = (
    Conv(3, 2, 24),
    FusedIB(3, 2, 4, 48),
    UIB(3, 5, 2, 4, 96), UIB(3, 3, 1, 4, 96),
    UIB(3, 5, 2, 4, 192), UIB(3, 3, 1, 4, 192, n=3), UIB(3, 5, 1, 4, 192), UIB(5, 3, 1, 4, 192, n=5),
    UIB(3, 0, 1, 4, 192),
    UIB(5, 5, 2, 4, 512, n=4), UIB(5, 0, 1, 4, 512), UIB(5, 3, 1, 4, 512), UIB(5, 0, 1, 4, 512, n=2),
    UIB(5, 3, 1, 4, 512), UIB(5, 5, 1, 4, 512), UIB(5, 0, 1, 4, 512, n=3),
    Conv(1, 1, 960),
)

_HYBRID_M = (
    Conv(3, 2, 32),
    FusedIB(3, 2, 4, 48),
    UIB(3, 5, 2, 4, 80), UIB(3, 3, 1, 2, 80),
    UIB(3, 5, 2, 6, 160), UIB(0, 0, 1, 2, 160), UIB(3, 3, 1, 4, 160), UIB(3, 5, 1, 4, 160),
    MQA(4, 64, 2, 160), UIB(3, 3, 1, 4, 160), MQA(4, 64, 2, 160), UIB(3, 0, 1, 4, 160),
    MQA(4, 64, 2, 160), UIB(3, 3, 1, 4, 160), MQA(4, 64, 2, 160), UIB(3, 0, 1, 4, 160),
    UIB(5, 5, 2, 6, 256), UIB(5, 5, 1, 4, 256), UIB(3, 5, 1, 4, 256, n=2), UIB(0, 0, 1, 2, 256),
    UIB(3, 5, 1, 2, 256), UIB(0, 0, 1, 2, 256), UIB(0, 0, 1, 4, 256),
    MQA(4, 64, 1, 256), UIB(3, 0, 1, 4, 256), MQA(4, 64, 1, 256), UIB(5, 5, 1, 4, 256),
    MQA(4, 64, 1, 256), UIB(5, 0, 1, 4, 256), MQA(4, 64, 1, 256), UIB(5, 0, 1, 4, 256),
    Conv(1, 1, 960),
)

_HYBRID_L = (
    Conv(3, 2, 24),
    FusedIB(3, 2, 4, 48),
    UIB(3, 5, 2, 4, 96), UIB(3, 3, 1, 4, 96),
    UIB(3, 5, 2, 4, 192), UIB(3, 3, 1, 4, 192, n=3), UIB(3, 5, 1, 4, 192), UIB(5, 3, 1, 4, 192, n=2),
    MQA(8, 48, 2, 192), UIB(5, 3, 1, 4, 192), MQA(8, 48, 2, 192), UIB(5, 3, 1, 4, 192),
    MQA(8, 48, 2, 192), UIB(5, 3, 1, 4, 192), MQA(8, 48, 2, 192), UIB(3, 0, 1, 4, 192),
    UIB(5, 5, 2, 4, 512, n=4), UIB(5, 0, 1, 4, 512), UIB(5, 3, 1, 4, 512), UIB(5, 0, 1, 4, 512, n=2),
    UIB(5, 3, 1, 4, 512), UIB(5, 5, 1, 4, 512),
    MQA(8, 64, 1, 512), UIB(5, 0, 1, 4, 512), MQA(8, 64, 1, 512), UIB(5, 0, 1, 4, 512),
    MQA(8, 64, 1, 512), UIB(5, 0, 1, 4, 512), MQA(8, 64, 1, 512), UIB(5, 0, 1, 4, 512),
    Conv(1, 1, 960),
)

#: The five models: rows, activation, layer scale, default resolution (paper Table 6, arXiv v2), head width.
MOBILENET_V4 = {
    "conv_small": dict(rows=_CONV_S, act="relu", layer_scale=None, resolution=224, head=1280),
    "conv_medium": dict(rows=_CONV_M, act="relu", layer_scale=None, resolution=256, head=1280),
    "conv_large": dict(rows=_CONV_L, act="relu", layer_scale=None, resolution=384, head=1280),
    "hybrid_medium": dict(rows=_HYBRID_M, act="relu", layer_scale=1e-5, resolution=256, head=1280),
    "hybrid_large": dict(rows=_HYBRID_L, act="gelu", layer_scale=1e-5, resolution=384, head=1280),
}


def resolve_mobilenet_v4(spec: dict, resolution: int = 224, classes: int = 1000,
                         name: str = "mobilenet_v4") -> ResolvedNetwork:
    """Typed blocks of a MobileNetV4 ``spec``: ``Conv`` rows become ``ConvSpec``, ``FusedIB`` rows
    ``fused_ib``, each repeat of a ``UIB`` row a ``UIBSpec``, ``MQA`` rows ``MobileMQASpec``; then the head."""
    check_resolution(resolution)
    act, scale = spec["act"], spec["layer_scale"]
    blocks, c = [], 3
    for row in spec["rows"]:
        if isinstance(row, Conv):
            blocks.append(ConvSpec(c, row.depth, row.kernel, row.stride, act=act))
            c = row.depth
        elif isinstance(row, FusedIB):
            blocks.append(fused_ib(c, make_divisible(c * row.e), row.c, row.kernel, row.stride, act=act))
            c = row.c
        elif isinstance(row, UIB):
            for r in range(row.n):
                blocks.append(UIBSpec(c, make_divisible(c * row.e), row.c, row.start, row.mid, row.s if r == 0 else 1,
                                      act=act, layer_scale=scale))
                c = row.c
        elif isinstance(row, MQA):
            blocks.append(MobileMQASpec(c, row.c, row.heads, row.dim, row.dim, row.kv_stride, 3, layer_scale=scale))
            c = row.c
        else:
            raise TypeError(f"a MobileNetV4 spec row is Conv, FusedIB, UIB or MQA, got {row!r}")
    blocks += [GlobalPoolSpec(), ConvSpec(c, spec["head"], 1, act=act)]
    return ResolvedNetwork(name, resolution, tuple(blocks), ClassifierSpec(spec["head"], check_classes(classes)))


def _register(variant: str):
    spec = MOBILENET_V4[variant]
    size = variant.split("_")[1]
    kind = variant.split("_")[0].capitalize()

    @register_model(f"mobilenet_v4_{variant}", resolution=spec["resolution"], family="MobileNet",
                    summary=f"MobileNetV4-{kind}-{size[0].upper()} (Qin et al. 2024), {spec['resolution']} px",
                    reference=f"timm mobilenetv4_{variant}; TF Model Garden MobileNetV4{kind}{size.capitalize()}")
    def mobilenet_v4(resolution=spec["resolution"], classes=1000):
        return resolve_mobilenet_v4(spec, resolution, classes, name=f"mobilenet_v4_{variant}")

    return mobilenet_v4


for _variant in MOBILENET_V4:
    _register(_variant)

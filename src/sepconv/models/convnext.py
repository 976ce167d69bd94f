"""ConvNeXt-T (Liu et al. 2022, "A ConvNet for the 2020s"), stages as in the paper's sec. 2 and Table 9.

A 4x4 stride-4 "patchify" stem with LayerNorm; four stages of (3, 3, 9, 3) ConvNeXt blocks with
(96, 192, 384, 768) channels, separated by LayerNorm + 2x2 stride-2 convolutions; global average
pooling, LayerNorm and the classifier. Each block is a 7x7 depthwise convolution followed by an
inverted bottleneck of two per-pixel linear layers (``ConvNeXtBlockSpec``): the depthwise
convolution of MobileNet, grown to 7x7 and moved before the expansion. Layer scale starts at 1e-6;
stochastic depth rises linearly to 0.1 over the blocks (torchvision).
"""

from __future__ import annotations

from ..blocks import ClassifierSpec, ConvNeXtBlockSpec, ConvSpec, DownsampleSpec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model

__all__ = ["CONVNEXT_TINY", "resolve_convnext"]

#: (channels, blocks) of the four stages of ConvNeXt-T.
CONVNEXT_TINY = ((96, 3), (192, 3), (384, 9), (768, 3))


def resolve_convnext(stages=CONVNEXT_TINY, resolution: int = 224, classes: int = 1000, stochastic_depth: float = 0.1,
                     layer_scale: float = 1e-6, name: str = "convnext_tiny") -> ResolvedNetwork:
    check_resolution(resolution)
    total = sum(n for _, n in stages)
    blocks = [ConvSpec(3, stages[0][0], 4, 4, act=None, padding="VALID", norm="layer", bias=True)]
    index = 0
    for i, (dim, n) in enumerate(stages):
        if i > 0:
            blocks.append(DownsampleSpec(stages[i - 1][0], dim))
        for _ in range(n):
            blocks.append(ConvNeXtBlockSpec(dim, layer_scale=layer_scale, drop_path=stochastic_depth * index / (total - 1)))
            index += 1
    head = ClassifierSpec(stages[-1][0], check_classes(classes), norm="layer")
    return ResolvedNetwork(name, resolution, tuple(blocks), head)


@register_model("convnext_tiny", summary="ConvNeXt-T (Liu et al. 2022)", family="ConvNeXt",
                reference="torchvision convnext_tiny; facebookresearch/ConvNeXt")
def convnext_tiny(resolution=224, classes=1000):
    return resolve_convnext(CONVNEXT_TINY, resolution, classes)

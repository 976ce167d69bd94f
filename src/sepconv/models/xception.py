"""Xception (Chollet 2017): entry, middle and exit flows (the paper's Figure 5), as in keras.applications.

Two plain 3x3 convolutions ("valid" padding), then ``XceptionBlockSpec`` blocks: three entry blocks
(128, 256, 728 channels, each ending in stride-2 max pooling with a 1x1 stride-2 convolution
shortcut), eight middle blocks of three 728-channel separable convolutions around an identity
shortcut, the exit block (728, 1024), and two separable convolutions (1536, 2048) each followed by
a ReLU. Separable convolutions have no bias and BatchNorm after the pointwise layer. Input 299x299.
"""

from __future__ import annotations

from ..blocks import ClassifierSpec, ConvSpec, SeparableSpec, XceptionBlockSpec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model

__all__ = ["resolve_xception"]


def resolve_xception(resolution: int = 299, classes: int = 1000, middle_blocks: int = 8) -> ResolvedNetwork:
    check_resolution(resolution, 71)
    blocks = [ConvSpec(3, 32, 3, 2, padding="VALID"), ConvSpec(32, 64, 3, 1, padding="VALID"),
              XceptionBlockSpec(64, (128, 128), pre_relu=False), XceptionBlockSpec(128, (256, 256)),
              XceptionBlockSpec(256, (728, 728))]
    blocks += [XceptionBlockSpec(728, (728, 728, 728), down=False) for _ in range(middle_blocks)]
    blocks += [XceptionBlockSpec(728, (728, 1024)), SeparableSpec(1024, 1536, act="relu", dw_norm=False),
               SeparableSpec(1536, 2048, act="relu", dw_norm=False)]
    return ResolvedNetwork("xception", resolution, tuple(blocks), ClassifierSpec(2048, check_classes(classes)))


@register_model("xception", summary="Xception (Chollet 2017, Fig. 5)", resolution=299, min_resolution=71,
                family="Xception", reference="keras.applications.Xception")
def xception(resolution=299, classes=1000):
    return resolve_xception(resolution, classes)

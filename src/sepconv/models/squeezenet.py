"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016), built from fire modules.

Every convolution has a bias and a ReLU; there is no BatchNorm and no FC layer (a 1x1 convolution to
the classes, then global average pooling). Max pooling rounds the output size up (``ceil_mode``),
as in the reference Caffe and torchvision models.
"""

from __future__ import annotations

from ..blocks import ClassifierSpec, ConvSpec, FireSpec, PoolSpec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model

__all__ = ["SQUEEZENET", "POOL", "resolve_squeezenet"]

POOL = "pool"
#: Stem (kernel, stride, channels) and the fire modules (squeeze, expand1x1, expand3x3) with pools between.
SQUEEZENET = {
    "1_0": dict(stem=(7, 2, 96), layers=(POOL, (16, 64, 64), (16, 64, 64), (32, 128, 128), POOL,
                                         (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256),
                                         POOL, (64, 256, 256))),
    "1_1": dict(stem=(3, 2, 64), layers=(POOL, (16, 64, 64), (16, 64, 64), POOL, (32, 128, 128),
                                         (32, 128, 128), POOL, (48, 192, 192), (48, 192, 192),
                                         (64, 256, 256), (64, 256, 256))),
}


def resolve_squeezenet(version: str = "1_0", resolution: int = 224, classes: int = 1000) -> ResolvedNetwork:
    if version not in SQUEEZENET:
        raise ValueError(f"SqueezeNet version must be one of {sorted(SQUEEZENET)}, got {version!r}")
    check_resolution(resolution)
    spec = SQUEEZENET[version]
    k, s, channels = spec["stem"]
    blocks = [ConvSpec(3, channels, k, s, padding="VALID", norm=None, bias=True)]
    for item in spec["layers"]:
        if item == POOL:
            blocks.append(PoolSpec("max", 3, 2, ceil=True))
        else:
            blocks.append(FireSpec(channels, *item))
            channels = item[1] + item[2]
    return ResolvedNetwork(f"squeezenet{version}", resolution, tuple(blocks),
                           ClassifierSpec(channels, check_classes(classes), conv=True))


@register_model("squeezenet1_0", summary="SqueezeNet 1.0 (Iandola et al. 2016, Table 1)", family="SqueezeNet",
                reference="torchvision squeezenet1_0")
def squeezenet1_0(resolution=224, classes=1000):
    return resolve_squeezenet("1_0", resolution, classes)


@register_model("squeezenet1_1", summary="SqueezeNet 1.1 (forresti/SqueezeNet v1.1)", family="SqueezeNet",
                reference="torchvision squeezenet1_1")
def squeezenet1_1(resolution=224, classes=1000):
    return resolve_squeezenet("1_1", resolution, classes)

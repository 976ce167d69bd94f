"""ShuffleNet v2 (Ma et al. 2018), the spec of the paper's Table 5.

Stages 2-4 repeat ``(4, 8, 4)`` units (``ShuffleV2Spec``); output channels per width come from the
same table. Convolutions carry no bias. Two conventions build the stride-2 unit (see
``ShuffleV2Spec``): torchvision's, and the authors' (``megvii``, the megvii-model/ShuffleNet-Series
code, whose final FC layer also has no bias).
"""

from __future__ import annotations

from ..blocks import ClassifierSpec, ConvSpec, PoolSpec, ShuffleV2Spec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import Option, register_model

__all__ = ["SHUFFLENET_V2_WIDTHS", "STAGE_REPEATS", "resolve_shufflenet_v2"]

STAGE_REPEATS = (4, 8, 4)
#: Output channels of conv1, stages 2-4 and conv5 for each width multiplier (Table 5).
SHUFFLENET_V2_WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}


def resolve_shufflenet_v2(width: float = 1.0, resolution: int = 224, classes: int = 1000,
                          convention: str = "torchvision") -> ResolvedNetwork:
    if width not in SHUFFLENET_V2_WIDTHS:
        raise ValueError(f"ShuffleNet v2 width must be one of {sorted(SHUFFLENET_V2_WIDTHS)}, got {width!r}")
    check_resolution(resolution)
    channels = SHUFFLENET_V2_WIDTHS[width]
    blocks, c_in = [ConvSpec(3, channels[0], 3, 2), PoolSpec("max", 3, 2, ((1, 1), (1, 1)))], channels[0]
    for repeats, c_out in zip(STAGE_REPEATS, channels[1:4]):
        blocks += [ShuffleV2Spec(c_in if r == 0 else c_out, c_out, 2 if r == 0 else 1, convention)
                   for r in range(repeats)]
        c_in = c_out
    blocks.append(ConvSpec(c_in, channels[4], 1))
    head = ClassifierSpec(channels[4], check_classes(classes), bias=convention != "megvii")
    return ResolvedNetwork("shufflenet_v2", resolution, tuple(blocks), head)


@register_model("shufflenet_v2", Option("width", float, 1.0, "width multiplier (Table 5)",
                                        choices=tuple(SHUFFLENET_V2_WIDTHS)),
                Option("convention", str, "torchvision", "whose stride-2 unit: torchvision's or the authors' "
                       "(megvii-model/ShuffleNet-Series)", choices=("torchvision", "megvii")),
                summary="ShuffleNet v2 (Ma et al. 2018, Table 5)", family="ShuffleNet",
                reference="torchvision shufflenet_v2_*; megvii-model/ShuffleNet-Series")
def shufflenet_v2(width=1.0, convention="torchvision", resolution=224, classes=1000):
    return resolve_shufflenet_v2(width, resolution, classes, convention)

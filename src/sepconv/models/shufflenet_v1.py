"""ShuffleNet v1 (Zhang et al. 2018), the spec of the paper's Table 1.

Stages 2-4 repeat ``(4, 8, 4)`` units (``ShuffleV1Spec``); the first unit of a stage has stride 2.
Stage 2's first pointwise layer is not grouped (its input has only 24 channels).
"""

from __future__ import annotations

from ..blocks import ClassifierSpec, ConvSpec, PoolSpec, ShuffleV1Spec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import Option, register_model

__all__ = ["SHUFFLENET_V1_CHANNELS", "SHUFFLENET_V1_REPEATS", "resolve_shufflenet_v1"]

#: Output channels of stages 2, 3, 4 for each number of groups g (Table 1, width 1x).
SHUFFLENET_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                          8: (384, 768, 1536)}
SHUFFLENET_V1_REPEATS = (4, 8, 4)


def resolve_shufflenet_v1(groups: int = 3, resolution: int = 224, classes: int = 1000) -> ResolvedNetwork:
    if groups not in SHUFFLENET_V1_CHANNELS:
        raise ValueError(f"ShuffleNet v1 groups must be one of {sorted(SHUFFLENET_V1_CHANNELS)}, got {groups!r}")
    check_resolution(resolution)
    blocks, c_in = [ConvSpec(3, 24, 3, 2), PoolSpec("max", 3, 2, "SAME")], 24
    for stage, (repeats, c_out) in enumerate(zip(SHUFFLENET_V1_REPEATS, SHUFFLENET_V1_CHANNELS[groups])):
        for r in range(repeats):
            blocks.append(ShuffleV1Spec(c_in, c_out, groups, 2 if r == 0 else 1, first_grouped=not (stage == 0 and r == 0)))
            c_in = c_out
    return ResolvedNetwork("shufflenet_v1", resolution, tuple(blocks), ClassifierSpec(c_in, check_classes(classes)))


@register_model("shufflenet_v1", Option("groups", int, 3, "groups of the 1x1 convolutions (Table 1)",
                                        choices=tuple(SHUFFLENET_V1_CHANNELS)),
                summary="ShuffleNet v1 1x (Zhang et al. 2018, Table 1)", family="ShuffleNet")
def shufflenet_v1(groups=3, resolution=224, classes=1000):
    return resolve_shufflenet_v1(groups, resolution, classes)

"""EfficientNet B0-B7 (Tan & Le 2019) and EfficientNetV2-S (Tan & Le 2021), specs read like the papers'
tables, scaled by torchvision's rules.

B0 (EfficientNet paper, Table 1) is a stack of MBConv stages with squeeze-and-excitation and SiLU
("swish"). B1-B7 scale it by a width coefficient ``w`` (every stage's channels
``make_divisible(c * w, 8)``), a depth coefficient ``d`` (every stage repeated
``ceil(n * d)`` times) and a resolution (``COMPOUND``); the paper chose them as ``alpha^phi,
beta^phi, gamma^phi`` with ``alpha beta^2 gamma^2 ~ 2``, so that MACs grow about ``2^phi``
(``compound_scaling_ratio``). The last 1x1 convolution has four times the last stage's channels.
Squeeze-and-excitation squeezes to a quarter of the block's *input* channels (``max(1, c_in // 4)``),
and training uses stochastic depth, its rate rising linearly over the blocks to 0.2, and dropout
before the classifier (0.2 for B0 up to 0.5 for B7).

EfficientNetV2-S (EfficientNetV2 paper, Table 4) starts with Fused-MBConv stages, where one 3x3
convolution replaces the expansion and the depthwise convolution, because on accelerators a
regular convolution runs faster than the pair it replaces at these early, high-resolution stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..blocks import ClassifierSpec, ConvSpec, MBConvSpec, SqueezeExciteSpec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model
from .rounding import make_divisible

__all__ = ["Stage", "EFFICIENTNET_B0", "EFFICIENTNET_V2_S", "COMPOUND", "resolve_efficientnet",
           "resolve_efficientnet_v2", "compound_scaling_ratio"]


@dataclass(frozen=True)
class Stage:
    """One row of the tables: ``n`` blocks expanding by ``t`` with ``k x k`` kernels to ``c`` channels,
    the first with stride ``s``; ``fused`` for Fused-MBConv, ``se`` for squeeze-and-excitation."""
    t: int
    k: int
    s: int
    c: int
    n: int
    fused: bool = False
    se: bool = True


#: EfficientNet paper Table 1, stages 2-8 (stage 1 is the 3x3 stem with 32 channels, stage 9 the head).
EFFICIENTNET_B0 = dict(stem=32, head_multiple=4, stages=(
    Stage(1, 3, 1, 16, 1),
    Stage(6, 3, 2, 24, 2),
    Stage(6, 5, 2, 40, 2),
    Stage(6, 3, 2, 80, 3),
    Stage(6, 5, 1, 112, 3),
    Stage(6, 5, 2, 192, 4),
    Stage(6, 3, 1, 320, 1),
))

#: EfficientNetV2 paper Table 4 (EfficientNetV2-S): three Fused-MBConv stages, then MBConv with SE.
EFFICIENTNET_V2_S = dict(stem=24, head=1280, stages=(
    Stage(1, 3, 1, 24, 2, fused=True, se=False),
    Stage(4, 3, 2, 48, 4, fused=True, se=False),
    Stage(4, 3, 2, 64, 4, fused=True, se=False),
    Stage(4, 3, 2, 128, 6),
    Stage(6, 3, 1, 160, 9),
    Stage(6, 3, 2, 256, 15),
))

#: (width, depth, resolution, dropout) of B0-B7: EfficientNet paper sec. 4 and the reference
#: implementations (TPU code, torchvision).
COMPOUND = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}

STOCHASTIC_DEPTH = 0.2


def compound_scaling_ratio(width: float, depth: float, resolution: int, base_resolution: int = 224) -> float:
    """The MACs a convolutional network should grow by: ``d * w^2 * r^2`` (EfficientNet sec. 3.3),
    with ``r`` the resolution relative to ``base_resolution``."""
    return depth * width ** 2 * (resolution / base_resolution) ** 2


def _blocks(stages, stem: int, width: float, depth: float) -> tuple[list, int]:
    """MBConv blocks of ``stages`` scaled by ``width`` and ``depth``; stochastic depth ``0.2 * i / total``."""
    repeats = [int(math.ceil(stage.n * depth)) for stage in stages]
    total, index = sum(repeats), 0
    blocks, c_in = [], stem
    for stage, n in zip(stages, repeats):
        c_out = make_divisible(stage.c * width)
        for r in range(n):
            expanded = make_divisible(c_in * stage.t)
            se = SqueezeExciteSpec(expanded, max(1, c_in // 4), act="silu", gate="sigmoid") if stage.se else None
            blocks.append(MBConvSpec(c_in, expanded, c_out, stage.k, stage.s if r == 0 else 1, act="silu", se=se,
                                     fused=stage.fused, drop_path=STOCHASTIC_DEPTH * index / total))
            c_in, index = c_out, index + 1
    return blocks, c_in


def resolve_efficientnet(width: float = 1.0, depth: float = 1.0, resolution: int = 224, classes: int = 1000,
                         dropout: float = 0.2, name: str = "efficientnet") -> ResolvedNetwork:
    """EfficientNet-B0 scaled by ``width`` and ``depth`` (``COMPOUND`` has the B1-B7 coefficients)."""
    check_resolution(resolution)
    stem = make_divisible(EFFICIENTNET_B0["stem"] * width)
    blocks, c = _blocks(EFFICIENTNET_B0["stages"], stem, width, depth)
    head = EFFICIENTNET_B0["head_multiple"] * c
    blocks = [ConvSpec(3, stem, 3, 2, act="silu"), *blocks, ConvSpec(c, head, 1, act="silu")]
    return ResolvedNetwork(name, resolution, tuple(blocks), ClassifierSpec(head, check_classes(classes),
                                                                           dropout=dropout))


def resolve_efficientnet_v2(spec: dict = EFFICIENTNET_V2_S, resolution: int = 384, classes: int = 1000,
                            dropout: float = 0.2, name: str = "efficientnet_v2_s") -> ResolvedNetwork:
    check_resolution(resolution)
    blocks, c = _blocks(spec["stages"], spec["stem"], 1.0, 1.0)
    blocks = [ConvSpec(3, spec["stem"], 3, 2, act="silu"), *blocks, ConvSpec(c, spec["head"], 1, act="silu")]
    return ResolvedNetwork(name, resolution, tuple(blocks), ClassifierSpec(spec["head"], check_classes(classes),
                                                                           dropout=dropout))


def _register(variant: str):
    width, depth, resolution, dropout = COMPOUND[variant]

    @register_model(f"efficientnet_{variant}", resolution=resolution, family="EfficientNet",
                    summary=f"EfficientNet-{variant.upper()} (Tan & Le 2019): width {width}, depth {depth}, "
                            f"{resolution} px", reference="torchvision efficientnet_" + variant)
    def efficientnet(resolution=resolution, classes=1000):
        return resolve_efficientnet(width, depth, resolution, classes, dropout, name=f"efficientnet_{variant}")

    return efficientnet


for _variant in COMPOUND:
    _register(_variant)


@register_model("efficientnet_v2_s", resolution=384, family="EfficientNet",
                summary="EfficientNetV2-S (Tan & Le 2021, Table 4): Fused-MBConv, then MBConv",
                reference="torchvision efficientnet_v2_s; google/automl efficientnetv2")
def efficientnet_v2_s(resolution=384, classes=1000):
    return resolve_efficientnet_v2(EFFICIENTNET_V2_S, resolution, classes)

"""MobileOne S0-S4 (Vasu et al. 2023, "MobileOne: An Improved One millisecond Mobile Backbone",
arXiv:2206.04040), one spec read like the paper's Table 14 (the architecture) with Table 15's width
multipliers, in both forms.

Every layer is a MobileOne block (``blocks.RepConvSpec``): a 3x3 depthwise block followed by a 1x1
pointwise block, each at train time the sum of ``k`` over-parameterized convolution + BatchNorm
branches, a 1x1 "scale" branch (the 3x3 blocks only) and a BatchNorm identity branch (stride 1, equal
channels), then ReLU. ``form="deploy"`` is the network after reparameterization
(``sepconv.reparam.reparameterize``): one convolution with a bias per block, the network the paper's
Params and FLOPs columns count. Widths: stage ``i`` has ``int(c_i * alpha_i)`` channels, the stem
``min(64, int(64 alpha_1))``. MobileOne-S0 trains with ``k = 4`` branches, S1-S4 with ``k = 1``;
S4 adds squeeze-and-excitation (``channels / 16``, ReLU, sigmoid) to the last 5 blocks of the 256-channel
stage and the last block (apple/ml-mobileone, timm ``byobnet.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..blocks import FORMS, ClassifierSpec, RepConvSpec, SqueezeExciteSpec
from .common import check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import Option, register_model

__all__ = ["Stage", "MOBILEONE", "MOBILEONE_VARIANTS", "FORM", "mobileone_width", "resolve_mobileone"]


@dataclass(frozen=True)
class Stage:
    """A row of Table 14: ``n`` (depthwise 3x3, pointwise 1x1) block pairs to ``c`` channels before the
    width multiplier ``alpha[width]``, the first with stride ``s``; ``se``: squeeze-excite in S4."""
    c: int
    n: int
    s: int
    width: int
    se: bool = False


#: Table 14, stages 2-6 (stage 1 is the stem, a 3x3 stride-2 MobileOne block; 7-8 pooling and the classifier).
MOBILEONE = (
    Stage(64, 2, 2, 0),
    Stage(128, 8, 2, 1),
    Stage(256, 5, 2, 2),
    Stage(256, 5, 1, 2, se=True),
    Stage(512, 1, 2, 3, se=True),
)

#: Table 15: width multipliers (alpha_1..alpha_4), over-parameterization factor k, squeeze-excite.
MOBILEONE_VARIANTS = {
    "s0": ((0.75, 1.0, 1.0, 2.0), 4, False),
    "s1": ((1.5, 1.5, 2.0, 2.5), 1, False),
    "s2": ((1.5, 2.0, 2.5, 4.0), 1, False),
    "s3": ((2.0, 2.5, 3.0, 4.0), 1, False),
    "s4": ((3.0, 3.5, 3.5, 4.0), 1, True),
}

FORM = Option("form", str, "train", "train: the multi-branch network that is trained; deploy: the same function "
              "reparameterized into one convolution per block", choices=FORMS)


def mobileone_width(channels: int, alpha: float) -> int:
    """MobileOne's width rule (apple/ml-mobileone ``MobileOne.__init__``): ``int(channels * alpha)``."""
    return int(channels * alpha)


def resolve_mobileone(variant: str = "s0", form: str = "train", resolution: int = 224,
                      classes: int = 1000) -> ResolvedNetwork:
    """Typed blocks of MobileOne-``variant`` in ``form``: the stem, then per ``Stage`` row ``n`` pairs of a
    3x3 depthwise and a 1x1 pointwise ``RepConvSpec``, global pooling and a linear classifier."""
    check_resolution(resolution)
    if variant not in MOBILEONE_VARIANTS:
        raise ValueError(f"unknown MobileOne variant {variant!r}; known: {', '.join(MOBILEONE_VARIANTS)}")
    alphas, k, use_se = MOBILEONE_VARIANTS[variant]
    stem = min(64, mobileone_width(64, alphas[0]))
    blocks = [RepConvSpec(3, stem, 3, 2, form=form)]
    channels = stem
    for row in MOBILEONE:
        out = mobileone_width(row.c, alphas[row.width])
        for i in range(row.n):
            se_dw = SqueezeExciteSpec(channels, channels // 16, "relu", "sigmoid") if use_se and row.se else None
            se_pw = SqueezeExciteSpec(out, out // 16, "relu", "sigmoid") if use_se and row.se else None
            blocks.append(RepConvSpec(channels, channels, 3, row.s if i == 0 else 1, groups=channels, branches=k,
                                      se=se_dw, form=form))
            blocks.append(RepConvSpec(channels, out, 1, 1, branches=k, se=se_pw, form=form))
            channels = out
    return ResolvedNetwork(f"mobileone_{variant}", resolution, tuple(blocks),
                           ClassifierSpec(channels, check_classes(classes)))


def _register(variant: str) -> None:
    @register_model(f"mobileone_{variant}", FORM, summary=f"MobileOne-{variant.upper()} (Vasu et al. 2023, Table 14)",
                    family="MobileOne", reference="apple/ml-mobileone; timm byobnet.py mobileone_*")
    def mobileone(form="train", resolution=224, classes=1000):
        return resolve_mobileone(variant, form, resolution, classes)


for _variant in MOBILEONE_VARIANTS:
    _register(_variant)

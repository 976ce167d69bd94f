"""RepViT M0.9, M1.0 and M1.1 (Wang et al. 2024, "RepViT: Revisiting Mobile CNN From ViT Perspective",
arXiv:2307.09283), the spec of the paper's sec. 3 and Fig. 2 with the widths and depths of its
released models (THU-MIG/RepViT, timm ``repvit.py``), in both forms.

A stem of two 3x3 stride-2 convolutions (GELU between), then four stages. Each block is a token mixer
(a RepVGG-style 3x3 depthwise layer: ``BN(BN(dw3x3(x)) + dw1x1(x) + x)``), squeeze-and-excitation in
every other block (the first of each stage, then alternating; a quarter of the channels, rounded to a
multiple of 8), and a channel mixer (1x1 to twice the channels, GELU, 1x1 back, plus the input). Stages
2-4 start with a downsampling layer (a block without SE, a 3x3 stride-2 depthwise convolution, a 1x1
convolution to the new width and a channel mixer). The head pools, then BatchNorm -> Linear, twice (a
classifier and a distillation head, averaged at inference). ``form="deploy"``: every BatchNorm folded,
every token mixer one 3x3 depthwise convolution, the two heads one Linear layer (timm's ``fuse``).
"""

from __future__ import annotations

from ..blocks import (NormLinearClassifierSpec, RepViTBlockSpec, RepViTDownsampleSpec, SqueezeExciteSpec,
                      conv_norm)
from .common import check_classes, check_resolution
from .mobileone import FORM
from .network import ResolvedNetwork
from .catalog import register_model

__all__ = ["REPVIT_VARIANTS", "repvit_se_channels", "resolve_repvit"]

#: (channels per stage, blocks per stage) of the released models (timm ``repvit_m0_9``, ``_m1_0``, ``_m1_1``).
REPVIT_VARIANTS = {
    "m0_9": ((48, 96, 192, 384), (2, 2, 14, 2)),
    "m1_0": ((56, 112, 224, 448), (2, 2, 14, 2)),
    "m1_1": ((64, 128, 256, 512), (2, 2, 12, 2)),
}


def repvit_se_channels(channels: int, ratio: float = 0.25, divisor: int = 8) -> int:
    """Squeeze-excite width (timm ``SEModule`` via ``make_divisible(c * ratio, 8, round_limit=0)``): the
    nearest multiple of ``divisor`` (halves up), at least ``divisor``, with no 10% correction."""
    return max(divisor, int(channels * ratio + divisor / 2) // divisor * divisor)


def resolve_repvit(variant: str = "m0_9", form: str = "train", resolution: int = 224, classes: int = 1000,
                   mlp_ratio: int = 2, kernel: int = 3) -> ResolvedNetwork:
    check_resolution(resolution)
    if variant not in REPVIT_VARIANTS:
        raise ValueError(f"unknown RepViT variant {variant!r}; known: {', '.join(REPVIT_VARIANTS)}")
    widths, depths = REPVIT_VARIANTS[variant]
    c = widths[0]
    blocks = [conv_norm(3, c // 2, 3, 2, act="gelu", form=form), conv_norm(c // 2, c, 3, 2, form=form)]
    for i, (width, depth) in enumerate(zip(widths, depths)):
        if i > 0:
            blocks.append(RepViTDownsampleSpec(c, width, mlp_ratio, kernel, form))
            c = width
        for j in range(depth):
            se = SqueezeExciteSpec(c, repvit_se_channels(c), "relu", "sigmoid") if j % 2 == 0 else None
            blocks.append(RepViTBlockSpec(c, mlp_ratio, kernel, se, form))
    head = NormLinearClassifierSpec(c, check_classes(classes), distillation=True, form=form)
    return ResolvedNetwork(f"repvit_{variant}", resolution, tuple(blocks), head)


def _register(variant: str) -> None:
    label = variant[1:].replace("_", ".")
    @register_model(f"repvit_{variant}", FORM, summary=f"RepViT-M{label} (Wang et al. 2024)", family="RepViT",
                    reference="THU-MIG/RepViT; timm repvit.py")
    def repvit(form="train", resolution=224, classes=1000):
        return resolve_repvit(variant, form, resolution, classes)


for _variant in REPVIT_VARIANTS:
    _register(_variant)

"""MobileNet v3 Large and Small (Howard et al. 2019), specs read like the paper's Tables 1 and 2.

Each row: kernel, expansion size, output channels, squeeze-excite, activation (``RE`` ReLU,
``HS`` h-swish), stride. Both references share the structure: squeeze-excite reduces to
``make_divisible(expanded / 4, 8)`` channels with biased 1x1 convolutions and a hard sigmoid; the
last 1x1 convolution has six times the last block's channels; the head is FC -> activation -> FC.

They differ in how the width multiplier ``alpha`` scales the network
(``make_divisible(c * alpha, 8)`` for the blocks' output channels in both):

* ``convention="torchvision"`` (``torchvision/models/mobilenetv3.py``): the stem has
  ``make_divisible(16 * alpha)`` channels, the expansion is ``make_divisible(expanded * alpha)``
  and the head FC has ``make_divisible(head * alpha)`` units.
* ``convention="keras"`` (``keras.applications.MobileNetV3*``, whose channel rounding is copied
  from TF-slim and whose pretrained weights are named after TF-slim's checkpoints): the stem keeps
  16 channels, the expansion is the table's ratio applied to the *scaled* input,
  ``make_divisible(c_in(alpha) * expanded / c_in)``, and the head keeps its 1280 (Large) or 1024
  (Small) units when ``alpha <= 1``.

At ``alpha = 1`` the two are the same network. ``minimalistic(spec)`` is the variant of TF-slim and
Keras without squeeze-excite, h-swish and 5x5 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from ..blocks import ClassifierSpec, ConvSpec, MBConvSpec, SqueezeExciteSpec
from .common import ALPHA, check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import Option, register_model
from .rounding import make_divisible

__all__ = ["Bneck", "CONVENTIONS", "MOBILENET_V3_LARGE", "MOBILENET_V3_SMALL", "minimalistic", "v3_widths",
           "resolve_mobilenet_v3"]


@dataclass(frozen=True)
class Bneck:
    kernel: int
    expanded: int
    out: int
    se: bool
    activation: str
    stride: int


#: Paper Table 1 (input channels follow from the previous row; the stem has 16). ``activation`` is that
#: of the stem, the last convolution and the head.
MOBILENET_V3_LARGE = dict(stem=16, head=1280, activation="HS", blocks=(
    Bneck(3, 16, 16, False, "RE", 1),
    Bneck(3, 64, 24, False, "RE", 2),
    Bneck(3, 72, 24, False, "RE", 1),
    Bneck(5, 72, 40, True, "RE", 2),
    Bneck(5, 120, 40, True, "RE", 1),
    Bneck(5, 120, 40, True, "RE", 1),
    Bneck(3, 240, 80, False, "HS", 2),
    Bneck(3, 200, 80, False, "HS", 1),
    Bneck(3, 184, 80, False, "HS", 1),
    Bneck(3, 184, 80, False, "HS", 1),
    Bneck(3, 480, 112, True, "HS", 1),
    Bneck(3, 672, 112, True, "HS", 1),
    Bneck(5, 672, 160, True, "HS", 2),
    Bneck(5, 960, 160, True, "HS", 1),
    Bneck(5, 960, 160, True, "HS", 1),
))

#: Paper Table 2.
MOBILENET_V3_SMALL = dict(stem=16, head=1024, activation="HS", blocks=(
    Bneck(3, 16, 16, True, "RE", 2),
    Bneck(3, 72, 24, False, "RE", 2),
    Bneck(3, 88, 24, False, "RE", 1),
    Bneck(5, 96, 40, True, "HS", 2),
    Bneck(5, 240, 40, True, "HS", 1),
    Bneck(5, 240, 40, True, "HS", 1),
    Bneck(5, 120, 48, True, "HS", 1),
    Bneck(5, 144, 48, True, "HS", 1),
    Bneck(5, 288, 96, True, "HS", 2),
    Bneck(5, 576, 96, True, "HS", 1),
    Bneck(5, 576, 96, True, "HS", 1),
))

#: The tables' NL column, as activation names of ``sepconv.blocks``.
NONLINEARITIES = {"RE": "relu", "HS": "hard_swish"}
CONVENTIONS = ("torchvision", "keras")


def minimalistic(spec: dict) -> dict:
    """TF-slim's and Keras's "minimalistic" variant: every kernel 3x3, ReLU everywhere, no squeeze-excite."""
    blocks = tuple(replace(b, kernel=3, se=False, activation="RE") for b in spec["blocks"])
    return dict(spec, activation="RE", blocks=blocks)


def v3_widths(spec: dict, alpha: float = 1.0, convention: str = "torchvision") -> tuple[list, int, int]:
    """``([(c_in, expanded, c_out) per block], last conv channels, head units)`` under a reference's rule."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {list(CONVENTIONS)}, got {convention!r}")

    def scaled(c):
        return make_divisible(c * alpha)

    stem = spec["stem"] if convention == "keras" else scaled(spec["stem"])
    widths, c_in, table_in = [], stem, spec["stem"]
    for b in spec["blocks"]:
        if convention == "torchvision":
            expanded = scaled(b.expanded)
        else:
            expanded = make_divisible(float(c_in * Fraction(b.expanded, table_in)))
        widths.append((c_in, expanded, scaled(b.out)))
        c_in, table_in = scaled(b.out), b.out
    keep_head = convention == "keras" and alpha <= 1
    return widths, 6 * c_in, spec["head"] if keep_head else scaled(spec["head"])


def resolve_mobilenet_v3(spec: dict = MOBILENET_V3_LARGE, alpha: float = 1.0, resolution: int = 224,
                         classes: int = 1000, convention: str = "torchvision",
                         name: str = "mobilenet_v3") -> ResolvedNetwork:
    """Stem, one ``MBConvSpec`` per row (squeeze-excite through ``make_divisible(expanded // 4)``),
    the last 1x1 convolution and the two-layer head, under ``convention``'s width rule."""
    check_resolution(resolution)
    widths, last, head = v3_widths(spec, alpha, convention)
    act = NONLINEARITIES[spec["activation"]]
    blocks = [ConvSpec(3, widths[0][0], 3, 2, act=act)]
    for b, (c_in, expanded, c_out) in zip(spec["blocks"], widths):
        se = SqueezeExciteSpec(expanded, make_divisible(expanded // 4)) if b.se else None
        blocks.append(MBConvSpec(c_in, expanded, c_out, b.kernel, b.stride, NONLINEARITIES[b.activation], se))
    blocks.append(ConvSpec(widths[-1][2], last, 1, act=act))
    return ResolvedNetwork(name, resolution, tuple(blocks),
                           ClassifierSpec(last, check_classes(classes), hidden=head, hidden_act=act))


def _register(size: str, spec: dict):
    @register_model(f"mobilenet_v3_{size}", ALPHA,
                    Option("convention", str, "torchvision", "whose width rule: torchvision's or keras.applications'",
                           choices=CONVENTIONS),
                    Option("minimal", bool, False, "the minimalistic variant (TF-slim, Keras): 3x3 kernels, ReLU, "
                           "no squeeze-excite"),
                    summary=f"MobileNet v3 {size.capitalize()} (Howard et al. 2019, Table {1 if size == 'large' else 2})",
                    family="MobileNet",
                    reference="torchvision mobilenet_v3_*; keras.applications.MobileNetV3*")
    def mobilenet_v3(alpha=1.0, convention="torchvision", minimal=False, resolution=224, classes=1000):
        return resolve_mobilenet_v3(minimalistic(spec) if minimal else spec, alpha, resolution, classes, convention,
                                    name=f"mobilenet_v3_{size}")

    return mobilenet_v3


mobilenet_v3_large = _register("large", MOBILENET_V3_LARGE)
mobilenet_v3_small = _register("small", MOBILENET_V3_SMALL)

"""MobileNet v3 Large and Small (Howard et al. 2019), specs read like the paper's Tables 1 and 2.

Each row: kernel, expansion size, output channels, squeeze-excite, activation
(``RE`` ReLU, ``HS`` h-swish), stride. Both references share the structure:
squeeze-excite reduces to ``make_divisible(expanded / 4, 8)`` channels with
biased 1x1 convolutions and a hard sigmoid; the last 1x1 convolution has six
times the last block's channels; the head is FC -> activation -> FC.

They differ in how the width multiplier ``alpha`` scales the network
(``make_divisible(c * alpha, 8)`` for the blocks' output channels in both):

* ``convention="torchvision"`` (``torchvision/models/mobilenetv3.py``): the
  stem has ``make_divisible(16 * alpha)`` channels, the expansion is
  ``make_divisible(expanded * alpha)`` and the head FC has
  ``make_divisible(head * alpha)`` units.
* ``convention="keras"`` (``keras.applications.MobileNetV3*``, whose channel
  rounding is copied from TF-slim and whose pretrained weights are named after
  TF-slim's checkpoints): the stem keeps 16 channels, the expansion is the table's ratio
  applied to the *scaled* input, ``make_divisible(c_in(alpha) * expanded / c_in)``,
  and the head keeps its 1280 (Large) or 1024 (Small) units when ``alpha <= 1``.

At ``alpha = 1`` the two are the same network. ``minimalistic(spec)`` is the
variant of TF-slim and Keras without squeeze-excite, h-swish and 5x5 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import jax
from flax import nnx

from ..layers import ConvBN
from .common import check_classes, global_avg_pool
from .rounding import make_divisible

__all__ = ["Bneck", "CONVENTIONS", "MOBILENET_V3_LARGE", "MOBILENET_V3_SMALL", "MobileNetV3", "SqueezeExcite",
           "minimalistic", "v3_widths"]


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

ACTIVATIONS = {"RE": jax.nn.relu, "HS": jax.nn.hard_swish}
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


class SqueezeExcite(nnx.Module):
    """``x * hard_sigmoid(W2 relu(W1 mean(x) + b1) + b2)`` (Hu et al.; MobileNetV3 sec. 5.3)."""

    def __init__(self, channels: int, squeeze: int, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Conv(channels, squeeze, (1, 1), rngs=rngs)
        self.fc2 = nnx.Conv(squeeze, channels, (1, 1), rngs=rngs)

    def __call__(self, x):
        s = x.mean(axis=(1, 2), keepdims=True)
        s = jax.nn.hard_sigmoid(self.fc2(jax.nn.relu(self.fc1(s))))
        return x * s


class V3Block(nnx.Module):
    def __init__(self, c_in: int, expanded: int, c_out: int, kernel: int, stride: int, se: bool,
                 activation: str, *, rngs: nnx.Rngs):
        act = ACTIVATIONS[activation]
        self.conv_pw = ConvBN(c_in, expanded, 1, activation=act, rngs=rngs) if expanded != c_in else None
        self.conv_dw = ConvBN(expanded, expanded, kernel, stride, groups=expanded, activation=act, rngs=rngs)
        self.se = SqueezeExcite(expanded, make_divisible(expanded // 4), rngs=rngs) if se else None
        self.conv_pwl = ConvBN(expanded, c_out, 1, activation=None, rngs=rngs)
        self.has_skip = stride == 1 and c_in == c_out

    def __call__(self, x):
        y = self.conv_pw(x) if self.conv_pw is not None else x
        y = self.conv_dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.conv_pwl(y)
        return x + y if self.has_skip else y


class MobileNetV3(nnx.Module):
    """MobileNet v3 from a spec (``MOBILENET_V3_LARGE``, ``MOBILENET_V3_SMALL``, or ``minimalistic`` of one)."""

    def __init__(self, spec: dict = MOBILENET_V3_LARGE, alpha: float = 1.0, classes: int = 1000, *,
                 convention: str = "torchvision", rngs: nnx.Rngs):
        widths, last, head = v3_widths(spec, alpha, convention)
        self.activation = ACTIVATIONS[spec["activation"]]
        self.stem = ConvBN(3, widths[0][0], 3, 2, activation=self.activation, rngs=rngs)
        self.blocks = nnx.List([V3Block(c_in, expanded, c_out, b.kernel, b.stride, b.se, b.activation, rngs=rngs)
                                for b, (c_in, expanded, c_out) in zip(spec["blocks"], widths)])
        self.last_conv = ConvBN(widths[-1][2], last, 1, activation=self.activation, rngs=rngs)
        self.fc1 = nnx.Linear(last, head, rngs=rngs)
        self.fc2 = nnx.Linear(head, check_classes(classes), rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = global_avg_pool(self.last_conv(x))
        return self.fc2(self.activation(self.fc1(x)))

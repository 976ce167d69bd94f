"""MobileNet v3 Large and Small (Howard et al. 2019), specs read like the paper's Tables 1 and 2.

Each row: kernel, expansion size, output channels, squeeze-excite, activation
(``RE`` ReLU, ``HS`` h-swish), stride. Width multiplier ``alpha`` scales the
input, expansion and output channels with ``make_divisible(c * alpha, 8)``.
The structure follows the torchvision reference (``torchvision/models/mobilenetv3.py``):
squeeze-excite reduces to ``make_divisible(expanded / 4, 8)`` channels with
biased 1x1 convolutions and a hard sigmoid; the last 1x1 convolution has six
times the last block's channels; the head is FC -> h-swish -> FC.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from flax import nnx

from ..layers import ConvBN
from .common import check_classes, global_avg_pool
from .rounding import make_divisible

__all__ = ["Bneck", "MOBILENET_V3_LARGE", "MOBILENET_V3_SMALL", "MobileNetV3", "SqueezeExcite"]


@dataclass(frozen=True)
class Bneck:
    kernel: int
    expanded: int
    out: int
    se: bool
    activation: str
    stride: int


#: Paper Table 1 (input channels follow from the previous row; the stem has 16).
MOBILENET_V3_LARGE = dict(stem=16, head=1280, blocks=(
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
MOBILENET_V3_SMALL = dict(stem=16, head=1024, blocks=(
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
    """MobileNet v3 from a spec (``MOBILENET_V3_LARGE`` or ``MOBILENET_V3_SMALL``)."""

    def __init__(self, spec: dict = MOBILENET_V3_LARGE, alpha: float = 1.0, classes: int = 1000, *,
                 rngs: nnx.Rngs):
        def scaled(c):
            return make_divisible(c * alpha)

        channels = scaled(spec["stem"])
        self.stem = ConvBN(3, channels, 3, 2, activation=jax.nn.hard_swish, rngs=rngs)
        blocks = []
        for b in spec["blocks"]:
            blocks.append(V3Block(channels, scaled(b.expanded), scaled(b.out), b.kernel, b.stride, b.se,
                                  b.activation, rngs=rngs))
            channels = scaled(b.out)
        self.blocks = nnx.List(blocks)
        self.last_conv = ConvBN(channels, 6 * channels, 1, activation=jax.nn.hard_swish, rngs=rngs)
        self.fc1 = nnx.Linear(6 * channels, scaled(spec["head"]), rngs=rngs)
        self.fc2 = nnx.Linear(scaled(spec["head"]), check_classes(classes), rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = global_avg_pool(self.last_conv(x))
        return self.fc2(jax.nn.hard_swish(self.fc1(x)))

"""MobileNet v2 (Sandler et al. 2018), one spec read like the paper's Table 2.

Rows are ``(t, c, n, s)``: expansion factor, output channels, repeats, stride
of the first repeat. The spec drives the closed-form cost
(``mobilenet_v2_layers``) and the Flax NNX model (``MobileNetV2``).

Width rules of the reference implementations (TF-slim ``mobilenet_v2.py``,
torchvision): every channel count is ``make_divisible(c * alpha, 8)``, the
first convolution included; the expansion is ``make_divisible(c_in * t, 8)``;
the last 1x1 convolution keeps 1280 channels for ``alpha <= 1`` and is scaled
above (``make_divisible(1280 * alpha, 8)``), since a thin head hurts accuracy
more than it saves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from flax import nnx

from ..cost import LayerCost, depthwise_conv_cost, pointwise_conv_cost, standard_conv_cost
from ..layers import ConvBN, relu6
from .common import Conv, FeatureStack, check_classes, check_resolution, classifier_cost
from .rounding import make_divisible

__all__ = ["Conv", "Bottleneck", "MOBILENET_V2", "mobilenet_v2_layers", "bottleneck_macs",
           "InvertedResidual", "MobileNetV2", "head_channels"]


@dataclass(frozen=True)
class Bottleneck:
    """``n`` inverted residual blocks: expand by ``t``, 3x3 depthwise, project to ``c``; the first has stride ``s``."""
    t: int
    c: int
    n: int
    s: int


#: Table 2 of the paper.
MOBILENET_V2 = (
    Conv(3, 2, 32),
    Bottleneck(t=1, c=16, n=1, s=1),
    Bottleneck(t=6, c=24, n=2, s=2),
    Bottleneck(t=6, c=32, n=3, s=2),
    Bottleneck(t=6, c=64, n=4, s=2),
    Bottleneck(t=6, c=96, n=3, s=1),
    Bottleneck(t=6, c=160, n=3, s=2),
    Bottleneck(t=6, c=320, n=1, s=1),
    Conv(1, 1, 1280),
)


def head_channels(depth: int, alpha: float) -> int:
    """The last convolution: ``depth`` kept for ``alpha <= 1``, ``make_divisible(depth * alpha)`` above."""
    return make_divisible(depth * max(1.0, alpha))


def _blocks(spec, alpha):
    """Yield ``(kind, in, out, expanded, stride)`` for every layer group of ``spec``."""
    channels = 3
    for i, op in enumerate(spec):
        if isinstance(op, Conv):
            last = i == len(spec) - 1
            depth = head_channels(op.depth, alpha) if last else make_divisible(op.depth * alpha)
            yield "conv", channels, depth, None, op
            channels = depth
        else:
            out = make_divisible(op.c * alpha)
            for r in range(op.n):
                yield "bottleneck", channels, out, make_divisible(channels * op.t), (op.t, op.s if r == 0 else 1)
                channels = out


def bottleneck_macs(h: int, w: int, d_in: int, t: int, d_out: int, k: int = 3, stride: int = 1) -> int:
    """Paper sec. 3.3: ``h * w * d' * t * (d' + k^2 + d'')`` for stride 1.

    With stride ``s`` the depthwise and projection layers run on the
    ``ceil(h/s) x ceil(w/s)`` map: ``h w d' t d' + (h'w') d' t (k^2 + d'')``.
    For ``t = 1`` there is no expansion layer.
    """
    h2, w2 = -(-h // stride), -(-w // stride)
    inner = d_in * t
    expand = h * w * d_in * inner if t != 1 else 0
    return expand + h2 * w2 * inner * (k * k + d_out)


def mobilenet_v2_layers(alpha: float = 1.0, resolution: int = 224, classes: int | None = 1000,
                        spec: Sequence = MOBILENET_V2) -> list[LayerCost]:
    """Closed-form cost of every layer, in order, ending with the FC layer (omitted if ``classes`` is None)."""
    size = check_resolution(resolution)
    layers = []
    for b, (kind, c_in, c_out, expanded, op) in enumerate(_blocks(spec, alpha)):
        if kind == "conv":
            layers.append(replace(standard_conv_cost(size, size, c_in, c_out, op.kernel, op.stride),
                                  name=f"conv{b}"))
        else:
            t, stride = op
            if t != 1:
                layers.append(replace(pointwise_conv_cost(size, size, c_in, expanded), name=f"block{b}_expand"))
            dw = depthwise_conv_cost(size, size, expanded, 3, stride)
            layers.append(replace(dw, name=f"block{b}_dw"))
            layers.append(replace(pointwise_conv_cost(*dw.output_shape[:2], expanded, c_out),
                                  name=f"block{b}_project"))
        size = layers[-1].output_shape[0]
    if classes is not None:
        layers.append(replace(classifier_cost(layers[-1].output_shape[-1], check_classes(classes)), name="fc"))
    return layers


class InvertedResidual(nnx.Module):
    """Paper Table 1: 1x1 expand -> ReLU6, 3x3 depthwise (stride s) -> ReLU6, 1x1 linear projection.

    The residual connection exists only when ``stride == 1`` and the input and
    output channels match (``has_skip`` is computed, not passed).
    """

    def __init__(self, in_channels: int, out_channels: int, expanded: int, stride: int, *,
                 rngs: nnx.Rngs, activation=relu6, kernel: int = 3):
        self.conv_pw = (ConvBN(in_channels, expanded, 1, activation=activation, rngs=rngs)
                        if expanded != in_channels else None)
        self.conv_dw = ConvBN(expanded, expanded, kernel, stride, groups=expanded, activation=activation, rngs=rngs)
        self.conv_pwl = ConvBN(expanded, out_channels, 1, activation=None, rngs=rngs)
        self.has_skip = stride == 1 and in_channels == out_channels

    def __call__(self, x):
        y = self.conv_pw(x) if self.conv_pw is not None else x
        y = self.conv_pwl(self.conv_dw(y))
        return x + y if self.has_skip else y


class MobileNetV2(FeatureStack):
    """MobileNet v2 in Flax NNX, built from ``spec``; input ``(B, H, W, 3)``, output logits."""

    def __init__(self, alpha: float = 1.0, classes: int = 1000, spec: Sequence = MOBILENET_V2, *,
                 rngs: nnx.Rngs):
        blocks, channels = [], 3
        for kind, c_in, c_out, expanded, op in _blocks(spec, alpha):
            if kind == "conv":
                blocks.append(ConvBN(c_in, c_out, op.kernel, op.stride, activation=relu6, rngs=rngs))
            else:
                blocks.append(InvertedResidual(c_in, c_out, expanded, op[1], rngs=rngs))
            channels = c_out
        self._set_blocks(blocks, channels, classes, rngs)

"""MobileNet v2 (Sandler et al. 2018), one spec read like the paper's Table 2.

Rows are ``(t, c, n, s)``: expansion factor, output channels, repeats, stride of the first repeat.
``resolve_mobilenet_v2`` turns them into ``MBConvSpec`` blocks.

Width rules of the reference implementations (TF-slim ``mobilenet_v2.py``, torchvision): every
channel count is ``make_divisible(c * alpha, 8)``, the first convolution included; the expansion
is ``make_divisible(c_in * t, 8)`` (so ``t = 1`` has no expansion layer); the last 1x1 convolution
keeps 1280 channels for ``alpha <= 1`` and is scaled above (``make_divisible(1280 * alpha, 8)``),
since a thin head hurts accuracy more than it saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..blocks import ClassifierSpec, ConvSpec, MBConvSpec
from .common import ALPHA, Conv, check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import register_model
from .rounding import make_divisible

__all__ = ["Conv", "Bottleneck", "MOBILENET_V2", "resolve_mobilenet_v2", "bottleneck_macs", "head_channels"]


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


def resolve_mobilenet_v2(spec: Sequence = MOBILENET_V2, alpha: float = 1.0, resolution: int = 224,
                         classes: int = 1000, name: str = "mobilenet_v2") -> ResolvedNetwork:
    """Typed blocks of a MobileNet v2 ``spec``: ``Conv`` rows become ``ConvSpec`` (ReLU6), each repeat of a
    ``Bottleneck`` row an ``MBConvSpec``; the last ``Conv`` row follows ``head_channels``."""
    check_resolution(resolution)
    blocks, channels = [], 3
    for i, op in enumerate(spec):
        if isinstance(op, Conv):
            last = i == len(spec) - 1
            depth = head_channels(op.depth, alpha) if last else make_divisible(op.depth * alpha)
            blocks.append(ConvSpec(channels, depth, op.kernel, op.stride, act="relu6"))
            channels = depth
        elif isinstance(op, Bottleneck):
            out = make_divisible(op.c * alpha)
            for r in range(op.n):
                blocks.append(MBConvSpec(channels, make_divisible(channels * op.t), out, 3, op.s if r == 0 else 1,
                                         act="relu6"))
                channels = out
        else:
            raise TypeError(f"a MobileNet v2 spec row is Conv or Bottleneck, got {op!r}")
    return ResolvedNetwork(name, resolution, tuple(blocks), ClassifierSpec(channels, check_classes(classes)))


@register_model("mobilenet_v2", ALPHA, summary="MobileNet v2 (Sandler et al. 2018, Table 2)", family="MobileNet",
                reference="TF-slim mobilenet_v2.py; torchvision mobilenet_v2; keras.applications.MobileNetV2")
def mobilenet_v2(alpha=1.0, resolution=224, classes=1000):
    return resolve_mobilenet_v2(MOBILENET_V2, alpha, resolution, classes)

"""MnasNet (Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search for Mobile"), as
torchvision builds it (``torchvision/models/mnasnet.py``: ``mnasnet0_5``, ``0_75``, ``1_0``, ``1_3``).

The network MnasNet's search found is a MobileNetV2-like stack whose kernel sizes (3 or 5), expansion
ratios (3 or 6) and repeats differ per stage: the search, not a hand rule, chose them, under a latency
target measured on a phone (``sepconv`` chapter 10). torchvision implements the search's "B1"
network: no squeeze-and-excitation (the paper's headline MnasNet-A1, Fig. 7, has it in some stages).

Rows are ``(t, c, n, s, k)``. Width rule (torchvision, its version 2): every width of ``DEPTHS`` is
``make_divisible(c * alpha, 8)`` (torchvision's ``_round_to_multiple_of`` with bias 0.9 is the same
rule), the stem's too; the expansion is ``c_in * t``, *not* rounded; the last 1x1 convolution keeps
1280 channels. After the 3x3 stem comes a depthwise separable convolution (3x3 depthwise, BN, ReLU;
1x1 to 16 channels, BN, no activation), then the stacks; the first block of each stack has its stride
and no skip; every activation is ReLU; dropout 0.2 before the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..blocks import ClassifierSpec, ConvSpec, MBConvSpec
from .common import Conv, check_classes, check_resolution
from .network import ResolvedNetwork
from .catalog import Option, register_model
from .rounding import make_divisible

__all__ = ["Stack", "MNASNET_B1", "WIDTHS", "resolve_mnasnet"]


@dataclass(frozen=True)
class Stack:
    """``n`` inverted residuals with ``k x k`` depthwise kernels, expanding by ``t``, to ``c`` channels;
    the first with stride ``s``."""
    t: int
    c: int
    n: int
    s: int
    k: int


@dataclass(frozen=True)
class SepConv:
    """A 3x3 depthwise separable convolution to ``c`` channels, linear after the pointwise layer."""
    c: int


#: torchvision's MNASNet (the search's B1 network).
MNASNET_B1 = (
    Conv(3, 2, 32),
    SepConv(16),
    Stack(t=3, c=24, n=3, s=2, k=3),
    Stack(t=3, c=40, n=3, s=2, k=5),
    Stack(t=6, c=80, n=3, s=2, k=5),
    Stack(t=6, c=96, n=2, s=1, k=3),
    Stack(t=6, c=192, n=4, s=2, k=5),
    Stack(t=6, c=320, n=1, s=1, k=3),
    Conv(1, 1, 1280),
)

#: The width multipliers torchvision ships (``mnasnet0_5`` ... ``mnasnet1_3``).
WIDTHS = (0.5, 0.75, 1.0, 1.3)


def resolve_mnasnet(spec=MNASNET_B1, alpha: float = 1.0, resolution: int = 224, classes: int = 1000,
                    dropout: float = 0.2, name: str = "mnasnet") -> ResolvedNetwork:
    check_resolution(resolution)
    blocks, c = [], 3
    for i, row in enumerate(spec):
        if isinstance(row, Conv):
            last = i == len(spec) - 1
            depth = row.depth if last else make_divisible(row.depth * alpha)
            blocks.append(ConvSpec(c, depth, row.kernel, row.stride, act="relu"))
            c = depth
        elif isinstance(row, SepConv):
            out = make_divisible(row.c * alpha)
            if out == c:
                raise ValueError(f"width multiplier {alpha} makes the separable convolution {c} -> {out} channels, "
                                 "which would add a skip torchvision's network does not have")
            blocks.append(MBConvSpec(c, c, out, 3, 1, act="relu"))  # no expansion: depthwise -> linear 1x1
            c = out
        elif isinstance(row, Stack):
            out = make_divisible(row.c * alpha)
            for r in range(row.n):
                blocks.append(MBConvSpec(c, c * row.t, out, row.k, row.s if r == 0 else 1, act="relu"))
                c = out
        else:
            raise TypeError(f"a MnasNet spec row is Conv, SepConv or Stack, got {row!r}")
    return ResolvedNetwork(name, resolution, tuple(blocks), ClassifierSpec(c, check_classes(classes), dropout=dropout))


@register_model("mnasnet", Option("alpha", float, 1.0, "width multiplier (torchvision ships 0.5, 0.75, 1.0, 1.3)",
                                  choices=WIDTHS),
                summary="MnasNet-B1 (Tan et al. 2019), as torchvision builds it", family="MnasNet",
                reference="torchvision mnasnet0_5, mnasnet0_75, mnasnet1_0, mnasnet1_3")
def mnasnet(alpha=1.0, resolution=224, classes=1000):
    return resolve_mnasnet(MNASNET_B1, alpha, resolution, classes)

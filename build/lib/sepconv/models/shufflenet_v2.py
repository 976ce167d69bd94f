"""ShuffleNet v2 (Ma et al. 2018), the spec of the paper's Table 5.

Stages 2-4 repeat ``(4, 8, 4)`` units; output channels per width come from
the same table. A unit with stride 1 splits the channels in two, transforms
one half (1x1 -> 3x3 depthwise -> 1x1) and concatenates; a unit with stride 2
transforms both copies of the input. Both end with a channel shuffle of two
groups. Convolutions carry no bias; the FC layer does (torchvision reference).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ..layers import ConvBN
from .common import check_classes, global_avg_pool, max_pool

__all__ = ["SHUFFLENET_V2_WIDTHS", "STAGE_REPEATS", "channel_shuffle", "ShuffleNetV2"]

STAGE_REPEATS = (4, 8, 4)
#: Output channels of conv1, stages 2-4 and conv5 for each width multiplier (Table 5).
SHUFFLENET_V2_WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}


def channel_shuffle(x, groups: int = 2):
    """Interleave the channels of ``groups`` groups: ``(.., g, C/g) -> (.., C/g, g)``."""
    *lead, c = x.shape
    if c % groups:
        raise ValueError(f"{c} channels cannot be shuffled in {groups} groups")
    return x.reshape(*lead, groups, c // groups).swapaxes(-1, -2).reshape(*lead, c)


class ShuffleUnit(nnx.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, *, rngs: nnx.Rngs):
        half = c_out // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nnx.List([
                ConvBN(c_in, c_in, 3, stride, groups=c_in, activation=None, rngs=rngs),
                ConvBN(c_in, half, 1, rngs=rngs)])
        else:
            self.branch1 = None
        first = c_in if stride > 1 else half
        self.branch2 = nnx.List([
            ConvBN(first, half, 1, rngs=rngs),
            ConvBN(half, half, 3, stride, groups=half, activation=None, rngs=rngs),
            ConvBN(half, half, 1, rngs=rngs)])

    def __call__(self, x):
        if self.stride == 1:
            keep, x2 = jnp.split(x, 2, axis=-1)
        else:
            keep = x
            for layer in self.branch1:
                keep = layer(keep)
            x2 = x
        for layer in self.branch2:
            x2 = layer(x2)
        return channel_shuffle(jnp.concatenate([keep, x2], axis=-1), 2)


class ShuffleNetV2(nnx.Module):
    """ShuffleNet v2 with width multiplier ``width`` in {0.5, 1.0, 1.5, 2.0}."""

    def __init__(self, width: float = 1.0, classes: int = 1000, *, rngs: nnx.Rngs):
        if width not in SHUFFLENET_V2_WIDTHS:
            raise ValueError(f"ShuffleNet v2 width must be one of {sorted(SHUFFLENET_V2_WIDTHS)}, got {width!r}")
        channels = SHUFFLENET_V2_WIDTHS[width]
        self.conv1 = ConvBN(3, channels[0], 3, 2, rngs=rngs)
        units, c_in = [], channels[0]
        for repeats, c_out in zip(STAGE_REPEATS, channels[1:4]):
            units += [ShuffleUnit(c_in if r == 0 else c_out, c_out, 2 if r == 0 else 1, rngs=rngs)
                      for r in range(repeats)]
            c_in = c_out
        self.units = nnx.List(units)
        self.conv5 = ConvBN(c_in, channels[4], 1, rngs=rngs)
        self.fc = nnx.Linear(channels[4], check_classes(classes), rngs=rngs)

    def __call__(self, x):
        x = max_pool(self.conv1(x), 3, 2, padding=((1, 1), (1, 1)))
        for unit in self.units:
            x = unit(x)
        return self.fc(global_avg_pool(self.conv5(x)))

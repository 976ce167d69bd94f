"""ShuffleNet v1 (Zhang et al. 2018), the spec of the paper's Table 1.

A unit is a bottleneck (Fig. 2): 1x1 group convolution -> BN -> ReLU ->
channel shuffle -> 3x3 depthwise (stride s) -> BN -> 1x1 group convolution ->
BN, with a quarter of the output channels in the bottleneck. Stride 1 adds the
input; stride 2 concatenates a 3x3 average-pooled input, so its last
convolution produces ``out - in`` channels. The first pointwise layer of stage
2 is not grouped (its input has only 24 channels).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ..layers import ConvBN
from .common import check_classes, global_avg_pool, max_pool
from .shufflenet_v2 import channel_shuffle

__all__ = ["SHUFFLENET_V1_CHANNELS", "SHUFFLENET_V1_REPEATS", "ShuffleNetV1"]

#: Output channels of stages 2, 3, 4 for each number of groups g (Table 1, width 1x).
SHUFFLENET_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                          8: (384, 768, 1536)}
SHUFFLENET_V1_REPEATS = (4, 8, 4)


class ShuffleV1Unit(nnx.Module):
    def __init__(self, c_in: int, c_out: int, groups: int, stride: int, first_grouped: bool = True, *,
                 rngs: nnx.Rngs):
        self.stride, self.groups = stride, groups
        bottleneck = c_out // 4
        branch_out = c_out - c_in if stride == 2 else c_out
        self.conv_pw = ConvBN(c_in, bottleneck, 1, groups=groups if first_grouped else 1, rngs=rngs)
        self.conv_dw = ConvBN(bottleneck, bottleneck, 3, stride, groups=bottleneck, activation=None, rngs=rngs)
        self.conv_pwl = ConvBN(bottleneck, branch_out, 1, groups=groups, activation=None, rngs=rngs)
        self.shuffle = first_grouped and groups > 1

    def __call__(self, x):
        y = self.conv_pw(x)
        if self.shuffle:
            y = channel_shuffle(y, self.groups)
        y = self.conv_pwl(self.conv_dw(y))
        if self.stride == 2:
            shortcut = nnx.avg_pool(x, (3, 3), (2, 2), padding="SAME", count_include_pad=False)
            return jax.nn.relu(jnp.concatenate([shortcut, y], axis=-1))
        return jax.nn.relu(x + y)


class ShuffleNetV1(nnx.Module):
    """ShuffleNet v1 1x with ``groups`` in {1, 2, 3, 4, 8}."""

    def __init__(self, groups: int = 3, classes: int = 1000, *, rngs: nnx.Rngs):
        if groups not in SHUFFLENET_V1_CHANNELS:
            raise ValueError(f"ShuffleNet v1 groups must be one of {sorted(SHUFFLENET_V1_CHANNELS)}, got {groups!r}")
        self.conv1 = ConvBN(3, 24, 3, 2, rngs=rngs)
        units, c_in = [], 24
        for stage, (repeats, c_out) in enumerate(zip(SHUFFLENET_V1_REPEATS, SHUFFLENET_V1_CHANNELS[groups])):
            for r in range(repeats):
                units.append(ShuffleV1Unit(c_in, c_out, groups, 2 if r == 0 else 1,
                                           first_grouped=not (stage == 0 and r == 0), rngs=rngs))
                c_in = c_out
        self.units = nnx.List(units)
        self.fc = nnx.Linear(c_in, check_classes(classes), rngs=rngs)

    def __call__(self, x):
        x = max_pool(self.conv1(x), 3, 2, padding="SAME")
        for unit in self.units:
            x = unit(x)
        return self.fc(global_avg_pool(x))

"""Xception (Chollet 2017): entry, middle and exit flows of depthwise separable convolutions.

Follows the paper's Figure 5 and the keras.applications reference: separable
convolutions without bias, each followed by BatchNorm; residual 1x1 stride-2
convolutions around the entry and exit blocks; eight middle-flow blocks of
three 728-channel separable convolutions. Input 299x299.
"""

from __future__ import annotations

import jax
from flax import nnx

from ..layers import ConvBN
from .common import check_classes, global_avg_pool, max_pool

__all__ = ["Xception", "SeparableBN"]


class SeparableBN(nnx.Module):
    """Depthwise 3x3 -> pointwise 1x1 (a Keras ``SeparableConv2D`` without bias) -> BN."""

    def __init__(self, c_in: int, c_out: int, *, rngs: nnx.Rngs):
        self.conv_dw = nnx.Conv(c_in, c_in, (3, 3), padding="SAME", feature_group_count=c_in, use_bias=False,
                                rngs=rngs)
        self.conv_pw = ConvBN(c_in, c_out, 1, activation=None, rngs=rngs)

    def __call__(self, x):
        return self.conv_pw(self.conv_dw(x))


class DownBlock(nnx.Module):
    """[ReLU] -> SepConv -> ReLU -> SepConv -> MaxPool(3, 2), plus a 1x1 stride-2 convolution shortcut."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, relu_first: bool, *, rngs: nnx.Rngs):
        self.relu_first = relu_first
        self.sep1 = SeparableBN(c_in, c_mid, rngs=rngs)
        self.sep2 = SeparableBN(c_mid, c_out, rngs=rngs)
        self.shortcut = ConvBN(c_in, c_out, 1, 2, activation=None, rngs=rngs)

    def __call__(self, x):
        y = jax.nn.relu(x) if self.relu_first else x
        y = self.sep2(jax.nn.relu(self.sep1(y)))
        return max_pool(y, 3, 2, padding="SAME") + self.shortcut(x)


class MiddleBlock(nnx.Module):
    def __init__(self, channels: int = 728, *, rngs: nnx.Rngs):
        self.seps = nnx.List([SeparableBN(channels, channels, rngs=rngs) for _ in range(3)])

    def __call__(self, x):
        y = x
        for sep in self.seps:
            y = sep(jax.nn.relu(y))
        return x + y


class Xception(nnx.Module):
    def __init__(self, classes: int = 1000, middle_blocks: int = 8, *, rngs: nnx.Rngs):
        self.conv1 = ConvBN(3, 32, 3, 2, padding="VALID", rngs=rngs)
        self.conv2 = ConvBN(32, 64, 3, 1, padding="VALID", rngs=rngs)
        self.entry = nnx.List([DownBlock(64, 128, 128, False, rngs=rngs), DownBlock(128, 256, 256, True, rngs=rngs),
                               DownBlock(256, 728, 728, True, rngs=rngs)])
        self.middle = nnx.List([MiddleBlock(728, rngs=rngs) for _ in range(middle_blocks)])
        self.exit = DownBlock(728, 728, 1024, True, rngs=rngs)
        self.sep3 = SeparableBN(1024, 1536, rngs=rngs)
        self.sep4 = SeparableBN(1536, 2048, rngs=rngs)
        self.fc = nnx.Linear(2048, check_classes(classes), rngs=rngs)

    def __call__(self, x):
        x = self.conv2(self.conv1(x))
        for block in (*self.entry, *self.middle, self.exit):
            x = block(x)
        x = jax.nn.relu(self.sep4(jax.nn.relu(self.sep3(x))))
        return self.fc(global_avg_pool(x))

"""Flax NNX building blocks shared by the networks.

Names follow timm/TF-slim: ``conv_dw`` (depthwise), ``conv_pw`` (pointwise),
``bn_*`` (BatchNorm). Convolutions carry no bias when BatchNorm follows.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["ConvBN", "DepthwiseSeparable", "SeparableConv", "separable_to_standard_kernel", "relu6",
           "randomize_batchnorm"]


def relu6(x):
    """``min(max(x, 0), 6)``, the activation of MobileNet v1/v2."""
    return jnp.clip(x, 0.0, 6.0)


class ConvBN(nnx.Module):
    """Convolution -> BatchNorm -> activation (``activation=None`` for a linear layer)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, activation: Callable | None = jax.nn.relu, *,
                 padding="SAME", rngs: nnx.Rngs):
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels}->{out_channels} are not divisible by groups={groups}")
        self.conv = nnx.Conv(in_channels, out_channels, (kernel, kernel), strides=stride,
                             padding=padding, feature_group_count=groups, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(out_channels, momentum=0.9, epsilon=1e-3, rngs=rngs)
        self.activation = activation

    def __call__(self, x):
        x = self.bn(self.conv(x))
        return self.activation(x) if self.activation is not None else x


class DepthwiseSeparable(nnx.Module):
    """MobileNet v1 block (paper Fig. 3, right): 3x3 depthwise -> BN -> ReLU -> 1x1 pointwise -> BN -> ReLU.

    The depthwise layer is a convolution with ``feature_group_count = C_in``;
    it carries the stride.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3,
                 activation: Callable = jax.nn.relu, *, rngs: nnx.Rngs):
        self.conv_dw = ConvBN(in_channels, in_channels, kernel, stride, groups=in_channels,
                              activation=activation, rngs=rngs)
        self.conv_pw = ConvBN(in_channels, out_channels, 1, 1, activation=activation, rngs=rngs)

    def __call__(self, x):
        return self.conv_pw(self.conv_dw(x))


class SeparableConv(nnx.Module):
    """A linear depthwise separable convolution (no normalization, no activation).

    ``y = pointwise(depthwise(x))``: the factorization of a standard
    convolution studied in MobileNet sec. 3.1 and Xception.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 padding="SAME", *, rngs: nnx.Rngs):
        self.conv_dw = nnx.Conv(in_channels, in_channels, (kernel, kernel), strides=stride,
                                padding=padding, feature_group_count=in_channels, use_bias=False,
                                rngs=rngs)
        self.conv_pw = nnx.Conv(in_channels, out_channels, (1, 1), use_bias=False, rngs=rngs)

    def __call__(self, x):
        return self.conv_pw(self.conv_dw(x))

    def standard_kernel(self) -> jax.Array:
        """The ``K x K x M x N`` kernel of the standard convolution this block computes."""
        return separable_to_standard_kernel(self.conv_dw.kernel[...], self.conv_pw.kernel[...])


def separable_to_standard_kernel(depthwise_kernel, pointwise_kernel) -> jax.Array:
    """``W[i, j, m, n] = D[i, j, m] * P[m, n]``: the standard kernel a separable pair equals.

    ``depthwise_kernel`` has shape ``(K, K, 1, M)`` (HWIO with one input per
    group) and ``pointwise_kernel`` shape ``(1, 1, M, N)``. Each of the ``N``
    output filters is ``M`` rank-one ``K x K`` slices scaled by the pointwise
    weights, so a separable pair spans only a structured subset of all
    standard kernels.
    """
    k_h, k_w, one, m = depthwise_kernel.shape
    if one != 1:
        raise ValueError(f"depthwise kernel must have shape (K, K, 1, M), got {depthwise_kernel.shape}")
    if pointwise_kernel.shape[:3] != (1, 1, m):
        raise ValueError(f"pointwise kernel must have shape (1, 1, {m}, N), got {pointwise_kernel.shape}")
    return depthwise_kernel[:, :, 0, :, None] * pointwise_kernel[0, 0][None, None, :, :]


def randomize_batchnorm(model: nnx.Module, seed: int = 0) -> nnx.Module:
    """Give every BatchNorm random statistics and affine parameters (in place), so that
    equivalence checks on a freshly initialized model are not trivially true."""
    key = jax.random.key(seed)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.BatchNorm):
            key, *keys = jax.random.split(key, 5)
            n = node.scale.shape[0]
            node.scale[...] = jax.random.uniform(keys[0], (n,), minval=0.5, maxval=1.5)
            node.bias[...] = jax.random.normal(keys[1], (n,)) * 0.1
            node.mean[...] = jax.random.normal(keys[2], (n,)) * 0.1
            node.var[...] = jax.random.uniform(keys[3], (n,), minval=0.5, maxval=1.5)
    return model

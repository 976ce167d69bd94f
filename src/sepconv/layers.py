"""Layers of the first chapter, and helpers for equivalence checks.

The blocks of the networks live in ``sepconv.blocks`` (one library, each block a resolved spec and
its module); this module keeps the linear separable convolution that chapter 1 factorizes and the
helpers around it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .blocks import ConvNormAct, DepthwiseSeparable, relu6
from .compat import variable_value

__all__ = ["SeparableConv", "separable_to_standard_kernel", "randomize_batchnorm", "ConvNormAct",
           "DepthwiseSeparable", "relu6"]


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
    equivalence checks on a freshly initialized model are not trivially true: scale and variance
    uniform in [0.5, 1.5], bias and mean normal with std 0.1. Drawn on the host with NumPy (seeded by
    ``seed``), which compiles nothing (``jax.random`` would compile a program per channel count)."""
    rng = np.random.default_rng(seed)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.BatchNorm):
            n = node.scale.shape[0]
            draws = {"scale": rng.uniform(0.5, 1.5, n), "bias": 0.1 * rng.standard_normal(n),
                     "mean": 0.1 * rng.standard_normal(n), "var": rng.uniform(0.5, 1.5, n)}
            for name, values in draws.items():
                variable = getattr(node, name)
                variable[...] = jnp.asarray(values, variable_value(variable).dtype)
    return model

"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016), built from fire modules.

A fire module squeezes with a 1x1 convolution and expands with parallel 1x1
and 3x3 convolutions whose outputs are concatenated. Every convolution has a
bias and a ReLU; there is no BatchNorm and no FC layer (a 1x1 convolution to
the classes, then global average pooling). Max pooling rounds the output size
up (``ceil_mode``), as in the reference Caffe and torchvision models.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .common import check_classes, global_avg_pool

__all__ = ["Fire", "SQUEEZENET", "SqueezeNet", "ceil_max_pool"]

POOL = "pool"
#: Stem (kernel, stride, channels) and the fire modules (squeeze, expand1x1, expand3x3) with pools between.
SQUEEZENET = {
    "1_0": dict(stem=(7, 2, 96), layers=(POOL, (16, 64, 64), (16, 64, 64), (32, 128, 128), POOL,
                                         (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256),
                                         POOL, (64, 256, 256))),
    "1_1": dict(stem=(3, 2, 64), layers=(POOL, (16, 64, 64), (16, 64, 64), POOL, (32, 128, 128),
                                         (32, 128, 128), POOL, (48, 192, 192), (48, 192, 192),
                                         (64, 256, 256), (64, 256, 256))),
}


def ceil_max_pool(x, window: int = 3, stride: int = 2):
    """Max pooling whose output length is ``ceil((n - window) / stride) + 1`` (Caffe's rounding)."""
    pads = []
    for n in x.shape[1:3]:
        out = -(-(n - window) // stride) + 1
        pads.append((0, max((out - 1) * stride + window - n, 0)))
    return nnx.max_pool(x, (window, window), (stride, stride), padding=pads)


class Fire(nnx.Module):
    def __init__(self, c_in: int, squeeze: int, expand1x1: int, expand3x3: int, *, rngs: nnx.Rngs):
        self.squeeze = nnx.Conv(c_in, squeeze, (1, 1), rngs=rngs)
        self.expand1x1 = nnx.Conv(squeeze, expand1x1, (1, 1), rngs=rngs)
        self.expand3x3 = nnx.Conv(squeeze, expand3x3, (3, 3), padding=((1, 1), (1, 1)), rngs=rngs)

    def __call__(self, x):
        s = jax.nn.relu(self.squeeze(x))
        return jnp.concatenate([jax.nn.relu(self.expand1x1(s)), jax.nn.relu(self.expand3x3(s))], axis=-1)


class SqueezeNet(nnx.Module):
    def __init__(self, version: str = "1_0", classes: int = 1000, *, rngs: nnx.Rngs):
        if version not in SQUEEZENET:
            raise ValueError(f"SqueezeNet version must be one of {sorted(SQUEEZENET)}, got {version!r}")
        spec = SQUEEZENET[version]
        k, s, channels = spec["stem"]
        self.stem = nnx.Conv(3, channels, (k, k), strides=s, padding="VALID", rngs=rngs)
        layers = []
        for item in spec["layers"]:
            if item == POOL:
                layers.append(None)
            else:
                layers.append(Fire(channels, *item, rngs=rngs))
                channels = item[1] + item[2]
        self.layers = nnx.List(layers)
        self.classifier = nnx.Conv(channels, check_classes(classes), (1, 1), rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.stem(x))
        for layer in self.layers:
            x = ceil_max_pool(x) if layer is None else layer(x)
        return global_avg_pool(jax.nn.relu(self.classifier(x)))

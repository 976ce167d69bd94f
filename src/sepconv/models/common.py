"""Pieces shared by the network definitions: input checks, pooling, the classifier."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from flax import nnx

from ..cost import LayerCost, dense_cost

__all__ = ["Conv", "FeatureStack", "check_resolution", "check_classes", "global_avg_pool", "max_pool", "classifier_cost"]


@dataclass(frozen=True)
class Conv:
    """A standard convolution -> BN -> activation row of a spec (``Conv / s2, 3x3x3x32``)."""
    kernel: int
    stride: int
    depth: int


def check_resolution(resolution: int, minimum: int = 32) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < minimum:
        raise ValueError(f"resolution must be an integer of at least {minimum} pixels, got {resolution!r}")
    return resolution


def check_classes(classes: int) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}")
    return classes


def global_avg_pool(x):
    """Mean over height and width: ``(B, H, W, C) -> (B, C)``."""
    return jnp.mean(x, axis=(1, 2))


def max_pool(x, window: int = 3, stride: int = 2, padding="SAME"):
    return nnx.max_pool(x, (window, window), (stride, stride), padding=padding)


def classifier_cost(features: int, classes: int) -> LayerCost:
    return dense_cost(features, classes, bias=True)


class FeatureStack(nnx.Module):
    """Blocks applied in order (``features``), global average pooling, then a linear ``classifier``."""

    def _set_blocks(self, blocks: list, channels: int, classes: int, rngs: nnx.Rngs) -> None:
        self.features = nnx.List(blocks)
        self.classifier = nnx.Linear(channels, check_classes(classes), rngs=rngs)

    def __call__(self, x):
        for block in self.features:
            x = block(x)
        return self.classifier(global_avg_pool(x))

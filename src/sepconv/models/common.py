"""Pieces shared by the network definitions: the ``Conv`` row of a spec, argument checks, option types."""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Option

__all__ = ["Conv", "check_resolution", "check_classes", "ALPHA"]


@dataclass(frozen=True)
class Conv:
    """A standard convolution -> BN -> activation row of a spec (``Conv / s2, 3x3x3x32``)."""
    kernel: int
    stride: int
    depth: int


#: The MobileNet width multiplier, as every MobileNet entry of the registry declares it.
ALPHA = Option("alpha", float, 1.0, "width multiplier: every layer's channels are scaled by it (rounded by the "
               "model's width rule)", low=0.0, high=4.0, low_open=True)


def check_resolution(resolution: int, minimum: int = 1) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < minimum:
        raise ValueError(f"resolution must be an integer of at least {minimum} pixels, got {resolution!r}")
    return resolution


def check_classes(classes: int) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}")
    return classes

"""Channel rounding rules of the reference implementations, one named function each."""

from __future__ import annotations

__all__ = ["v1_depth", "make_divisible"]


def _check_multiplier(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"width multiplier must be a positive number, got {alpha!r}")
    return float(alpha)


def v1_depth(channels: int, alpha: float, min_depth: int = 8) -> int:
    """MobileNet v1 (TF-slim ``mobilenet_v1.py``): ``max(int(channels * alpha), min_depth)``."""
    return max(int(channels * _check_multiplier(alpha)), min_depth)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet v2/v3 rule (TF-slim ``mobilenet.py``, torchvision, timm ``round_channels``).

    Round ``value`` to the nearest multiple of ``divisor`` (halves up), at
    least ``min_value`` (default ``divisor``), and add one ``divisor`` if that
    lost more than 10%: ``new = max(min_value, int(value + divisor/2) // divisor * divisor)``;
    ``if new < 0.9 * value: new += divisor``.
    """
    if not value > 0:
        raise ValueError(f"channel count must be positive, got {value!r}")
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new

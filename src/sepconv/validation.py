"""Compute every published table the package knows, and check it.

Each entry of ``COMPUTERS`` maps a table name to a function returning
``{(row, quantity): computed integer}``; ``validate()`` runs them all through
``published.check_table``.
"""

from __future__ import annotations

from typing import Callable

from . import cost
from .published import Record, check_table, table_names

__all__ = ["COMPUTERS", "validate", "mobilenet_v1_table3"]


def mobilenet_v1_table3() -> dict:
    """MobileNet Table 3: one ``14 x 14 x 512 -> 512`` layer with a 3x3 kernel, cumulatively modified.

    The resolution multiplier 0.714 is 160/224: the 224-pixel network's 14x14
    map becomes 10x10 (160 / 16).
    """
    size, channels, kernel = 14, 512, 3
    thin = int(channels * 0.75)
    small = 160 // 16
    rows = {
        "Convolution": [cost.standard_conv_cost(size, size, channels, channels, kernel)],
        "Depthwise Separable Conv": cost.depthwise_separable_cost(size, size, channels, channels, kernel),
        "alpha = 0.75": cost.depthwise_separable_cost(size, size, thin, thin, kernel),
        "rho = 0.714": cost.depthwise_separable_cost(small, small, thin, thin, kernel),
    }
    out = {}
    for row, layers in rows.items():
        out[(row, "macs")] = sum(layer.macs for layer in layers)
        out[(row, "params")] = sum(layer.params for layer in layers)
    return out


COMPUTERS: dict[str, Callable[[], dict]] = {
    "mobilenet_v1_table3": mobilenet_v1_table3,
}


def validate(names: list[str] | None = None) -> list[Record]:
    """Records for the named published tables (all of them by default)."""
    names = table_names() if names is None else names
    missing = [n for n in names if n not in COMPUTERS]
    if missing:
        raise ValueError(f"no computation registered for published tables {missing}")
    records = []
    for name in names:
        records.extend(check_table(name, COMPUTERS[name]()))
    return records

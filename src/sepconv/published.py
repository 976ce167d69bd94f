"""Published tables as data, and the check of computed numbers against them.

Each table is a CSV in ``sepconv/data`` with columns
``row, quantity, published, unit, rounding`` and an entry in ``tables.json``
naming its source. A published value is kept as the text the table printed
("52.3"), so its precision is part of the data. A computed integer ``c``
matches under the rule

* ``nearest``:  ``round_half_up(c / unit, d) == published``
* ``truncate``: ``floor(c / unit, d) == published``
* ``exact``:    ``c == published * unit``
* ``significant``: ``c / unit`` rounded half up to the significant digits
  printed (``"1600"`` has two: trailing zeros of an integer are not significant)

with ``d`` the number of decimals printed and ``unit`` one of
``1`` / ``K`` (1e3) / ``M`` (1e6) / ``B`` (1e9) / ``%`` (a share, computed
as an exact ``Fraction``) / ``Mi`` (2^20) / ``Gi`` (2^30), the binary units of MobileNetV4's table.

A row whose ``agrees`` column says ``no`` is a known disagreement, explained
in its ``note`` with our numbers. It is checked too: the record is ``ok`` when
the computed value still disagrees, so a change that silently "fixes" it, or
breaks an agreeing row, fails.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from typing import Mapping

__all__ = ["PublishedValue", "Record", "published_table", "table_info", "table_names",
           "matches", "check_table", "published_accuracy", "records_table", "CheckpointRow", "checkpoint_row"]

UNITS = {"1": Decimal(1), "K": Decimal(10**3), "M": Decimal(10**6), "B": Decimal(10**9), "%": Decimal("0.01"),
         "Mi": Decimal(2**20), "Gi": Decimal(2**30)}
RULES = ("nearest", "truncate", "exact", "significant")


@dataclass(frozen=True)
class PublishedValue:
    table: str
    row: str
    quantity: str
    published: str
    unit: str
    rounding: str
    agrees: bool = True
    note: str = ""

    @property
    def decimals(self) -> int:
        """Decimal places printed; for the ``significant`` rule, minus the insignificant trailing zeros."""
        if self.rounding == "significant" and "." not in self.published:
            digits = self.published.lstrip("-")
            return -(len(digits) - len(digits.rstrip("0"))) if digits.strip("0") else 0
        return len(self.published.split(".")[1]) if "." in self.published else 0


@dataclass(frozen=True)
class Record:
    """One comparison: the published value, the computed one, the rule and the verdict."""

    table: str
    row: str
    quantity: str
    published: str
    computed: int | Fraction
    computed_in_unit: str
    unit: str
    rule: str
    matches: bool
    agrees: bool
    ok: bool
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(self.computed, Fraction):
            d["computed"] = str(self.computed)
        return d


@dataclass(frozen=True)
class CheckpointRow:
    """What a TF-slim checkpoint's name says: the registered ``model``, its width multiplier ``alpha``,
    its input ``resolution``, and whether it is a V3 ``minimalistic`` network."""

    model: str
    alpha: float
    resolution: int
    minimalistic: bool = False


_CHECKPOINT_MODELS = {("mobilenet", "v1"): "mobilenet_v1", ("mobilenet", "v2"): "mobilenet_v2",
                      ("mobilenet", "v3", "large"): "mobilenet_v3_large",
                      ("mobilenet", "v3", "small"): "mobilenet_v3_small"}


def checkpoint_row(row: str) -> CheckpointRow:
    """The one decoder of the checkpoint tables' row labels, TF-slim's checkpoint names:
    ``MobileNet_v1_{alpha}_{resolution}``, ``mobilenet_v2_{alpha}_{resolution}``,
    ``mobilenet_v3_{large|small}[_minimalistic]_{alpha}_{resolution}``. Another label is a
    ``ValueError`` naming it."""
    parts = str(row).split("_")
    minimalistic = "minimalistic" in parts
    head = tuple(p.lower() for p in parts[:-2] if p != "minimalistic")
    try:
        alpha, resolution = float(parts[-2]), int(parts[-1])
    except (IndexError, ValueError):
        alpha = resolution = None
    if head not in _CHECKPOINT_MODELS or alpha is None or (minimalistic and head[-1] not in ("large", "small")):
        raise ValueError(f"not a checkpoint row label (such as mobilenet_v2_1.0_224): {row!r}")
    return CheckpointRow(_CHECKPOINT_MODELS[head], alpha, resolution, minimalistic)


def _data_file(name: str):
    return resources.files("sepconv").joinpath("data", name)


@lru_cache(maxsize=None)
def _catalog() -> dict:
    return json.loads(_data_file("tables.json").read_text())


def table_names() -> list[str]:
    return sorted(_catalog())


def table_info(name: str) -> dict:
    """Title, source, bibliography key and notes of a published table."""
    if name not in _catalog():
        raise ValueError(f"unknown published table {name!r}; known: {', '.join(table_names())}")
    return dict(_catalog()[name])


@lru_cache(maxsize=None)
def published_table(name: str) -> tuple[PublishedValue, ...]:
    """The rows of a published table, as printed, with unit and rounding rule."""
    info = table_info(name)
    rows = []
    with _data_file(info["file"]).open() as f:
        for line in csv.DictReader(f):
            if line["agrees"] not in ("yes", "no"):
                raise ValueError(f"{name}: 'agrees' must be yes or no, got {line['agrees']!r} in row {line['row']!r}")
            if line["agrees"] == "no" and not line["note"].strip():
                raise ValueError(f"{name}: row {line['row']!r} disagrees but has no note explaining why")
            value = PublishedValue(name, line["row"], line["quantity"], line["published"].strip(),
                                   line["unit"], line["rounding"], line["agrees"] == "yes", line["note"].strip())
            if value.unit not in UNITS:
                raise ValueError(f"{name}: unknown unit {value.unit!r} in row {value.row!r}")
            if value.rounding not in RULES:
                raise ValueError(f"{name}: unknown rounding rule {value.rounding!r} in row {value.row!r}")
            Decimal(value.published)  # raises on a malformed number
            rows.append(value)
    return tuple(rows)


def _exact(computed) -> Fraction:
    if isinstance(computed, bool) or not isinstance(computed, (int, Fraction)):
        raise TypeError(f"computed values must be int or Fraction (exact), got {computed!r}")
    return Fraction(computed)


def in_unit(computed: int | Fraction, unit: str, decimals: int, rule: str) -> Decimal:
    """``computed / unit`` rounded to ``decimals`` places under ``rule``."""
    quantum = Decimal(1).scaleb(-decimals)
    exact = _exact(computed)
    scaled = Decimal(exact.numerator) / Decimal(exact.denominator) / UNITS[unit]
    if rule == "exact":
        return scaled
    mode = ROUND_DOWN if rule == "truncate" else ROUND_HALF_UP
    return scaled.quantize(quantum, rounding=mode).normalize() if decimals < 0 else \
        scaled.quantize(quantum, rounding=mode)


def matches(value: PublishedValue, computed: int | Fraction) -> bool:
    """Whether ``computed`` prints as ``value.published`` under the table's rounding rule."""
    return in_unit(computed, value.unit, value.decimals, value.rounding) == Decimal(value.published)


def check_table(name: str, computed: Mapping[tuple[str, str], int]) -> list[Record]:
    """Compare ``computed[(row, quantity)]`` with every row of table ``name``.

    A row with no computed value is an error: a table is checked whole or not at all.
    """
    records = []
    for value in published_table(name):
        key = (value.row, value.quantity)
        if key not in computed:
            raise KeyError(f"{name}: no computed value for row {value.row!r}, quantity {value.quantity!r}")
        c = computed[key]
        shown = in_unit(c, value.unit, value.decimals, value.rounding)
        match = matches(value, c)
        records.append(Record(name, value.row, value.quantity, value.published, c, format(shown, "f"),
                              value.unit, value.rounding, match, value.agrees, match == value.agrees, value.note))
    return records


@lru_cache(maxsize=None)
def published_accuracy() -> tuple[dict, ...]:
    """Published ImageNet top-1 accuracies (``model, alpha, resolution, top1, source``), for plots.

    Accuracy cannot be recomputed here (no ImageNet at run time); it is shown
    beside the counts, never checked.
    """
    with _data_file("published_accuracy.csv").open() as f:
        return tuple({"model": r["model"], "alpha": float(r["alpha"]), "resolution": int(r["resolution"]),
                      "top1": float(r["top1"]), "source": r["source"]} for r in csv.DictReader(f))


def records_table(records: list[Record]) -> str:
    """Records as a text table: row, quantity, published and computed values, rule, and whether they agree."""
    header = ("row", "quantity", "published", "ours", "rule", "agrees")
    lines = [(r.row, r.quantity, f"{r.published} {r.unit}", f"{r.computed_in_unit} {r.unit}", r.rule,
              "yes" if r.matches else "NO (known; see note)" if not r.agrees else "NO") for r in records]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    right = (False, False, True, True, False, False)
    return "\n".join("  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(line, widths, right)).rstrip()
                     for line in [header, *lines])

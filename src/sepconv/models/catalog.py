"""The catalogue of models: what an entry is (``Option``, ``ModelEntry``), the table ``MODELS`` and
``register_model``, with which each network module registers itself.

It imports no network module (``sepconv.models.registry`` loads them, through ``zoo``), so the
network modules can import it without a circle: registry -> zoo -> network modules -> catalogue.
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["BATCH", "SEED", "CLASSES", "Option", "ModelEntry", "MODELS", "register_model"]


@dataclass(frozen=True)
class Option:
    """One option of a model: its type, default, allowed values and meaning.

    ``choices`` lists the allowed values; otherwise numbers must lie in ``[low, high]``
    (``low_open`` makes the lower bound exclusive). Booleans are flags.
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe_range(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true or false"
        kind = "an integer" if self.type is int else "a number"

        def show(bound):
            return str(int(bound)) if self.type is int and float(bound).is_integer() else f"{bound:g}"

        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{show(self.low)}, {show(self.high)}]"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {show(self.low)}"
        return kind

    def check(self, value):
        """``value`` converted to the option's type, or ``ValueError`` naming the option and the value.

        Any integer type (``numpy.int64``) is an integer, a number without a fraction (``2.0``,
        ``Fraction(4, 2)``) too; any real number type (``numpy.float32``, ``Fraction(1, 2)``) is a number.
        Booleans are not numbers here."""
        error = ValueError(f"{self.name} must be {self.describe_range()}, got {value!r}")
        if self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise error
            return bool(value)
        if isinstance(value, (bool, np.bool_)):
            raise error
        if self.type is int:
            if isinstance(value, numbers.Integral):
                value = int(value)
            elif isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer() \
                    and value == int(value):
                value = int(value)
            else:
                raise error
        elif self.type is float:
            if not isinstance(value, numbers.Real):
                raise error
            try:
                value = float(value)
            except (OverflowError, ValueError):
                raise error from None
            if not math.isfinite(value):
                raise error
        elif not isinstance(value, self.type):
            raise error
        if self.choices is not None:
            if value not in self.choices:
                raise error
            return value
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise error
        if self.high is not None and value > self.high:
            raise error
        return value


def _resolution_option(default: int, minimum: int) -> Option:
    return Option("resolution", int, default, "input height and width in pixels", low=minimum, high=4096)


#: The images per batch ``count_model`` and the command line take.
BATCH = Option("batch", int, 1, "images per batch", low=1, high=4096)
_POSITIVE_BATCH = Option("batch", int, 1, "images per batch", low=1)
#: The seed of ``build_model`` and ``materialize``: NumPy's and JAX's generators take 32-bit seeds.
SEED = Option("seed", int, 0, "random seed of the parameters", low=0, high=2**32 - 1)

CLASSES = Option("classes", int, 1000, "number of classes (TF-slim checkpoints use 1001)", low=1, high=100_000)


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: its resolve function and the options it takes (``resolution`` and
    ``classes`` included)."""

    name: str
    resolve: Callable
    options: tuple
    summary: str
    reference: str = ""
    family: str = ""

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(name)

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}

    def check(self, options: dict) -> dict:
        """All options of the model, the given ones validated and the others at their defaults."""
        known = {o.name for o in self.options}
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ValueError(f"{self.name} takes no option {unknown[0]!r}; its options are "
                             f"{', '.join(sorted(known))}")
        values = self.defaults()
        for key, value in options.items():
            values[key] = self.option(key).check(value)
        return values


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *options: Option, summary: str, resolution: int = 224, min_resolution: int = 32,
                   reference: str = "", family: str = ""):
    """Register ``fn(**options, resolution, classes) -> ResolvedNetwork`` as model ``name``.

    The function's parameters must be exactly the declared options plus ``resolution`` and
    ``classes``, each with the option's default: checked here, so an entry cannot drift from its code.
    """

    def decorate(fn):
        entry_options = (*options, _resolution_option(resolution, min_resolution), CLASSES)
        params = inspect.signature(fn).parameters
        declared = {o.name: o.default for o in entry_options}
        found = {k: p.default for k, p in params.items()}
        if declared != found:
            raise TypeError(f"model {name}: the function's parameters {found} differ from the declared options {declared}")
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelEntry(name, fn, entry_options, summary, reference, family)
        return fn

    return decorate

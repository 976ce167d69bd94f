"""The model registry: every network of the book under its name, with the options it takes.

Each network registers a resolve function with ``@register_model``, declaring its options with
types, ranges and defaults (``Option``). Every entry also takes ``resolution`` (with the model's
own default and minimum) and ``classes``. One uniform entry point per model:

* ``resolve_model(name, **options)``: the ``ResolvedNetwork``;
* ``model_cost(name, **options)``: its closed-form ``NetworkCost``;
* ``abstract_model(name, **options)``: the NNX module with shapes only;
* ``build_model(name, seed=0, **options)``: a runnable model in eval mode;
* ``count_model(name, batch=1, **options)``: the counter's result, traced from shapes.

An option a model does not take, or a value outside an option's range, is a ``ValueError`` naming it.
The command line (``python -m sepconv count MODEL --help``) is generated from the same entries.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Option", "ModelEntry", "MODELS", "register_model", "model_entry", "model_names", "resolve_model",
           "model_cost", "abstract_model", "build_model", "count_model"]


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
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        return kind

    def check(self, value):
        """``value`` converted to the option's type, or ``ValueError`` naming the option and the value."""
        error = ValueError(f"{self.name} must be {self.describe_range()}, got {value!r}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise error
            return value
        if isinstance(value, bool):
            raise error
        if self.type is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise error
        elif self.type is float:
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise error
            value = float(value)
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


def model_names() -> tuple:
    _load()
    return tuple(MODELS)


def model_entry(name: str) -> ModelEntry:
    _load()
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def _load() -> None:
    from . import zoo  # noqa: F401  (importing the network modules registers them)


def resolve_model(name: str, **options):
    """The ``ResolvedNetwork`` of model ``name`` with ``options`` (validated; defaults for the rest)."""
    entry = model_entry(name)
    values = entry.check(options)
    resolved = entry.resolve(**values)
    from dataclasses import replace

    return replace(resolved, options=tuple(values.items()))


def model_cost(name: str, **options):
    """The closed-form ``NetworkCost`` of model ``name``."""
    return resolve_model(name, **options).cost()


def abstract_model(name: str, **options):
    """Model ``name`` as an NNX module of shapes (``nnx.eval_shape``), in eval mode: nothing allocated."""
    return resolve_model(name, **options).abstract()


def build_model(name: str, *, seed: int = 0, **options):
    """A runnable model ``name`` in eval mode, parameters initialized from ``seed`` (``materialize``)."""
    return resolve_model(name, **options).build(seed)


def count_model(name: str, *, batch: int = 1, **options):
    """Trace model ``name`` on a ``batch x resolution x resolution x 3`` input of shapes and count it.

    Nothing is allocated: the model is abstract and the input a ``jax.ShapeDtypeStruct``.
    """
    import jax
    import jax.numpy as jnp

    from ..counter import count

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    resolved = resolve_model(name, **options)
    x = jax.ShapeDtypeStruct((batch, resolved.resolution, resolved.resolution, 3), jnp.float32)
    return count(resolved.abstract(), x)

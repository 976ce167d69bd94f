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

import difflib

from .catalog import _POSITIVE_BATCH, BATCH, CLASSES, MODELS, SEED, ModelEntry, Option, register_model

__all__ = ["BATCH", "SEED", "CLASSES",
           "Option", "ModelEntry", "MODELS", "register_model", "model_entry", "model_names", "resolve_model",
           "model_cost", "abstract_model", "build_model", "count_model"]


def model_names() -> tuple:
    _load()
    return tuple(MODELS)


def model_entry(name: str) -> ModelEntry:
    _load()
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), list(MODELS), n=3, cutoff=0.6) if isinstance(name, str) else []
        close += [m for m in MODELS if isinstance(name, str) and name and m.startswith(name) and m not in close]
        hint = f"did you mean {' or '.join(close[:3])}? " if close else ""
        raise ValueError(f"unknown model {name!r}; {hint}choose one of {', '.join(MODELS)}")
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
    """A runnable model ``name`` in eval mode, parameters initialized from ``seed`` (``materialize``;
    an integer in ``[0, 2**32 - 1]``)."""
    seed = SEED.check(seed)
    return resolve_model(name, **options).build(seed)


def count_model(name: str, *, batch: int = 1, training: bool = False, **options):
    """Count model ``name`` on a ``batch x resolution x resolution x 3`` input of shapes: its inference
    (``count``) or, with ``training``, one training step's gradient (``count_training``). The one home
    of counting a registered model (the command line's ``count`` calls it).

    Nothing is allocated: the model is abstract and the input a ``jax.ShapeDtypeStruct``.
    """
    import jax
    import jax.numpy as jnp

    from ..counting import count, count_training

    try:
        batch = _POSITIVE_BATCH.check(batch)
    except ValueError:
        raise ValueError(f"batch must be a positive integer, got {batch!r}") from None
    if not isinstance(training, bool):
        raise ValueError(f"training must be True or False, got {training!r}")
    resolved = resolve_model(name, **options)
    x = jax.ShapeDtypeStruct((batch, resolved.resolution, resolved.resolution, 3), jnp.float32)
    return (count_training if training else count)(resolved.abstract(), x)

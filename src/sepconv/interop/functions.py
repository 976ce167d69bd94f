"""NNX modules as pure JAX functions: ``pure_module(module)`` is ``(fn, state)`` with
``fn(state, *args) == module(*args)``, the form in which the book times, counts and rewrites its models."""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["pure_module"]


def pure_module(module, flat: bool = False) -> tuple[Callable, Any]:
    """``(fn, state)`` with ``fn(state, *args) == module(*args)``: an NNX module as a pure function of its state.

    With ``flat`` the state is a plain list of arrays, as Keras's ``stateless_call`` takes its
    variables: flattening an NNX ``State`` costs a fraction of a millisecond per call, which
    timings of small models would otherwise include.
    """
    from flax import nnx

    graphdef, state = nnx.split(module)
    leaves, treedef = jax.tree_util.tree_flatten(state)

    def fn(state, *args, **kwargs):
        if flat:
            state = jax.tree_util.tree_unflatten(treedef, state)
        return nnx.merge(graphdef, state)(*args, **kwargs)

    return fn, (leaves if flat else state)

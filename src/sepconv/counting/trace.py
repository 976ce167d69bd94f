"""A count: trace a function (or an NNX module) to a jaxpr and run the passes over it.

``count(fn, *args)`` traces with the arrays (or ``jax.ShapeDtypeStruct`` shapes) among ``args`` as
inputs and every other argument static, then prunes dead code (``prune``), walks the program
(``walk``), tallies its sites by the cost rules (``tally``, ``rules``) and measures activation
memory (``liveness``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import jax
import numpy as np

from .liveness import peak_bytes
from .modules import parameter_counts
from .prune import live_code
from .records import CountResult
from .roles import plain_role
from .rules import RULES, Rules
from .scopes import module_scopes
from .tally import tally
from .walk import walk

__all__ = ["count", "count_macs", "counted", "trace", "is_array"]


def is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def _split_static(args, kwargs):
    """Leaves of ``(args, kwargs)`` that are arrays (or shapes) are traced; all others are static."""
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    traced = [i for i, leaf in enumerate(leaves) if is_array(leaf)]

    def rebuild(arrays):
        values = list(leaves)
        for i, a in zip(traced, arrays):
            values[i] = a
        return jax.tree_util.tree_unflatten(treedef, values)

    return [leaves[i] for i in traced], rebuild


def trace(fn, args, kwargs, model=None, scoped=True):
    """The closed jaxpr of ``fn(*args, **kwargs)`` (a module's state first, if ``model``), and its data inputs."""
    arrays, rebuild = _split_static(args, kwargs)
    if model is not None:
        from flax import nnx

        graphdef, state = nnx.split(model)

        def traced(state, *arrays):
            merged = nnx.merge(graphdef, state)
            a, k = rebuild(arrays)
            with module_scopes(merged) if scoped else contextlib.nullcontext():
                return fn(merged, *a, **k)

        closed = jax.make_jaxpr(traced)(state, *arrays)
        n_state = len(jax.tree_util.tree_leaves(state))
        return closed, closed.jaxpr.invars[n_state:]

    def traced(*arrays):
        a, k = rebuild(arrays)
        return fn(*a, **k)

    closed = jax.make_jaxpr(traced)(*arrays)
    return closed, closed.jaxpr.invars


def counted(closed, data_inputs, role_of, rules: Rules = RULES) -> CountResult:
    """The passes of a count over a traced program: dead code pruned, the walk, the tally by
    ``rules`` (each record's role from ``role_of(eqn, backward)``), the liveness of activations
    derived from ``data_inputs``."""
    result = CountResult()
    sites = []
    jaxpr = live_code(closed.jaxpr)
    data = {new for old, new in zip(closed.jaxpr.invars, jaxpr.invars) if old in set(data_inputs)}
    walk(jaxpr, 1, sites, result.uncosted, rules)
    tally(sites, result, role_of, rules)
    result.peak_activation_bytes = peak_bytes(jaxpr, data, own_inputs=True)
    return result


def count(fn: Callable | Any, *args, **kwargs) -> CountResult:
    """Trace ``fn(*args, **kwargs)`` and count its MACs, activations and (for a module) parameters.

    ``fn`` may be any JAX-traceable function or a Flax NNX module (abstract ones included); a
    module is split into its graph and state so that its parameters are inputs, not
    activations. Arguments that are arrays or ``jax.ShapeDtypeStruct`` (shapes without data) are
    traced; every other argument (an int, a string, a flag) is passed as a static Python value.
    Activation memory is the peak of simultaneously live intermediate values derived from the
    traced arguments (parameters excluded), in bytes.
    """
    from flax import nnx

    if isinstance(fn, nnx.Module):
        closed, data = trace(lambda m, *a, **k: m(*a, **k), args, kwargs, model=fn)
        result = counted(closed, data, plain_role)
        result.params_trainable, result.params_excluding_norm = parameter_counts(fn)
        return result
    if not callable(fn):
        raise TypeError(f"count needs a callable or an nnx.Module, got {type(fn).__name__}")
    closed, data = trace(fn, args, kwargs)
    return counted(closed, data, plain_role)


def count_macs(fn: Callable | Any, *args, **kwargs) -> int:
    """Exact MACs of ``fn(*args)``; raises ``ValueError`` if any primitive could not be costed."""
    result = count(fn, *args, **kwargs)
    if not result.complete:
        raise ValueError(f"cannot cost primitives {sorted(result.uncosted)}; MACs would be incomplete")
    return result.macs

"""What differs between the JAX and Flax versions sepconv supports (jax 0.7.2 and flax 0.12.0 onwards).

* ``variable_value``, ``set_variable_value``: a variable's value, read and written; Flax 0.12.0 has
  ``Variable.value`` and no ``get_value`` or ``set_value``.
* ``replaced``: a library's method (or a module's function) replaced for the length of a ``with``
  block, only where the library defines it, to skip work whose result is never used (the shape-only
  build, the counter) or to do it a cheaper way (Keras's weight draws, ``bench.keras_application``).
* ``is_drop_var``: whether a jaxpr output is dropped (``_``); jax 0.7.2 has ``DropVar`` in ``jax.core``
  only, later versions in ``jax.extend.core`` too.
* ``equation_context``: re-enter the name stack (the ``jax.named_scope`` path) and traceback an equation
  was traced under, as ``jax.core.eval_jaxpr`` does (``jax._src.source_info_util``, in every version
  supported), or nothing where a version lacks it.
* ``shard_map``: ``jax.shard_map``, or the experimental one of versions that lack it.
"""

from __future__ import annotations

import contextlib

import jax

__all__ = ["variable_value", "set_variable_value", "replaced", "is_drop_var", "equation_context", "shard_map"]


def variable_value(variable):
    """The value an NNX variable holds (an array, or a ``jax.ShapeDtypeStruct`` in an abstract model)."""
    return variable.get_value() if hasattr(variable, "get_value") else variable.value


def set_variable_value(variable, value) -> None:
    """Give an NNX variable a new value (``set_value`` where Flax has it, else ``value =``)."""
    if hasattr(variable, "set_value"):
        variable.set_value(value)
    else:
        variable.value = value


@contextlib.contextmanager
def replaced(cls, name: str, value):
    """While inside, ``cls.<name>`` is ``value``, and afterwards what it was. Nothing is replaced when
    ``cls`` is ``None`` or does not define ``name`` itself (another version of the library): the block
    then runs as it would have, only without the saving."""
    original = cls.__dict__.get(name) if cls is not None else None
    if original is None:
        yield
        return
    setattr(cls, name, value)
    try:
        yield
    finally:
        setattr(cls, name, original)


def is_drop_var(var) -> bool:
    """Whether ``var``, an output of a jaxpr equation, is a dropped one (``_`` in the printed jaxpr)."""
    from jax.extend import core

    drop = getattr(core, "DropVar", None)
    if drop is None:  # jax 0.7.2
        from jax import core as old_core

        drop = old_core.DropVar
    return isinstance(var, drop)


def equation_context(eqn):
    """A context in which work traced again for ``eqn`` keeps ``eqn``'s name stack (below the current one)
    and traceback: what ``jax.core.eval_jaxpr`` enters for each equation it evaluates, so that a program
    rewritten equation by equation keeps its ``jax.named_scope`` paths in the compiled ``op_name``s."""
    try:
        from jax._src import source_info_util
    except ImportError:  # a version without it: the paths are lost, nothing else
        return contextlib.nullcontext()
    info = getattr(eqn, "source_info", None)
    if info is None or not hasattr(source_info_util, "user_context"):
        return contextlib.nullcontext()
    return source_info_util.user_context(info.traceback,
                                         name_stack=source_info_util.current_name_stack() + info.name_stack)


def shard_map(fn, *, mesh, in_specs, out_specs):
    """``jax.shard_map`` (jax >= 0.6), else ``jax.experimental.shard_map.shard_map`` of older versions: ``fn``
    run on each device of ``mesh`` on its block of the arguments (``in_specs``), the results put together
    (``out_specs``)."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    from jax.experimental.shard_map import shard_map as experimental

    return experimental(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)

"""The generic program rewriter every transform of this package is built on.

``rewrite_equations(fn, match, apply)`` traces ``fn`` to a jaxpr and evaluates it equation by
equation, computing each equation ``match`` selects by ``apply`` instead: a function from program
to program that keeps everything else as traced.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import Callable

import jax
from jax.extend import core

from ..compat import equation_context, is_drop_var
from ..counter import conv_record, register_call_rule, sub_jaxprs
from ..counting.rules import CALL_PRIMITIVES

__all__ = ["rewrite_equations", "contains_equation", "counted_call"]


#: Call-like primitives whose body is rewritten in place (inlined); others run unchanged: the counter's
#: one list (``sepconv.counting.rules.CALL_PRIMITIVES``), which also names primitives of older jax versions.
_INLINED = CALL_PRIMITIVES


def contains_equation(jaxpr, match) -> bool:
    """Whether ``jaxpr`` or a sub-jaxpr of one of its equations holds an equation ``match`` selects."""
    for eqn in jaxpr.eqns:
        if match(eqn) or any(contains_equation(sub, match) for sub in sub_jaxprs(eqn)):
            return True
    return False


def _inlined_body(eqn):
    """The closed jaxpr of a call-like equation whose body is inlined, else ``None``."""
    if eqn.primitive.name not in _INLINED:
        return None
    body = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    if isinstance(body, core.Jaxpr):
        body = core.ClosedJaxpr(body, ())
    return body if isinstance(body, core.ClosedJaxpr) else None


def _evaluate(jaxpr, consts, args, match, apply):
    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for v, value in itertools.chain(zip(jaxpr.constvars, consts), zip(jaxpr.invars, args)):
        env[v] = value
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        body = _inlined_body(eqn)
        with equation_context(eqn):  # the equation's name stack (its module path) kept in the new program
            if match(eqn):
                outvals = apply(eqn, *invals)
            elif body is not None and contains_equation(body.jaxpr, match):
                outvals = _evaluate(body.jaxpr, body.consts, invals[len(invals) - len(body.jaxpr.invars):],
                                    match, apply)
            else:
                bound = eqn.primitive.get_bind_params(eqn.params)
                subfuns, params = bound if isinstance(bound, tuple) else ((), bound)  # older JAX returns a pair
                with eqn.ctx.manager if hasattr(eqn, "ctx") else contextlib.nullcontext():
                    out = eqn.primitive.bind(*subfuns, *invals, **params)
                outvals = out if eqn.primitive.multiple_results else [out]
        for v, value in zip(eqn.outvars, outvals):
            if not is_drop_var(v):
                env[v] = value
    return [read(v) for v in jaxpr.outvars]


def rewrite_equations(fn: Callable, match: Callable, apply: Callable) -> Callable:
    """``fn`` with every equation ``eqn`` for which ``match(eqn)`` holds computed by
    ``apply(eqn, *inputs)`` (a list of outputs) instead; everything else runs as traced. Bodies of
    ``jit`` and other calls are inlined where they hold a match; ``scan``, ``cond`` and ``while``
    bodies are left as they are. The interpreter behind ``depthwise_by_shifts``, ``fast_inference``
    and the quantization simulator of ``transforms.quantize``."""

    @functools.wraps(fn)
    def rewritten(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args), match, apply)
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return rewritten


def counted_call(eqn, fn: Callable, name: str, *args):
    """``fn(*args)`` as one ``jit`` call named ``name`` that the counter costs as the convolution ``eqn`` it
    replaces: how a rewrite whose body hides its multiply-accumulates in element-wise work keeps a
    function's count. The rule is registered for this one call, found by the identity of its traced body
    (the very object the program's equation carries: the call below reuses the trace)."""
    record = conv_record(eqn)
    fn.__name__ = name
    call = jax.jit(fn)
    register_call_rule(call.trace(*args).jaxpr, lambda _eqn, record=record: record)
    return call(*args)

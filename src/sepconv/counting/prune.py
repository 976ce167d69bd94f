"""Dead-code pruning: a program without the equations whose results nothing uses, as XLA compiles it."""

from __future__ import annotations

__all__ = ["live_code"]


def live_code(jaxpr):
    """``jaxpr`` without the equations whose results are never used, as XLA compiles it: a gradient
    program, for instance, keeps a forward pass that nothing reads. Falls back to ``jaxpr``
    where this JAX lacks the (internal) pass."""
    try:
        from jax._src.interpreters import partial_eval as pe

        live, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
    except Exception:  # pragma: no cover - depends on JAX internals
        return jaxpr
    return live

"""Adapters between the book's programs and other libraries' models. Every program the book times,
counts or rewrites is a pure JAX function ``fn(state, x)``: ``pure_module`` (``functions``) makes one of
a Flax NNX module, and ``keras`` one of a keras.applications model on the JAX backend."""

from .functions import pure_module

__all__ = ["pure_module"]

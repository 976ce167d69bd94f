"""Keras models as the book's other programs: built fast, called as pure JAX functions.

``keras_application`` builds a ``keras.applications`` model on the JAX backend with its weights
drawn on the host; ``keras_function`` turns a Keras model into ``fn(trainable, non_trainable, x)``,
a pure JAX function to jit, time, count or rewrite (``sepconv.transforms``) like our models.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import jax.numpy as jnp
import numpy as np

__all__ = ["keras_application", "keras_function"]


def keras_application(builder: Callable, seed: int = 0, **kwargs):
    """``builder(weights=None, **kwargs)``, a ``keras.applications`` model on the JAX backend, with each
    weight drawn on the host (NumPy, from ``seed``) from the distribution of Keras's own initializer.

    Keras initializes eagerly, and on the JAX backend each ``uniform``, ``normal`` or
    ``truncated_normal`` draw of a new weight shape compiles a JAX program (0.3 s each on a CPU: 7 to 17 s
    to build a MobileNet). The same distributions drawn with NumPy compile nothing (what
    ``sepconv.models.network.materialize`` does for our models); the values differ from Keras's own,
    which no count or timing depends on.
    """
    from ..compat import replaced
    from ..models.network import _truncated_normal

    try:
        from keras.src.backend.jax import random as keras_random
    except ImportError:  # a Keras laid out otherwise: built as Keras builds it, only slower
        keras_random = None
    import keras

    rng = np.random.default_rng(seed)

    def array(values, dtype):  # in Keras's default float type where no dtype is asked for, as Keras does
        return jnp.asarray(values, dtype or keras.config.floatx())

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return array(rng.standard_normal(shape) * stddev + mean, dtype)

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return array(rng.uniform(minval, maxval, shape), dtype)

    def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):  # Keras truncates at 2 std
        return array(_truncated_normal(rng, int(np.prod(shape))).reshape(shape) * stddev + mean, dtype)

    with contextlib.ExitStack() as stack:
        for name, draw in (("normal", normal), ("uniform", uniform), ("truncated_normal", truncated_normal)):
            stack.enter_context(replaced(keras_random, name, draw))
        return builder(weights=None, **kwargs)


def keras_function(model) -> tuple[Callable, list, list]:
    """``(fn, trainable, non_trainable)`` with ``fn(trainable, non_trainable, x)`` the inference output of
    a Keras model on the JAX backend: a pure JAX function, to jit, time or count like our models."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return (lambda t, n, x: model.stateless_call(t, n, x, training=False)[0]), trainable, non_trainable

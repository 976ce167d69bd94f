"""A training step counted: the gradient of a loss, each operation with its role (``roles``)."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from ..compat import replaced
from .modules import parameter_counts
from .records import CountResult
from .roles import gradient_roles
from .scopes import module_scopes
from .trace import counted, is_array

__all__ = ["count_training"]


def _cross_entropy(logits, labels):
    import jax.numpy as jnp

    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))


def _training_input(x, labels, loss):
    """``(x, labels)`` checked: an array (or shapes) with a batch axis, integer labels of shape
    ``(batch,)`` for the default loss. A ``ValueError`` naming the value otherwise."""
    import jax.numpy as jnp

    if not is_array(x) or not hasattr(x, "shape"):
        raise ValueError(f"x must be an array or a jax.ShapeDtypeStruct with a batch axis, got {type(x).__name__} "
                         f"{_short(x)}")
    if len(x.shape) < 1:
        raise ValueError(f"x must have a batch axis, got shape {tuple(x.shape)}")
    batch = x.shape[0]
    if labels is None:
        return x, jax.ShapeDtypeStruct((batch,), jnp.int32)
    if not is_array(labels) or not hasattr(labels, "shape"):
        raise ValueError(f"labels must be an array or a jax.ShapeDtypeStruct, got {type(labels).__name__} "
                         f"{_short(labels)}")
    if loss is None and (not np.issubdtype(labels.dtype, np.integer) or tuple(labels.shape) != (batch,)):
        raise ValueError(f"labels must be integer class indices of shape ({batch},) for the default cross-entropy "
                         f"loss, got {labels.dtype} of shape {tuple(labels.shape)} (pass loss= for other labels)")
    return x, labels


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def count_training(model, x, labels=None, loss: Callable | None = None) -> CountResult:
    """Count one training step's gradient: ``jax.value_and_grad`` of ``loss(model(x), labels)`` with
    respect to the model's parameters, the model in training mode (BatchNorm on batch statistics).

    Every costed operation carries its role, read from what its operands depend on: ``forward``
    (nothing of the gradient: the forward pass, and its recomputation under ``remat``);
    ``input_grad`` (the gradient flowing back to a layer's input: one operand is the cotangent, the
    other comes from the parameters alone); ``weight_grad`` (a parameter's gradient: cotangent
    and activations). The gradient is ``jax.vjp``'s with its seed an input of the traced program, so
    that what depends on it is known also inside ``remat``, ``scan`` and ``cond``.
    ``peak_activation_bytes`` is the most memory the step's values derived from the data hold at
    once: activations kept for the backward pass, cotangents and gradients. ``loss`` defaults to
    softmax cross-entropy on integer ``labels`` (shape ``(batch,)``).
    """
    from flax import nnx

    if not isinstance(model, nnx.Module):
        raise TypeError(f"count_training needs an nnx.Module, got {type(model).__name__}")
    x, labels = _training_input(x, labels, loss)
    loss = loss or _cross_entropy
    graphdef, state = nnx.split(model)

    def step(state, x, labels, seed):
        merged = nnx.merge(graphdef, state)
        merged.train()
        definition, params, rest = nnx.split(merged, nnx.Param, ...)

        def objective(params):
            # fresh variables for the other state (BatchNorm's statistics), made here, so that the
            # model may update them inside the differentiated function
            m = nnx.merge(definition, params, jax.tree.map(lambda a: a, rest))
            with module_scopes(m):
                return loss(m(x), labels)

        value, pullback = jax.vjp(objective, params)
        return value, pullback(seed.astype(value.dtype))[0]

    seed = jax.ShapeDtypeStruct((), np.float32)
    with _cheap_missing_sharding():
        closed = jax.make_jaxpr(step)(state, x, labels, seed)
    n_state = len(jax.tree_util.tree_leaves(state))
    invars = closed.jaxpr.invars
    data = set(invars[n_state:n_state + 2])
    role_of = gradient_roles(closed.jaxpr, data, set(invars[:n_state]), invars[-1])
    result = counted(closed, data, role_of)
    result.params_trainable, result.params_excluding_norm = parameter_counts(model)
    return result


def _cheap_missing_sharding():
    """While a training step is traced, a tracer asked for its ``sharding`` (Flax does, each time
    BatchNorm stores its running statistics) raises its AttributeError without first searching the
    program traced so far for the error's origin: that search grows with the program, and made
    counting a large EfficientNet's training step take five times as long (38 s instead of 8 s for
    B7). Only the wording of a tracing error changes. Nothing is patched on a JAX without the method.
    """
    try:
        from jax._src.interpreters.partial_eval import DynamicJaxprTracer as tracer
    except ImportError:  # pragma: no cover - depends on JAX internals
        tracer = None
    return replaced(tracer, "_origin_msg", lambda self: "")

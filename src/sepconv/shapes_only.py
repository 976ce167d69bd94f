"""Building a model for its shapes only, fast (``ResolvedNetwork.abstract``).

While a model is built only for its shapes, nothing that only makes values is traced: a layer spec
that occurs again is not constructed again (its first module is split once and each later
occurrence is a copy, ``nnx.merge(..., copy=True)``, about a fiftieth of the time NNX takes to
construct a layer), and kernels start as zeros instead of a traced random draw (one program per
kernel shape, most of a cold start's time). The blocks build through ``construct`` and
``new_layer``; outside ``building_shapes`` both simply construct.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect

from flax import nnx

__all__ = ["building_shapes", "construct", "new_layer"]

_SHAPE_TEMPLATES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("shape_templates", default=None)


@contextlib.contextmanager
def building_shapes():
    """Within this context blocks are built for their shapes only: equal ``ConvSpec`` and
    squeeze-and-excite specs give copies of one construction, and kernels are zeros. Values built
    here are never meant to be read; ``materialize`` draws every array of a runnable model."""
    token = _SHAPE_TEMPLATES.set({})
    try:
        yield
    finally:
        _SHAPE_TEMPLATES.reset(token)


def construct(spec, make):
    """``make()``, or inside ``building_shapes`` a copy of the module already built for an equal ``spec``."""
    templates = _SHAPE_TEMPLATES.get()
    if templates is None:
        return make()
    if spec not in templates:
        module = make()
        templates[spec] = nnx.split(module)
        return module
    return nnx.merge(*templates[spec], copy=True)


def new_layer(cls, *args, **kwargs):
    """``cls(*args, **kwargs)`` (``nnx.Conv`` or ``nnx.Linear``); inside ``building_shapes`` its kernel
    starts as zeros, and a Flax that keeps the initializer on the layer (0.12.0 does) keeps its own
    default there, so that the graph is the one ``nnx.eval_shape`` would give."""
    if _SHAPE_TEMPLATES.get() is None:
        return cls(*args, **kwargs)
    layer = cls(*args, kernel_init=nnx.initializers.zeros, **kwargs)
    if "kernel_init" in vars(layer):
        layer.kernel_init = inspect.signature(cls.__init__).parameters["kernel_init"].default
    return layer

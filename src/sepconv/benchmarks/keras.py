"""Our MobileNets against keras.applications' on the JAX backend, timed interleaved."""

from __future__ import annotations

import os
from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from ..transforms.shifts import depthwise_by_shifts
from ..interop.keras import keras_application, keras_function
from .harness import interleaved, time_ratios

__all__ = ["KERAS_PROGRAMS", "KERAS_RATIOS", "KerasRow", "keras_comparison"]


#: The four programs ``keras_comparison`` times: (label, whose model, depthwise by shifts?).
KERAS_PROGRAMS = (("ours", "ours", False), ("ours, shifts", "ours", True),
                  ("keras", "keras", False), ("keras, shifts", "keras", True))

#: The comparisons it reports, each ``(numerator, denominator)`` of a time ratio: above 1, the denominator is faster.
KERAS_RATIOS = (("keras", "ours"), ("keras", "ours, shifts"), ("keras, shifts", "ours, shifts"))


class KerasRow(TypedDict, total=False):
    """One row of ``keras.json``: a network at a batch; per program its median time over the rounds
    (``seconds``) and the rounds (``times``; runs before ``times`` was kept lack it), per comparison of
    ``KERAS_RATIOS`` the rounds' ratios and their median."""

    model: str
    batch: int
    seconds: dict
    ratio: dict
    ratios: dict
    times: dict


def keras_comparison(batches=(1, 32), rounds: int = 9, repeats: int = 10, batched_repeats: int = 3) -> list[KerasRow]:
    """Our Flax MobileNet v1/v2 against keras.applications on the JAX backend, timed interleaved.

    Four programs per network (``KERAS_PROGRAMS``): each model as traced (depthwise layers
    are XLA grouped convolutions) and with ``depthwise_by_shifts``. Each round times all
    four back to back (median of ``repeats`` calls, ``batched_repeats`` for batches above 1,
    whose calls take seconds on a CPU); ``ratios`` holds, per comparison of ``KERAS_RATIOS``,
    the rounds' time ratios, so machine noise that hits a round hits both sides alike, and
    ``ratio`` their medians (``time_ratios``). ``seconds`` is each program's median over the rounds,
    ``times`` the rounds themselves.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    from ..interop import pure_module
    from ..models import build_model

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"Keras must run on the JAX backend for a fair comparison, got {keras.backend.backend()}")
    rows = []
    for name, ours_name, builder in (("MobileNet v1", "mobilenet_v1", keras.applications.MobileNet),
                                     ("MobileNet v2", "mobilenet_v2", keras.applications.MobileNetV2)):
        keras_fn, trainable, fixed = keras_function(keras_application(builder, input_shape=(224, 224, 3)))
        ours_fn, state = pure_module(build_model(ours_name), flat=True)  # plain lists, as Keras's
        models = {"ours": (ours_fn, (state,)), "keras": (keras_fn, (trainable, fixed))}
        programs = {}
        for label, who, shifts in KERAS_PROGRAMS:
            fn, params = models[who]
            programs[label] = (jax.jit(depthwise_by_shifts(fn) if shifts else fn), params)
        for batch in batches:
            x = jnp.zeros((batch, 224, 224, 3))
            times = interleaved({label: (fn, (*params, x)) for label, (fn, params) in programs.items()}, rounds,
                                repeats if batch == 1 else batched_repeats)
            ratios, medians = time_ratios(times, KERAS_RATIOS)
            rows.append({"model": name, "batch": batch,
                         "seconds": {label: float(np.median(t)) for label, t in times.items()},
                         "ratio": medians, "ratios": ratios, "times": times})
    return rows

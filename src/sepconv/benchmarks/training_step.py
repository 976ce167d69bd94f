"""Chapter 9's training step against a forward pass of the same network, timed interleaved, beside the
counter's prediction from MACs per role."""

from __future__ import annotations

from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from ..transforms.shifts import depthwise_by_shifts
from .harness import interleaved

__all__ = ["TrainingStep", "training_step"]


class TrainingStep(TypedDict):
    """``training.json``: MACs per role, the predicted step / forward ratio, the rounds' times of each
    program and the measured ratio per round."""

    model: str
    batch: int
    resolution: int
    macs: dict
    predicted: float
    times: dict
    measured: list


def training_step(name: str = "mobilenet_v2", batch: int = 16, resolution: int = 224, rounds: int = 5,
                  repeats: int = 3) -> TrainingStep:
    """A training step against a forward pass of the same network, interleaved: the forward pass in
    training mode (batch statistics) and ``jax.value_and_grad`` of the cross-entropy (no optimizer
    update), both with depthwise layers as shifted multiply-adds. ``macs`` holds the counter's MACs
    per role (``count_training``), so ``predicted`` = (forward + input_grad + weight_grad) / forward
    sits beside the ``measured`` time ratios of each round."""
    import optax
    from flax import nnx

    from ..counter import count_training
    from ..models import build_model

    model = build_model(name)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, resolution, resolution, 3)), jnp.float32)
    labels = jnp.arange(batch, dtype=jnp.int32) % 10

    def forward(params, rest, x):
        m = nnx.merge(graphdef, params, rest)
        m.train()
        return m(x)

    shifted = depthwise_by_shifts(forward)

    def loss(params, rest, x, labels):
        return optax.softmax_cross_entropy_with_integer_labels(shifted(params, rest, x), labels).mean()

    programs = {"forward": (jax.jit(shifted), (params, rest, x)),
                "training step": (jax.jit(jax.value_and_grad(loss)), (params, rest, x, labels))}
    times = interleaved(programs, rounds, repeats)
    macs = count_training(model, jax.ShapeDtypeStruct(x.shape, x.dtype)).macs_by_role()
    return TrainingStep(model=name, batch=batch, resolution=resolution, macs=macs,
                        predicted=sum(macs.values()) / macs["forward"], times=times,
                        measured=[t / f for t, f in zip(times["training step"], times["forward"])])

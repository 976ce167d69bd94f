"""A training step timed against a forward pass of the same network, and against PyTorch's step, in
interleaved rounds, beside the counter's prediction from MACs per role."""

from __future__ import annotations

from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from ..transforms.fast_inference import fast_training
from . import allocator
from .harness import SETTLE_S, interleaved, time_ratios

__all__ = ["TrainingStep", "training_step", "step_programs", "TRAINING_RATIOS"]

#: The comparisons of a training row, as (numerator, denominator) labels.
TRAINING_RATIOS = (("training step", "forward"), ("training step", "PyTorch eager"))


class TrainingStep(TypedDict):
    """``training.json``: MACs per role, the predicted step / forward ratio, the rounds' times of each
    program, the measured step / forward ratio per round, per comparison of ``TRAINING_RATIOS`` the
    rounds' ratios and their median, and the allocator setting the process ran under
    (``allocator.state``)."""

    model: str
    batch: int
    resolution: int
    macs: dict
    predicted: float
    times: dict
    measured: list
    ratios: dict
    ratio: dict
    allocator: str


def _torch_step(name: str, batch: int, resolution: int, seed: int = 0):
    """PyTorch's training step of torchvision's ``name`` (eager, channels-last, training mode): gradients
    cleared, cross-entropy forward and backward, no optimizer update; or ``None`` without PyTorch."""
    from .runtimes import TORCHVISION_NETWORKS, _torchvision

    found = _torchvision()
    if found is None or name not in TORCHVISION_NETWORKS:
        return None
    torch, torchvision = found
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)().train().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, resolution, resolution).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(batch) % 10
    loss = torch.nn.CrossEntropyLoss()

    def step(x, labels):
        model.zero_grad(set_to_none=True)
        value = loss(model(x), labels)
        value.backward()
        return value.detach().numpy()

    return step, (x, labels)


def step_programs(model, batch: int, resolution: int, scoped: bool = False) -> dict:
    """``{"forward": (program, args), "training step": (program, args)}`` for the NNX ``model`` on random images
    of ``batch`` x ``resolution`` px: the forward pass in training mode (batch statistics) and
    ``jax.value_and_grad`` of the cross-entropy (no optimizer update), both as
    ``transforms.fast_inference.fast_training`` computes them, jitted; with ``scoped``, every module runs
    inside its named scope (``counting.scopes.module_scopes``, what a profile reads)."""
    import contextlib

    import optax
    from flax import nnx

    from ..counting.scopes import module_scopes

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, resolution, resolution, 3)), jnp.float32)
    labels = jnp.arange(batch, dtype=jnp.int32) % 10

    def forward(params, rest, x):
        m = nnx.merge(graphdef, params, rest)
        m.train()
        with module_scopes(m) if scoped else contextlib.nullcontext():
            return m(x)

    fast = fast_training(forward)

    def loss(params, rest, x, labels):
        return optax.softmax_cross_entropy_with_integer_labels(fast(params, rest, x), labels).mean()

    return {"forward": (jax.jit(fast), (params, rest, x)),
            "training step": (jax.jit(jax.value_and_grad(loss)), (params, rest, x, labels))}


def training_step(name: str = "mobilenet_v2", batch: int = 16, resolution: int = 224, rounds: int = 7,
                  repeats: int = 3, with_torch: bool = True) -> TrainingStep:
    """A training step against a forward pass of the same network, interleaved: the forward pass in
    training mode (batch statistics) and ``jax.value_and_grad`` of the cross-entropy (no optimizer
    update), both as ``transforms.fast_inference.fast_training`` computes them (depthwise layers as shifted
    multiply-adds, 1x1 layers and the stem as matrix products, gradients written out); with PyTorch
    installed and ``with_torch``, torchvision's model's step in the same rounds (``PyTorch eager``).
    ``macs`` holds the counter's MACs per role (``count_training``), so ``predicted`` = (forward +
    input_grad + weight_grad) / forward sits beside the ``measured`` time ratios of each round."""
    from ..counter import count_training
    from ..models import build_model

    model = build_model(name, resolution=resolution)
    programs = step_programs(model, batch, resolution)
    x = programs["forward"][1][-1]
    torch_step = _torch_step(name, batch, resolution) if with_torch else None
    if torch_step is not None:
        programs["PyTorch eager"] = torch_step
    times = interleaved(programs, rounds, repeats, pause=SETTLE_S if torch_step is not None else 0.0)
    ratios, medians = time_ratios(times, TRAINING_RATIOS)
    macs = count_training(model, jax.ShapeDtypeStruct(x.shape, x.dtype)).macs_by_role()
    return TrainingStep(model=name, batch=batch, resolution=resolution, macs=macs,
                        predicted=sum(macs.values()) / macs["forward"], times=times,
                        measured=[t / f for t, f in zip(times["training step"], times["forward"])],
                        ratios=ratios, ratio=medians, allocator=allocator.state())

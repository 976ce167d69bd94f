"""Training small MobileNets on data that ships offline, on one device or many.

Data: scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels,
10 classes), upscaled to ``size x size`` and repeated over 3 channels, split
with a fixed seed. The same ``train_step`` runs on one device or, with the
batch sharded over a ``jax.sharding.Mesh``, data-parallel on many: XLA's SPMD
partitioner inserts the cross-device reductions (BatchNorm's batch statistics
included), so the result is the single-device result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .models.mobilenet_v1 import Conv, DepSepConv, full_conv_twin, resolve_mobilenet_v1

__all__ = ["Digits", "load_digits", "TINY_MOBILENET", "tiny_mobilenet", "tiny_mobilenet_spec", "full_conv_twin", "train_step",
           "eval_step", "fit", "train_seeds", "accuracy", "data_parallel"]

#: A MobileNet v1 for 32x32 inputs: the Table 1 pattern at a tenth of the depth.
TINY_MOBILENET = (
    Conv(3, 1, 32),
    DepSepConv(3, 1, 64),
    DepSepConv(3, 2, 128),
    DepSepConv(3, 1, 128),
    DepSepConv(3, 2, 256),
    DepSepConv(3, 1, 256),
)


def tiny_mobilenet_spec(alpha: float = 1.0, separable: bool = True, resolution: int = 16, act: str = "relu"):
    """The ``ResolvedNetwork`` of ``TINY_MOBILENET`` (or its full-convolution twin) for 10 classes."""
    spec = TINY_MOBILENET if separable else full_conv_twin(TINY_MOBILENET)
    return resolve_mobilenet_v1(spec, alpha, resolution, 10, name="tiny_mobilenet", act=act)


def tiny_mobilenet(alpha: float = 1.0, separable: bool = True, seed: int = 0, act: str = "relu"):
    """A runnable ``TINY_MOBILENET`` (in eval mode; ``fit`` switches it to training mode)."""
    return tiny_mobilenet_spec(alpha, separable, act=act).build(seed)


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(size: int = 32, test_fraction: float = 0.25, seed: int = 0) -> Digits:
    """scikit-learn's digits, ``(N, size, size, 3)`` float32 in [0, 1], split with a fixed permutation."""
    from sklearn.datasets import load_digits as sk_digits

    if size < 8:
        raise ValueError(f"size must be at least the original 8 pixels, got {size}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    data = sk_digits()
    images = data.images.astype(np.float32) / 16.0
    images = np.asarray(jax.image.resize(images[..., None], (len(images), size, size, 1), "linear"))
    images = np.repeat(images, 3, axis=-1)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Digits(images[train], data.target[train].astype(np.int32), images[test], data.target[test].astype(np.int32))


def _loss(model, x, y):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x, y):
    """One step of gradient descent in training mode (BatchNorm uses and updates batch statistics)."""
    loss, grads = nnx.value_and_grad(_loss)(model, x, y)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_step(model: nnx.Module, x, y):
    """Number of correct predictions (the model must be in eval mode)."""
    return jnp.sum(jnp.argmax(model(x), axis=-1) == y)


def accuracy(model: nnx.Module, x, y, batch: int = 256) -> float:
    model.eval()
    correct = sum(int(eval_step(model, x[i:i + batch], y[i:i + batch])) for i in range(0, len(x), batch))
    return correct / len(x)


@functools.lru_cache(maxsize=None)
def _shifted_step(graphdef, learning_rate: float):
    """``(optimizer, step)`` for models of ``graphdef``: one Adam step on a pure function of the
    parameters, with every depthwise convolution as shifted multiply-adds (``fast_depthwise``).
    Cached, so models of one architecture (several seeds) share one compiled step."""
    from .fast_depthwise import depthwise_by_shifts

    def forward(params, rest, x):
        model = nnx.merge(graphdef, params, rest)
        model.train()
        return model(x), nnx.state(model, nnx.Not(nnx.Param))

    shifted = depthwise_by_shifts(forward)
    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(params, rest, opt_state, x, y):
        def loss(params):
            logits, new_rest = shifted(params, rest, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_rest

        (value, rest), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, value

    return optimizer, step


def fit(model: nnx.Module, data: Digits, epochs: int = 5, batch: int = 64, learning_rate: float = 2e-3,
        seed: int = 0) -> list[float]:
    """Train with Adam in training mode (BatchNorm on batch statistics); return each epoch's mean loss.

    The same seed gives the same numbers on one machine. Across CPUs the last digits differ
    (summation order and vector width change rounding), so compare runs with tolerances, over
    several seeds. Depthwise convolutions run as shifted multiply-adds, which on a CPU trains a
    MobileNet several times faster than XLA's grouped convolution and computes the same function.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer, step = _shifted_step(graphdef, learning_rate)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    steps = len(data.x_train) // batch
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(data.x_train))
        values = []
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            params, rest, opt_state, value = step(params, rest, opt_state, data.x_train[idx], data.y_train[idx])
            values.append(value)
        losses.append(float(jnp.mean(jnp.stack(values))))
    nnx.update(model, params, rest)
    model.eval()
    return losses


def train_seeds(variants, data: Digits, seeds=(0, 1, 2), workers: int = 2, **kwargs) -> dict:
    """Train ``tiny_mobilenet(alpha, separable, act=act)`` for every ``(separable, alpha)`` or
    ``(separable, alpha, act)`` of ``variants`` once per seed (initialization and batch order; ``seeds``
    may map each variant to its own seeds), ``workers`` runs at a time in threads (XLA releases the interpreter while it computes, and a
    small network keeps a core busy only part of the time).

    Returns ``{variant: [{"seed", "losses", "accuracy", "model"} per seed]}``; each run's numbers
    are those of a run alone.
    """
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(tuple(variant), seed) for variant in variants
            for seed in (seeds[variant] if isinstance(seeds, dict) else seeds)]

    def run(job):
        (separable, alpha, *act), seed = job
        model = tiny_mobilenet(alpha, separable, seed=seed, act=act[0] if act else "relu")
        losses = fit(model, data, seed=seed, **kwargs)
        return {"seed": seed, "losses": losses, "accuracy": accuracy(model, data.x_test, data.y_test), "model": model}

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(run, jobs))
    out = {}
    for (variant, _), result in zip(jobs, results):
        out.setdefault(variant, []).append(result)
    return out

def data_parallel(model: nnx.Module, optimizer: nnx.Optimizer, devices=None) -> tuple[Mesh, NamedSharding]:
    """Replicate model and optimizer state over a 1-D mesh of ``devices``; return the mesh and the batch sharding.

    Shard each batch with ``jax.device_put(x, batch_sharding)`` and call the
    unchanged ``train_step``: the batch is split over the ``data`` axis.
    """
    devices = jax.devices() if devices is None else devices
    mesh = Mesh(np.asarray(devices), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())
    state = nnx.state((model, optimizer))
    nnx.update((model, optimizer), jax.device_put(state, replicated))
    return mesh, NamedSharding(mesh, PartitionSpec("data"))

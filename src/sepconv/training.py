"""Training small MobileNets on data that ships offline, on one device or many.

Data: scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels,
10 classes), upscaled to ``size x size`` and repeated over 3 channels, split
with a fixed seed (``load_digits``); chapter 5 uses the generated coloured strokes
of ``sepconv.datasets`` instead, and the real-data loaders there. The same ``train_step``
runs on one device or, with the batch sharded over a ``jax.sharding.Mesh``,
data-parallel on many: XLA's SPMD partitioner inserts the cross-device reductions
(BatchNorm's batch statistics included), so the result is the single-device result.

Several seeds: ``fit`` trains one model, ``train_seeds`` runs such fits in threads, and
``fit_together`` trains a batch of models of one architecture as one program (``jax.vmap``
over the models, ``lax.scan`` over the steps). ``BottleneckNet`` is a small MobileNetV2 whose
call switches the variants of the paper's Figure 6 (ReLU6 or linear bottleneck; shortcut between
bottlenecks, between expansions, or none). ``paired_difference`` reports a difference over
paired seeds with its Student-t confidence interval and a sign test, worded at its strength.
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
           "eval_step", "fit", "train_seeds", "accuracy", "data_parallel", "fit_together", "SeedRuns", "BottleneckNet",
           "bottleneck_net", "ABLATIONS", "paired_difference", "PairedDifference"]

#: A MobileNet v1 for 32x32 inputs: the Table 1 pattern at a tenth of the depth.
TINY_MOBILENET = (
    Conv(3, 1, 32),
    DepSepConv(3, 1, 64),
    DepSepConv(3, 2, 128),
    DepSepConv(3, 1, 128),
    DepSepConv(3, 2, 256),
    DepSepConv(3, 1, 256),
)


def tiny_mobilenet_spec(alpha: float = 1.0, separable: bool = True, resolution: int = 16, act: str = "relu",
                        classes: int = 10):
    """The ``ResolvedNetwork`` of ``TINY_MOBILENET`` (or its full-convolution twin) for ``classes`` classes."""
    spec = TINY_MOBILENET if separable else full_conv_twin(TINY_MOBILENET)
    return resolve_mobilenet_v1(spec, alpha, resolution, classes, name="tiny_mobilenet", act=act)


def tiny_mobilenet(alpha: float = 1.0, separable: bool = True, seed: int = 0, act: str = "relu", classes: int = 10):
    """A runnable ``TINY_MOBILENET`` (in eval mode; ``fit`` switches it to training mode)."""
    return tiny_mobilenet_spec(alpha, separable, act=act, classes=classes).build(seed)


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
    parameters, every convolution the way a CPU trains it fast (``transforms.fast_inference.fast_training``:
    depthwise layers as shifted multiply-adds, the others as matrix products, gradients written out).
    Cached, so models of one architecture (several seeds) share one compiled step."""
    from .transforms.fast_inference import fast_training

    def forward(params, rest, x):
        model = nnx.merge(graphdef, params, rest)
        model.train()
        return model(x), nnx.state(model, nnx.Not(nnx.Param))

    shifted = fast_training(forward)
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


# --------------------------------------------------------------------------------------------------
# Several seeds (and variants) trained together: one program for a batch of models
# --------------------------------------------------------------------------------------------------

def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@functools.lru_cache(maxsize=None)
def _batched_programs(graphdef, learning_rate: float):
    """``(optimizer, epoch, predict)`` for a batch of models of ``graphdef`` (leading axis: the model).

    ``epoch(params, rest, opt_state, args, x, y, order)`` runs ``order.shape[0]`` Adam steps in one
    ``lax.scan``; at step ``s`` model ``m`` trains on the examples ``order[s, m]``. Each model's step
    is the single model's step (``jax.vmap``): its own batch statistics, gradient and optimizer state.
    ``args`` are extra per-model inputs of the model's call (the ablation's switches), or ``()``.
    Every convolution runs the way a CPU runs it fast, and a batch of models batches well
    (``transforms.fast_inference.fast_training``)."""

    def forward(params, rest, args, x, training):
        model = nnx.merge(graphdef, params, rest)
        model.train() if training else model.eval()
        return model(x, *args), nnx.state(model, nnx.Not(nnx.Param))

    from .transforms.fast_inference import fast_training

    shifted_train = fast_training(functools.partial(forward, training=True))
    shifted_eval = fast_training(functools.partial(forward, training=False))
    optimizer = optax.adam(learning_rate)

    def step(params, rest, opt_state, args, x, y):
        def loss(params):
            logits, new_rest = shifted_train(params, rest, args, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_rest

        (value, rest), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, value

    steps = jax.vmap(step)

    @jax.jit
    def epoch(params, rest, opt_state, args, x, y, order):
        def body(carry, idx):
            params, rest, opt_state = carry
            params, rest, opt_state, value = steps(params, rest, opt_state, args, x[idx], y[idx])
            return (params, rest, opt_state), value

        (params, rest, opt_state), values = jax.lax.scan(body, (params, rest, opt_state), order)
        return params, rest, opt_state, values.mean(axis=0)

    @jax.jit
    def predict(params, rest, args, x):
        logits = jax.vmap(lambda p, r, a: shifted_eval(p, r, a, x)[0])(params, rest, args)
        return jnp.argmax(logits, axis=-1)

    return optimizer, epoch, predict


@dataclass
class SeedRuns:
    """What ``fit_together`` returns: per model (axis 0) its seed, its test accuracy and its mean
    training loss per epoch (``losses[model, epoch]``), and the trained models (in eval mode)."""
    seeds: np.ndarray
    accuracy: np.ndarray
    losses: np.ndarray
    models: list
    #: test accuracy after the epochs asked for with ``fit_together(..., snapshots=...)``: ``{epoch: accuracy}``
    snapshots: dict = None

    def after(self, epochs: int) -> "SeedRuns":
        """The run as it stood after ``epochs`` (a snapshot): its accuracy then, and the losses of those
        epochs. The same numbers as a run of ``epochs`` epochs alone (the batches of epoch ``e`` do not
        depend on how many follow); ``models`` are the final ones."""
        if not self.snapshots or epochs not in self.snapshots:
            raise ValueError(f"no snapshot after {epochs} epochs; have {sorted(self.snapshots or {})}")
        return SeedRuns(self.seeds, self.snapshots[epochs], self.losses[:, :epochs], self.models,
                        {e: a for e, a in self.snapshots.items() if e <= epochs})


def fit_together(models, data, seeds, epochs: int = 5, batch: int = 32, learning_rate: float = 2e-3,
                 args=None, test_batch: int = 1024, snapshots=()) -> SeedRuns:
    """Train the ``models`` (one architecture: one ``nnx.graphdef``) together, as ``fit`` trains one:
    Adam in training mode, each model's batches in the order ``np.random.default_rng(seed)`` draws
    for its entry of ``seeds``, one compiled program for all of them (``jax.vmap`` over the models
    inside a ``lax.scan`` over the steps of an epoch). Then each model's test accuracy in eval mode.

    ``args``: per-model extra inputs of the model's call (arrays with the models on axis 0), e.g. the
    switches of ``BottleneckNet``; variants that differ only in them train as one batch. On a CPU
    a batch of small models keeps the cores busier than one model at a time; the numbers are each
    model's own, up to the rounding of a batched computation.

    ``snapshots``: epochs (below ``epochs``) after which the test accuracy is also measured, kept in
    ``SeedRuns.snapshots``; ``result.after(e)`` is then the run of ``e`` epochs, without training it again.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(models) or not models:
        raise ValueError(f"need one seed per model, got {len(seeds)} seeds for {len(models)} models")
    if epochs < 1 or batch < 1 or batch > len(data.x_train):
        raise ValueError(f"epochs must be at least 1 and batch between 1 and {len(data.x_train)}, "
                         f"got epochs={epochs}, batch={batch}")
    snapshots = sorted({int(e) for e in snapshots})
    if any(not 1 <= e < epochs for e in snapshots):
        raise ValueError(f"snapshots must be epochs from 1 to {epochs - 1}, got {snapshots}")
    splits = [nnx.split(m, nnx.Param, ...) for m in models]
    graphdef = splits[0][0]
    if any(g != graphdef for g, *_ in splits):
        raise ValueError("fit_together trains models of one architecture; train each architecture separately")
    params, rest = _stack([p for _, p, _ in splits]), _stack([r for _, _, r in splits])
    args = () if args is None else tuple(jnp.asarray(a) for a in args)
    optimizer, epoch, predict = _batched_programs(graphdef, learning_rate)
    opt_state = jax.vmap(optimizer.init)(params)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    rngs = [np.random.default_rng(s) for s in seeds]
    steps = len(data.x_train) // batch
    losses, accuracies = [], {}

    def test_accuracy(params, rest):
        correct = np.zeros(len(models), np.int64)
        for i in range(0, len(data.x_test), test_batch):
            predicted = np.asarray(predict(params, rest, args, jnp.asarray(data.x_test[i:i + test_batch])))
            correct += (predicted == data.y_test[None, i:i + test_batch]).sum(axis=1)
        return correct / len(data.x_test)

    for e in range(1, epochs + 1):
        order = np.stack([rng.permutation(len(data.x_train))[:steps * batch].reshape(steps, batch) for rng in rngs],
                         axis=1)
        params, rest, opt_state, values = epoch(params, rest, opt_state, args, x, y, order)
        losses.append(np.asarray(values))
        if e in snapshots:
            accuracies[e] = test_accuracy(params, rest)
    accuracies[epochs] = test_accuracy(params, rest)
    trained = []
    for k, model in enumerate(models):
        nnx.update(model, jax.tree.map(lambda a: a[k], params), jax.tree.map(lambda a: a[k], rest))
        model.eval()
        trained.append(model)
    return SeedRuns(np.asarray(seeds), accuracies[epochs], np.stack(losses, axis=1), trained, accuracies)


# --------------------------------------------------------------------------------------------------
# MobileNetV2's Figure 6 ablations, at small scale
# --------------------------------------------------------------------------------------------------

#: The switches of ``BottleneckNet``'s variants: ``(ReLU6 after the projection, shortcut between
#: bottlenecks, shortcut between expansions)``, each 0 or 1.
ABLATIONS = {
    "linear bottleneck, shortcut between bottlenecks": (0.0, 1.0, 0.0),
    "ReLU6 bottleneck, shortcut between bottlenecks": (1.0, 1.0, 0.0),
    "linear bottleneck, shortcut between expansions": (0.0, 0.0, 1.0),
    "linear bottleneck, no shortcut": (0.0, 0.0, 0.0),
}


class BottleneckNet(nnx.Module):
    """A small MobileNetV2 for the ablations of its Figure 6 (Sandler et al. 2018).

    A 3x3 stem (``stem`` channels, ReLU6), one inverted residual that halves the resolution
    (expansion ``t``, to ``width`` channels), ``repeats`` inverted residuals at ``width`` channels
    and stride 1, a 1x1 convolution to ``head`` channels (ReLU6), pooling and a linear classifier.
    Each inverted residual is: 1x1 expansion to ``t * width`` channels with BN and ReLU6, 3x3
    depthwise with BN and ReLU6, 1x1 projection with BN: the *bottleneck*.

    The call takes three switches (0 or 1; arrays, so that the variants are inputs of one program):
    ``relu`` applies ReLU6 to each projection's output (the "ReLU6 in the bottleneck" of Figure 6a;
    0 is the paper's linear bottleneck); ``bottleneck`` adds each stride-1 block's input to its
    projection (the paper's shortcut between bottlenecks); ``expansion`` adds the previous stride-1
    block's expanded tensor to this block's (a shortcut between expansions, Figure 6b). The MACs are
    the same for every setting (the additions are not multiply-adds).
    """

    def __init__(self, classes: int = 8, stem: int = 16, width: int = 24, t: int = 4, repeats: int = 3,
                 head: int = 96, *, rngs: nnx.Rngs):
        from .blocks import ClassifierSpec, ConvSpec

        self.stem = ConvSpec(3, stem, 3, 1, act="relu6").build(rngs)
        self.down = nnx.List([ConvSpec(stem, t * stem, 1, act="relu6").build(rngs),
                              ConvSpec(t * stem, t * stem, 3, 2, groups=t * stem, act="relu6").build(rngs),
                              ConvSpec(t * stem, width, 1, act=None).build(rngs)])
        self.blocks = nnx.List([
            nnx.List([ConvSpec(width, t * width, 1, act="relu6").build(rngs),
                      ConvSpec(t * width, t * width, 3, 1, groups=t * width, act="relu6").build(rngs),
                      ConvSpec(t * width, width, 1, act=None).build(rngs)])
            for _ in range(repeats)])
        self.head = ConvSpec(width, head, 1, act="relu6").build(rngs)
        self.classifier = ClassifierSpec(head, classes).build(rngs)

    def __call__(self, x, relu=0.0, bottleneck=1.0, expansion=0.0):
        from .blocks import relu6

        def project(y):
            return relu * relu6(y) + (1 - relu) * y

        x = self.stem(x)
        expand, dw, proj = self.down
        x = project(proj(dw(expand(x))))
        previous = None
        for expand, dw, proj in self.blocks:
            e = expand(x)
            if previous is not None:
                e = e + expansion * previous
            previous = e
            x = project(proj(dw(e))) + bottleneck * x
        return self.classifier(self.head(x))


def bottleneck_net(seed: int = 0, **kwargs) -> BottleneckNet:
    """A ``BottleneckNet`` (in eval mode), its parameters drawn on the host from ``seed`` (``materialize``)."""
    from .models.network import materialize

    abstract = nnx.eval_shape(lambda: BottleneckNet(**kwargs, rngs=nnx.Rngs(0)))
    model = materialize(abstract, seed)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------
# A difference over seeds, with its uncertainty
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over paired runs (same seed: same batch order): the mean difference, its two-sided
    Student-t confidence interval (``n - 1`` degrees of freedom), how many pairs favour ``a`` and ``b``,
    and the two-sided sign test's p-value (ties dropped)."""
    mean: float
    low: float
    high: float
    confidence: float
    n: int
    a_wins: int
    b_wins: int
    sign_p: float

    @property
    def resolved(self) -> bool:
        """Whether the confidence interval excludes 0."""
        return self.low > 0 or self.high < 0

    def words(self, a: str, b: str, scale: float = 100.0, unit: str = " points") -> str:
        """The result at the strength the data supports, e.g. ``"a is ahead of b by 3.1 points (95% CI
        1.2 to 5.0; ahead in 5 of 5 seeds, sign test p = 0.062)"`` or ``"a and b cannot be told apart
        ..."``."""
        ci = (f"{self.confidence:.0%} CI {scale * self.low:+.1f} to {scale * self.high:+.1f}{unit}; "
              f"{a} ahead in {self.a_wins} of {self.n} seeds, sign test p = {self.sign_p:.2g}")
        if not self.resolved:
            return f"{a} and {b} cannot be told apart: {a} minus {b} = {scale * self.mean:+.1f}{unit} ({ci})"
        side = "ahead of" if self.mean > 0 else "behind"
        return f"{a} is {side} {b} by {scale * abs(self.mean):.1f}{unit} ({ci})"


def paired_difference(a, b, confidence: float = 0.95) -> PairedDifference:
    """The paired difference ``a - b`` of two sequences of results (one entry per seed), see
    ``PairedDifference``. At least two pairs."""
    from scipy import stats

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two equal-length sequences of at least 2 results, got shapes {a.shape} and {b.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    d = a - b
    n = len(d)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    return PairedDifference(float(d.mean()), float(d.mean() - half), float(d.mean() + half), confidence, n,
                            wins, losses, p)

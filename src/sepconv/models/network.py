"""A resolved network: the blocks a paper's table becomes, and everything read from them.

``ResolvedNetwork`` is the single interpreter's output (each network's ``resolve`` function
writes it): the typed blocks of ``sepconv.blocks`` in order and the classifier head, with the
resolution they were resolved at. From it, and only from it:

* ``cost()``: the closed-form ``NetworkCost``, layer by layer;
* ``module(rngs)``: the Flax NNX ``Network`` (``features`` then ``head``), with Flax's initializers;
* ``abstract()``: the same module with shapes and no arrays (what ``nnx.eval_shape`` gives), for counting;
* ``build(seed)``: a runnable model, in eval mode, initialized by ``materialize`` in well under a
  second (no per-layer compilation);
* ``table()``: the network printed like the paper's table.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..blocks import Block, ClassifierSpec
from ..compat import replaced, set_variable_value, variable_value
from ..cost import NetworkCost
from ..shapes_only import building_shapes

__all__ = ["ResolvedNetwork", "Network", "materialize"]


@dataclass(frozen=True)
class ResolvedNetwork:
    """A network as concrete blocks. ``options`` records the choices that produced it."""

    name: str
    resolution: int
    blocks: tuple
    head: ClassifierSpec
    options: tuple = ()

    def __post_init__(self):
        if not all(isinstance(b, Block) for b in self.blocks):
            raise TypeError("every block of a ResolvedNetwork must be a block spec of sepconv.blocks")

    def sizes(self) -> list[tuple[int, int]]:
        """``(input size, output size)`` of every block at ``resolution``."""
        out, size = [], self.resolution
        for i, block in enumerate(self.blocks):
            _, new = block.layer_costs(size, f"features.{i}")
            out.append((size, new))
            size = new
        return out

    def cost(self) -> NetworkCost:
        """Closed-form cost of every parameterized layer, named by its module path."""
        layers, size = [], self.resolution
        for i, block in enumerate(self.blocks):
            block_layers, size = block.layer_costs(size, f"features.{i}")
            layers += block_layers
        layers += self.head.layer_costs(size, "head")[0]
        return NetworkCost(tuple(layers))

    def module(self, rngs: nnx.Rngs) -> "Network":
        return Network(self, rngs=rngs)

    def abstract(self) -> "Network":
        """The module in eval mode with ``jax.ShapeDtypeStruct`` in place of every array: nothing is allocated.

        What ``nnx.eval_shape`` gives, built faster: the module is constructed once under
        ``jax.eval_shape``, split there, and its state's shapes merged back outside (one split and one
        merge instead of ``nnx.eval_shape``'s extraction contexts, half the time for a large
        EfficientNet); repeated layers are copies and kernels zeros (``shapes_only.building_shapes``).
        """
        parts = []

        def construct():
            model = Network(self, rngs=nnx.Rngs(0))
            model.eval()
            parts.extend(nnx.split(model))

        with _constant_keys(), building_shapes():
            jax.eval_shape(construct)
        graphdef, state = parts
        # the shapes are read outside the trace, so that the variables belong to the caller's
        # context (``materialize`` fills them in place)
        return nnx.merge(graphdef, jax.tree.map(lambda t: jax.ShapeDtypeStruct(t.shape, t.dtype), state))

    def build(self, seed: int = 0) -> "Network":
        """A runnable model in eval mode, its parameters drawn by ``materialize`` from ``seed``."""
        return materialize(self.abstract(), seed)

    def table(self) -> str:
        """One line per block: input size and channels, the operator, the output channels."""
        lines = [f"{'input':>14}  {'operator':<44}{'out':>6}"]
        channels = 3
        for block, (size, _) in zip(self.blocks, self.sizes()):
            c_out = getattr(block, "c_out", getattr(block, "dim", channels))
            lines.append(f"{f'{size}^2 x {channels}':>14}  {block.describe():<44}{c_out:>6}")
            channels = c_out
        lines.append(f"{'1^2 x ' + str(self.head.c_in):>14}  {self.head.describe():<44}{self.head.classes:>6}")
        return "\n".join(lines)


class Network(nnx.Module):
    """``head(features[-1](... features[0](x)))``: input ``(B, H, W, 3)``, output logits ``(B, classes)``."""

    def __init__(self, spec: ResolvedNetwork, *, rngs: nnx.Rngs):
        self.features = nnx.List([block.build(rngs) for block in spec.blocks])
        self.head = spec.head.build(rngs)
        self.spec = spec

    def __call__(self, x):
        channels = getattr(self.spec.blocks[0], "c_in", 3) if self.spec.blocks else self.spec.head.c_in
        if len(getattr(x, "shape", ())) != 4 or x.shape[-1] != channels:
            raise ValueError(f"{self.spec.name} takes images of shape (batch, height, width, {channels}), "
                             f"got shape {tuple(getattr(x, 'shape', ()))}")
        for block in self.features:
            x = block(x)
        return self.head(x)


def _constant_keys():
    """While only shapes are traced, let every RNG stream return one fixed key.

    No value of an abstract model is ever used, and deriving a fresh key per parameter (a traced
    ``fold_in`` each) takes most of the tracing time. Only an optimization: on a Flax without
    ``RngStream.__call__`` nothing is patched.
    """
    stream = getattr(nnx.rnglib, "RngStream", None)
    return replaced(stream, "__call__", lambda self, *args, **kwargs: jax.random.key(0))


# ----------------------------------------------------------------------------------------------------
# Fast initialization from shapes
# ----------------------------------------------------------------------------------------------------

_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def _truncated_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` standard normal draws, redrawing those outside ``[-2, 2]``."""
    values = rng.standard_normal(n, dtype=np.float32)
    outside = np.flatnonzero(np.abs(values) > 2)
    while outside.size:
        values[outside] = rng.standard_normal(outside.size, dtype=np.float32)
        outside = outside[np.abs(values[outside]) > 2]
    return values


def _lecun_normal(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """LeCun normal, Flax's default for Conv and Linear kernels: std ``1/sqrt(fan_in)``, truncated at 2 std
    (``fan_in`` = the product of all but the last dimension)."""
    fan_in = int(np.prod(shape[:-1]))
    values = _truncated_normal(rng, int(np.prod(shape)))
    values *= np.float32(np.sqrt(1.0 / fan_in) / _TRUNCATED_NORMAL_STD)
    return values.reshape(shape).astype(dtype, copy=False)


#: What ``_initial_value`` gives for a kernel: drawn afterwards, in a thread (``_lecun_normal``).
_KERNEL = object()


def _initial_value(owner, name: str, variable, key_of):
    """The value one variable starts with (``_KERNEL`` for a kernel), ``None`` where no rule applies."""
    value = variable_value(variable)
    shape, dtype = value.shape, value.dtype
    if isinstance(variable, nnx.Param):
        if name == "kernel":
            return _KERNEL
        if name == "bias":
            return np.zeros(shape, dtype)
        if name == "scale":
            return np.ones(shape, dtype)
        if name == "gamma" and getattr(owner, "layer_scale", None) is not None:
            return np.full(shape, owner.layer_scale, dtype)
    elif isinstance(variable, nnx.BatchStat):
        if name == "mean":
            return np.zeros(shape, dtype)
        if name == "var":
            return np.ones(shape, dtype)
    elif isinstance(variable, nnx.RngKey):
        return key_of()
    elif isinstance(variable, nnx.RngCount):
        return np.zeros(shape, dtype)
    return None


def materialize(abstract: nnx.Module, seed: int = 0) -> nnx.Module:
    """Give an abstract module (``nnx.eval_shape``) real parameters, drawn on the host with NumPy; the
    module's variables are filled in place and the module returned.

    The rules are Flax's defaults: convolution and linear kernels LeCun normal (truncated at two
    standard deviations), biases 0, normalization scales 1, running means 0 and variances 1,
    a layer scale (ConvNeXt's, MobileNetV4's) at its constant; RNG streams get keys folded from ``seed``. Drawing on
    the host compiles nothing, which is what makes ``build`` fast: initializing a MobileNet with
    Flax's own (JAX) initializers compiles one program per distinct parameter shape, several
    seconds on a CPU. Each kernel has its own generator, seeded by ``seed`` and the kernel's path
    (``np.random.default_rng([seed, crc32(path)])``), so the kernels are drawn in threads (NumPy
    releases the interpreter while it fills an array) and a kernel's values depend only on the seed
    and where it sits, not on the order of drawing or on the other layers. Same seed, same numbers on
    every machine. A variable no rule covers is an error.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .catalog import SEED

    seed = SEED.check(seed)
    nodes = list(nnx.iter_graph(abstract))
    owners = {path: node for path, node in nodes if isinstance(node, nnx.Module)}
    base_key = jax.random.key(seed)
    variables, values, jobs = [], [], []
    for path, variable in nodes:
        if not isinstance(variable, nnx.Variable):
            continue
        name = ".".join(map(str, path))
        where = zlib.crc32(name.encode())
        value = _initial_value(owners.get(path[:-1]), path[-1], variable, lambda: jax.random.fold_in(base_key, where))
        if value is None:
            raise ValueError(f"no initialization rule for {type(variable).__name__} "
                             f"{name}; materialize knows the variables of sepconv's blocks")
        if value is _KERNEL:
            array = variable_value(variable)
            jobs.append((len(values), array.shape, array.dtype, np.random.default_rng([seed, where])))
        variables.append(variable)
        values.append(value)
    with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        drawn = pool.map(lambda job: _lecun_normal(*job[1:]), jobs)
        for (index, *_), value in zip(jobs, drawn):
            values[index] = value
    for variable, value in zip(variables, jax.device_put(values)):
        set_variable_value(variable, value)
    return abstract

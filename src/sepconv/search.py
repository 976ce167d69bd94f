"""Hardware-aware architecture search at the scale of one chapter (MnasNet, FBNet), on a small space.

The space (``SPACE``): a MobileNetV2-like network for ``RESOLUTION``-pixel inputs whose five stages have one
inverted residual each; per stage the search picks a depthwise kernel ``k`` in {3, 5, 7} and an
expansion ratio ``e`` in {3, 6} (``CHOICES``): ``6^5 = 7776`` networks. The pieces:

* ``network(choices)``: the ``ResolvedNetwork`` of one point of the space;
* a latency lookup table (FBNet, Wu et al. 2019, sec. 3.2): the latency of every block choice at its
  stage's shape, plus the fixed stem and head, either *measured* on this machine (``measure_table``,
  interleaved rounds, ``sepconv.bench.interleaved``) or *modelled* by the roofline of chapter 7
  (``roofline_table``: ``sum max(2 MACs / P, bytes / B)`` over the block's layers, for peaks ``P``, ``B``);
  a network's predicted latency is the sum of its entries (``predict``);
* MnasNet's reward (Tan et al. 2019, eq. 2): ``ACC(m) x (LAT(m) / T)^w``, with ``w = alpha`` when
  ``LAT <= T`` and ``beta`` otherwise (``mnasnet_reward``);
* ``search``: every network of the space scored, best first. The space is small enough to enumerate;
  MnasNet needed reinforcement learning and FBNet a differentiable relaxation because theirs are not.

No accuracy is measured here: ``capacity_proxy`` (the logarithm of the network's MACs) stands in for it,
and says so wherever it is used.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .blocks import ClassifierSpec, ConvSpec, MBConvSpec
from .models.network import ResolvedNetwork

__all__ = ["CHOICES", "STAGES", "RESOLUTION", "Stage", "network", "stage_inputs", "roofline_table", "measure_table",
           "predict", "capacity_proxy", "mnasnet_reward", "search", "SearchResult"]

#: (kernel, expansion) choices of every stage.
CHOICES = tuple((k, e) for k in (3, 5, 7) for e in (3, 6))
RESOLUTION = 128
STEM = 16
HEAD = 640


@dataclass(frozen=True)
class Stage:
    """One searchable stage: one inverted residual to ``c`` channels with stride ``s``."""
    c: int
    s: int


#: MobileNetV2's stage widths and strides (its Table 2), one block per stage.
STAGES = (Stage(24, 2), Stage(40, 2), Stage(80, 2), Stage(112, 1), Stage(160, 2))


def _check(choices) -> tuple:
    choices = tuple(tuple(c) for c in choices)
    if len(choices) != len(STAGES) or any(c not in CHOICES for c in choices):
        raise ValueError(f"choices must be {len(STAGES)} (kernel, expansion) pairs from {list(CHOICES)}, got {choices!r}")
    return choices


def stage_inputs(resolution: int = RESOLUTION) -> list[tuple[int, int]]:
    """``(input size, input channels)`` of every stage's block."""
    size, c, out = -(-resolution // 2), STEM, []
    for stage in STAGES:
        out.append((size, c))
        size, c = -(-size // stage.s), stage.c
    return out


def block(stage: int, choice: tuple, resolution: int = RESOLUTION) -> MBConvSpec:
    """The inverted residual of ``stage`` with ``choice = (kernel, expansion)``."""
    k, e = choice
    _, c_in = stage_inputs(resolution)[stage]
    return MBConvSpec(c_in, c_in * e, STAGES[stage].c, k, STAGES[stage].s, act="relu6")


def network(choices, resolution: int = RESOLUTION, classes: int = 10) -> ResolvedNetwork:
    """Stem (3x3, stride 2, 16 channels), the five chosen blocks, a 1x1 convolution to 640, the classifier."""
    choices = _check(choices)
    blocks = [ConvSpec(3, STEM, 3, 2, act="relu6")]
    blocks += [block(i, c, resolution) for i, c in enumerate(choices)]
    blocks.append(ConvSpec(STAGES[-1].c, HEAD, 1, act="relu6"))
    return ResolvedNetwork("search_space", resolution, tuple(blocks), ClassifierSpec(HEAD, classes))


def _fixed_parts(resolution: int, classes: int):
    """The stem, and the head (last 1x1 convolution, pooling, classifier) as one program, with their inputs' shapes."""
    last = stage_inputs(resolution)[-1][0]
    last = -(-last // STAGES[-1].s)
    stem = ConvSpec(3, STEM, 3, 2, act="relu6")
    head = ResolvedNetwork("head", last, (ConvSpec(STAGES[-1].c, HEAD, 1, act="relu6"),), ClassifierSpec(HEAD, classes))
    return {"stem": (stem, (resolution, 3)), "head": (head, (last, STAGES[-1].c))}


def _entries(resolution: int, classes: int) -> dict:
    """Every entry of the table as ``(block spec or head network, input size, input channels)``."""
    entries = {name: (spec, size, c) for name, (spec, (size, c)) in _fixed_parts(resolution, classes).items()}
    for i, (size, c) in enumerate(stage_inputs(resolution)):
        for choice in CHOICES:
            entries[(i, choice)] = (block(i, choice, resolution), size, c)
    return entries


def _runnable(spec):
    """A block spec's module with parameters drawn on the host (``materialize``: nothing compiled), eval mode."""
    from flax import nnx

    from .models.network import materialize

    if isinstance(spec, ResolvedNetwork):
        return spec.build(0)
    module = materialize(nnx.eval_shape(lambda: spec.build(nnx.Rngs(0))), 0)
    module.eval()
    return module


def roofline_table(peaks: dict, resolution: int = RESOLUTION, classes: int = 10) -> dict:
    """The lookup table the roofline predicts for a device with ``peaks`` (``peak_flops`` FLOP/s,
    ``peak_bandwidth`` byte/s): seconds per entry, ``sum max(2 MACs / P, bytes / B)`` over its layers
    (``sepconv.bench.roofline_seconds``), each layer's input, weights and output moved once in float32,
    read from the blocks' closed-form costs."""
    from .bench import roofline_seconds

    table = {}
    for key, (spec, size, _) in _entries(resolution, classes).items():
        layers = spec.cost().layers if isinstance(spec, ResolvedNetwork) else spec.layer_costs(size, "")[0]
        ops = [(l.macs, 4 * (l.input_activations + l.params + l.output_activations)) for l in layers
               if l.kind in ("conv", "dense")]
        table[key] = roofline_seconds(ops, peaks)
    return table


def measure_table(resolution: int = RESOLUTION, classes: int = 10, rounds: int = 3, repeats: int = 5) -> dict:
    """The lookup table measured on this machine: for each stage its six choices timed in interleaved rounds
    (``bench.interleaved``), the stem and the head likewise; each entry the median over rounds, in seconds.
    Returns ``{"seconds": table, "rounds": {entry: [median of each round]}}``."""
    import jax
    import jax.numpy as jnp

    from .bench import interleaved
    from .interop import pure_module

    entries = _entries(resolution, classes)
    groups = [["stem", "head"]] + [[(i, c) for c in CHOICES] for i in range(len(STAGES))]
    rounds_out = {}
    for keys in groups:
        programs = {}
        for key in keys:
            spec, size, c = entries[key]
            fn, state = pure_module(_runnable(spec), flat=True)
            programs[key] = (jax.jit(fn), (state, jnp.ones((1, size, size, c), jnp.float32)))
        rounds_out.update(interleaved(programs, rounds, repeats, warmup=2))
    return {"seconds": {k: float(np.median(v)) for k, v in rounds_out.items()}, "rounds": rounds_out}


def predict(table: dict, choices) -> float:
    """A network's latency as the lookup table predicts it: stem + its five blocks + head."""
    choices = _check(choices)
    return table["stem"] + sum(table[(i, c)] for i, c in enumerate(choices)) + table["head"]


def capacity_proxy(choices, resolution: int = RESOLUTION) -> float:
    """NOT an accuracy: ``log10`` of the network's MACs, standing in for accuracy in the chapter's search
    (within one family, more MACs have bought accuracy: chapters 3 and 8)."""
    return math.log10(network(choices, resolution).cost().macs)


def mnasnet_reward(accuracy: float, latency: float, target: float, alpha: float = -0.07,
                   beta: float = -0.07) -> float:
    """MnasNet eq. 2: ``accuracy * (latency / target) ** w``, ``w = alpha`` if ``latency <= target`` else ``beta``.

    ``alpha = beta = -0.07`` is the paper's soft constraint (twice the latency costs about 5% of the
    reward); ``alpha = 0, beta = -1`` its hard one (no gain from being faster than the target, a steep
    penalty above it)."""
    for name, value in (("accuracy", accuracy), ("latency", latency), ("target", target)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    w = alpha if latency <= target else beta
    return accuracy * (latency / target) ** w


@dataclass(frozen=True)
class SearchResult:
    choices: tuple
    latency: float
    accuracy_proxy: float
    reward: float


def search(latency_table: dict, target: float, alpha: float = -0.07, beta: float = -0.07,
           resolution: int = RESOLUTION) -> list[SearchResult]:
    """Every network of the space, scored by MnasNet's reward with ``capacity_proxy`` as its accuracy and
    the table's predicted latency; best first (ties broken by the choices, so the order is reproducible)."""
    proxies = {}
    for i, (size, c) in enumerate(stage_inputs(resolution)):
        for choice in CHOICES:
            proxies[(i, choice)] = block(i, choice, resolution).layer_costs(size, "")
    fixed = network(CHOICES[:1] * len(STAGES), resolution).cost()
    fixed_macs = sum(l.macs for l in fixed.layers if not l.name.startswith(tuple(f"features.{i + 1}."
                                                                                   for i in range(len(STAGES)))))
    block_macs = {key: sum(l.macs for l in layers) for key, (layers, _) in proxies.items()}
    results = []
    for choices in itertools.product(CHOICES, repeat=len(STAGES)):
        macs = fixed_macs + sum(block_macs[(i, c)] for i, c in enumerate(choices))
        accuracy = math.log10(macs)
        latency = predict(latency_table, choices)
        results.append(SearchResult(choices, latency, accuracy, mnasnet_reward(accuracy, latency, target, alpha, beta)))
    results.sort(key=lambda r: (-r.reward, r.choices))
    return results

"""ShuffleNet v2's four guideline experiments (its Tables 1-4), rebuilt in JAX and timed interleaved.
MACs and memory accesses come from ``sepconv.cost`` (``pointwise_conv_cost``, ``grouped_conv_cost``,
``memory_access_cost_1x1``: ShuffleNet v2 sec. 2)."""

from __future__ import annotations

import math
from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from ..cost import grouped_conv_cost, memory_access_cost_1x1, pointwise_conv_cost
from .harness import interleaved
from .layers import conv_nhwc as _conv

__all__ = ["GuidelineRow", "guideline_experiments"]


class GuidelineRow(TypedDict, total=False):
    """One variant of a guideline experiment: what defines it (G1 ``ratio``, ``c1``, ``c2``; G2 ``groups``,
    ``channels``, ``control``; G3 ``structure``; G4 ``relu``, ``shortcut``), its ``macs`` and (G1, G2)
    ``memory_accesses``, the median time of each round (``times``) and their median (``median_s``)."""

    ratio: str
    c1: int
    c2: int
    groups: int
    channels: int
    control: bool
    structure: str
    relu: bool
    shortcut: bool
    macs: int
    memory_accesses: int
    times: list
    median_s: float


def guideline_experiments(repeats: int = 20, size: int = 28, blocks: int = 10,
                          rounds: int = 1) -> dict[str, list[GuidelineRow]]:
    """ShuffleNet v2's four guideline experiments (its Tables 1-4), rebuilt in JAX at ``size x size``.

    Each network stacks ``blocks`` identical units; within an experiment all
    variants have (nearly) the same MACs. Reported: MACs, ShuffleNet v2 MAC
    (memory access cost, values) and the time of one batch-1 forward pass. The
    variants of one experiment are timed in ``rounds`` interleaved rounds
    (``interleaved``): ``times`` holds the median of ``repeats`` calls per round,
    ``median_s`` their median, so two variants compare round by round
    (``paired_comparison``). G2 holds one control beside its four rows: the two
    groups of ``g = 2`` computed as two dense convolutions on the two halves of
    the channels and concatenated (``"control": True``): the same MACs and values
    moved, without XLA's grouped-convolution path.
    """
    rng = np.random.default_rng(0)

    def weights(shape):  # host draws: jax.random would compile a program per shape
        return jnp.asarray(0.01 * rng.standard_normal(shape, dtype=np.float32))

    def timed(rows, programs):
        times = interleaved({i: (jax.jit(fn), args) for i, (fn, args) in enumerate(programs)}, rounds, repeats)
        for i, row in enumerate(rows):
            row["times"] = times[i]
            row["median_s"] = float(np.median(times[i]))
        return rows

    def pw(x, w, groups=1):
        return _conv(x, w, groups)

    out = {}
    # G1: equal channel widths minimize memory access cost (c1 * c2 fixed)
    g1, programs = [], []
    for ratio in (1, 2, 6, 12):
        c1 = int(round(math.sqrt(128 * 128 / ratio)))
        c2 = ratio * c1
        ws = [weights((1, 1, c1, c2)), weights((1, 1, c2, c1))]
        x = jnp.ones((1, size, size, c1))
        programs.append((lambda x, ws: [x := pw(pw(x, ws[0]), ws[1]) for _ in range(blocks)][-1], (x, ws)))
        macs = blocks * (pointwise_conv_cost(size, size, c1, c2).macs + pointwise_conv_cost(size, size, c2, c1).macs)
        mac = blocks * (memory_access_cost_1x1(size, size, c1, c2) + memory_access_cost_1x1(size, size, c2, c1))
        g1.append({"ratio": f"1:{ratio}", "c1": c1, "c2": c2, "macs": macs, "memory_accesses": mac})
    out["G1"] = timed(g1, programs)
    # G2: group convolution increases memory access cost (c^2 / g fixed); the control computes g = 2 densely
    g2, programs = [], []
    for g, control in ((1, False), (2, False), (2, True), (4, False), (8, False)):
        c = int(round(128 * math.sqrt(g) / g)) * g
        w = weights((1, 1, c // g, c))
        x = jnp.ones((1, size, size, c))
        if control:
            halves = (w[..., :c // 2], w[..., c // 2:])
            fn = lambda x, halves, c=c: [x := jnp.concatenate([pw(x[..., :c // 2], halves[0]), pw(x[..., c // 2:], halves[1])],
                                                              axis=-1) for _ in range(blocks)][-1]
            programs.append((fn, (x, halves)))
        else:
            programs.append((lambda x, w, g=g: [x := pw(x, w, g) for _ in range(blocks)][-1], (x, w)))
        g2.append({"groups": g, "channels": c, "macs": blocks * grouped_conv_cost(size, size, c, c, g, kernel=1).macs,
                   "memory_accesses": blocks * memory_access_cost_1x1(size, size, c, c, g), "control": control})
    out["G2"] = timed(g2, programs)
    # G3: fragmentation reduces parallelism (same MACs in 1, 2 or 4 pieces, in series or in parallel)
    g3, programs, c = [], [], 128
    for name, pieces, parallel in (("1-fragment", 1, False), ("2-fragment-series", 2, False),
                                   ("4-fragment-series", 4, False), ("2-fragment-parallel", 2, True),
                                   ("4-fragment-parallel", 4, True)):
        width = c if parallel else int(round(c / math.sqrt(pieces)))
        per = c // pieces if parallel else width
        ws = [weights((1, 1, c if parallel else width, per)) for _ in range(pieces)]
        x = jnp.ones((1, size, size, c if parallel else width))

        def fn(x, ws, parallel=parallel):
            for _ in range(blocks):
                if parallel:
                    x = jnp.concatenate([pw(x, w) for w in ws], axis=-1)
                else:
                    for w in ws:
                        x = pw(x, w)
            return x

        programs.append((fn, (x, ws)))
        g3.append({"structure": name,
                   "macs": blocks * sum(pointwise_conv_cost(size, size, w.shape[2], w.shape[3]).macs for w in ws)})
    out["G3"] = timed(g3, programs)
    # G4: element-wise operations (ReLU, shortcut) in a ResNet bottleneck are not free
    g4, programs, c = [], [], 256
    ws = [weights((1, 1, c, c // 4)), weights((3, 3, c // 4, c // 4)), weights((1, 1, c // 4, c))]
    x = jnp.ones((1, size, size, c))
    for relu in (True, False):
        for shortcut in (True, False):
            def fn(x, ws, relu=relu, shortcut=shortcut):
                act = jax.nn.relu if relu else (lambda v: v)
                for _ in range(blocks):
                    y = act(pw(act(_conv(act(pw(x, ws[0])), ws[1])), ws[2]))
                    x = x + y if shortcut else y
                return x
            programs.append((fn, (x, ws)))
            g4.append({"relu": relu, "shortcut": shortcut})
    out["G4"] = timed(g4, programs)
    return out

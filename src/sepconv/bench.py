"""Measured latency: the timing harness and the experiments of the latency chapter.

Timing rules (``time_call``): the function is compiled and run ``warmup`` times
before any measurement (compilation excluded), every call ends with
``block_until_ready`` (JAX dispatches asynchronously), and ``repeats`` calls
are timed one by one; we report the median and the 10th/90th percentiles.
Results are saved as JSON under a folder named after the device. ``run_all``
writes to a folder of the user's (``user_results_root()``, under
``$XDG_DATA_HOME``), never into the package: the results the book shows ship in
``sepconv/data/benchmarks`` (``SHIPPED_RESULTS``), one folder per device, and the
chapters read them explicitly with ``load_results(device)``.

Nothing here asserts a speed: benchmarks print ratios against a peer measured
in the same run, on the same machine, interleaved.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .fast_depthwise import depthwise_by_shifts

__all__ = ["Timing", "time_call", "device_info", "measure_peaks", "layer_benchmarks", "SHIFTS_LAYER",
           "guideline_experiments", "model_latencies", "keras_application", "keras_function", "keras_comparison", "KERAS_PROGRAMS",
           "KERAS_RATIOS", "fused_convolutions", "run_all", "interleaved", "roofline_seconds", "successor_blocks", "load_results", "results_dir", "SHIPPED_RESULTS",
           "user_results_root", "device_run", "DEVICE_EXPERIMENTS", "DEVICE_SIZES", "stored_devices"]


@dataclass
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    repeats: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: the relative spread of the measurements."""
        return (self.p90_s - self.p10_s) / self.median_s


def time_call(fn: Callable, *args, warmup: int = 3, repeats: int = 30) -> Timing:
    """Median and spread of ``fn(*args)`` wall time; ``fn`` should be jitted (compiled on the first warm-up call)."""
    for _ in range(max(warmup, 1)):
        jax.block_until_ready(fn(*args))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        samples.append(time.perf_counter() - start)
    p10, median, p90 = np.percentile(samples, [10, 50, 90])
    return Timing(float(median), float(p10), float(p90), repeats)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict:
    """The device and the software versions a measurement was taken with."""
    import flax
    import jaxlib

    device = jax.devices()[0]
    return {"platform": device.platform, "device_kind": device.device_kind, "device_count": len(jax.devices()),
            "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__, "python": platform.python_version(),
            "machine": platform.machine()}


#: The measurements shipped with the package, which the book's chapters show.
SHIPPED_RESULTS = Path(__file__).parent / "data" / "benchmarks"


def user_results_root() -> Path:
    """Where ``python -m sepconv bench`` writes by default: ``$XDG_DATA_HOME/sepconv/benchmarks``
    (``~/.local/share/sepconv/benchmarks`` when the variable is unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sepconv" / "benchmarks"


def results_dir(info: dict | None = None, root: Path | None = None) -> Path:
    """``<root>/<platform>-<device kind>``; root defaults to ``user_results_root()``."""
    info = info or device_info()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{info['platform']}-{info['device_kind']}".lower()).strip("-")
    return (root or user_results_root()) / slug


def measure_peaks(size: int = 2048, megabytes: int = 256, repeats: int = 20) -> dict:
    """Achievable compute (a large float32 matmul) and memory bandwidth (``y = x + 1`` over a large array)."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    t = time_call(matmul, a, repeats=repeats)
    flops = 2 * size ** 3 / t.median_s
    x = jnp.ones((megabytes * 2 ** 20 // 4,), jnp.float32)
    add = jax.jit(lambda x: x + 1.0)
    t2 = time_call(add, x, repeats=repeats)
    bandwidth = 2 * x.nbytes / t2.median_s  # read once, write once
    return {"peak_flops": flops, "peak_bandwidth": bandwidth, "matmul_size": size, "stream_bytes": int(x.nbytes)}


#: MobileNet v1 layer shapes at 224x224: (spatial size, channels) of the separable layers.
MOBILENET_SHAPES = ((112, 32), (56, 128), (28, 256), (14, 512), (7, 1024))


def _conv(x, w, groups=1):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=groups)


#: The layer name of a depthwise convolution computed by ``fast_depthwise.depthwise_by_shifts``.
SHIFTS_LAYER = "depthwise 3x3, shifts"


def layer_benchmarks(peaks: dict, batch: int = 1, repeats: int = 20, shapes=MOBILENET_SHAPES,
                     dtype=jnp.float32) -> list[dict]:
    """Standard 3x3, depthwise 3x3 (as XLA's grouped convolution and as shifted multiply-adds) and
    pointwise convolutions at MobileNet shapes (``(size, channels)``): time, GFLOP/s, intensity
    (bytes at ``dtype``'s size)."""
    rows = []
    itemsize = jnp.dtype(dtype).itemsize
    for size, c in shapes:
        x = jnp.ones((batch, size, size, c), dtype)
        for kind, w, groups in (("standard 3x3", jnp.ones((3, 3, c, c), dtype), 1), ("depthwise 3x3", jnp.ones((3, 3, 1, c), dtype), c),
                                (SHIFTS_LAYER, jnp.ones((3, 3, 1, c), dtype), c), ("pointwise 1x1", jnp.ones((1, 1, c, c), dtype), 1)):
            conv = functools.partial(_conv, groups=groups)
            fn = jax.jit(depthwise_by_shifts(conv) if kind == SHIFTS_LAYER else conv)
            t = time_call(fn, x, w, repeats=repeats)
            macs = batch * size * size * c * w.shape[0] * w.shape[1] * w.shape[2]
            moved = itemsize * (x.size + w.size + x.size)  # read input and weights once, write the output once
            intensity = 2 * macs / moved
            bound = min(peaks["peak_flops"], intensity * peaks["peak_bandwidth"])
            rows.append({"layer": kind, "size": size, "channels": c, "batch": batch, "macs": macs, "bytes": moved,
                         "intensity": intensity, "median_s": t.median_s, "spread": t.spread,
                         "achieved_flops": 2 * macs / t.median_s, "roofline_flops": bound})
    return rows


def guideline_experiments(repeats: int = 20, size: int = 28, blocks: int = 10, rounds: int = 1) -> dict:
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
        macs = blocks * 2 * size * size * c1 * c2
        mac = blocks * 2 * (size * size * (c1 + c2) + c1 * c2)
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
        g2.append({"groups": g, "channels": c, "macs": blocks * size * size * c * c // g,
                   "memory_accesses": blocks * (size * size * 2 * c + c * c // g), "control": control})
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
        g3.append({"structure": name, "macs": blocks * sum(size * size * w.shape[2] * w.shape[3] for w in ws)})
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


def _op_traffic(result) -> list[tuple[int, int]]:
    """``(MACs, bytes)`` per costed operation: input, weights and output moved once, float32."""
    return [(op.total_macs, 4 * op.calls * (math.prod(op.input_shape) + math.prod(op.kernel_shape)
                                            + math.prod(op.output_shape))) for op in result.ops]


def roofline_seconds(ops: list[tuple[int, int]], peaks: dict) -> float:
    """The roofline estimate of a program: ``sum max(2 MACs / P, bytes / B)`` over its operations."""
    return sum(max(2 * m / peaks["peak_flops"], b / peaks["peak_bandwidth"]) for m, b in ops)


def _traffic_and_macs(model, resolution: int) -> tuple[int, int, list]:
    from .counter import count

    result = count(model, jnp.zeros((1, resolution, resolution, 3)))
    ops = _op_traffic(result)
    return result.macs, sum(b for _, b in ops), ops


def interleaved(programs: dict, rounds: int, repeats: int, warmup: int = 3) -> dict:
    """Time ``{label: (jitted fn, args)}`` in ``rounds`` rounds, each timing every program back to back
    (the median of ``repeats`` calls): ``{label: [median per round]}``. Ratios of one round compare
    measurements taken moments apart, so a slow spell of the machine hits every program alike."""
    times = {label: [] for label in programs}
    for i in range(rounds):
        for label, (fn, args) in programs.items():
            times[label].append(time_call(fn, *args, warmup=warmup if i == 0 else 1, repeats=repeats).median_s)
    return times


def sign_test_p(wins: int, n: int) -> float:
    """Exact two-sided sign test: the probability, under a fair coin, of a split of ``n`` rounds at least
    as uneven as ``wins`` against ``n - wins``: ``min(1, 2 * sum_{i <= min(wins, n - wins)} C(n, i) / 2^n)``."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"the sign test needs at least one round, got n = {n!r}")
    if not (isinstance(wins, int) and 0 <= wins <= n):
        raise ValueError(f"wins must be an integer from 0 to n = {n}, got {wins!r}")
    tail = sum(math.comb(n, i) for i in range(min(wins, n - wins) + 1))
    return min(1.0, 2 * tail / 2 ** n)


@dataclass(frozen=True)
class Comparison:
    """Two programs timed in the same interleaved rounds (``interleaved``), compared round by round.

    ``ratios[i] = times_b[i] / times_a[i]``: above 1 means ``a`` was faster in round ``i``. ``wins_a`` counts
    those rounds, ``ties`` the rounds with ratio exactly 1 (left out of the test), ``p`` is the exact
    two-sided sign test over the other rounds, ``alpha`` the level at which a side is called faster."""

    label_a: str
    label_b: str
    ratios: tuple
    wins_a: int
    ties: int
    p: float
    alpha: float

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    @property
    def counted(self) -> int:
        """Rounds that are not ties: the sign test's ``n``."""
        return self.rounds - self.ties

    @property
    def median_ratio(self) -> float:
        """Median of ``times_b / times_a`` over the rounds."""
        return float(np.median(self.ratios))

    @property
    def faster(self) -> str | None:
        """The label of the program faster at level ``alpha``, or None when the two cannot be told apart."""
        if self.p >= self.alpha:
            return None
        return self.label_a if 2 * self.wins_a > self.counted else self.label_b

    @property
    def verdict(self) -> str:
        """``"faster"`` (``a`` is), ``"slower"`` (``b`` is faster) or ``"indistinguishable"``."""
        return {None: "indistinguishable", self.label_a: "faster"}.get(self.faster, "slower")

    def wording(self) -> str:
        """The comparison worded at the strength of the data, e.g. ``"ours is faster in 7 of 7 rounds (sign
        test p = 0.016)"`` or ``"ours and keras cannot be told apart (4 of 7 rounds, p = 1.0)"``."""
        if self.faster is None:
            return (f"{self.label_a} and {self.label_b} cannot be told apart ({self.label_a} faster in "
                    f"{self.wins_a} of {self.counted} rounds, sign test p {_p_text(self.p)})")
        wins = self.wins_a if self.faster == self.label_a else self.counted - self.wins_a
        return (f"{self.faster} is faster in {wins} of {self.counted} rounds "
                f"(sign test p {_p_text(self.p)})")

    def __str__(self) -> str:
        return self.wording()


def _p_text(p: float) -> str:
    """A p-value with its relation, at two significant digits: ``'= 0.016'``, ``'= 1.0'``, ``'< 0.001'``."""
    return "= 1.0" if p >= 1 else "< 0.001" if p < 0.001 else f"= {p:.2g}"


def paired_comparison(times_a, times_b, label_a: str = "a", label_b: str = "b", alpha: float = 0.05) -> Comparison:
    """Compare two programs from paired interleaved rounds (``interleaved(...)[label]`` for each).

    Each round gives one paired ratio ``t_b / t_a``; the exact two-sided sign test (``sign_test_p``) asks
    whether ``a`` won more rounds than a fair coin would give. The result carries the numbers and the
    wording at the strength they support (``Comparison.wording``): the one way a timing claim is written."""
    a, b = np.asarray(times_a, dtype=float), np.asarray(times_b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal-length, non-empty lists of round times, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError(f"round times must be positive and finite, got {list(a)} and {list(b)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, got {alpha!r}")
    ratios = b / a
    wins, ties = int(np.sum(ratios > 1)), int(np.sum(ratios == 1))
    n = len(ratios) - ties
    p = sign_test_p(wins, n) if n else 1.0
    return Comparison(label_a, label_b, tuple(float(r) for r in ratios), wins, ties, p, alpha)


__all__ += ["sign_test_p", "Comparison", "paired_comparison"]


#: EfficientNetV2's question at equal output shapes: (label, input size, c_in, c_out, expansion, stride).
FUSED_STAGES = (("112x112x24 -> 56x56x48", 112, 24, 48, 4, 2), ("56x56x48 -> 28x28x64", 56, 48, 64, 4, 2),
                ("28x28x64 -> 14x14x128", 28, 64, 128, 4, 2), ("14x14x128 -> 14x14x128", 14, 128, 128, 4, 1))
#: ConvNeXt's question: depthwise kernels at ConvNeXt-T's first and third stage shapes.
DEPTHWISE_SHAPES = ((56, 96), (14, 384))


def successor_blocks(peaks: dict, rounds: int = 7, repeats: int = 10, stages=FUSED_STAGES,
                     depthwise_shapes=DEPTHWISE_SHAPES) -> dict:
    """The two measurements of chapter 8, interleaved per shape: MBConv (depthwise as XLA's grouped
    convolution and as shifted multiply-adds) against Fused-MBConv at equal output shapes (SiLU, no
    squeeze-excite, batch 1), and a depthwise layer with 3x3, 5x5 and 7x7 kernels both ways."""
    from flax import nnx

    from .blocks import ConvSpec, MBConvSpec
    from .counter import count, pure_module

    def program(spec, size, channels, shifts=False):
        module = spec.build(nnx.Rngs(0))
        module.eval()
        fn, state = pure_module(module, flat=True)
        x = jnp.ones((1, size, size, channels), jnp.float32)
        ops = _op_traffic(count(fn, state, x))
        jitted = jax.jit(depthwise_by_shifts(fn) if shifts else fn)
        return (jitted, (state, x)), ops

    fused_rows = []
    for label, size, c_in, c_out, t, stride in stages:
        specs = {"MBConv": (MBConvSpec(c_in, c_in * t, c_out, 3, stride, act="silu"), False),
                 "MBConv, shifts": (MBConvSpec(c_in, c_in * t, c_out, 3, stride, act="silu"), True),
                 "Fused-MBConv": (MBConvSpec(c_in, c_in * t, c_out, 3, stride, act="silu", fused=True), False)}
        programs, costs = {}, {}
        for name, (spec, shifts) in specs.items():
            programs[name], ops = program(spec, size, c_in, shifts)
            costs[name] = {"macs": sum(m for m, _ in ops), "bytes": sum(b for _, b in ops),
                           "roofline_s": roofline_seconds(ops, peaks)}
        times = interleaved(programs, rounds, repeats)
        fused_rows.append({"stage": label, "costs": costs, "times": times,
                           "seconds": {k: float(np.median(v)) for k, v in times.items()}})
    kernel_rows = []
    for size, channels in depthwise_shapes:
        programs, costs = {}, {}
        for k in (3, 5, 7):
            spec = ConvSpec(channels, channels, k, groups=channels, act=None, norm=None)
            for shifts in (False, True):
                name = f"{k}x{k}{', shifts' if shifts else ''}"
                programs[name], ops = program(spec, size, channels, shifts)
                costs[name] = {"macs": sum(m for m, _ in ops), "bytes": sum(b for _, b in ops),
                               "roofline_s": roofline_seconds(ops, peaks)}
        times = interleaved(programs, rounds, repeats)
        kernel_rows.append({"shape": f"{size}x{size}x{channels}", "costs": costs, "times": times,
                            "seconds": {k: float(np.median(v)) for k, v in times.items()}})
    return {"fused": fused_rows, "depthwise_kernels": kernel_rows}


def model_latencies(peaks: dict, repeats: int = 15, variants=None) -> list[dict]:
    """Batch-1 latency of MobileNet v1/v2 variants beside their MACs, bytes moved and a roofline estimate;
    ``shifts_median_s`` times the same model with ``depthwise_by_shifts``.

    The estimate sums, over every convolution and matmul, ``max(2 MACs / peak_flops, bytes / bandwidth)``.
    """
    from .counter import pure_module
    from .models import build_model

    if variants is None:  # ``(network, width, resolution)``
        variants = [("mobilenet_v1", a, r) for a in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 224)]
        variants += [("mobilenet_v2", a, r) for a in (0.35, 0.5, 0.75, 1.0, 1.4) for r in (128, 160, 224)]
    rows = []
    for name, alpha, resolution in variants:
        model = build_model(name, alpha=alpha)
        fn, state = pure_module(model, flat=True)
        x = jnp.zeros((1, resolution, resolution, 3))
        t = time_call(jax.jit(fn), state, x, repeats=repeats)
        shifts = time_call(jax.jit(depthwise_by_shifts(fn)), state, x, repeats=repeats)
        macs, moved, ops = _traffic_and_macs(model, resolution)
        estimate = roofline_seconds(ops, peaks)
        rows.append({"model": name, "alpha": alpha, "resolution": resolution, "macs": macs, "bytes": moved,
                     "roofline_s": estimate, "median_s": t.median_s, "spread": t.spread,
                     "shifts_median_s": shifts.median_s, "shifts_spread": shifts.spread})
    return rows


def training_step(name: str = "mobilenet_v2", batch: int = 16, resolution: int = 224, rounds: int = 5,
                  repeats: int = 3) -> dict:
    """A training step against a forward pass of the same network, interleaved: the forward pass in
    training mode (batch statistics) and ``jax.value_and_grad`` of the cross-entropy (no optimizer
    update), both with depthwise layers as shifted multiply-adds. ``macs`` holds the counter's MACs
    per role (``count_training``), so ``predicted`` = (forward + input_grad + weight_grad) / forward
    sits beside the ``measured`` time ratios of each round."""
    import optax
    from flax import nnx

    from .counter import count_training
    from .models import build_model

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
    return {"model": name, "batch": batch, "resolution": resolution, "macs": macs,
            "predicted": sum(macs.values()) / macs["forward"], "times": times,
            "measured": [t / f for t, f in zip(times["training step"], times["forward"])]}


def keras_application(builder: Callable, seed: int = 0, **kwargs):
    """``builder(weights=None, **kwargs)``, a ``keras.applications`` model on the JAX backend, with each
    weight drawn on the host (NumPy, from ``seed``) from the distribution of Keras's own initializer.

    Keras initializes eagerly, and on the JAX backend each ``uniform``, ``normal`` or
    ``truncated_normal`` draw of a new weight shape compiles a JAX program (0.3 s each on a CPU: 7 to 17 s
    to build a MobileNet). The same distributions drawn with NumPy compile nothing (what
    ``sepconv.models.network.materialize`` does for our models); the values differ from Keras's own,
    which no count or timing depends on.
    """
    from .compat import replaced
    from .models.network import _truncated_normal

    try:
        from keras.src.backend.jax import random as keras_random
    except ImportError:  # a Keras laid out otherwise: built as Keras builds it, only slower
        keras_random = None
    import keras

    rng = np.random.default_rng(seed)

    def array(values, dtype):  # in Keras's default float type where no dtype is asked for, as Keras does
        return jnp.asarray(values, dtype or keras.config.floatx())

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return array(rng.standard_normal(shape) * stddev + mean, dtype)

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return array(rng.uniform(minval, maxval, shape), dtype)

    def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):  # Keras truncates at 2 std
        return array(_truncated_normal(rng, int(np.prod(shape))).reshape(shape) * stddev + mean, dtype)

    with contextlib.ExitStack() as stack:
        for name, draw in (("normal", normal), ("uniform", uniform), ("truncated_normal", truncated_normal)):
            stack.enter_context(replaced(keras_random, name, draw))
        return builder(weights=None, **kwargs)


def keras_function(model) -> tuple[Callable, list, list]:
    """``(fn, trainable, non_trainable)`` with ``fn(trainable, non_trainable, x)`` the inference output of
    a Keras model on the JAX backend: a pure JAX function, to jit, time or count like our models."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return (lambda t, n, x: model.stateless_call(t, n, x, training=False)[0]), trainable, non_trainable


#: The four programs ``keras_comparison`` times: (label, whose model, depthwise by shifts?).
KERAS_PROGRAMS = (("ours", "ours", False), ("ours, shifts", "ours", True),
                  ("keras", "keras", False), ("keras, shifts", "keras", True))

#: The comparisons it reports, each ``(numerator, denominator)`` of a time ratio: above 1, the denominator is faster.
KERAS_RATIOS = (("keras", "ours"), ("keras", "ours, shifts"), ("keras, shifts", "ours, shifts"))


def keras_comparison(batches=(1, 32), rounds: int = 9, repeats: int = 10, batched_repeats: int = 3) -> list[dict]:
    """Our Flax MobileNet v1/v2 against keras.applications on the JAX backend, timed interleaved.

    Four programs per network (``KERAS_PROGRAMS``): each model as traced (depthwise layers
    are XLA grouped convolutions) and with ``depthwise_by_shifts``. Each round times all
    four back to back (median of ``repeats`` calls, ``batched_repeats`` for batches above 1,
    whose calls take seconds on a CPU); ``ratios`` holds, per comparison of ``KERAS_RATIOS``,
    the rounds' time ratios, so machine noise that hits a round hits both sides alike, and
    ``ratio`` their medians. ``seconds`` is each program's median over the rounds.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    from .counter import pure_module
    from .models import build_model

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
            ratios = {f"{a} / {b}": [t / u for t, u in zip(times[a], times[b])] for a, b in KERAS_RATIOS}
            rows.append({"model": name, "batch": batch,
                         "seconds": {label: float(np.median(t)) for label, t in times.items()},
                         "ratio": {key: float(np.median(r)) for key, r in ratios.items()}, "ratios": ratios})
    return rows


def fused_convolutions(fn: Callable, *args) -> list[int]:
    """Convolutions per fused computation of XLA's compiled ``jax.jit(fn)(*args)``, largest first.

    On XLA CPU each convolution normally gets a fusion of its own (a list of ones); a larger
    number means the compiler merged several layers into one library call. Backends that
    call convolutions as custom calls (GPU) report an empty list.
    """
    text = jax.jit(fn).lower(*args).compile().as_text()
    computations = re.split(r"\n(?=%\S+ \()", text)
    counts = [c.count(" convolution(") for c in computations if c.startswith("%fused_computation")]
    return sorted((n for n in counts if n), reverse=True)


#: The experiments of ``run_all``, in the order they run (``peaks`` is measured whenever another needs it).
EXPERIMENTS = ("peaks", "layers", "guidelines", "models", "successors", "keras", "training", "runtimes")


def run_all(out: Path | None = None, quick: bool = False, with_keras: bool = True, with_runtimes: bool = True,
            tflite: Path | None = None, log=print, only: tuple[str, ...] | None = None,
            device: str | None = None) -> Path:
    """Run every experiment (or those named in ``only``, from ``EXPERIMENTS``), write JSON files into
    ``out`` (default: this device's folder under ``user_results_root()``; the shipped results are never
    overwritten). A quick run skips ``models`` unless ``only`` names it. With ``device`` (a JAX platform:
    ``gpu``, ``tpu`` or ``cpu``), run the accelerator experiments instead (``device_run``; ``quick``:
    its tiny sizes, the dry run the tests make)."""
    if device is not None:
        return device_run(device, out, tiny=quick, log=log, only=only)
    unknown = sorted(set(only or ()) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}; the experiments are {', '.join(EXPERIMENTS)}")
    wanted = set(only) if only else set(EXPERIMENTS) - ({"models"} if quick else set())
    if not with_keras:
        wanted.discard("keras")
    if not with_runtimes:
        wanted.discard("runtimes")
    info = device_info()
    out = Path(out) if out else results_dir(info)
    out.mkdir(parents=True, exist_ok=True)
    repeats = 5 if quick else 20

    def save(name, value):
        (out / f"{name}.json").write_text(json.dumps(value, indent=1) + "\n")
        log(f"wrote {out / name}.json")

    save("device", info)
    peaks = measure_peaks(size=512 if quick else 2048, megabytes=16 if quick else 256, repeats=repeats)
    if "peaks" in wanted:
        save("peaks", peaks)
    if "layers" in wanted:
        save("layers", layer_benchmarks(peaks, repeats=repeats))
    if "guidelines" in wanted:
        save("guidelines", guideline_experiments(repeats=repeats, blocks=2 if quick else 10))
    if "models" in wanted:
        save("models", model_latencies(peaks))
    if "successors" in wanted:
        save("successors", successor_blocks(peaks, rounds=2 if quick else 7, repeats=3 if quick else 10))
    if "keras" in wanted:
        rows = keras_comparison(batches=(1,) if quick else (1, 32), rounds=1 if quick else 9,
                                repeats=2 if quick else 10, batched_repeats=2 if quick else 3)
        save("keras", rows)
        for r in rows:
            log(f"{r['model']} batch {r['batch']}: " + ", ".join(f"{k} {t * 1e3:.1f} ms" for k, t in r["seconds"].items()))
            for key, ratio in r["ratio"].items():
                log(f"    {key} = {ratio:.2f} (rounds {min(r['ratios'][key]):.2f} to {max(r['ratios'][key]):.2f})")
    if "training" in wanted:
        save("training", training_step("mobilenet_v1" if quick else "mobilenet_v2", batch=2 if quick else 16,
                                       resolution=64 if quick else 224, rounds=1 if quick else 5,
                                       repeats=1 if quick else 3))
    if "runtimes" in wanted:
        from .deploy import missing_runtime
        from .runtimes import runtime_comparison

        if missing_runtime():
            log(f"runtimes skipped: {missing_runtime()}")
        else:
            save("runtimes", runtime_comparison(networks=("mobilenet_v1",) if quick else ("mobilenet_v2", "mobilenet_v1"),
                                                resolution=96 if quick else 224,
                                                batches=(1,) if quick else (1, 32), rounds=1 if quick else 7,
                                                repeats=2 if quick else 10, batched_repeats=2 if quick else 3, tflite=tflite,
                                                log=log))
    return out


#: The experiments of ``device_run``: those of chapters 6 (layers, guidelines, models), 8 (successors) and 9
#: (training), plus the layers at a batch of 32 in float32 and in bfloat16 (where matrix units engage).
DEVICE_EXPERIMENTS = ("peaks", "layers", "layers_batch", "layers_bf16", "guidelines", "models", "successors", "training")

#: ``device_run``'s sizes: full (about 5 minutes on one GPU, mostly compilation) and tiny (the CPU dry run).
DEVICE_SIZES = {
    "full": {"matmul": 8192, "megabytes": 1024, "repeats": 30, "shapes": MOBILENET_SHAPES, "batch": 32,
             "guideline_size": 28, "blocks": 10,
             "variants": [(n, a, r) for n, widths in (("mobilenet_v1", (0.25, 0.5, 1.0)), ("mobilenet_v2", (0.35, 0.5, 1.0)))
                          for a in widths for r in (128, 224)],
             "stages": FUSED_STAGES, "depthwise_shapes": DEPTHWISE_SHAPES, "rounds": 7, "round_repeats": 20,
             "training": {"name": "mobilenet_v2", "batch": 16, "resolution": 224, "rounds": 5, "repeats": 5}},
    "tiny": {"matmul": 64, "megabytes": 1, "repeats": 1, "shapes": ((8, 16),), "batch": 2,
             "guideline_size": 4, "blocks": 1, "variants": [("mobilenet_v1", 0.25, 32)],
             "stages": (("8x8x8 -> 4x4x16", 8, 8, 16, 2, 2),), "depthwise_shapes": ((4, 8),), "rounds": 1,
             "round_repeats": 1,
             "training": {"name": "mobilenet_v1", "batch": 2, "resolution": 32, "rounds": 1, "repeats": 1}},
}


def _platform_device(platform: str):
    """The first JAX device of ``platform``, or a one-line error naming what JAX has."""
    if platform not in ("gpu", "tpu", "cpu"):
        raise ValueError(f"--device {platform}: the devices are gpu, tpu and cpu")
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        devices = []
    if not devices:
        raise RuntimeError(f"--device {platform}: JAX finds no {platform} device (it runs on "
                           f"{jax.default_backend()}; JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r}; "
                           f"a GPU needs jax with its CUDA plugin)")
    return devices[0]


def _matmul_flops(size: int, dtype, repeats: int) -> float:
    a = jnp.ones((size, size), dtype)
    return 2 * size ** 3 / time_call(jax.jit(lambda a: a @ a), a, repeats=repeats).median_s


def device_run(platform: str = "gpu", out: Path | None = None, tiny: bool = False, log=print,
               only: tuple[str, ...] | None = None) -> Path:
    """The layer, network and training experiments of chapters 6, 8 and 9 on the first ``platform``
    device JAX has, at the sizes of ``DEVICE_SIZES`` (``tiny``: the seconds-long dry run), written
    as JSON into ``out`` (default: this device's folder under ``user_results_root()``), beside a
    ``device.json`` holding the device's name, the versions, the date and the sizes used."""
    import datetime

    unknown = sorted(set(only or ()) - set(DEVICE_EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown device experiment {unknown[0]!r}; they are {', '.join(DEVICE_EXPERIMENTS)}")
    wanted = set(only) if only else set(DEVICE_EXPERIMENTS)
    device = _platform_device(platform)
    sizes = DEVICE_SIZES["tiny" if tiny else "full"]
    with jax.default_device(device):
        info = device_info() | {"platform": device.platform, "device_kind": device.device_kind,
                                "date": datetime.date.today().isoformat(), "sizes": "tiny" if tiny else "full",
                                "default_matmul_precision": str(jax.config.jax_default_matmul_precision)}
        out = Path(out) if out else results_dir(info)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()

        def save(name, value):
            (out / f"{name}.json").write_text(json.dumps(value, indent=1) + "\n")
            log(f"wrote {out / name}.json ({time.perf_counter() - started:.0f} s)")

        repeats = sizes["repeats"]
        peaks = measure_peaks(size=sizes["matmul"], megabytes=sizes["megabytes"], repeats=repeats)
        peaks["peak_flops_bf16"] = _matmul_flops(sizes["matmul"], jnp.bfloat16, repeats)
        save("device", info)
        if "peaks" in wanted:
            save("peaks", peaks)
        if "layers" in wanted:
            save("layers", layer_benchmarks(peaks, repeats=repeats, shapes=sizes["shapes"]))
        if "layers_batch" in wanted:
            save("layers_batch", layer_benchmarks(peaks, batch=sizes["batch"], repeats=repeats, shapes=sizes["shapes"]))
        if "layers_bf16" in wanted:
            save("layers_bf16", layer_benchmarks(peaks, batch=sizes["batch"], repeats=repeats, shapes=sizes["shapes"],
                                                 dtype=jnp.bfloat16))
        if "guidelines" in wanted:
            save("guidelines", guideline_experiments(repeats=repeats, size=sizes["guideline_size"], blocks=sizes["blocks"]))
        if "models" in wanted:
            save("models", model_latencies(peaks, repeats=repeats, variants=sizes["variants"]))
        if "successors" in wanted:
            save("successors", successor_blocks(peaks, rounds=sizes["rounds"], repeats=sizes["round_repeats"],
                                                stages=sizes["stages"], depthwise_shapes=sizes["depthwise_shapes"]))
        if "training" in wanted:
            save("training", training_step(**sizes["training"]))
    log(f"{device.device_kind}: {time.perf_counter() - started:.0f} s in all")
    return out


def stored_devices(root: Path | None = None) -> list[str]:
    """The folders of stored results other than the CPU's (``cpu-*``): the accelerators measured."""
    root = Path(root) if root is not None else SHIPPED_RESULTS
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("cpu-")) if root.exists() else []


def load_results(device: str | None = None, root: Path | None = None) -> dict:
    """Stored results of one device folder (the only one, or the one named), as a dict of experiment -> data.

    ``root`` defaults to the shipped results (``SHIPPED_RESULTS``); pass ``user_results_root()``
    to read your own ``python -m sepconv bench`` run.
    """
    root = Path(root) if root is not None else SHIPPED_RESULTS
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    if device is not None:
        folders = [p for p in folders if p.name == device]
    if not folders:
        raise FileNotFoundError(f"no stored benchmark results{' for ' + device if device else ''} under {root}")
    folder = folders[0]
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}

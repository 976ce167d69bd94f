"""The timing harness: one call timed, programs timed in interleaved rounds, two programs compared.

Timing rules (``time_call``): the function is compiled and run ``warmup`` times before any
measurement (compilation excluded), every call ends with ``block_until_ready`` (JAX dispatches
asynchronously), and ``repeats`` calls are timed one by one; we report the median and the
10th/90th percentiles.

The one way the book compares two timed programs (``paired_comparison``): both are timed in
the same interleaved rounds (``interleaved``), each round gives one paired ratio, and the exact
two-sided sign test (``sign_test_p``) says whether one side won more rounds than a fair coin
would give. ``time_ratios`` is the table of per-round ratios and their medians the experiments
store. Nothing here asserts a speed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import jax
import numpy as np

__all__ = ["Timing", "time_call", "SETTLE_S", "interleaved", "after_another", "time_ratios", "sign_test_p",
           "Comparison", "paired_comparison",
           "compare_ratios"]


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


#: Seconds to wait before timing each program when the programs of a round belong to different runtimes
#: (``interleaved(..., pause=SETTLE_S)``). A runtime's worker threads keep spinning for a while after
#: its call returns (ONNX Runtime's thread pool, OpenMP's), on the cores the next program needs:
#: measured on the recording machine (2 cores), LiteRT's MobileNet v1 at batch 1 took a median 3.3 ms
#: timed right after ONNX Runtime and 2.5 ms after a pause of 20 ms or more (6 rounds per pause). After a
#: pause a program runs slowly for a while (its own threads and the cores wake up): our MobileNet v2 program
#: at batch 1 took a median 3.3 ms timed back to back, 4.3 ms timed after a 0.1 s pause and one warm-up call,
#: and 3.2 ms after the pause and 20 warm-up calls (7 rounds each). So ``interleaved`` follows each pause
#: with as long again of warm-up calls.
SETTLE_S = 0.1


def interleaved(programs: dict, rounds: int, repeats: int, warmup: int = 3, pause: float = 0.0) -> dict:
    """Time ``{label: (jitted fn, args)}`` in ``rounds`` rounds, each timing every program back to back
    (the median of ``repeats`` calls): ``{label: [median per round]}``. Ratios of one round compare
    measurements taken moments apart, so a slow spell of the machine hits every program alike.
    ``pause``: seconds slept before each program's timing, so that the threads of the program before it
    have gone idle (``SETTLE_S`` where the programs come from different runtimes), and then as many
    seconds of warm-up calls (at least one) before the usual ``warmup``."""
    if pause < 0:
        raise ValueError(f"pause must be at least 0 seconds, got {pause!r}")
    times = {label: [] for label in programs}
    for i in range(rounds):
        for label, (fn, args) in programs.items():
            if pause:
                time.sleep(pause)
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                while time.perf_counter() - start < pause:
                    jax.block_until_ready(fn(*args))
            times[label].append(time_call(fn, *args, warmup=warmup if i == 0 else 1, repeats=repeats).median_s)
    return times


def after_another(first: tuple, second: tuple, rounds: int, repeats: int, pause: float = SETTLE_S) -> dict:
    """What the program before does to the one timed after it: in each of ``rounds`` rounds, ``first``
    (``(fn, args)``) runs ``repeats`` times and ``second`` is timed at once (``"right after"``: its median
    of ``repeats`` calls after one warm-up call); then ``first`` runs again and ``second`` is timed as
    ``interleaved`` times it with ``pause`` (``"settled"``). ``{"right after": [...], "settled": [...]}``,
    seconds per round, for ``paired_comparison``."""
    fn, args = first
    times = {"right after": [], "settled": []}
    for _ in range(rounds):
        for label, wait in (("right after", 0.0), ("settled", pause)):
            for _ in range(repeats):
                jax.block_until_ready(fn(*args))
            times[label].append(interleaved({label: second}, 1, repeats, warmup=1, pause=wait)[label][0])
    return times


def time_ratios(times: dict, pairs) -> tuple[dict, dict]:
    """Per-round time ratios of interleaved ``times`` (``{label: [seconds per round]}``) for each
    ``(numerator, denominator)`` of ``pairs`` whose labels were both timed, keyed ``"a / b"``:
    ``ratios[key][i] = times[a][i] / times[b][i]`` (above 1: the denominator was faster in round
    ``i``), and ``medians[key]``, the median over the rounds. Pairs with an untimed label are left out."""
    ratios = {f"{a} / {b}": [t / u for t, u in zip(times[a], times[b])] for a, b in pairs if a in times and b in times}
    return ratios, {key: float(np.median(r)) for key, r in ratios.items()}


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
    return compare_ratios(b / a, label_a, label_b, alpha)


def compare_ratios(ratios, label_a: str = "a", label_b: str = "b", alpha: float = 0.05) -> Comparison:
    """``paired_comparison`` from the rounds' ratios ``t_b / t_a`` alone (stored results that kept the
    ratios of ``time_ratios`` but not the times): the same sign test, the same wording."""
    ratios = np.asarray(ratios, dtype=float)
    if ratios.ndim != 1 or ratios.size == 0 or not (np.all(np.isfinite(ratios)) and np.all(ratios > 0)):
        raise ValueError(f"need a non-empty list of positive, finite round ratios, got {list(np.ravel(ratios))}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, got {alpha!r}")
    wins, ties = int(np.sum(ratios > 1)), int(np.sum(ratios == 1))
    n = len(ratios) - ties
    p = sign_test_p(wins, n) if n else 1.0
    return Comparison(label_a, label_b, tuple(float(r) for r in ratios), wins, ties, p, alpha)

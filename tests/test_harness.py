"""The timing harness (``sepconv.benchmarks.harness``): expected values derived by hand. No test asserts a speed."""

import jax.numpy as jnp
import pytest

from sepconv.benchmarks.harness import (compare_ratios, interleaved, paired_comparison, sign_test_p, time_call,
                                        time_ratios)


def test_time_call_runs_warmups_then_timed_calls():
    calls = []

    def fn(x):
        calls.append(1)
        return x + 1

    timing = time_call(fn, jnp.ones(3), warmup=1, repeats=4)
    assert len(calls) == 5 and timing.repeats == 4
    assert 0 < timing.p10_s <= timing.median_s <= timing.p90_s


def test_interleaved_times_every_program_once_per_round():
    order = []

    def program(label):
        def fn(x):
            order.append(label)
            return x
        return fn

    times = interleaved({"a": (program("a"), (jnp.ones(2),)), "b": (program("b"), (jnp.ones(2),))},
                        rounds=3, repeats=2, warmup=2)
    assert {label: len(t) for label, t in times.items()} == {"a": 3, "b": 3}
    # round 1: 2 warm-ups and 2 timed calls per program; later rounds: 1 warm-up and 2 timed calls, a then b
    assert order == ["a"] * 4 + ["b"] * 4 + (["a"] * 3 + ["b"] * 3) * 2


class FakeClock:
    """Stands for the harness's ``time``: ``sleep`` is recorded in ``events`` and only a program's call moves
    ``perf_counter``, by the seconds the program says (``program``)."""

    def __init__(self):
        self.events, self.now = [], 0.0

    def sleep(self, seconds):
        self.events.append(("sleep", seconds))

    def perf_counter(self):
        return self.now

    def program(self, label, seconds):
        def fn(*args):
            self.events.append(label)
            self.now += seconds
            return args[0] if args else None
        return fn


@pytest.fixture
def clock(monkeypatch):
    from sepconv.benchmarks import harness

    fake = FakeClock()
    monkeypatch.setattr(harness, "time", fake)
    return fake


def test_interleaved_pauses_before_every_program(clock):
    programs = {"a": (clock.program("a", 0.1), (1,)), "b": (clock.program("b", 0.1), (1,))}
    interleaved(programs, rounds=2, repeats=1, warmup=1, pause=0.25)
    # in every round, each program: the pause, 0.25 s of warm-up calls (3 calls of 0.1 s), then time_call's
    # own warm-up call and its timed call
    assert clock.events == [("sleep", 0.25), "a", "a", "a", "a", "a", ("sleep", 0.25), "b", "b", "b", "b", "b"] * 2
    with pytest.raises(ValueError, match="pause must be at least 0 seconds, got -1"):
        interleaved({"a": programs["a"]}, rounds=1, repeats=1, pause=-1)


def test_after_another_times_the_second_right_after_the_first_and_settled(clock):
    from sepconv.benchmarks.harness import after_another

    times = after_another((clock.program("a", 0.1), ()), (clock.program("b", 0.2), ()), rounds=2, repeats=2,
                          pause=0.3)
    # a twice, then b: one warm-up and two timed calls; a twice, the pause, 0.3 s of b (two calls of 0.2 s),
    # b's warm-up and two timed calls
    one_round = ["a", "a", "b", "b", "b", "a", "a", ("sleep", 0.3), "b", "b", "b", "b", "b"]
    assert clock.events == one_round * 2
    assert {label: len(t) for label, t in times.items()} == {"right after": 2, "settled": 2}
    assert times["right after"] == pytest.approx([0.2, 0.2])  # each timed call of b moves the clock 0.2 s


def test_time_ratios_by_hand():
    times = {"a": [2.0, 3.0, 1.0], "b": [1.0, 4.0, 2.0]}
    ratios, medians = time_ratios(times, (("a", "b"), ("b", "a"), ("a", "missing")))
    assert list(ratios) == ["a / b", "b / a"]  # a pair with an untimed program is left out
    assert ratios["a / b"] == [2.0, 0.75, 0.5] and medians["a / b"] == 0.75
    assert ratios["b / a"] == pytest.approx([0.5, 4 / 3, 2.0]) and medians["b / a"] == pytest.approx(4 / 3)


@pytest.mark.parametrize("wins, n, expected", [
    (7, 7, 2 / 2 ** 7),                      # the most uneven split of 7: 2 * C(7, 0) / 2^7 = 0.015625
    (0, 7, 2 / 2 ** 7),
    (3, 9, 2 * (1 + 9 + 36 + 84) / 2 ** 9),  # 2 * (C(9,0) + C(9,1) + C(9,2) + C(9,3)) / 512 = 0.5078125
    (1, 2, 1.0),                             # 2 * (1 + 2) / 4 = 1.5, capped at 1
    (1, 1, 1.0),
])
def test_sign_test_by_hand(wins, n, expected):
    assert sign_test_p(wins, n) == pytest.approx(expected)


def test_ratios_alone_give_the_same_comparison_as_times():
    a, b = [1.0, 2.0, 4.0, 1.0, 1.0, 1.0, 1.0], [2.0, 1.0, 8.0, 3.0, 3.0, 3.0, 3.0]
    from_times = paired_comparison(a, b, "a", "b")
    from_ratios = compare_ratios([2.0, 0.5, 2.0, 3.0, 3.0, 3.0, 3.0], "a", "b")
    assert from_times == from_ratios
    # 6 of 7 rounds won by a: p = 2 * (C(7,0) + C(7,1)) / 128 = 0.125, not below 0.05
    assert (from_ratios.wins_a, from_ratios.p, from_ratios.faster) == (6, 0.125, None)
    assert from_ratios.wording() == "a and b cannot be told apart (a faster in 6 of 7 rounds, sign test p = 0.12)"
    seven = compare_ratios([1.5] * 7, "ours", "theirs")
    assert seven.verdict == "faster" and seven.wording() == "ours is faster in 7 of 7 rounds (sign test p = 0.016)"


@pytest.mark.parametrize("ratios", [[], [1.0, -2.0], [float("nan")], [[1.0, 2.0]]])
def test_compare_ratios_refuses_bad_rounds_in_one_line(ratios):
    with pytest.raises(ValueError, match="positive, finite round ratios"):
        compare_ratios(ratios)

"""What the chapters conclude from stored results (``sepconv.benchmarks.analysis``), on rows made by hand."""

import numpy as np
import pytest

from sepconv.benchmarks import analysis as A
from sepconv.benchmarks.layers import SHIFTS_LAYER


def _layer(kind, seconds, macs, intensity=1.0, achieved=1.0, roof=2.0, size=8, channels=4):
    return {"layer": kind, "size": size, "channels": channels, "median_s": seconds, "macs": macs,
            "intensity": intensity, "achieved_flops": achieved, "roofline_flops": roof}


LAYERS = [_layer("depthwise 3x3", 3.0, 9, intensity=2.0, achieved=1.0, roof=4.0),
          _layer(SHIFTS_LAYER, 1.0, 9, intensity=2.0, achieved=3.0, roof=4.0),
          _layer("pointwise 1x1", 1.0, 27, intensity=5.0),
          _layer("depthwise 3x3", 6.0, 9, intensity=1.5, achieved=1.0, roof=2.0, size=4),
          _layer(SHIFTS_LAYER, 2.0, 9, intensity=1.5, achieved=1.0, roof=2.0, size=4),
          _layer("pointwise 1x1", 2.0, 27, size=4)]


def test_depthwise_shares_by_hand():
    shares = A.depthwise_shares(LAYERS)
    assert shares["intensity"] == 2.0 and shares["best_grouped"] == 0.5   # max(1/4, 1/2)
    assert shares["share_time"] == pytest.approx(0.75)                    # 3/(3+1) and 6/(6+2)
    assert shares["share_macs"] == pytest.approx(0.25)                    # 9/(9+27)
    assert shares["share_time_shifts"] == pytest.approx(0.5)              # 1/(1+1) and 2/(2+2)


def test_shift_speedups_by_hand():
    rows = A.shift_speedups(LAYERS)
    assert [(r["size"], r["speedup"], r["shifts_roofline"]) for r in rows] == [(8, 3.0, 0.75), (4, 3.0, 0.5)]


def _guidelines(slow_factor):
    """A guidelines result in which every variant is ``slow_factor`` times slower than the one before it
    (in every round); the G2 control as fast as the recommended variant."""
    def rows(specs):
        return [dict(spec, times=[slow_factor ** i] * 7, median_s=slow_factor ** i) for i, spec in enumerate(specs)]

    g2 = rows([{"groups": 1, "control": False}, {"groups": 2, "control": False}, {"groups": 4, "control": False}])
    g2.insert(2, {"groups": 2, "control": True, "times": [1.0] * 7, "median_s": 1.0})
    g4 = rows([{"relu": False, "shortcut": False}, {"relu": True, "shortcut": False},
               {"relu": False, "shortcut": True}, {"relu": True, "shortcut": True}])
    return {"G1": rows([{"ratio": "1:1"}, {"ratio": "1:2"}]), "G2": g2,
            "G3": rows([{"structure": "1-fragment"}, {"structure": "2-fragment-series"},
                        {"structure": "2-fragment-parallel"}]), "G4": g4}


def test_guidelines_that_hold_in_every_round():
    verdicts = A.guideline_verdicts(_guidelines(2.0))
    assert verdicts.fastest == verdicts.ordered == {"G1": True, "G2": True, "G3": True, "G4": True}
    # predicted steps: G1 one, G2 two (1 -> 2 -> 4 groups), G3 one per chain, G4 two per chain
    assert verdicts.broken == [] and verdicts.steps == 1 + 2 + 2 + 4


def test_guidelines_contradicted_by_every_round():
    verdicts = A.guideline_verdicts(_guidelines(0.5))
    assert not any(verdicts.fastest.values()) and not any(verdicts.ordered.values())
    assert len(verdicts.broken) == 9 and verdicts.broken[0] == (
        "G1: c1:c2 = 1:2 is faster in 7 of 7 rounds (sign test p = 0.016)")


def test_guideline_labels_and_rows():
    assert A.guideline_label("G2", {"groups": 2, "control": True}) == "g = 2 as two dense convolutions"
    assert A.guideline_label("G4", {"relu": True, "shortcut": False}) == "ReLU yes, shortcut no"
    g = _guidelines(2.0)
    g["G1"][0]["macs"] = g["G1"][1]["macs"] = 2_000_000
    lines = A.guideline_rows(g)
    assert lines[0] == "G1  " + A.GUIDELINE_TITLES["G1"]
    assert lines[2].split() == ["c1:c2", "=", "1:2", "MACs", "2.0M", "time", "x2.00", "first", "row", "faster", "in",
                                "7", "of", "7", "rounds"]


def test_rank_correlations_and_words():
    models = [{"macs": m, "roofline_s": r, "median_s": t, "shifts_median_s": s}
              for m, r, t, s in ((1, 4, 1.0, 3.0), (2, 3, 2.0, 2.0), (3, 2, 3.0, 1.0), (4, 1, 4.0, 0.5))]
    rho = A.rank_correlations(models)
    assert rho["MACs alone", "grouped conv"] == pytest.approx(1.0)
    assert rho["roofline estimate", "grouped conv"] == pytest.approx(-1.0)
    assert rho["roofline estimate", "shifts"] == pytest.approx(1.0)
    assert {m for _, m in rho} == {"grouped conv", "shifts"}  # these rows have no inference program's times
    for r, t in zip(models, (0.4, 0.1, 0.3, 0.2)):
        r["inference_median_s"] = t
    rho = A.rank_correlations(models)  # MACs 1-4 against the inference times' ranks 4, 1, 3, 2
    assert rho["MACs alone", "inference"] == pytest.approx(1 - 6 * (9 + 1 + 0 + 4) / (4 * (16 - 1)))
    assert A.measured_latencies(models) == A.LATENCIES
    assert [A.closeness(gap) for gap in (0.06, 0.03, 0.01, -0.01, -0.03, -0.2)] == [
        "far better than", "better than", "about as well as", "about as well as", "worse than", "far worse than"]


def test_ratio_comparisons_from_times_or_ratios():
    times = {"ours": [1.0] * 7, "theirs": [2.0] * 7}
    with_times = [{"model": "m", "batch": 1, "ratios": {"theirs / ours": [2.0] * 7}, "times": times}]
    without = [{"model": "m", "batch": 1, "ratios": {"theirs / ours": [2.0] * 7}}]
    for rows in (with_times, without):
        (comparison,) = A.ratio_comparisons(rows, name=str.upper).values()
        # a ratio above 1 means the denominator (ours) was faster, in every round
        assert comparison.wording() == "OURS is faster in 7 of 7 rounds (sign test p = 0.016)"


def test_latency_fit_recovers_an_exact_linear_model():
    rows = [{"model": "m", "alpha": a, "roofline_s": r, "median_s": 2 * r + 1e-3 * n, "shifts_median_s": r + 2e-3 * n}
            for a, r, n in ((0.5, 1.0, 10), (1.0, 3.0, 20), (1.5, 2.0, 40))]
    counts = {("m", 0.5): 10, ("m", 1.0): 20, ("m", 1.5): 40}
    fit = A.latency_fit(rows, counts)
    assert (fit["grouped conv"]["a"], fit["grouped conv"]["b"]) == pytest.approx((2.0, 1e-3))
    assert (fit["shifts"]["a"], fit["shifts"]["b"]) == pytest.approx((1.0, 2e-3))
    assert fit["shifts"]["rho"] == pytest.approx(1.0)


def test_runtime_labels_and_table():
    rows = [{"model": "mobilenet_v2", "batch": 2, "seconds": {"JAX, inference": 0.004, "ONNX Runtime, ours": 0.002,
                                                              "LiteRT (XNNPACK), Keras": 0.001}}]
    short = A.short_labels(rows)
    assert list(short.values()) == ["JAX, inference", "ORT, ours", "LiteRT (XNNPACK)"]
    assert [A.program_name(s) for s in short.values()] == ["JAX (inference)", "ORT (ours)", "LiteRT (XNNPACK)"]
    assert [A.glue_name(s) for s in ("JAX, inference", "torch.compile", "LiteRT (XNNPACK)")] == [
        "inference", "torchcompile", "LiteRT_XNNPACK"]
    lines = A.runtime_table(rows, columns=2)
    assert lines[1].split() == ["batch", "2", "2.0", "1.0"]  # milliseconds per image: 4 ms / 2, 2 ms / 2
    assert lines[3].split() == ["batch", "2", "0.5"] and lines[-1] == ""


def test_shipped_results_read_as_the_chapters_say():
    from sepconv.benchmarks import load_results

    results = load_results("cpu-cpu")
    shares = A.depthwise_shares(results["layers"])
    assert shares["share_time"] > shares["share_macs"]  # depthwise: a small share of MACs, a large one of time
    assert np.all([r["speedup"] > 1 for r in A.shift_speedups(results["layers"])])


def test_layer_pairs_by_hand():
    # three layers, seven rounds each: a large pointwise layer ours at twice LiteRT's time in every round, a
    # large depthwise one at three times, and a small one (LiteRT 10 us) where the rounds split 4 to 3
    rounds = 7
    result = {"layers": [
        {"kind": "pointwise", "error": 1e-7, "times": {"JAX": [200e-6] * rounds, "LiteRT": [100e-6] * rounds}},
        {"kind": "depthwise", "error": 3e-7, "times": {"JAX": [120e-6] * rounds, "LiteRT": [40e-6] * rounds}},
        {"kind": "depthwise", "error": 2e-7, "times": {"JAX": [9e-6, 9e-6, 9e-6, 9e-6, 11e-6, 11e-6, 11e-6],
                                                       "LiteRT": [10e-6] * rounds}},
    ]}
    summary = A.layer_pairs(result, large_s=30e-6)
    assert summary["layers"] == 3 and summary["max_error"] == 3e-7
    assert summary["litert_faster"] == 2 and summary["jax_faster"] == 0  # 4 of 7 decides nothing
    assert summary["ratios"] == pytest.approx([2.0, 3.0, 0.9])  # the median of 0.9, 0.9, 0.9, 0.9, 1.1, 1.1, 1.1
    assert summary["large"] == {"pointwise": (1, pytest.approx(2.0), pytest.approx(2.0)),
                                "depthwise": (1, pytest.approx(3.0), pytest.approx(3.0))}
    assert summary["floor_jax_s"] == pytest.approx(9e-6) and summary["floor_litert_s"] == pytest.approx(10e-6)
    assert summary["sum_jax_s"] == pytest.approx(329e-6) and summary["sum_litert_s"] == pytest.approx(150e-6)

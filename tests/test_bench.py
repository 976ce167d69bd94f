"""The benchmark harness and its stored results. No test asserts a speed."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from sepconv import bench
from sepconv.models import build_model


def test_time_call_excludes_compilation_and_reports_spread():
    calls = []

    def fn(x):
        calls.append(1)
        return x + 1

    timing = bench.time_call(fn, jnp.ones(4), warmup=2, repeats=5)
    assert len(calls) == 7  # two warm-up calls (the first compiles, when jitted) and five timed ones
    assert 0 < timing.p10_s <= timing.median_s <= timing.p90_s and timing.repeats == 5
    assert timing.spread >= 0


def test_quick_run_writes_every_result(tmp_path):
    out = bench.run_all(tmp_path, quick=True, with_keras=False, log=lambda *a: None)
    files = {p.stem for p in out.glob("*.json")}
    assert files == {"device", "peaks", "layers", "guidelines"}
    layers = json.loads((out / "layers.json").read_text())
    assert {r["layer"] for r in layers} == {"standard 3x3", "depthwise 3x3", "pointwise 1x1"}
    guidelines = json.loads((out / "guidelines.json").read_text())
    assert set(guidelines) == {"G1", "G2", "G3", "G4"}
    # within each of G1 and G2 the MACs are (nearly) equal and the memory access cost grows down the table
    for key in ("G1", "G2"):
        macs = [r["macs"] for r in guidelines[key]]
        assert max(macs) / min(macs) < 1.06
        assert [r["mac"] for r in guidelines[key]] == sorted(r["mac"] for r in guidelines[key])


def test_stored_results_are_complete_and_name_their_device():
    results = bench.load_results()
    assert {"device", "peaks", "layers", "guidelines", "models", "keras"} <= set(results)
    assert results["device"]["platform"] and results["device"]["jax"]
    assert len(results["models"]) >= 15
    assert {(r["model"], r["batch"]) for r in results["keras"]} == {
        ("MobileNet v1", 1), ("MobileNet v1", 32), ("MobileNet v2", 1), ("MobileNet v2", 32)}
    assert all(len(r["ratios"]) >= 5 and min(r["ratios"]) <= r["ratio"] <= max(r["ratios"]) for r in results["keras"])
    with pytest.raises(FileNotFoundError, match="no stored benchmark results for tpu-v9"):
        bench.load_results("tpu-v9")


def test_fused_convolutions_counts_convolutions_per_fusion():
    def two_convs(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.lax.conv_general_dilated(jnp.clip(y, 0.0, 6.0), w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    counts = bench.fused_convolutions(two_convs, jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)))
    assert all(isinstance(n, int) and n >= 1 for n in counts) and counts == sorted(counts, reverse=True)
    if jax.default_backend() == "cpu":  # XLA CPU keeps convolutions as HLO convolutions inside fusions
        assert sum(counts) == 2


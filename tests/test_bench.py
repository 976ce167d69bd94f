"""The benchmark harness and its stored results. No test asserts a speed."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from sepconv import bench


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
    # Keras and the runtimes have their own tests (below, and test_deploy.py); a quick run skips models
    out = bench.run_all(tmp_path, quick=True, with_keras=False, with_runtimes=False, log=lambda *a: None)
    files = {p.stem for p in out.glob("*.json")}
    assert files == {"device", "peaks", "layers", "guidelines", "successors", "training"}
    successors = json.loads((out / "successors.json").read_text())
    assert set(successors) == {"fused", "depthwise_kernels"} and successors["fused"]
    for row in successors["fused"]:
        assert set(row["seconds"]) == set(row["costs"]) and all(t > 0 for t in row["seconds"].values())
    training = json.loads((out / "training.json").read_text())
    # the backward pass: an input gradient per layer but the first, a weight gradient per layer
    assert training["macs"]["weight_grad"] == training["macs"]["forward"] > training["macs"]["input_grad"] > 0
    assert set(training["times"]) == {"forward", "training step"} and len(training["measured"]) >= 1
    layers = json.loads((out / "layers.json").read_text())
    assert {r["layer"] for r in layers} == {"standard 3x3", "depthwise 3x3", bench.SHIFTS_LAYER, "pointwise 1x1"}
    # the two depthwise rows of a shape are the same layer: same MACs, same bytes
    for size in {r["size"] for r in layers}:
        dw = [(r["macs"], r["bytes"]) for r in layers if r["size"] == size and r["layer"].startswith("depthwise")]
        assert len(dw) == 2 and dw[0] == dw[1]
    guidelines = json.loads((out / "guidelines.json").read_text())
    assert set(guidelines) == {"G1", "G2", "G3", "G4"}
    # within each of G1 and G2 the MACs are (nearly) equal and the memory access cost grows down the table
    for key in ("G1", "G2"):
        macs = [r["macs"] for r in guidelines[key]]
        assert max(macs) / min(macs) < 1.06
        assert [r["memory_accesses"] for r in guidelines[key]] == sorted(r["memory_accesses"] for r in guidelines[key])


def test_stored_training_comparison_holds_every_process_and_both_batches():
    """``tools/training_bench.py``'s rows: each batch in a process of each allocator setting, PyTorch's step
    timed in the same rounds, the ratios the rounds' times divided, and ``training.json`` the first row;
    its profiles (``training_attribution.json``): one per setting, whose rows add up to each step's total."""
    from sepconv.benchmarks.allocator import SETTINGS
    from sepconv.benchmarks.training_attribution import DIRECTIONS, TRAINING_KINDS

    results = bench.load_results("cpu-cpu")
    rows = results["training_comparison"]["rows"]
    assert {(r["batch"], r["allocator"]) for r in rows} == {(b, a) for b in (16, 32) for a in SETTINGS}
    profiles = results["training_attribution"]["rows"]
    assert [p["allocator"] for p in profiles] == list(SETTINGS)
    for profile in profiles:
        for side in ("jax", "torch"):
            named = sum(profile[side][d][k] for d in DIRECTIONS for k in TRAINING_KINDS)
            assert named + profile[side]["unnamed"] == pytest.approx(profile[side]["total"])
    for row in rows:
        assert set(row["times"]) == {"forward", "training step", "PyTorch eager"}
        assert len({len(t) for t in row["times"].values()}) == 1  # every program in every round
        step, torch = row["times"]["training step"], row["times"]["PyTorch eager"]
        assert row["ratios"]["training step / PyTorch eager"] == pytest.approx([a / b for a, b in zip(step, torch)])
        assert row["predicted"] == pytest.approx(sum(row["macs"].values()) / row["macs"]["forward"])
    assert results["training"] == rows[0]


def test_stored_results_are_complete_and_name_their_device():
    results = bench.load_results()
    assert {"device", "peaks", "layers", "guidelines", "models", "keras"} <= set(results)
    assert results["device"]["platform"] and results["device"]["jax"]
    assert len(results["models"]) >= 15
    assert all(r[key] > 0 for r in results["models"] for key in ("median_s", "shifts_median_s", "inference_median_s"))
    assert {(r["model"], r["batch"]) for r in results["keras"]} == {
        ("MobileNet v1", 1), ("MobileNet v1", 32), ("MobileNet v2", 1), ("MobileNet v2", 32)}
    for r in results["keras"]:
        assert set(r["seconds"]) == {label for label, _, _ in bench.KERAS_PROGRAMS}
        assert set(r["ratios"]) == set(r["ratio"]) == {f"{a} / {b}" for a, b in bench.KERAS_RATIOS}
        for key, ratios in r["ratios"].items():
            assert len(ratios) >= 5 and min(ratios) <= r["ratio"][key] <= max(ratios)
    with pytest.raises(FileNotFoundError, match="no stored benchmark results for tpu-v9"):
        bench.load_results("tpu-v9")


def test_fused_convolutions_counts_convolutions_per_fusion():
    def two_convs(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.lax.conv_general_dilated(jnp.clip(y, 0.0, 6.0), w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    from sepconv.benchmarks.compiled import convolutions_per_fusion

    x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    counts = bench.fused_convolutions(two_convs, x, w)
    assert all(isinstance(n, int) and n >= 1 for n in counts) and counts == sorted(counts, reverse=True)
    text = jax.jit(two_convs).lower(x, w).compile().as_text()
    assert counts == convolutions_per_fusion(text) and sum(counts) <= 2  # at most the program's two
    if jax.default_backend() == "cpu":
        # XLA CPU keeps both as HLO convolutions, inside a fusion or (small ones, older jaxlibs) in the entry
        # computation, which is not a fusion; tests/test_transforms.py counts both layouts written by hand
        assert text.count(" convolution(") == 2



def test_keras_comparison_times_four_programs_per_round():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras is not on the JAX backend")
    rows = bench.keras_comparison(batches=(1,), rounds=2, repeats=1)
    assert [(r["model"], r["batch"]) for r in rows] == [("MobileNet v1", 1), ("MobileNet v2", 1)]
    for r in rows:
        assert list(r["seconds"]) == [label for label, _, _ in bench.KERAS_PROGRAMS]
        assert all(t > 0 for t in r["seconds"].values())
        assert list(r["ratios"]) == [f"{a} / {b}" for a, b in bench.KERAS_RATIOS]
        for (a, b), (key, ratios) in zip(bench.KERAS_RATIOS, r["ratios"].items()):
            # each round's ratio from the rounds' times; the median of two rounds is their mean
            expected = [r["times"][a][i] / r["times"][b][i] for i in range(2)]
            assert ratios == pytest.approx(expected)
            assert r["ratio"][key] == pytest.approx((expected[0] + expected[1]) / 2)


def test_a_recording_tool_writes_where_it_is_told_and_names_its_machine(tmp_path):
    from sepconv.benchmarks.results import SHIPPED_RESULTS, machine_note, recording_folder, results_dir

    folder = recording_folder(tmp_path / "run" / "cpu")
    assert folder == tmp_path / "run" / "cpu" and folder.is_dir()
    info = {"platform": "cpu", "device_kind": "cpu", "cpu_model": "Some CPU", "cpu_count": 2}
    assert recording_folder(None, info) == results_dir(info, root=SHIPPED_RESULTS) == SHIPPED_RESULTS / "cpu-cpu"
    assert machine_note("quiet", info, load=[1.0]) == {"cpu_model": "Some CPU", "cpu_count": 2, "note": "quiet",
                                                       "load": [1.0]}

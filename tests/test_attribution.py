"""Per-layer attribution: ONNX Runtime's profile parsed and summed per layer kind, our JAX program's layers.
No timing is asserted: only what the parser and the bookkeeping must give."""

import collections
import json

import numpy as np
import pytest

from sepconv import deploy
from sepconv.benchmarks import attribution as at
from sepconv.interop import pure_module
from sepconv.layers import randomize_batchnorm
from sepconv.training import tiny_mobilenet
from draws import uniform


@pytest.mark.parametrize("op, shapes, kind", [
    ("Conv", [[1, 32, 8, 8], [32, 1, 3, 3], [32]], "depthwise"),       # one filter per channel
    ("FusedConv", [[1, 32, 8, 8], [64, 32, 1, 1], [64]], "pointwise"),
    ("Conv", [[1, 3, 16, 16], [16, 3, 3, 3]], "full"),                 # a stem
    ("Conv", [[1, 32, 8, 8], [32, 8, 3, 3]], "grouped"),               # 4 groups of 8 channels
    ("Conv", [[1, 40, 8, 8], [40, 1, 5, 5], [40], [1, 40, 8, 8]], "depthwise"),  # with a fused residual input
    ("Gemm", [[1, 1280], [1000, 1280], [1000]], "linear"),
    ("Relu", [[1, 32, 8, 8]], "other"), ("ReorderInput", [[1, 3, 16, 16]], "other"),
])
def test_onnx_operator_kinds(op, shapes, kind):
    assert at.onnx_operator_kind(op, shapes) == kind


def test_onnx_operator_kind_rejects_inconsistent_channels():
    with pytest.raises(ValueError, match="channels 30 not a multiple of 8"):
        at.onnx_operator_kind("Conv", [[1, 30, 8, 8], [32, 8, 3, 3]])


def _event(name, op, ts, dur, shapes):
    return {"cat": "Node", "pid": 1, "tid": 1, "dur": dur, "ts": ts, "ph": "X", "name": f"{name}_kernel_time",
            "args": {"op_name": op, "provider": "CPUExecutionProvider",
                     "input_type_shape": [{"float": s} for s in shapes]}}


def _run(ts, dur):
    return {"cat": "Session", "pid": 1, "tid": 1, "dur": dur, "ts": ts, "ph": "X", "name": "model_run", "args": {}}


def test_parse_profile_file_by_hand(tmp_path):
    # three runs of a depthwise Conv, a pointwise FusedConv, a Relu and a Gemm, in ONNX Runtime's format
    # (microseconds); the first run is a warm-up and is left out. Run 2: dw 100, pw 300, Relu 20, Gemm 50
    # in 500 us; run 3: dw 110, pw 290, Relu 30, Gemm 40 in 520 us.
    dw, pw = [[1, 32, 8, 8], [32, 1, 3, 3]], [[1, 32, 8, 8], [64, 32, 1, 1]]
    events = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5, "args": {}}]
    for start, (d, p, r, g, total) in zip((1000, 3000, 6000), ((900, 1, 1, 1, 950), (100, 300, 20, 50, 500),
                                                               (110, 290, 30, 40, 520))):
        events.append(_run(start, total))
        events += [_event("dw", "Conv", start + 1, d, dw), _event("pw", "FusedConv", start + 1 + d, p, pw),
                   _event("act", "Relu", start + 2 + d + p, r, [[1, 64, 8, 8]]),
                   _event("fc", "Gemm", start + 3 + d + p + r, g, [[1, 64], [10, 64], [10]])]
        events.append({**_event("fc", "Gemm", start + 5, 7, []), "name": "fc_fence_before"})  # not a kernel time
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(events))
    profile = at.parse_onnx_profile(str(path))
    assert profile["runs"] == 2
    assert profile["total"] == pytest.approx([500e-6, 520e-6])
    kinds = profile["kinds"]
    assert kinds["depthwise"] == pytest.approx([100e-6, 110e-6])
    assert kinds["pointwise"] == pytest.approx([300e-6, 290e-6])
    assert kinds["linear"] == pytest.approx([50e-6, 40e-6])
    assert kinds["full"] == kinds["grouped"] == [0.0, 0.0]
    assert kinds["other"] == pytest.approx([(500 - 450) * 1e-6, (520 - 440) * 1e-6])  # Relu and overhead
    assert profile["operators"]["Relu"] == pytest.approx([20e-6, 30e-6])
    with pytest.raises(ValueError, match="no model_run"):
        at.parse_onnx_profile(events, skip=3)


def _tiny():
    return deploy.fold_batchnorm(randomize_batchnorm(tiny_mobilenet(seed=1, act="relu6"), seed=1))


def test_onnx_profile_of_a_tiny_network_has_every_kind():
    if deploy.missing_runtime():
        pytest.skip(deploy.missing_runtime())
    model = _tiny()
    x = uniform(0, (1, 16, 16, 3))
    profile = at.onnx_kind_times(deploy.export_onnx(model, x.shape), x, runs=3)
    assert profile["runs"] == 3 and len(profile["total"]) == 3
    # TINY_MOBILENET: a 3x3 stem, five depthwise-separable layers, a classifier: every kind but grouped
    for kind in ("full", "depthwise", "pointwise", "linear"):
        assert all(t > 0 for t in profile["kinds"][kind]), kind
    assert profile["kinds"]["grouped"] == [0.0] * 3
    for i, total in enumerate(profile["total"]):
        assert sum(profile["kinds"][k][i] for k in at.KINDS) == pytest.approx(total)
    structure = at.onnx_structure({"tiny": deploy.export_onnx(model, x.shape)})["tiny"]
    assert structure["nodes"] == [sum(structure["exported"].values()), sum(structure["optimized"].values())]
    assert structure["exported"]["Conv"] == 11 and structure["exported"]["Gemm"] == 1


def test_jax_layers_of_a_tiny_network():
    model = _tiny()
    fn, state = pure_module(model, flat=True)
    x = uniform(0, (2, 16, 16, 3))
    layers = at.layer_inputs(fn, state, x)
    # the stem, five depthwise and five pointwise layers (TINY_MOBILENET), the classifier
    kinds = [str(at.equation_kind(eqn)) for eqn, _, _ in layers]
    assert kinds == ["full"] + ["depthwise", "pointwise"] * 5 + ["linear"]
    assert layers[0][1].shape == (2, 16, 16, 3) and layers[-1][2].shape == (256, 10)
    # the scoped program is fast_inference's, and every multiplying layer's steps carry its kind
    import jax

    from sepconv.transforms.fast_inference import fast_inference

    expected = np.asarray(jax.jit(fast_inference(fn))(state, x))
    scoped = jax.jit(at.scoped_program(fn))
    steps = at.step_kinds(at.compiled_text(scoped, state, x))  # its own metadata, cache or no cache
    np.testing.assert_allclose(np.asarray(scoped(state, x)), expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    assert {"full", "depthwise", "pointwise", "linear"} <= set(steps.values()) <= set(at.KINDS)
    result = at.xla_kind_times(fn, (state, x), runs=2)
    assert result["runs"] == 2 and result["steps_per_run"] > 0
    for kind in ("full", "depthwise", "pointwise", "linear"):
        assert result["median"][kind] > 0, kind
    assert result["median"]["grouped"] == 0.0
    assert sum(result["median"][k] for k in at.KINDS) == pytest.approx(result["median"]["total"])
    assert result["wall"] > 0 and result["median"]["other"] >= 0


def test_step_kinds_of_a_written_module():
    # a compiled module's text as XLA writes it: the fusion's body holds the scope, the copy does not
    hlo = """HloModule jit_fn

%fused_computation (param_0: f32[4,8], param_1: f32[8,2]) -> f32[4,2] {
  %param_0 = f32[4,8]{1,0} parameter(0)
  %param_1 = f32[8,2]{1,0} parameter(1)
  ROOT %dot.1 = f32[4,2]{1,0} dot(%param_0, %param_1), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="jit(fn)/sepconv_layer_pointwise/dot_general"}
}

ENTRY %main (x: f32[4,8], w: f32[8,2]) -> f32[4,2] {
  %x = f32[4,8]{1,0} parameter(0), metadata={op_name="x"}
  %w = f32[8,2]{1,0} parameter(1), metadata={op_name="w"}
  %copy.3 = f32[4,8]{1,0} copy(%x), metadata={op_name="jit(fn)/add"}
  %ynn_fusion = f32[4,2]{1,0} fusion(%copy.3, %w), kind=kCustom, calls=%fused_computation, metadata={op_name="jit(fn)/dot_general"}
  %bitcast.1 = f32[8]{0} bitcast(%ynn_fusion)
  ROOT %dot.2 = f32[1,10]{1,0} dot(%bitcast.1, %w), lhs_contracting_dims={0}, rhs_contracting_dims={0}
}
"""
    assert at.step_kinds(hlo) == {"copy.3": "other", "ynn_fusion": "pointwise", "bitcast.1": "other", "dot.2": "other"}
    # a product XLA left unnamed takes the kind of the only layer whose output has its size and last dimension
    assert at.step_kinds(hlo, {(10, 10): "linear", (4, 2): "full"})["dot.2"] == "linear"


def test_a_fused_step_names_both_layers_and_counts_as_the_one_named_more():
    """XLA fused a stem's two multiplies into a depthwise layer's one: the step names both scopes (the
    counts by hand), and the profile counts it as the stem's."""
    hlo = """HloModule jit_fn

%fused (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  %m1 = f32[4]{0} multiply(%p, %p), metadata={op_name="jit(fn)/sepconv_layer_full/jit(broadcast_conv)/mul"}
  %m2 = f32[4]{0} multiply(%m1, %p), metadata={op_name="jit(fn)/sepconv_layer_full/jit(broadcast_conv)/mul"}
  ROOT %m3 = f32[4]{0} multiply(%m2, %p), metadata={op_name="jit(fn)/sepconv_layer_depthwise/mul"}
}

ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  ROOT %loop_fusion = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused, metadata={op_name="jit(fn)/mul"}
}
"""
    assert at.step_scopes(hlo) == {"loop_fusion": {"full": 2, "depthwise": 1}}
    assert at.step_kinds(hlo) == {"loop_fusion": "full"}


def test_shipped_attribution_and_export_results_hold_what_the_chapter_reads():
    from sepconv.benchmarks import load_results

    results = load_results("cpu-cpu")
    export = {r["model"]: r for r in results["onnx_export"]["rows"]}
    assert set(export) == {"mobilenet_v3_large", "mobilenet_v2"}
    for row in export.values():
        assert set(row["times"]) == {"ours, as exported", "ours", "torchvision"}
        assert all(len(t) == row["rounds"] for t in row["times"].values())
        assert row["named_error"] < 1e-5 and row["named_argmax_same"] and len(row["load"]["before"]) == 3
        for graph in row["structure"].values():
            assert graph["nodes"] == [sum(graph["exported"].values()), sum(graph["optimized"].values())]
    attribution = {r["model"]: r for r in results["attribution"]["rows"]}
    assert set(attribution) == {"mobilenet_v3_large", "mobilenet_v2", "mobilenet_v1", "efficientnet_b0"}
    # the layers per kind, from the networks' tables: MobileNet v2 (arXiv 1801.04381, Table 2): the stem,
    # 17 bottlenecks each with a depthwise layer, 16 with an expansion, 17 projections and the last 1x1
    # conv (34 pointwise), one classifier; MobileNetV3-Large (Table 1): 15 bottlenecks, 14 expansions + 15
    # projections + 2 x 8 squeeze-and-excite layers + the 960 head conv (46 pointwise), two linear layers
    assert attribution["mobilenet_v2"]["layers"] == {"depthwise": 17, "pointwise": 34, "full": 1, "grouped": 0,
                                                     "linear": 1}
    assert attribution["mobilenet_v3_large"]["layers"] == {"depthwise": 15, "pointwise": 46, "full": 1,
                                                           "grouped": 0, "linear": 2}
    # MobileNet v1 (arXiv 1704.04861, Table 1): the stem, 13 depthwise-separable layers, one classifier;
    # EfficientNet-B0 (arXiv 1905.11946, Table 1): 16 MBConv blocks, each a depthwise layer, a projection and
    # a squeeze-and-excite pair, 15 of them with an expansion (MBConv1 has none), and the 1280 head conv
    assert attribution["mobilenet_v1"]["layers"] == {"depthwise": 13, "pointwise": 13, "full": 1, "grouped": 0,
                                                     "linear": 1}
    assert attribution["efficientnet_b0"]["layers"] == {"depthwise": 16, "pointwise": 16 + 15 + 2 * 16 + 1,
                                                        "full": 1, "grouped": 0, "linear": 1}
    # LiteRT runs keras.applications' networks: the same layers, but Keras writes MobileNet v1's classifier
    # (``conv_preds``) and MobileNetV3-Large's head (the 1280-wide layer and the classifier) as 1x1
    # convolutions, so on LiteRT's side they count as pointwise
    litert_layers = {model: row["litert"]["layers"] for model, row in attribution.items()}
    assert litert_layers["mobilenet_v2"] == attribution["mobilenet_v2"]["layers"]
    assert litert_layers["efficientnet_b0"] == attribution["efficientnet_b0"]["layers"]
    assert litert_layers["mobilenet_v1"] == {"depthwise": 13, "pointwise": 13 + 1, "full": 1, "grouped": 0, "linear": 0}
    assert litert_layers["mobilenet_v3_large"] == {"depthwise": 15, "pointwise": 46 + 2, "full": 1, "grouped": 0,
                                                   "linear": 0}
    # MobileNet v2's convolutions one by one (litert_operators.layer_comparison): the stem, 17 depthwise and
    # 34 pointwise layers (the paper's count above), the same function on both sides
    pairs = results["litert_layers"]
    assert pairs["model"] == "mobilenet_v2"
    assert collections.Counter(layer["kind"] for layer in pairs["layers"]) == {"full": 1, "depthwise": 17,
                                                                                "pointwise": 34}
    assert all(layer["error"] < 1e-5 and all(len(t) == pairs["rounds"] for t in layer["times"].values())
               for layer in pairs["layers"])
    for row in attribution.values():
        for side in ("onnx", "jax", "litert"):
            assert set(at.KINDS) | {"total"} <= set(row[side]["median"])
        litert = row["litert"]
        assert litert["median"]["total"] == pytest.approx(sum(r["seconds"] for r in litert["operators"]))
        assert litert["sum_over_whole"] == pytest.approx(litert["median"]["total"] / litert["whole"])
        assert len(row["times"]["LiteRT (XNNPACK), Keras"]) == len(row["litert_ratios"]) == row["rounds"]
        assert len(row["times"]["ONNX Runtime"]) == len(row["ratios"]) == row["rounds"]

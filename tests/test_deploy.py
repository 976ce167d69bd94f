"""From trained to deployed: BatchNorm folding, simulated int8, fast inference programs, ONNX export."""

import json
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from sepconv import deploy
from sepconv.benchmarks import SHIPPED_RESULTS
from sepconv.blocks import ConvNormAct, ConvSpec
from sepconv.counter import count
from sepconv.interop import pure_module
from sepconv.transforms.fast_inference import fast_inference, is_narrow_conv, is_pointwise
from sepconv.layers import randomize_batchnorm
from sepconv.models import build_model
from sepconv.training import tiny_mobilenet
from draws import normal, uniform


def _outputs(model, x):
    fn, state = pure_module(model, flat=True)
    return np.asarray(jax.jit(fn)(state, x))


# ---------------------------------------------------------------------------------------------------
# BatchNorm folding
# ---------------------------------------------------------------------------------------------------

def test_folding_one_channel_by_hand():
    """gamma 2, beta 0.5, mean 1, variance 3, eps 1e-3 and a single weight 0.25 (chapter 9's exercise)."""
    layer = ConvNormAct(ConvSpec(1, 1, 1, act=None), rngs=nnx.Rngs(0))
    layer.conv.kernel[...] = jnp.full((1, 1, 1, 1), 0.25)
    layer.bn.scale[...], layer.bn.bias[...] = jnp.array([2.0]), jnp.array([0.5])
    layer.bn.mean[...], layer.bn.var[...] = jnp.array([1.0]), jnp.array([3.0])
    layer.eval()
    folded = deploy.fold_batchnorm(layer)
    g = 2.0 / np.sqrt(3.0 + 1e-3)
    assert folded.bn is None and layer.bn is not None  # a copy; the original keeps its BatchNorm
    np.testing.assert_allclose(float(folded.conv.kernel[...].ravel()[0]), 0.25 * g, rtol=1e-6)
    np.testing.assert_allclose(float(folded.conv.bias[...][0]), 0.5 - g * 1.0, rtol=1e-6)
    x = jnp.array([[[[4.0]]]])
    np.testing.assert_allclose(np.asarray(folded(x)).ravel(), [2 * (4 * 0.25 - 1) / np.sqrt(3.001) + 0.5], rtol=1e-6)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "shufflenet_v2", "efficientnet_b0", "xception"])
def test_folded_networks_compute_the_same(name):
    model = randomize_batchnorm(build_model(name, resolution=96 if name != "xception" else 71), seed=1)
    folded = deploy.fold_batchnorm(model)
    assert not any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(folded))
    assert any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(model))
    size = 96 if name != "xception" else 71
    x = normal(0, (2, size, size, 3))
    a, b = _outputs(model, x), _outputs(folded, x)
    assert np.max(np.abs(a - b)) <= 1e-4 * np.max(np.abs(a))


# ---------------------------------------------------------------------------------------------------
# Simulated quantization
# ---------------------------------------------------------------------------------------------------

@given(seed=st.integers(0, 50), bits=st.sampled_from([2, 4, 8]), per=st.sampled_from(["tensor", "channel"]))
def test_weights_land_on_the_symmetric_grid(seed, bits, per):
    w = normal(seed, (3, 3, 1, 5)) * np.array([1, 0.1, 3, 0.5, 2], np.float32)
    q = np.asarray(deploy.quantize_weight(jnp.asarray(w, jnp.float32), per, axis=-1, bits=bits), np.float64)
    levels = 2 ** (bits - 1) - 1
    amax = np.abs(w).max() if per == "tensor" else np.abs(w).max(axis=(0, 1, 2))
    steps = q / (amax / levels)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # multiples of the scale
    assert np.all(np.abs(steps) <= levels + 1e-3)
    assert np.max(np.abs(q - w) / (amax / levels)) <= 0.5 + 1e-3  # rounding to nearest
    # the largest weight (of the tensor, or of each channel) is represented exactly
    np.testing.assert_allclose(np.abs(q).max(axis=None if per == "tensor" else (0, 1, 2)), amax, rtol=1e-5)


def test_quantized_program_equals_a_hand_quantized_computation():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 3, (2, 6, 6, 4)).astype(np.float32)
    w = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    v = rng.normal(size=(5, 3)).astype(np.float32)

    def fn(x, w, v):
        y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(y).mean(axis=(1, 2)) @ v

    ranges = deploy.activation_ranges(fn, x, w, v)
    hidden = np.asarray(jax.nn.relu(lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))).mean(axis=(1, 2))
    np.testing.assert_allclose(ranges, [[min(0, x.min()), x.max()], [0, hidden.max()]], rtol=1e-6)

    def by_hand(a, lo, hi):  # the unsigned 8-bit affine grid of the deploy module docstring
        s = (hi - lo) / 255
        z = np.round(-lo / s)
        return (np.clip(np.round(a / s) + z, 0, 255) - z) * s

    def weights(k):  # one scale per output channel (last axis)
        s = np.abs(k).max(axis=tuple(range(k.ndim - 1))) / 127
        return np.clip(np.round(k / s), -127, 127) * s

    xq = by_hand(x, *ranges[0]).astype(np.float32)
    y = np.asarray(jax.nn.relu(lax.conv_general_dilated(xq, weights(w).astype(np.float32), (1, 1), "SAME",
                                                        dimension_numbers=("NHWC", "HWIO", "NHWC")))).mean(axis=(1, 2))
    expected = by_hand(y, *ranges[1]) @ weights(v)
    got = deploy.quantized(fn, ranges, "channel")(x, w, v)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(deploy.quantized(fn, None, None)(x, w, v), fn(x, w, v), rtol=1e-5, atol=1e-5)


def test_layer_kinds_and_weight_statistics():
    model = tiny_mobilenet(seed=0)
    rows = deploy.weight_ranges(model)
    kinds = [r.kind for r in rows]
    assert kinds[0] == "full" and kinds[-1] == "linear"
    assert kinds.count("depthwise") == kinds.count("pointwise") == 5
    for r in rows:
        assert r.spread >= 1 and r.error_channel <= r.error_tensor + 1e-12 and r.zeroed == 0
    # a layer whose channels differ 1000-fold: per tensor, the small channels round to zero
    layer = nnx.Conv(1, 5, (3, 3), rngs=nnx.Rngs(0))
    layer.kernel[...] = jnp.ones((3, 3, 1, 5)) * jnp.array([1.0, 1e-3, 1e-3, 1e-3, 1.0])
    (row,) = deploy.weight_ranges(layer)
    assert row.zeroed == 3 and row.spread == pytest.approx(1000, rel=1e-5)
    assert row.error_channel == pytest.approx(0, abs=1e-7)


def test_quantization_arguments_are_checked():
    fn = lambda x: x @ jnp.ones((3, 2))  # noqa: E731
    with pytest.raises(ValueError, match="'row'"):
        deploy.quantized(fn, weights="row")
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16, got 1"):
        deploy.quantized(fn, bits=1)
    with pytest.raises(ValueError, match="unknown layer kinds"):
        deploy.quantized(fn, kinds=("dense",))
    with pytest.raises(ValueError, match="1 calibrated ranges"):
        deploy.quantized(lambda x: (x @ jnp.ones((3, 3))) @ jnp.ones((3, 2)), [(0.0, 1.0)])(jnp.ones((1, 3)))


# ---------------------------------------------------------------------------------------------------
# Fast inference programs
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, resolution", [("mobilenet_v1", 96), ("mobilenet_v2", 96), ("shufflenet_v2", 96),
                                              ("efficientnet_b0", 96), ("convnext_tiny", 64)])
def test_fast_inference_computes_and_counts_the_same(name, resolution):
    model = deploy.fold_batchnorm(randomize_batchnorm(build_model(name, resolution=resolution), seed=2))
    fn, state = pure_module(model, flat=True)
    x = normal(1, (2, resolution, resolution, 3))
    reference = np.asarray(jax.jit(fn)(state, x))
    fast = jax.jit(fast_inference(fn))
    np.testing.assert_allclose(np.asarray(fast(state, x)), reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    batched = jax.jit(deploy.micro_batched(fast_inference(fn), 1))
    np.testing.assert_allclose(np.asarray(batched(state, x)), reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    before, after = count(fn, state, x), count(fast_inference(fn), state, x)
    assert after.complete and after.macs == before.macs


def test_only_channels_last_unit_stride_convolutions_become_products():
    x, w1, w3 = jnp.ones((1, 8, 8, 4)), jnp.ones((1, 1, 4, 6)), jnp.ones((3, 3, 4, 6))

    def eqn_of(fn, *args):
        return next(e for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns if e.primitive.name == "conv_general_dilated")

    nhwc = ("NHWC", "HWIO", "NHWC")
    assert is_pointwise(eqn_of(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=nhwc), x, w1))
    strided = eqn_of(lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=nhwc), x, w1)
    nchw = eqn_of(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")),
                  jnp.ones((1, 4, 8, 8)), jnp.ones((6, 4, 1, 1)))
    assert not is_pointwise(strided) and not is_pointwise(nchw)
    assert is_narrow_conv(eqn_of(lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=nhwc), x, w3))
    wide = eqn_of(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=nhwc),
                  jnp.ones((1, 8, 8, 32)), jnp.ones((3, 3, 32, 8)))
    assert not is_narrow_conv(wide)


def test_a_stem_becomes_broadcast_multiply_adds_and_counts_the_same():
    """A 3x3 stem on 3 channels (27 multiply-adds per output value) runs as broadcast multiply-adds, one
    traced call the counter costs as the convolution; 4 channels (36) stays im2col and a product."""
    from sepconv.transforms.fast_inference import BROADCAST_NAME, is_broadcast_conv

    nhwc = ("NHWC", "HWIO", "NHWC")

    def stem(x, w):
        return lax.conv_general_dilated(x, w, (2, 2), ((0, 1), (0, 1)), dimension_numbers=nhwc)

    for channels, broadcast in ((3, True), (4, False)):
        x, w = normal(channels, (2, 15, 15, channels), (3, 3, channels, 8))
        (eqn,) = [e for e in jax.make_jaxpr(stem)(x, w).jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
        assert is_broadcast_conv(eqn) == broadcast
        calls = [e.params["name"] for e in jax.make_jaxpr(fast_inference(stem))(x, w).jaxpr.eqns
                 if e.primitive.name in ("jit", "pjit")]
        assert (BROADCAST_NAME in calls) == broadcast
        np.testing.assert_allclose(jax.jit(fast_inference(stem))(x, w), stem(x, w), rtol=1e-5, atol=1e-5)
        assert count(fast_inference(stem), x, w).macs == count(stem, x, w).macs == 2 * 7 * 7 * 8 * 9 * channels


@settings(max_examples=8)  # each example compiles two programs
@given(size=st.integers(3, 12), kernel=st.sampled_from([1, 2, 3, 5]), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), channels=st.integers(1, 15), seed=st.integers(0, 20))
def test_im2col_stem_matches_the_convolution(size, kernel, stride, dilation, channels, seed):
    if (kernel - 1) * dilation + 1 > size + 2:
        return
    x, w = normal(seed, (2, size, size + 1, channels), (kernel, kernel, channels, 7))

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (0, 2)), rhs_dilation=(dilation, dilation),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(jax.jit(fast_inference(conv))(x, w), jax.jit(conv)(x, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape", [(5, 7), (2, 6, 6, 4), (3, 2, 4, 5, 4), (2, 6, 6, 2)])  # wider and narrower than g
def test_channel_product_gradient_is_the_two_products(x_shape):
    """``channel_product``'s written-out gradient is the one JAX derives for ``lax.dot_general``, for any
    number of leading axes."""
    from sepconv.transforms.fast_inference import channel_product

    x, kernel = normal(4, x_shape, (x_shape[-1], 3))
    g = normal(5, (*x_shape[:-1], 3))

    def product(x, kernel):
        return lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))

    def loss(fn):
        return jax.jit(jax.grad(lambda x, kernel: jnp.vdot(fn(x, kernel), g), argnums=(0, 1)))

    np.testing.assert_allclose(channel_product(x, kernel), product(x, kernel), rtol=1e-6, atol=1e-6)
    for got, expected in zip(loss(channel_product)(x, kernel), loss(product)(x, kernel)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # by hand, for the kernel: every position's outer product x[p] g[p], summed
    expected = np.einsum("pc,pd->cd", np.reshape(x, (-1, x_shape[-1])), np.reshape(g, (-1, 3)))
    np.testing.assert_allclose(loss(channel_product)(x, kernel)[1], expected, rtol=1e-5, atol=1e-5)


def test_only_a_dense_layer_s_product_is_a_dense_product():
    """``fast_training`` routes ``nnx.Linear``'s product (last axis against a 2-D kernel) through
    ``channel_product``; a batched or differently contracted product stays as traced."""
    from sepconv.transforms.fast_inference import is_dense_product

    def equations(fn, *args):
        return [e for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns if e.primitive.name == "dot_general"]

    x, w, b = jnp.ones((4, 6)), jnp.ones((6, 3)), jnp.ones((2, 4, 6))
    linear = nnx.Linear(6, 3, rngs=nnx.Rngs(0))
    assert [is_dense_product(e) for e in equations(lambda x: linear(x), x)] == [True]
    first_axis = lambda x, w: lax.dot_general(x, x, (((0,), (0,)), ((), ())))  # noqa: E731
    assert [is_dense_product(e) for e in equations(first_axis, x, w)] == [False]
    assert [is_dense_product(e) for e in equations(lambda b: jnp.einsum("bij,bkj->bik", b, b), b)] == [False]


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_a_training_step_through_the_rewrites_has_the_same_gradient(name):
    """The training step through ``fast_training`` (shifted depthwise layers, 1x1 layers and the stem as
    products, each with its written-out gradient) has the gradient of the model as traced: every
    parameter's, BatchNorm in training mode. In float64: at 32 pixels and a batch of 4, training-mode
    BatchNorm over a few values amplifies float32 rounding to 1e-3 of the largest gradient, which would
    hide a wrong term as small; in float64 the two agree to 1e-9."""
    import optax

    from sepconv.transforms.fast_inference import fast_training
    from sepconv.transforms.rewrite import rewrite_equations

    with jax.enable_x64(True):
        model = build_model(name, resolution=32)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        params, rest = (jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, tree)
                        for tree in (params, rest))
        x, labels = normal(6, (4, 32, 32, 3)).astype(np.float64), jnp.arange(4) % 3

        def forward(params, rest, x):
            m = nnx.merge(graphdef, params, rest)
            m.train()
            return m(x)

        def gradient(fn):
            loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(fn(p, rest, x), labels).mean()
            return jax.jit(jax.grad(loss))(params)

        plain = rewrite_equations(forward, lambda eqn: False, None)  # traced once, as the rewrites trace it
        fast, reference = gradient(fast_training(forward)), gradient(plain)
        assert jax.tree.leaves(fast)[0].dtype == jnp.float64
        scale = max(float(np.abs(leaf).max()) for leaf in jax.tree.leaves(reference))
        for got, expected in zip(jax.tree.leaves(fast), jax.tree.leaves(reference)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-7, atol=1e-9 * scale)


def test_micro_batches_must_divide_the_batch():
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        deploy.micro_batched(lambda s, x: x, 0)
    with pytest.raises(ValueError, match="a batch of 5 is not a multiple of the micro-batch 2"):
        deploy.micro_batched(lambda s, x: x, 2)(None, jnp.ones((5, 3)))


# ---------------------------------------------------------------------------------------------------
# ONNX export and ONNX Runtime (optional extra "deploy")
# ---------------------------------------------------------------------------------------------------

def _require_runtime():
    problem = deploy.missing_runtime()
    if problem:
        pytest.skip(problem)


def test_exported_model_runs_the_same_on_onnx_runtime():
    _require_runtime()
    model = deploy.fold_batchnorm(randomize_batchnorm(tiny_mobilenet(seed=3, act="relu6"), seed=3))
    x = uniform(0, (8, 16, 16, 3))
    proto = deploy.export_onnx(model, x.shape)
    ops = {node.op_type for node in proto.graph.node}
    assert "Conv" in ops and "BatchNormalization" not in ops
    _, run = deploy.onnx_session(proto)
    ours = _outputs(model, x)
    np.testing.assert_allclose(run(x), ours, rtol=1e-5, atol=1e-5 * np.abs(ours).max())
    calibration = uniform(1, (32, 16, 16, 3))
    int8 = deploy.quantize_onnx(proto, calibration)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in int8.graph.node}
    _, run_int8 = deploy.onnx_session(int8)
    assert np.max(np.abs(run_int8(x) - ours)) <= 0.1 * np.abs(ours).max()  # int8: close, not equal
    # 7-bit weights by default: 255 * 64 * 2 fits AVX2's 16-bit pair sums, 255 * 127 * 2 does not
    assert _largest_int8_weight(int8) == 64
    assert _largest_int8_weight(deploy.quantize_onnx(proto, calibration, reduce_range=False)) == 127


def _largest_int8_weight(proto) -> int:
    from onnx import TensorProto, numpy_helper

    weights = [numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == TensorProto.INT8]
    assert weights, "no int8 weights in the quantized graph"
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


def test_shipped_runtime_results_hold_every_program():
    runtimes = json.loads((SHIPPED_RESULTS / "cpu-cpu" / "runtimes.json").read_text())
    rows = {(r["model"], r["batch"]): r for r in runtimes["rows"]}
    networks = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0")
    assert set(rows) == {(m, b) for m in networks for b in (1, 32)}
    for (model, _), row in rows.items():
        assert {"JAX, as traced", "JAX, shifts", "JAX, inference", "ONNX Runtime, ours",
                "LiteRT (XNNPACK), Keras"} <= set(row["seconds"])
        assert ("torch.compile" in row["seconds"]) == (model != "mobilenet_v1")  # torchvision has no v1
        assert all(len(t) == row["rounds"] for t in row["times"].values())
        for label, error in row["errors"].items():  # same weights and input: the float programs agree
            assert error < 1e-4, label


def test_runtime_comparison_times_every_program_it_has(capsys):
    _require_runtime()
    from sepconv.runtimes import runtime_comparison

    result = runtime_comparison(networks=("mobilenet_v1",), batches=(2,), rounds=2, repeats=1, batched_repeats=1,
                                resolution=64)
    (row,) = result["rows"]
    assert set(row["seconds"]) == {"JAX, as traced", "JAX, shifts", "JAX, inference", "ONNX Runtime, ours",
                                   "ONNX Runtime, ours int8"}
    assert all(len(times) == 2 for times in row["times"].values())
    # a ratio above 1 in a round exactly when the numerator took longer in it, and the row's ratio the median
    traced, inference = row["times"]["JAX, as traced"], row["times"]["JAX, inference"]
    ratios = row["ratios"]["JAX, as traced / JAX, inference"]
    assert [r > 1 for r in ratios] == [t > i for t, i in zip(traced, inference)]
    assert [r * i for r, i in zip(ratios, inference)] == pytest.approx(traced)
    assert row["ratio"]["JAX, as traced / JAX, inference"] == pytest.approx(statistics.median(ratios))
    assert max(row["errors"].values()) < 1e-4 and "LiteRT" in result["skipped"]
    assert row["micro_batch"] in (1, 2) and result["batching"] == []  # no batch 1 to compare batch 2 with
    assert result["settle"] is None  # nor to time after ONNX Runtime
    assert row["devices"] == 1 and result["cpu_devices"] == 1  # this process has one CPU device
    assert all(len(result["load"][when]) == 3 for when in ("before", "after"))
    assert "mobilenet_v1 batch 2" in capsys.readouterr().out


def test_settle_comparison_times_our_program_after_onnx_runtime():
    _require_runtime()
    from sepconv.benchmarks.harness import SETTLE_S
    from sepconv.benchmarks.runtimes import settle_comparison

    result = settle_comparison("mobilenet_v1", rounds=2, repeats=1, resolution=32)
    assert result["model"] == "mobilenet_v1" and result["pause"] == SETTLE_S and result["rounds"] == 2
    (times,) = result["times"].values()  # no LiteRT models given: our program only
    assert set(result["times"]) == {"JAX, inference"}
    assert {label: len(t) for label, t in times.items()} == {"right after": 2, "settled": 2}
    assert min(times["right after"] + times["settled"]) > 0


def test_batching_comparison_pairs_each_round_per_image(capsys):
    """Batch 1 and batch 4 of our inference program in the same rounds: each round's ratio is batch 4's
    time per image over batch 1's, and the micro-batch is what ``cache_micro_batch`` picks."""
    from sepconv.benchmarks.runtimes import batching_comparison
    from sepconv.transforms.streaming import cache_micro_batch

    (row,) = batching_comparison(networks=("mobilenet_v1",), batch=4, rounds=3, repeats=1, resolution=32)
    single, batched = row["per_image"]["batch 1"], row["per_image"]["batch 4"]
    assert len(single) == len(batched) == len(row["ratios"]) == 3 and min(single + batched) > 0
    assert row["ratios"] == pytest.approx([b / a for a, b in zip(single, batched)])
    fn, state = pure_module(deploy.fold_batchnorm(build_model("mobilenet_v1", resolution=32)), flat=True)
    assert row["micro_batch"] == cache_micro_batch(fast_inference(fn), state, jnp.ones((4, 32, 32, 3)))
    assert "mobilenet_v1: batch 4" in capsys.readouterr().out

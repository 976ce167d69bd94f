"""LiteRT's operators one at a time (``benchmarks.litert_operators``), on a small flat buffer the test writes.

The model (float32, channels last): a 3x3 convolution of 3 channels to 4 (SAME), a 1x1 convolution to 6 with
a fused ReLU6,
a 3x3 depthwise layer (SAME), the sum of the last two, a reshape to a vector and a fully connected layer
to 5 outputs. Every expected output is computed here in NumPy from the same weights.
"""

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from sepconv.benchmarks import litert_operators as lo  # noqa: E402

H = W = 5
RNG = np.random.default_rng(7)
WEIGHTS = {
    "stem": RNG.normal(size=(4, 3, 3, 3)).astype(np.float32), "stem_b": RNG.normal(size=4).astype(np.float32),
    "pw": RNG.normal(size=(6, 1, 1, 4)).astype(np.float32), "pw_b": RNG.normal(size=6).astype(np.float32),
    "dw": RNG.normal(size=(1, 3, 3, 6)).astype(np.float32), "dw_b": RNG.normal(size=6).astype(np.float32),
    "fc": RNG.normal(size=(5, H * W * 6)).astype(np.float32), "fc_b": RNG.normal(size=5).astype(np.float32),
}


def _flat_buffer() -> bytes:
    import flatbuffers

    codes = {}
    buffers = [schema.BufferT()]
    tensors = []

    def tensor(name, shape, value=None, dtype=schema.TensorType.FLOAT32):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, 0
        if value is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(value).tobytes(), np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    def code(builtin):
        if builtin not in codes:
            c = schema.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), 1
            codes[builtin] = (len(codes), c)
        return codes[builtin][0]

    def operator(builtin, inputs, outputs, kind=schema.BuiltinOptions.NONE, options=None):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code(builtin), inputs, outputs
        op.builtinOptionsType, op.builtinOptions = kind, options
        return op

    def conv_options(cls, **extra):
        o = cls()
        o.padding, o.strideW, o.strideH, o.dilationWFactor, o.dilationHFactor = schema.Padding.SAME, 1, 1, 1, 1
        for k, v in extra.items():
            setattr(o, k, v)
        return o

    B = schema.BuiltinOperator
    x = tensor("x", (1, H, W, 3))
    t0 = tensor("t0", (1, H, W, 4))
    t1 = tensor("t1", (1, H, W, 6))
    t2 = tensor("t2", (1, H, W, 6))
    t3 = tensor("t3", (1, H, W, 6))
    t4 = tensor("t4", (1, H * W * 6))
    y = tensor("y", (1, 5))
    shape = tensor("shape", (2,), np.array([1, H * W * 6], np.int32), schema.TensorType.INT32)
    w = {k: tensor(k, v.shape, v) for k, v in WEIGHTS.items()}
    reshape = schema.ReshapeOptionsT()
    reshape.newShape = [1, H * W * 6]
    operators = [
        operator(B.CONV_2D, [x, w["stem"], w["stem_b"]], [t0], schema.BuiltinOptions.Conv2DOptions,
                 conv_options(schema.Conv2DOptionsT)),
        operator(B.CONV_2D, [t0, w["pw"], w["pw_b"]], [t1], schema.BuiltinOptions.Conv2DOptions,
                 conv_options(schema.Conv2DOptionsT, fusedActivationFunction=schema.ActivationFunctionType.RELU6)),
        operator(B.DEPTHWISE_CONV_2D, [t1, w["dw"], w["dw_b"]], [t2], schema.BuiltinOptions.DepthwiseConv2DOptions,
                 conv_options(schema.DepthwiseConv2DOptionsT, depthMultiplier=1)),
        operator(B.ADD, [t1, t2], [t3], schema.BuiltinOptions.AddOptions, schema.AddOptionsT()),
        operator(B.RESHAPE, [t3, shape], [t4], schema.BuiltinOptions.ReshapeOptions, reshape),
        operator(B.FULLY_CONNECTED, [t4, w["fc"], w["fc_b"]], [y], schema.BuiltinOptions.FullyConnectedOptions,
                 schema.FullyConnectedOptionsT()),
    ]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = tensors, [x], [y], operators, "main"
    model = schema.ModelT()
    model.version, model.description = 3, "test model"
    model.operatorCodes = [c for _, c in sorted(codes.values(), key=lambda p: p[0])]
    model.subgraphs, model.buffers = [graph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _conv_same(x, kernel, bias, depthwise=False):
    """A stride-1 SAME convolution, channels last, kernel (O, K_h, K_w, I), written as loops over the taps."""
    k = kernel.shape[1]
    p = k // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros((*x.shape[:3], kernel.shape[-1] if depthwise else kernel.shape[0]), np.float64)
    for i in range(k):
        for j in range(k):
            window = padded[:, i:i + x.shape[1], j:j + x.shape[2], :]
            out += window * kernel[0, i, j] if depthwise else window @ kernel[:, i, j, :].T
    return out + bias


def _expected(x):
    t0 = _conv_same(x, WEIGHTS["stem"], WEIGHTS["stem_b"])
    t1 = np.clip(_conv_same(t0, WEIGHTS["pw"], WEIGHTS["pw_b"]), 0, 6)  # its fused ReLU6
    t2 = _conv_same(t1, WEIGHTS["dw"], WEIGHTS["dw_b"], depthwise=True)
    t3 = t1 + t2
    t4 = t3.reshape(1, -1)
    return [t0, t1, t2, t3, t4, t4 @ WEIGHTS["fc"].T + WEIGHTS["fc_b"]]


def _run(content, inputs):
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], np.asarray(value, np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def content():
    return _flat_buffer()


@pytest.fixture
def model_path(tmp_path, content):
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    return path


def test_the_written_model_computes_what_numpy_does(content):
    x = RNG.normal(size=(1, H, W, 3))
    np.testing.assert_allclose(_run(content, [x]), _expected(x)[-1], rtol=1e-4, atol=1e-3)


def test_operator_rows_name_and_classify_each_operator(content):
    rows = lo.operator_rows(lo.read_model(content))
    assert [r["op"] for r in rows] == ["CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "FULLY_CONNECTED"]
    assert [r["kind"] for r in rows] == ["full", "pointwise", "depthwise", "other", "other", "linear"]
    assert rows[1]["shapes"] == [[1, H, W, 4], [6, 1, 1, 4], [6]]
    assert rows[5]["output"] == [1, 5]


def test_each_single_operator_model_computes_its_operator(content):
    model = lo.read_model(content)
    x = RNG.normal(size=(1, H, W, 3))
    t0, t1, t2, t3, t4, y = _expected(x)
    feeds = {0: [x], 1: [t0], 2: [t1], 3: [t1, t2], 4: [t3], 5: [t4]}
    wanted = {0: t0, 1: t1, 2: t2, 3: t3, 4: t4, 5: y}
    for index in range(6):
        single = lo.single_operator_model(model, index)
        cut = lo.read_model(single)
        assert len(cut.subgraphs[0].operators) == 1
        # only the operator's own constants travel: buffer 0 plus its weights (and the reshape's shape)
        assert len(cut.buffers) == 1 + {0: 2, 1: 2, 2: 2, 3: 0, 4: 1, 5: 2}[index]
        np.testing.assert_allclose(_run(single, feeds[index]), wanted[index], rtol=1e-4, atol=1e-3)


def test_single_operator_model_refuses_an_index_out_of_range(content):
    with pytest.raises(ValueError, match="operator index 6 out of range: the model has 6 operators"):
        lo.single_operator_model(lo.read_model(content), 6)


def test_read_model_takes_a_path(model_path):
    assert len(lo.read_model(model_path).subgraphs[0].operators) == 6


@pytest.mark.parametrize("op, shapes, kind", [
    ("CONV_2D", [[1, 8, 8, 16], [32, 1, 1, 16]], "pointwise"),
    ("CONV_2D", [[1, 8, 8, 3], [16, 3, 3, 3]], "full"),
    ("CONV_2D", [[1, 8, 8, 16], [16, 3, 3, 4]], "grouped"),      # 4 groups of 4 channels
    ("CONV_2D", [[1, 8, 8, 16], [16, 3, 3, 1]], "depthwise"),    # 16 groups of one channel
    ("DEPTHWISE_CONV_2D", [[1, 8, 8, 16], [1, 3, 3, 16]], "depthwise"),
    ("DEPTHWISE_CONV_2D", [[1, 8, 8, 16], [1, 3, 3, 32]], "grouped"),  # depth multiplier 2
    ("FULLY_CONNECTED", [[1, 64], [10, 64]], "linear"),
    ("HARD_SWISH", [[1, 8, 8, 16]], "other"),
    ("MEAN", [[1, 8, 8, 16], [2]], "other"),
])
def test_litert_operator_kind_by_hand(op, shapes, kind):
    assert lo.litert_operator_kind(op, shapes) == kind


@pytest.mark.parametrize("op, shapes, message", [
    ("CONV_2D", [[1, 8, 8, 16]], r"a CONV_2D needs a 4-d input and a 4-d filter, got shapes \[\[1, 8, 8, 16\]\]"),
    ("CONV_2D", [[1, 8, 8, 16], [8, 3, 3, 5]], "input channels 16 and filter .*16 is not a multiple of 5"),
    ("DEPTHWISE_CONV_2D", [[1, 8, 8, 16], [1, 3, 3, 24]], "a multiple of 16"),
])
def test_litert_operator_kind_refuses_bad_shapes_in_one_line(op, shapes, message):
    with pytest.raises(ValueError, match=message) as error:
        lo.litert_operator_kind(op, shapes)
    assert "\n" not in str(error.value)


def test_litert_kind_times_sums_its_operators_by_kind(model_path):
    result = lo.litert_kind_times(model_path, rounds=2, repeats=3, threads=1)
    operators = result["operators"]
    assert len(operators) == 6 and all(r["seconds"] > 0 for r in operators)
    by_kind = {kind: sum(r["seconds"] for r in operators if r["kind"] == kind)
               for kind in ("full", "pointwise", "depthwise", "linear", "other")}
    for kind, seconds in by_kind.items():
        assert result["median"][kind] == pytest.approx(seconds)
    assert result["median"]["grouped"] == 0.0
    assert result["median"]["total"] == pytest.approx(sum(by_kind.values()))
    assert result["sum_over_whole"] == pytest.approx(result["median"]["total"] / result["whole"])
    assert len(result["times"]) == 2 and result["threads"] == 1


def test_jax_layer_computes_each_convolution_as_litert_does(content):
    model = lo.read_model(content)
    x = RNG.normal(size=(1, H, W, 3))
    t0, t1, t2, *_ = _expected(x)
    for index, inputs, wanted in ((0, x, t0), (1, t0, t1), (2, t1, t2)):
        fn, (zeros, kernel, bias) = lo.jax_layer(model, index)
        assert zeros.shape == inputs.shape and not np.any(np.asarray(zeros))
        got = np.asarray(fn(np.asarray(inputs, np.float32), kernel, bias))
        np.testing.assert_allclose(got, wanted, rtol=1e-4, atol=1e-3)


def test_jax_layer_refuses_other_operators_in_one_line(content):
    with pytest.raises(ValueError, match="operator 3 is ADD: jax_layer takes CONV_2D and DEPTHWISE_CONV_2D"):
        lo.jax_layer(lo.read_model(content), 3)


def test_layer_comparison_pairs_every_convolution(model_path):
    result = lo.layer_comparison(model_path, rounds=2, repeats=1, threads=1, pause=0.0)
    layers = result["layers"]
    assert [(r["index"], r["kind"]) for r in layers] == [(0, "full"), (1, "pointwise"), (2, "depthwise")]
    assert all(r["error"] < 1e-5 for r in layers)  # the same layer on both sides
    assert all(set(r["times"]) == {"JAX", "LiteRT"} and all(len(t) == 2 for t in r["times"].values())
               for r in layers)
    only_depthwise = lo.layer_comparison(model_path, rounds=1, repeats=1, threads=1, kinds=("depthwise",), pause=0.0)
    assert [r["index"] for r in only_depthwise["layers"]] == [2]

"""The ONNX export's graph: activations and spatial means as ONNX's own operators (``named_operators``)."""

import collections

import numpy as np
import pytest

from sepconv import deploy
from sepconv.layers import randomize_batchnorm
from sepconv.models import build_model
from sepconv.training import tiny_mobilenet
from sepconv.transforms.onnx_export import named_operators
from draws import uniform

onnx = pytest.importorskip("onnx")
if deploy.missing_runtime():
    pytest.skip(deploy.missing_runtime(), allow_module_level=True)
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _ops(proto) -> collections.Counter:
    return collections.Counter(node.op_type for node in proto.graph.node)


def _products(proto) -> list:
    """The multiplying nodes (Conv, Gemm) as (op, attributes, weight arrays): what the MACs are counted from."""
    arrays = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    return [(n.op_type, str(sorted((a.name, str(a)) for a in n.attribute)),
             [arrays[i].tobytes() for i in n.input if i in arrays]) for n in proto.graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul")]


def _agree(a, b):
    """Outputs within 1e-5 of the largest logit, and the same class for every image."""
    assert np.max(np.abs(a - b)) <= 1e-5 * np.abs(b).max()
    assert (a.argmax(-1) == b.argmax(-1)).all()


def test_mobilenet_v3_large_exports_the_operators_of_its_table():
    # MobileNetV3 paper (arXiv 1905.02244v5), Table 1: hard-swish after the stem, in both layers with an
    # activation of the nine HS bottlenecks (expand, depthwise), in the 960 head layer and in the 1280
    # one: 1 + 2 * 9 + 1 + 1 = 21. ReLU: the first bottleneck (no expansion: its depthwise layer), the
    # other five RE bottlenecks twice, and inside each of the 8 squeeze-and-excite modules (the rows
    # marked SE: 3 x 40, 2 x 112, 3 x 160): 1 + 10 + 8 = 19; each SE ends in a hard sigmoid (8) and
    # averages its input (8), and the head averages once more (9 spatial means, each a GlobalAveragePool).
    model = deploy.fold_batchnorm(randomize_batchnorm(build_model("mobilenet_v3_large", resolution=96), seed=0))
    x = uniform(0, (2, 96, 96, 3))
    raw = deploy.export_onnx(model, x.shape, named=False)
    named = deploy.export_onnx(model, x.shape)
    ops = _ops(named)
    assert (ops["HardSwish"], ops["Relu"], ops["HardSigmoid"], ops["GlobalAveragePool"]) == (21, 19, 8, 9)
    assert not {"Max", "Min", "Div", "ReduceSum", "ReduceMean", "Expand"} & set(ops)
    assert ops["Flatten"] == 1  # the classifier's mean drops the spatial axes, the squeeze-and-excite ones keep them
    assert ops["Mul"] == 8  # the SE gates' products with their inputs, nothing else
    assert _ops(raw)["Conv"] == ops["Conv"] == 62 and _products(raw) == _products(named)  # same MACs
    _, run_raw = deploy.onnx_session(raw)
    _, run_named = deploy.onnx_session(named)
    _agree(run_named(x), run_raw(x))


@pytest.mark.parametrize("act, op", [("relu", "Relu"), ("relu6", "Clip")])
def test_relu_and_relu6_are_one_operator_each(act, op):
    model = deploy.fold_batchnorm(randomize_batchnorm(tiny_mobilenet(seed=3, act=act), seed=3))
    x = uniform(0, (4, 16, 16, 3))
    raw, named = deploy.export_onnx(model, x.shape, named=False), deploy.export_onnx(model, x.shape)
    # one activation after every convolution (stem, depthwise, pointwise), none after the classifier
    assert _ops(named)[op] == _ops(named)["Conv"] > 0 and not {"Max", "Min"} & set(_ops(named))
    assert _products(raw) == _products(named)
    _agree(deploy.onnx_session(named)[1](x), deploy.onnx_session(raw)[1](x))


def _graph(nodes, constants):
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in constants.items()]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])
    outs = sorted({o for n in nodes for o in n.output} - {i for n in nodes for i in n.input})
    y = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
    return helper.make_model(helper.make_graph(nodes, "g", [x], y, inits), opset_imports=[helper.make_opsetid("", 17)])


def test_hand_built_chains_and_what_is_left_alone():
    n = helper.make_node
    c = {"three": 3.0, "zero": 0.0, "six": 6.0, "half": 0.5}
    swish = [n("Add", ["x", "three"], ["a"]), n("Max", ["a", "zero"], ["b"]), n("Min", ["b", "six"], ["c"]),
             n("Div", ["c", "six"], ["d"]), n("Mul", ["d", "x"], ["y"])]
    assert [node.op_type for node in named_operators(_graph(swish, c)).graph.node] == ["HardSwish"]
    sigmoid = swish[:4]
    (node,) = named_operators(_graph(sigmoid, c)).graph.node
    assert node.op_type == "HardSigmoid" and [a.f for a in node.attribute] == pytest.approx([1 / 6, 0.5])
    # 0.5 is not 0: no Relu; an intermediate read twice cannot be folded into one operator
    other = [n("Max", ["x", "half"], ["p"]), n("Max", ["x", "zero"], ["q"]), n("Min", ["q", "six"], ["r"]),
             n("Add", ["q", "r"], ["s"])]
    assert [node.op_type for node in named_operators(_graph(other, c)).graph.node] == [
        "Max", "Relu", "Min", "Add"]
    # the numbers: hard swish and hard sigmoid by hand at points on both sides of their kinks
    x = np.array([[-4, -3, -1.5, 0, 2], [2.9, 3, 3.5, 6, -0.25]], np.float32)
    hand_sigmoid = np.clip(x + 3, 0, 6) / 6
    for nodes, expected in ((swish, x * hand_sigmoid), (sigmoid, hand_sigmoid)):
        _, run = deploy.onnx_session(named_operators(_graph(nodes, c)))
        np.testing.assert_allclose(run(x), expected, rtol=1e-6, atol=1e-7)

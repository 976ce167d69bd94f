"""Export to ONNX and ONNX Runtime: ``export_onnx`` writes a model as an ONNX graph with ``jax2onnx``
(optional extra ``deploy``: ``pip install sepconv[deploy]``), ``quantize_onnx`` quantizes it with ONNX
Runtime's own tool, ``onnx_session`` runs it on ONNX Runtime.

``named_operators`` rewrites the graph ``jax2onnx`` writes so that each activation and each spatial
mean is the one ONNX operator a runtime knows (``Relu``, ``Clip``, ``HardSwish``, ``HardSigmoid``,
``ReduceMean``) instead of the elementwise arithmetic it was traced as (the library's activations are
its own functions: ``x * relu6(x + 3) / 6`` arrives as ``Add``, ``Max``, ``Min``, ``Div``, ``Mul``).
ONNX Runtime fuses a named activation into the convolution before it and keeps the network in its
blocked ``NCHWc`` layout across it; the arithmetic form breaks both, and each break costs a layout
conversion out of and back into the blocked layout. For MobileNetV3-Large that took ONNX Runtime's
optimized graph from torchvision's 112 nodes, 28 of them layout conversions, to 350 with 95; rewritten,
it is 113 with 28, the same operators as torchvision's and one ``Transpose`` of the ``NHWC`` input
(``benchmarks.attribution.onnx_structure``; ``data/benchmarks/*/onnx_export.json``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["missing_runtime", "export_onnx", "named_operators", "quantize_onnx", "onnx_session"]


def missing_runtime() -> str | None:
    """``None`` when ONNX export and ONNX Runtime are installed, else what to install."""
    missing = []
    for module in ("onnx", "onnxruntime", "jax2onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return f"{', '.join(missing)} not installed: pip install 'sepconv[deploy]'"
    return None


def export_onnx(model: nnx.Module, input_shape: tuple, name: str = "sepconv", named: bool = True):
    """``model`` (eval mode; fold BatchNorm first for the graph a runtime would run) as an ONNX
    ``ModelProto`` for inputs of ``input_shape`` (NHWC, float32), written by ``jax2onnx``; with
    ``named`` (the default), activations and spatial means as ONNX's own operators (``named_operators``)."""
    problem = missing_runtime()
    if problem:
        raise RuntimeError(problem)
    from jax2onnx import to_onnx

    model.eval()
    proto = to_onnx(model, [jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)], model_name=name)
    return named_operators(proto) if named else proto


def named_operators(proto):
    """``proto`` with each activation and spatial mean as one ONNX operator (module docstring), the same
    function of the input up to float rounding. Rewritten chains (every intermediate value used once):

    - ``Add(x, 3) -> Max(., 0) -> Min(., 6) -> Div(., 6) -> Mul(x, .)``: ``HardSwish(x)``
      (``x * relu6(x + 3) / 6``, MobileNetV3 sec. 5.2), and without the ``Mul``: ``HardSigmoid(x)``
      with ``alpha = 1/6, beta = 1/2`` (``relu6(x + 3) / 6 = max(0, min(1, x / 6 + 1 / 2))``);
    - ``Max(x, 0) -> Min(., 6)``: ``Clip(x, 0, 6)``; a lone ``Max(x, 0)``: ``Relu(x)``;
    - ``ReduceSum(x, axes, keepdims=0) -> Reshape -> Expand -> Div(., n)`` back to ``x``'s rank, ``n``
      the number of values summed: ``ReduceMean(x, axes, keepdims=1)``;
    - a ``ReduceMean`` of an ``NHWC`` tensor over its two spatial axes (squeeze-and-excitation's, the
      classifier's): ``GlobalAveragePool``, the operator ONNX has for it, between transposes to ``NCHW``
      and back (or a ``Flatten`` where the mean drops the axes); ONNX Runtime cancels the transposes
      against those around the convolutions, and runs the pool on its blocked layout.

    Nodes left without a use (the shape computations of the broadcast) are removed. A graph with
    none of these chains comes back unchanged but for that."""
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    model = shape_inference.infer_shapes(proto)
    graph = model.graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    consumers: dict = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def scalar(name):
        a = arrays.get(name)
        return None if a is None or a.size != 1 else float(a.reshape(()))

    def operand(node, op, value):
        """The other input of ``node`` when it is ``op`` with the scalar constant ``value`` (a ``Div``'s
        divisor only), else ``None``."""
        if node is None or node.op_type != op or len(node.input) != 2:
            return None
        for a, b in ((0, 1),) if op == "Div" else ((0, 1), (1, 0)):
            if scalar(node.input[b]) == value:
                return node.input[a]
        return None

    def single_use(name):
        """The one node that reads the intermediate ``name``, else ``None``."""
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in outputs else None

    def constant(name, value):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    replaced, removed = {}, set()  # id(last node of a chain) -> new node; ids of every node of a chain

    def rewrite(chain, new):
        if any(id(n) in removed for n in chain):
            return
        replaced[id(chain[-1])] = new
        removed.update(id(n) for n in chain)

    for node in graph.node:
        x = operand(node, "Add", 3.0)
        if x is None:
            continue
        top = single_use(node.output[0])
        bottom = top and single_use(top.output[0])
        divide = bottom and single_use(bottom.output[0])
        if operand(top, "Max", 0.0) is None or operand(bottom, "Min", 6.0) is None or operand(divide, "Div", 6.0) is None:
            continue
        gate = divide.output[0]
        mul = single_use(gate)
        if mul is not None and mul.op_type == "Mul" and sorted(mul.input) == sorted([x, gate]):
            rewrite([node, top, bottom, divide, mul], helper.make_node("HardSwish", [x], [mul.output[0]]))
        else:
            rewrite([node, top, bottom, divide],
                    helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5))
    for node in graph.node:
        x = operand(node, "Max", 0.0)
        if x is not None and id(node) not in removed:
            bottom = single_use(node.output[0])
            if operand(bottom, "Min", 6.0) is not None:
                out = bottom.output[0]
                rewrite([node, bottom], helper.make_node(
                    "Clip", [x, constant(out + "_clip_lo", 0.0), constant(out + "_clip_hi", 6.0)], [out]))
            else:
                rewrite([node], helper.make_node("Relu", [x], [node.output[0]]))
        keep = [a.i for a in node.attribute if a.name == "keepdims"]
        if node.op_type == "ReduceSum" and keep == [0] and len(node.input) == 2 and node.input[1] in arrays:
            reshape = single_use(node.output[0])
            expand = reshape and single_use(reshape.output[0])
            divide = expand and single_use(expand.output[0])
            shape = shapes.get(node.input[0])
            if (reshape is None or reshape.op_type != "Reshape" or expand is None or expand.op_type != "Expand"
                    or divide is None or not shape or not all(shape)):
                continue
            axes = [int(a) % len(shape) for a in np.ravel(arrays[node.input[1]])]
            count = int(np.prod([shape[a] for a in axes]))
            kept = [1 if a in axes else d for a, d in enumerate(shape)]
            if operand(divide, "Div", float(count)) is not None and shapes.get(divide.output[0]) == kept:
                rewrite([node, reshape, expand, divide],
                        helper.make_node("ReduceMean", list(node.input), [divide.output[0]], keepdims=1))
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) in replaced or id(n) not in removed]
    nodes = [new for node in nodes for new in _global_pool(node, arrays, shapes)]
    live, kept_nodes = set(outputs), []
    for node in reversed(nodes):  # drop what no output depends on
        if any(o in live for o in node.output):
            kept_nodes.append(node)
            live.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept_nodes))
    initializers = [i for i in graph.initializer if i.name in live]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def _global_pool(node, arrays: dict, shapes: dict) -> list:
    """``[node]``, or where ``node`` is a ``ReduceMean`` over axes 1 and 2 of a rank-4 (``NHWC``) tensor,
    the same mean as ``Transpose`` to ``NCHW``, ``GlobalAveragePool`` and ``Transpose`` back (``keepdims``)
    or ``Flatten`` (without)."""
    from onnx import helper

    if node.op_type != "ReduceMean":
        return [node]
    if len(node.input) > 1:
        axes = arrays.get(node.input[1])
    else:
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    shape = shapes.get(node.input[0])
    if axes is None or not shape or len(shape) != 4 or sorted(int(a) % 4 for a in np.ravel(axes)) != [1, 2]:
        return [node]
    keep = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    x, y = node.input[0], node.output[0]
    first = helper.make_node("Transpose", [x], [y + "_nchw"], perm=[0, 3, 1, 2])
    pool = helper.make_node("GlobalAveragePool", [y + "_nchw"], [y + "_pooled"])
    last = (helper.make_node("Transpose", [y + "_pooled"], [y], perm=[0, 2, 3, 1]) if keep
            else helper.make_node("Flatten", [y + "_pooled"], [y], axis=1))
    return [first, pool, last]


def quantize_onnx(proto, calibration, per_channel: bool = True, reduce_range: bool = True):
    """``proto`` quantized statically by ONNX Runtime's own tool (``quantize_static``, QDQ format):
    int8 weights (symmetric; one scale per output channel when ``per_channel``), uint8 activations
    with ranges from running ``calibration`` (an array of inputs, fed one at a time) through the
    float graph (min/max). What ONNX Runtime then runs is an int8 program.

    ``reduce_range`` (the default) gives the weights 7 of their 8 bits (-64..64). On an x86 CPU
    without VNNI, ONNX Runtime multiplies uint8 activations by int8 weights with AVX2's
    ``vpmaddubsw``, which adds each pair of products in 16 bits and saturates: 255 * 127 * 2 = 64770
    does not fit in 32767, and one of chapter 9's digit networks lost 1.8 points of accuracy to it
    on such a CPU (AMD Zen 3) while agreeing with the simulation on a CPU with VNNI. With 7-bit
    weights no pair can overflow (255 * 64 * 2 = 32640), on every CPU. ``reduce_range=False`` keeps
    8 bits where only speed is measured."""
    problem = missing_runtime()
    if problem:
        raise RuntimeError(problem)
    import logging
    import os
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = proto.graph.input[0].name
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value or 1
    samples = np.asarray(calibration, np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter({name: samples[i:i + batch]} for i in range(0, len(samples) - batch + 1, batch))

        def get_next(self):
            return next(self.feeds, None)

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as folder:
        source, target = os.path.join(folder, "float.onnx"), os.path.join(folder, "int8.onnx")
        onnx.save(proto, source)
        root.setLevel(logging.ERROR)  # the tool logs advice on its root logger (pre-processing) at every call
        try:
            quantize_static(source, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=reduce_range, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8)
        finally:
            root.setLevel(level)
        return onnx.load(target)


def onnx_session(proto, threads: int | None = None):
    """An ONNX Runtime CPU session for ``proto``, and a function ``run(x) -> output`` on it."""
    problem = missing_runtime()
    if problem:
        raise RuntimeError(problem)
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x):
        return session.run(None, {name: np.asarray(x, np.float32)})[0]

    return session, run

"""LiteRT's time per operator, measured one operator at a time.

LiteRT (``ai-edge-litert``) hands a whole float network to its XNNPACK delegate, which runs it as one
delegated node, and its Python interpreter has no profiler: the whole network is one time. To see
where that time goes, each operator of the flat buffer is cut out into a model of its own
(``single_operator_model``: the operator, the tensors it reads and writes and the weights it holds;
its activation inputs become the model's inputs) and every one of these models is timed beside the
whole network in interleaved rounds (``litert_kind_times``). What this measures and what it cannot:

- each operator runs alone, so its input was written by the timing loop, not by the operator before it,
  and nothing is fused across operators (XNNPACK fuses little across operators of a float graph: the
  converter has already fused BatchNorm and the clamp of ReLU/ReLU6 into the convolutions); each
  operator also pays one interpreter call. ``sum_over_whole``, the sum of the operators' times over
  the whole network's, says how far the parts are from the whole (above 1: the calls' overhead and
  the cold inputs);
- the per-kind rows are the sums of their operators' medians: ``litert_operator_kind`` classifies a
  ``CONV_2D`` (filter ``(O, K_h, K_w, C / groups)``) and a ``DEPTHWISE_CONV_2D`` (filter ``(1, K_h, K_w,
  C * multiplier)``) by ``kinds.classify`` from their shapes, a ``FULLY_CONNECTED`` as ``linear``, and
  every other operator (additions, means, activations, pads, reshapes) as ``other``.

``layer_comparison`` goes one step further: each convolution of the flat buffer alone, as LiteRT runs it and as
our fastest program computes the same layer (``jax_layer``: the convolution with its weights, bias and fused
activation, rewritten by ``transforms.fast_inference``), their outputs compared and both timed in the same
rounds. It tells whether a gap lies in the layers' kernels or in how a network strings them together.

Needs ``ai-edge-litert`` (its interpreter, and its flat-buffer schema for reading and writing models).
Nothing here asserts a speed.
"""

from __future__ import annotations

import collections
import os

import jax.numpy as jnp
import numpy as np

from ..kinds import LayerKind, classify
from .attribution import KINDS
from .harness import interleaved

__all__ = ["read_model", "operator_name", "litert_operator_kind", "operator_rows", "single_operator_model",
           "litert_kind_times", "jax_layer", "layer_comparison"]

#: The label of the whole network in ``litert_kind_times``' rounds.
WHOLE = "whole network"


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def read_model(data):
    """The flat buffer ``data`` (bytes, or a path to a ``.tflite`` file) as LiteRT's object tree (``ModelT``)."""
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            data = f.read()
    schema = _schema()
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def operator_name(model, operator) -> str:
    """The builtin operator's name (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ...) of ``operator``, or its custom code."""
    schema = _schema()
    code = model.operatorCodes[operator.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM {code.customCode.decode() if code.customCode else ''}".strip()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN {builtin}")


def litert_operator_kind(op: str, shapes: list) -> str:
    """The layer kind of one LiteRT operator from its name and its inputs' shapes (activation first, then
    the filter, channels last): ``CONV_2D`` with input ``(N, H, W, C)`` and filter ``(O, K_h, K_w, C / g)``
    is ``classify((K_h, K_w), g, C, O)``; ``DEPTHWISE_CONV_2D`` with filter ``(1, K_h, K_w, O)`` is
    ``classify((K_h, K_w), C, C, O)``; ``FULLY_CONNECTED`` is ``linear``; anything else ``other``."""
    if op == "FULLY_CONNECTED":
        return LayerKind.LINEAR.value
    if op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return "other"
    if len(shapes) < 2 or len(shapes[0]) != 4 or len(shapes[1]) != 4:
        raise ValueError(f"a {op} needs a 4-d input and a 4-d filter, got shapes {shapes}")
    (_, _, _, c), (o, kh, kw, f) = shapes[0], shapes[1]
    if op == "DEPTHWISE_CONV_2D":
        if o != 1 or f % c:
            raise ValueError(f"a DEPTHWISE_CONV_2D with input channels {c} and filter {shapes[1]}: "
                             f"the filter must be (1, K_h, K_w, a multiple of {c})")
        return classify((kh, kw), c, c, f).value
    if f < 1 or c % f:
        raise ValueError(f"a CONV_2D with input channels {c} and filter {shapes[1]}: {c} is not a multiple of {f}")
    return classify((kh, kw), c // f, c, o).value


def _constant(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def operator_rows(model) -> list:
    """One row per operator of the model's first subgraph, in execution order: ``index``, ``op``, the
    ``shapes`` of its inputs, its ``output`` shape and its ``kind`` (``litert_operator_kind``)."""
    graph = model.subgraphs[0]
    rows = []
    for i, operator in enumerate(graph.operators):
        op = operator_name(model, operator)
        shapes = [[int(d) for d in graph.tensors[t].shape] for t in operator.inputs if t >= 0]
        output = [int(d) for d in graph.tensors[operator.outputs[0]].shape]
        rows.append({"index": i, "op": op, "shapes": shapes, "output": output,
                     "kind": litert_operator_kind(op, shapes)})
    return rows


def single_operator_model(model, index: int) -> bytes:
    """The flat buffer of a model that runs only operator ``index`` of ``model``'s first subgraph: the
    operator's tensors (renumbered), the buffers of its constant inputs (weights, biases, shapes), its
    non-constant inputs as the model's inputs and its outputs as the model's outputs. Buffer 0 stays the
    empty buffer the format reserves; signatures and metadata are left out."""
    import copy

    import flatbuffers

    schema = _schema()
    graph = model.subgraphs[0]
    if not 0 <= index < len(graph.operators):
        raise ValueError(f"operator index {index} out of range: the model has {len(graph.operators)} operators")
    operator = copy.deepcopy(graph.operators[index])
    used = [t for t in (*operator.inputs, *operator.outputs, *(operator.intermediates or [])) if t >= 0]
    tensor_map = {t: i for i, t in enumerate(dict.fromkeys(used))}
    empty = schema.BufferT()
    buffers, tensors = [empty], []
    for old in tensor_map:
        tensor = copy.deepcopy(graph.tensors[old])
        if _constant(model, tensor):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)

    def remap(indices):
        return [tensor_map[t] if t >= 0 else t for t in indices]

    operator.inputs, operator.outputs = remap(operator.inputs), remap(operator.outputs)
    if operator.intermediates is not None:
        operator.intermediates = remap(operator.intermediates)
    sub = schema.SubGraphT()
    sub.tensors, sub.operators, sub.name = tensors, [operator], graph.name
    sub.inputs = [tensor_map[t] for t in graph.operators[index].inputs
                  if t >= 0 and not _constant(model, graph.tensors[t])]
    sub.outputs = list(operator.outputs)
    out = schema.ModelT()
    out.version, out.description = model.version, model.description
    out.operatorCodes = model.operatorCodes
    out.subgraphs, out.buffers = [sub], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(out.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _interpreter(content: bytes, threads: int, value_of):
    """A LiteRT interpreter of the flat buffer ``content`` on ``threads`` threads, each input set once to
    ``value_of(its details)``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], np.asarray(value_of(d)).astype(d["dtype"]))
    return interpreter


def _program(content: bytes, threads: int, rng):
    """``invoke`` of ``_interpreter`` on random normal inputs (zeros for inputs that are not floats)."""
    return _interpreter(content, threads, lambda d: rng.normal(size=d["shape"])
                        if np.issubdtype(d["dtype"], np.floating) else np.zeros(d["shape"])).invoke


def litert_kind_times(path, rounds: int = 5, repeats: int = 20, threads: int | None = None, seed: int = 0,
                      kinds=None, pause: float = 0.0) -> dict:
    """Time the whole LiteRT model at ``path`` and each of its operators as a model of its own
    (``single_operator_model``), all in the same ``rounds`` interleaved rounds (the median of ``repeats``
    calls each, ``threads`` interpreter threads, default one per core; random normal inputs from
    ``seed``; ``pause`` seconds before each, and as long of warm-up calls: none by default, since every
    program here is LiteRT's, while a pause would add twice its length per operator and round, minutes
    for a network of a hundred operators; the operators' sum against the whole, ``sum_over_whole``, says
    whether they disturbed each other). Returns ``operators`` (``operator_rows`` with each operator's
    ``seconds``, the median over the rounds), ``median`` (per kind of ``kinds`` the sum of its operators'
    seconds, ``other`` the operators that do not multiply, and ``total``, their sum), ``whole`` (the whole
    model's median), ``sum_over_whole`` and ``times`` (the whole model's seconds per round)."""
    kinds = KINDS if kinds is None else kinds
    threads = threads or os.cpu_count()
    with open(path, "rb") as f:
        content = f.read()
    model = read_model(content)
    rows = operator_rows(model)
    rng = np.random.default_rng(seed)
    programs = {WHOLE: (_program(content, threads, rng), ())}
    for row in rows:
        programs[row["index"]] = (_program(single_operator_model(model, row["index"]), threads, rng), ())
    times = interleaved(programs, rounds, repeats, pause=pause)
    seconds = collections.Counter()
    for row in rows:
        row["seconds"] = float(np.median(times[row["index"]]))
        seconds[row["kind"] if row["kind"] in kinds else "other"] += row["seconds"]
    median = {kind: float(seconds.get(kind, 0.0)) for kind in kinds}
    median["total"] = float(sum(median.values()))
    whole = float(np.median(times[WHOLE]))
    return {"operators": rows, "median": median, "whole": whole, "sum_over_whole": median["total"] / whole,
            "rounds": rounds, "repeats": repeats, "threads": threads, "pause": pause, "times": times[WHOLE]}


#: LiteRT's fused activations (``ActivationFunctionType``) that ``jax_layer`` computes.
ACTIVATIONS = {0: lambda y: y, 1: lambda y: jnp.maximum(y, 0.0), 3: lambda y: jnp.clip(y, 0.0, 6.0)}


def _constant_value(model, tensor) -> np.ndarray:
    data = np.asarray(model.buffers[tensor.buffer].data, np.uint8)
    return data.view(np.float32).reshape([int(d) for d in tensor.shape])


def jax_layer(model, index: int):
    """``(fn, (x, kernel, bias))``: operator ``index`` of ``model`` (a ``CONV_2D`` or ``DEPTHWISE_CONV_2D`` in
    float32) as a JAX function of its input, kernel (HWIO) and bias, ``act(conv(x, kernel) + bias)`` with its
    strides, dilation, padding (``SAME``/``VALID``, as LiteRT pads) and fused activation (none, ReLU or ReLU6),
    rewritten by ``transforms.fast_inference`` as our fastest program computes a layer; ``x`` is zeros of the
    input's shape. Other operators, activations or weights that are not constants of the file are refused in
    one line."""
    from jax import lax

    from ..transforms.fast_inference import fast_inference

    schema = _schema()
    graph = model.subgraphs[0]
    operator = graph.operators[index]
    op = operator_name(model, operator)
    if op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        raise ValueError(f"operator {index} is {op}: jax_layer takes CONV_2D and DEPTHWISE_CONV_2D")
    options = operator.builtinOptions
    if options.fusedActivationFunction not in ACTIVATIONS:
        raise ValueError(f"operator {index}: fused activation {options.fusedActivationFunction} is not none, ReLU or "
                         "ReLU6")
    x_t, w_t = (graph.tensors[t] for t in operator.inputs[:2])
    if not _constant(model, w_t):
        raise ValueError(f"operator {index}: its filter is not a constant of the file")
    filt = _constant_value(model, w_t)
    out_channels = filt.shape[-1] if op == "DEPTHWISE_CONV_2D" else filt.shape[0]
    bias_index = operator.inputs[2] if len(operator.inputs) > 2 else -1
    bias = (_constant_value(model, graph.tensors[bias_index]) if bias_index >= 0
            else np.zeros(out_channels, np.float32))
    in_channels = int(x_t.shape[-1])
    if op == "DEPTHWISE_CONV_2D":  # (1, K_h, K_w, C * m) -> HWIO (K_h, K_w, 1, C * m), one group per channel
        kernel, groups = filt.transpose(1, 2, 0, 3), in_channels
    else:  # (O, K_h, K_w, C / g) -> HWIO (K_h, K_w, C / g, O)
        kernel, groups = filt.transpose(1, 2, 3, 0), in_channels // filt.shape[-1]
    padding = "SAME" if options.padding == schema.Padding.SAME else "VALID"
    strides = (options.strideH, options.strideW)
    dilation = (options.dilationHFactor, options.dilationWFactor)
    activation = ACTIVATIONS[options.fusedActivationFunction]

    def layer(x, kernel, bias):
        y = lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)
        return activation(y + bias)

    x = jnp.zeros([int(d) for d in x_t.shape], jnp.float32)
    return fast_inference(layer), (x, jnp.asarray(kernel), jnp.asarray(bias))


def layer_comparison(path, rounds: int = 7, repeats: int = 20, threads: int | None = None, seed: int = 0,
                     kinds=("depthwise", "pointwise", "full"), pause: float = 0.1) -> dict:
    """Each convolution of the LiteRT model at ``path`` whose kind is in ``kinds``, alone: LiteRT's operator
    (``single_operator_model``, ``threads`` interpreter threads) and ``jax_layer``'s program (jitted) on the same
    random normal input, their largest difference over the largest output (``error``), then both timed in
    ``rounds`` interleaved rounds (the median of ``repeats`` calls, ``pause`` seconds and as long of warm-up
    calls before each: two runtimes). ``{"layers": [{index, op, kind, shapes, output, error, "times": {"JAX":
    [...], "LiteRT": [...]}}], "rounds", "repeats", "threads", "pause"}``."""
    import jax

    threads = threads or os.cpu_count()
    with open(path, "rb") as f:
        model = read_model(f.read())
    rng = np.random.default_rng(seed)
    layers = []
    for row in operator_rows(model):
        if row["kind"] not in kinds or row["op"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        fn, (x, kernel, bias) = jax_layer(model, row["index"])
        x = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
        interpreter = _interpreter(single_operator_model(model, row["index"]), threads, lambda d: x)
        interpreter.invoke()
        theirs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        program = jax.jit(fn)
        ours = np.asarray(program(x, kernel, bias))
        error = float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))
        times = interleaved({"JAX": (program, (x, kernel, bias)), "LiteRT": (interpreter.invoke, ())}, rounds,
                            repeats, pause=pause)
        layers.append({**row, "error": error, "times": times})
    return {"layers": layers, "rounds": rounds, "repeats": repeats, "threads": threads, "pause": pause}

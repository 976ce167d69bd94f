"""From a trained network to a deployed one: BatchNorm folding, int8 quantization, ONNX export.

**BatchNorm folding.** At inference BatchNorm is an affine map per output channel, so it folds into
the convolution before it (Jacob et al. 2018, sec. 3.2):

    w'[..., c] = w[..., c] * g_c,   b'_c = beta_c + (b_c - mu_c) * g_c,   g_c = gamma_c / sqrt(var_c + eps)

``fold_batchnorm`` returns a copy of a model in which every ``ConvBN`` is one convolution with a
bias: the same function (to float rounding), one pass over the output fewer. LayerNorm (ConvNeXt)
normalizes with statistics of each input and does not fold.

**Int8 quantization, simulated.** ``quantized(fn, ranges, weights=...)`` computes a function as an
int8 runtime would (Jacob et al. 2018; Krishnamoorthi 2018): every convolution and matrix product
reads weights rounded to a symmetric int8 grid,

    q(w) = clip(round(w / s), -127, 127) * s,   s = max|w| / 127,

with one scale per tensor (``weights="tensor"``) or per output channel (``"channel"``), and an
input rounded to an unsigned 8-bit affine grid over the range calibration recorded,

    q(x) = (clip(round(x / s) + z, 0, 255) - z) * s,   s = (hi - lo) / 255,   z = round(-lo / s).

Products and sums stay in float (a runtime accumulates in int32, exact for these sizes), so the
difference from the float function is the rounding of weights and activations alone.
``activation_ranges(fn, *args)`` records ``lo = min(0, min x)`` and ``hi = max(0, max x)`` per layer
input on calibration data. Both work on any JAX function, like ``fast_depthwise``.

**Export.** ``export_onnx`` writes a model as an ONNX graph with ``jax2onnx`` (optional extra
``deploy``: ``pip install sepconv[deploy]``), ``onnx_session`` runs it on ONNX Runtime.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .blocks import ConvBN
from .fast_depthwise import fast_equation, is_depthwise, rewrite_equations

__all__ = ["fold_batchnorm", "micro_batched", "quantize_weight", "weight_axis", "layer_kind", "LAYER_KINDS", "activation_ranges",
           "quantized",
           "WeightRange", "weight_ranges", "export_onnx", "quantize_onnx", "onnx_session", "missing_runtime"]



def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")
    return bits


def fold_batchnorm(model: nnx.Module) -> nnx.Module:
    """A copy of ``model`` (eval mode) with each ``ConvBN``'s BatchNorm folded into its convolution
    (module docstring); the original is unchanged."""
    model = nnx.clone(model)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, ConvBN) and node.bn is not None:
            bn, conv = node.bn, node.conv
            value = lambda v: np.asarray(v[...], np.float64)  # noqa: E731  (fold in float64, store float32)
            g = value(bn.scale) / np.sqrt(value(bn.var) + bn.epsilon)
            bias = value(bn.bias) - value(bn.mean) * g
            if conv.bias is not None:
                bias = bias + value(conv.bias) * g
            conv.kernel[...] = jnp.asarray(value(conv.kernel) * g, conv.kernel.dtype)
            conv.bias = nnx.Param(jnp.asarray(bias, conv.kernel.dtype))
            conv.use_bias = True
            node.bn = None
    model.eval()
    return model


def micro_batched(fn, size: int):
    """``fn(state, x)`` computed ``size`` images at a time in a ``lax.map`` loop, the results
    concatenated: the same numbers, with a working set of ``size`` images' activations, which on a
    CPU stays in cache where a whole batch's does not. ``x``'s batch must be a multiple of ``size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")

    def batched(state, x):
        if x.shape[0] % size:
            raise ValueError(f"a batch of {x.shape[0]} is not a multiple of the micro-batch {size}")
        if x.shape[0] == size:
            return fn(state, x)
        out = jax.lax.map(lambda chunk: fn(state, chunk), x.reshape(x.shape[0] // size, size, *x.shape[1:]))
        return jax.tree.map(lambda y: y.reshape(x.shape[0], *y.shape[2:]), out)

    return batched


def weight_axis(eqn) -> int:
    """The output-channel axis of the weight (second operand) of a convolution or matrix product."""
    if eqn.primitive.name == "conv_general_dilated":
        return eqn.params["dimension_numbers"].rhs_spec[0]
    (_, contract), (_, batch) = eqn.params["dimension_numbers"]
    free = [d for d in range(eqn.invars[1].aval.ndim) if d not in contract and d not in batch]
    if len(free) != 1:
        raise ValueError(f"a matrix product with weight shape {eqn.invars[1].aval.shape} has no single output axis")
    return free[0]


def quantize_weight(w, per: str = "channel", axis: int = -1, bits: int = 8):
    """``w`` rounded to the symmetric grid of ``bits`` bits (module docstring: ``2^(bits-1) - 1`` = 127
    levels each side for int8), one scale for the tensor or one per index of ``axis`` (its output
    channels)."""
    levels = 2 ** (_check_bits(bits) - 1) - 1
    if per not in ("tensor", "channel"):
        raise ValueError(f"per must be 'tensor' or 'channel', got {per!r}")
    if per == "tensor":
        amax = jnp.max(jnp.abs(w))
    else:
        axis = axis % w.ndim
        amax = jnp.max(jnp.abs(w), axis=tuple(d for d in range(w.ndim) if d != axis), keepdims=True)
    scale = jnp.where(amax > 0, amax / levels, 1.0)
    return jnp.clip(jnp.round(w / scale), -levels, levels) * scale


def _quantize_activation(x, lo, hi, bits):
    levels = 2 ** bits - 1
    scale = jnp.maximum(hi - lo, 1e-12) / levels
    zero = jnp.round(-lo / scale)
    return (jnp.clip(jnp.round(x / scale) + zero, 0, levels) - zero) * scale


def _is_product(eqn) -> bool:
    return eqn.primitive.name in ("conv_general_dilated", "dot_general")


LAYER_KINDS = ("full", "depthwise", "grouped", "pointwise", "linear")


def layer_kind(eqn) -> str:
    """``"linear"`` for a matrix product; for a convolution ``"depthwise"`` (one channel per group),
    ``"grouped"``, ``"pointwise"`` (1x1) or ``"full"``."""
    if eqn.primitive.name == "dot_general":
        return "linear"
    if is_depthwise(eqn):
        return "depthwise"
    if eqn.params["feature_group_count"] > 1:
        return "grouped"
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec
    kernel = eqn.invars[1].aval.shape
    return "pointwise" if all(kernel[d] == 1 for d in rhs_spec[2:]) else "full"


def _bind(eqn, *invals):
    return [eqn.primitive.bind(*invals, **eqn.params)]


@functools.lru_cache(maxsize=32)
def _ranges_program(fn):
    def ranges(*args):
        found = []

        def record(eqn, x, w):
            found.append(jnp.stack([jnp.minimum(jnp.min(x), 0.0), jnp.maximum(jnp.max(x), 0.0)]))
            return _bind(eqn, x, w)

        rewrite_equations(fn, _is_product, record)(*args)
        return jnp.stack(found)

    return jax.jit(ranges)


def activation_ranges(fn, *args) -> np.ndarray:
    """``(lo, hi)`` of the input of every convolution and matrix product of ``fn(*args)``, in the
    order the program computes them (``lo <= 0 <= hi``), as an ``(n, 2)`` array. Pass calibration
    data as ``args``; the walk is compiled once per ``fn``."""
    return np.asarray(_ranges_program(fn)(*args), np.float64)


def quantized(fn, ranges=None, weights: str | None = "channel", bits: int = 8, activation_bits: int = 8,
              kinds=LAYER_KINDS):
    """``fn`` computed with the weights of layers of ``kinds`` (``layer_kind``) rounded to ``bits``
    bits (``weights``: one scale per ``"tensor"``, per ``"channel"``, or ``None`` for float weights)
    and, given the ``ranges`` of ``activation_ranges`` (a list of pairs or an ``(n, 2)`` array, which
    may be a traced argument), inputs of ``activation_bits`` bits to every convolution and matrix
    product. Depthwise and 1x1 convolutions run as ``fast_depthwise.fast_inference`` runs them."""
    if weights not in ("tensor", "channel", None):
        raise ValueError(f"weights must be 'tensor', 'channel' or None, got {weights!r}")
    unknown = set(kinds) - set(LAYER_KINDS)
    if unknown:
        raise ValueError(f"unknown layer kinds {sorted(unknown)}; known: {', '.join(LAYER_KINDS)}")
    _check_bits(bits), _check_bits(activation_bits)

    def program(*args):
        counter = itertools.count()

        def apply(eqn, x, w):
            i = next(counter)
            if ranges is not None:
                if i >= len(ranges):
                    raise ValueError(f"{len(ranges)} calibrated ranges for a program with more layers")
                x = _quantize_activation(x, ranges[i][0], ranges[i][1], activation_bits)
            if weights is not None and layer_kind(eqn) in kinds:
                w = quantize_weight(w, weights, weight_axis(eqn), bits)
            return fast_equation(eqn, x, w) if eqn.primitive.name == "conv_general_dilated" else _bind(eqn, x, w)

        return rewrite_equations(fn, _is_product, apply)(*args)

    return program


@dataclass(frozen=True)
class WeightRange:
    """The weights of one layer as int8 sees them. ``spread``: the largest channel's ``max|w|`` over
    the median channel's; ``error_tensor`` / ``error_channel``: the relative RMS rounding error
    ``||q(w) - w|| / ||w||`` with one scale per tensor / per channel; ``zeroed``: channels whose
    weights all round to 0 with one scale per tensor."""

    path: str
    kind: str
    channels: int
    spread: float
    error_tensor: float
    error_channel: float
    zeroed: int


def _kind(module) -> str:
    if isinstance(module, nnx.Linear):
        return "linear"
    if module.feature_group_count > 1:
        return "depthwise" if module.feature_group_count == module.in_features else "grouped"
    return "pointwise" if all(k == 1 for k in module.kernel_size) else "full"


def _round_to_grid(w: np.ndarray, per: str) -> np.ndarray:
    """``quantize_weight`` in NumPy (float64), for the layer statistics of ``weight_ranges``."""
    amax = np.abs(w).max() if per == "tensor" else np.abs(w).max(axis=tuple(range(w.ndim - 1)), keepdims=True)
    scale = np.where(amax > 0, amax / 127, 1.0)
    return np.clip(np.round(w / scale), -127, 127) * scale


def weight_ranges(model: nnx.Module) -> list[WeightRange]:
    """One ``WeightRange`` per convolution and dense layer of ``model`` (int8), named by module path."""
    rows = []
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, (nnx.Conv, nnx.Linear)):
            continue
        w = np.asarray(node.kernel[...], np.float64)
        per_channel = np.abs(w).reshape(-1, w.shape[-1]).max(axis=0)
        norm = max(np.linalg.norm(w), 1e-30)
        q_tensor, q_channel = _round_to_grid(w, "tensor"), _round_to_grid(w, "channel")
        zeroed = int(np.sum(np.all(q_tensor.reshape(-1, w.shape[-1]) == 0, axis=0)))
        rows.append(WeightRange(".".join(str(p) for p in path), _kind(node), w.shape[-1],
                                float(per_channel.max() / max(np.median(per_channel), 1e-30)),
                                float(np.linalg.norm(q_tensor - w) / norm), float(np.linalg.norm(q_channel - w) / norm),
                                zeroed))
    return rows


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


def export_onnx(model: nnx.Module, input_shape: tuple, name: str = "sepconv"):
    """``model`` (eval mode; fold BatchNorm first for the graph a runtime would run) as an ONNX
    ``ModelProto`` for inputs of ``input_shape`` (NHWC, float32), written by ``jax2onnx``."""
    problem = missing_runtime()
    if problem:
        raise RuntimeError(problem)
    from jax2onnx import to_onnx

    model.eval()
    return to_onnx(model, [jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)], model_name=name)


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

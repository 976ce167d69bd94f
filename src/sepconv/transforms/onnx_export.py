"""Export to ONNX and ONNX Runtime: ``export_onnx`` writes a model as an ONNX graph with ``jax2onnx``
(optional extra ``deploy``: ``pip install sepconv[deploy]``), ``quantize_onnx`` quantizes it with ONNX
Runtime's own tool, ``onnx_session`` runs it on ONNX Runtime."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["missing_runtime", "export_onnx", "quantize_onnx", "onnx_session"]


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

"""The old home of BatchNorm folding, int8 quantization, micro-batching and ONNX export, now
``sepconv.transforms`` (``batchnorm``, ``quantize``, ``streaming``, ``onnx_export``); re-exported here so
that ``from sepconv.deploy import ...`` and ``deploy.quantized(...)`` keep working."""

from .transforms.batchnorm import fold_batchnorm  # noqa: F401
from .transforms.onnx_export import export_onnx, missing_runtime, onnx_session, quantize_onnx  # noqa: F401
from .transforms.quantize import (LAYER_KINDS, WeightRange, activation_ranges, layer_kind, quantize_weight,  # noqa: F401
                                  quantized, weight_axis, weight_ranges)
from .transforms.streaming import micro_batched  # noqa: F401

__all__ = ["fold_batchnorm", "micro_batched", "quantize_weight", "weight_axis", "layer_kind", "LAYER_KINDS",
           "activation_ranges", "quantized", "WeightRange", "weight_ranges", "export_onnx", "quantize_onnx",
           "onnx_session", "missing_runtime"]

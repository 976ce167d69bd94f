"""Chapter 9's quantization experiment: trained networks, folded, computed at several weight and
activation precisions (``quantize.quantized``), and what the int8 grid does to each layer kind's
weights (``quantize.weight_ranges``). A study of the transforms, not a transform: it reads models
and data and returns accuracies, ranges and statistics for the chapter to narrate.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .quantize import activation_ranges, quantized, weight_ranges

__all__ = ["QUANTIZATION_CONFIGS", "RELU_CONFIGS", "INT8", "QuantizationStudy", "quantization_study",
           "quantization_table", "quantization_claims", "onnx_int8_accuracy"]

#: label: (arguments of ``quantized``, whether activations are quantized too).
QUANTIZATION_CONFIGS = {
    "float (folded)": (dict(weights=None), False),
    "w8 per tensor": (dict(weights="tensor"), False),
    "int8 (w8 per channel, a8)": (dict(weights="channel"), True),
    "w4 per tensor": (dict(weights="tensor", bits=4), False),
    "w4 per channel": (dict(weights="channel", bits=4), False),
}
#: The label of the int8 program a runtime runs.
INT8 = "int8 (w8 per channel, a8)"
#: The configurations of the ReLU model (the activation comparison): float and int8 only.
RELU_CONFIGS = ("float (folded)", INT8)


@dataclass
class QuantizationStudy:
    """``accuracy[(model key, label)]``: test accuracy of a folded model at a configuration of
    ``QUANTIZATION_CONFIGS``; ``ranges[model key]``: its calibrated ``activation_ranges``;
    ``spreads[(when, kind)]``: per layer of the ReLU6 models ``(spread, error per tensor / per channel)``
    before and after folding. Model keys are ``(activation, seed)``."""

    accuracy: dict
    ranges: dict
    spreads: dict

    def keys(self, activation: str) -> list:
        return [key for key in self.ranges if key[0] == activation]

    def loss(self, label: str, activation: str = "relu6") -> float:
        """Mean accuracy lost against the folded float model, over the models of ``activation``."""
        return float(np.mean([self.accuracy[key, "float (folded)"] - self.accuracy[key, label]
                              for key in self.keys(activation)]))

    def mean_spread(self, when: str, kind: str, column: int) -> float:
        """Mean over layers of one kind of column 0 (spread) or 1 (error per tensor / per channel)."""
        return float(np.mean([v[column] for v in self.spreads[when, kind]]))


def quantization_study(models: dict, folded: dict, functions: dict, x_test, y_test, calibration) -> QuantizationStudy:
    """Every model of ``folded`` (``{(activation, seed): model}``, ``models`` the same before folding)
    at each configuration (ReLU models: ``RELU_CONFIGS``), with activation ranges calibrated on
    ``calibration``; ``functions[activation]`` is the pure function ``fn(state, x)`` of that
    architecture (``interop.pure_module(model, flat=True)[0]``)."""
    from ..interop import pure_module

    def compiled(fn, kw, act):
        return jax.jit(lambda state, x, ranges: quantized(fn, ranges if act else None, **kw)(state, x))

    programs = {(act, label): compiled(functions[act], *QUANTIZATION_CONFIGS[label]) for act in functions
                for label in (QUANTIZATION_CONFIGS if act == "relu6" else RELU_CONFIGS)}
    accuracy, ranges, spreads = {}, {}, {}
    for key, model in folded.items():
        state = pure_module(model, flat=True)[1]
        ranges[key] = activation_ranges(functions[key[0]], state, calibration)
        for (act, label), program in programs.items():
            if act == key[0]:
                logits = program(state, x_test, jnp.asarray(ranges[key], jnp.float32))
                accuracy[key, label] = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
        if key[0] == "relu6":
            for when, m in (("before folding", models[key]), ("after folding", model)):
                for row in weight_ranges(m):
                    spreads.setdefault((when, row.kind), []).append((row.spread, row.error_tensor / row.error_channel))
    return QuantizationStudy(accuracy, ranges, spreads)


def quantization_table(study: QuantizationStudy) -> list[str]:
    """The accuracy of every model at every configuration with its largest activation, then the ReLU6
    models' weight statistics per layer kind, before and after folding: chapter 9's table."""
    lines = [f"{'model':<10}" + "".join(f"{label[:16]:>18}" for label in QUANTIZATION_CONFIGS)
             + f"{'largest activation':>20}"]
    for key, ranges in study.ranges.items():
        lines.append(f"{key[0] + ' ' + str(key[1]):<10}" + "".join(
            f"{100 * study.accuracy[key, label]:>17.1f}%" if (key, label) in study.accuracy else f"{'':>18}"
            for label in QUANTIZATION_CONFIGS) + f"{ranges[:, 1].max():>20.2f}")
    lines.append(f"\n{'ReLU6 models':<16}{'layer kind':<12}{'spread (max / median channel)':>31}"
                 f"{'error per tensor / per channel':>33}")
    for (when, kind), values in study.spreads.items():
        spread, ratio = np.mean(values, axis=0)
        lines.append(f"{when:<16}{kind:<12}{spread:>31.2f}{ratio:>33.2f}")
    return lines


def quantization_claims(study: QuantizationStudy, int8_tolerance: float) -> dict:
    """Chapter 9's claims about the study, each ``sentence: holds``."""
    relu6, relu = study.keys("relu6"), study.keys("relu")
    accuracy, mean_of = study.accuracy, study.mean_spread
    return {
        "int8 (weights per channel, activations) is within 1.5 points of float, every model, ReLU or ReLU6":
            all(accuracy[key, "float (folded)"] - accuracy[key, INT8] <= int8_tolerance for key in study.ranges),
        "8-bit weights with one scale per tensor are within 1 point of float, every ReLU6 model":
            all(abs(accuracy[key, "float (folded)"] - accuracy[key, "w8 per tensor"]) <= 0.01 for key in relu6),
        "at 4 bits, one scale per tensor loses at least 3 points more than one per channel (mean of 3)":
            study.loss("w4 per tensor") >= study.loss("w4 per channel") + 0.03,
        "folding widens the depthwise layers' channel spread (mean)":
            mean_of("after folding", "depthwise", 0) > mean_of("before folding", "depthwise", 0),
        "after folding, per-tensor error exceeds per-channel error more in depthwise than in pointwise layers":
            mean_of("after folding", "depthwise", 1) > mean_of("after folding", "pointwise", 1),
        "folding widens the stem's spread by a larger factor than any other layer kind's (mean)":
            all(mean_of("after folding", "full", 0) / mean_of("before folding", "full", 0)
                > mean_of("after folding", kind, 0) / mean_of("before folding", kind, 0)
                for kind in ("depthwise", "pointwise", "linear")),
        "ReLU6 activations never exceed 6, every model; the ReLU model's do":
            all(study.ranges[key][:, 1].max() <= 6.0 for key in relu6)
            and all(study.ranges[key][1:, 1].max() > 6.0 for key in relu),
    }


def onnx_int8_accuracy(model, x, y, calibration) -> float:
    """Test accuracy of ``model`` (folded) exported to ONNX for inputs shaped like ``x``, quantized by ONNX
    Runtime's own tool calibrated on ``calibration`` (``onnx_export.quantize_onnx``) and run on ONNX
    Runtime: the int8 program a runtime runs, beside the simulation's ``INT8``."""
    from .onnx_export import export_onnx, onnx_session, quantize_onnx

    proto = export_onnx(model, tuple(np.shape(x)))
    _, run = onnx_session(quantize_onnx(proto, np.asarray(calibration)))
    return float(np.mean(run(x).argmax(-1) == y))

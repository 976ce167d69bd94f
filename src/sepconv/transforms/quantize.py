"""Int8 quantization, simulated: a function computed as an int8 runtime would compute it.

``quantized(fn, ranges, weights=...)`` (Jacob et al. 2018; Krishnamoorthi 2018): every convolution
and matrix product reads weights rounded to a symmetric int8 grid (``symmetric_grid``, the one grid
of the book),

    q(w) = clip(round(w / s), -127, 127) * s,   s = max|w| / 127,

with one scale per tensor (``weights="tensor"``) or per output channel (``"channel"``), and an
input rounded to an unsigned 8-bit affine grid over the range calibration recorded,

    q(x) = (clip(round(x / s) + z, 0, 255) - z) * s,   s = (hi - lo) / 255,   z = round(-lo / s).

Products and sums stay in float (a runtime accumulates in int32, exact for these sizes), so the
difference from the float function is the rounding of weights and activations alone.
``activation_ranges(fn, *args)`` records ``lo = min(0, min x)`` and ``hi = max(0, max x)`` per layer
input on calibration data. Both work on any JAX function, like the other transforms.
``weight_ranges`` reports, per layer of a model, how the int8 grid sees its weights.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..kinds import equation_kind, module_kind
from .fast_inference import fast_equation
from .rewrite import rewrite_equations
from .shifts import is_depthwise

__all__ = ["symmetric_grid", "quantize_weight", "quantize_activation", "weight_axis", "layer_kind", "LAYER_KINDS",
           "activation_ranges", "quantized", "WeightRange", "weight_ranges"]


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")
    return bits


def symmetric_grid(w, per: str = "channel", axis: int = -1, bits: int = 8):
    """``w`` rounded to the symmetric grid of ``bits`` bits (module docstring: ``2^(bits-1) - 1`` = 127
    levels each side for int8), one scale for the tensor or one per index of ``axis`` (its output
    channels). A NumPy array is rounded in NumPy (in its own precision), anything else in JAX."""
    xp = np if isinstance(w, np.ndarray) else jnp
    levels = 2 ** (_check_bits(bits) - 1) - 1
    if per not in ("tensor", "channel"):
        raise ValueError(f"per must be 'tensor' or 'channel', got {per!r}")
    if per == "tensor":
        amax = xp.max(xp.abs(w))
    else:
        axis = axis % w.ndim
        amax = xp.max(xp.abs(w), axis=tuple(d for d in range(w.ndim) if d != axis), keepdims=True)
    scale = xp.where(amax > 0, amax / levels, 1.0)
    return xp.clip(xp.round(w / scale), -levels, levels) * scale


def quantize_weight(w, per: str = "channel", axis: int = -1, bits: int = 8):
    """``symmetric_grid`` computed in JAX whatever ``w`` is (a NumPy array too, as ``sepconv.deploy``
    always did): the name the deployment chapter and its assignment use."""
    return symmetric_grid(jnp.asarray(w), per, axis, bits)


def quantize_activation(x, lo, hi, bits: int = 8):
    """``x`` rounded to the unsigned affine grid of ``bits`` bits over ``[lo, hi]`` (module docstring)."""
    levels = 2 ** bits - 1
    scale = jnp.maximum(hi - lo, 1e-12) / levels
    zero = jnp.round(-lo / scale)
    return (jnp.clip(jnp.round(x / scale) + zero, 0, levels) - zero) * scale


def weight_axis(eqn) -> int:
    """The output-channel axis of the weight (second operand) of a convolution or matrix product."""
    if eqn.primitive.name == "conv_general_dilated":
        return eqn.params["dimension_numbers"].rhs_spec[0]
    (_, contract), (_, batch) = eqn.params["dimension_numbers"]
    free = [d for d in range(eqn.invars[1].aval.ndim) if d not in contract and d not in batch]
    if len(free) != 1:
        raise ValueError(f"a matrix product with weight shape {eqn.invars[1].aval.shape} has no single output axis")
    return free[0]


def _is_product(eqn) -> bool:
    return eqn.primitive.name in ("conv_general_dilated", "dot_general")


LAYER_KINDS = ("full", "depthwise", "grouped", "pointwise", "linear")


def layer_kind(eqn) -> str:
    """``"linear"`` for a matrix product; for a convolution ``"depthwise"`` (one channel per group),
    ``"grouped"``, ``"pointwise"`` (1x1) or ``"full"``: the one classifier, :func:`sepconv.kinds.equation_kind`."""
    return equation_kind(eqn)


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
    product. Depthwise and 1x1 convolutions run as ``transforms.fast_inference`` runs them."""
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
                x = quantize_activation(x, ranges[i][0], ranges[i][1], activation_bits)
            if weights is not None and layer_kind(eqn) in kinds:
                w = symmetric_grid(w, weights, weight_axis(eqn), bits)
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


def weight_ranges(model: nnx.Module) -> list[WeightRange]:
    """One ``WeightRange`` per convolution and dense layer of ``model`` (int8), named by module path."""
    rows = []
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, (nnx.Conv, nnx.Linear)):
            continue
        w = np.asarray(node.kernel[...], np.float64)
        per_channel = np.abs(w).reshape(-1, w.shape[-1]).max(axis=0)
        norm = max(np.linalg.norm(w), 1e-30)
        q_tensor, q_channel = symmetric_grid(w, "tensor"), symmetric_grid(w, "channel")
        zeroed = int(np.sum(np.all(q_tensor.reshape(-1, w.shape[-1]) == 0, axis=0)))
        rows.append(WeightRange(".".join(str(p) for p in path), module_kind(node), w.shape[-1],
                                float(per_channel.max() / max(np.median(per_channel), 1e-30)),
                                float(np.linalg.norm(q_tensor - w) / norm), float(np.linalg.norm(q_channel - w) / norm),
                                zeroed))
    return rows

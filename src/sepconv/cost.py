"""Closed-form cost of convolution and fully connected layers.

Notation follows the MobileNet paper (Howard et al. 2017, sec. 3.1): an input
feature map of ``D_F x D_F x M`` is mapped to ``D_F x D_F x N`` by a
``D_K x D_K`` kernel.

* MACs (multiply-accumulates) count every kernel tap of every output value,
  padded taps included, which is the convention of the published tables:
  ``MACs = H_out * W_out * N * (M / groups) * K_h * K_w``.
* Parameters count weights, plus biases when ``bias=True``:
  ``params = K_h * K_w * (M / groups) * N (+ N)``.
* Activations are element counts of the input and output feature maps of one
  sample.
* A normalization layer (BatchNorm, LayerNorm) costs no MACs and has a scale and a
  shift per channel; published tables leave those parameters out, trainable counts
  (torchvision's) include them. ``NetworkCost`` keeps both totals.

Every function validates its arguments and raises ``ValueError`` naming the
bad value; nothing is silently clipped or rounded.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Sequence, Union

from .kinds import LayerKind, classify

IntPair = Union[int, Sequence[int]]
Padding = Union[str, int, Sequence]

__all__ = [
    "LayerCost",
    "NetworkCost",
    "norm_cost",
    "scale_cost",
    "conv_output_size",
    "padding_amounts",
    "conv2d_cost",
    "standard_conv_cost",
    "depthwise_conv_cost",
    "pointwise_conv_cost",
    "grouped_conv_cost",
    "dense_cost",
    "depthwise_separable_cost",
    "separable_ratio",
    "total_cost",
    "valid_taps",
    "tap_count",
    "scatter_tap_count",
    "memory_access_cost_1x1",
    "memory_access_lower_bound",
]


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer for one sample.

    ``macs``: multiply-accumulates; ``params``: weights (+ biases);
    ``input_activations``/``output_activations``: element counts of the input
    and output feature maps; ``layer_kind``: the ``LayerKind`` (``sepconv.kinds``), the vocabulary
    the counter's ``OpRecord.kind`` uses (``depthwise``, ``pointwise``, ``full``, ``grouped``,
    ``linear``, ``norm``, ``scale``). ``kind`` is its family: ``conv``, ``dense``, ``norm`` (a
    normalization layer's scale and shift) or ``scale`` (a learned per-channel scale, ConvNeXt's).
    """

    name: str
    macs: int
    params: int
    input_activations: int
    output_activations: int
    output_shape: tuple = ()
    layer_kind: LayerKind = LayerKind.FULL

    @property
    def kind(self) -> str:
        """``layer_kind.family``: ``conv``, ``dense``, ``norm`` or ``scale``."""
        return self.layer_kind.family

    @property
    def flops(self) -> int:
        """FLOPs under the common convention of 2 FLOPs (a multiply and an add) per MAC."""
        return 2 * self.macs


@dataclass(frozen=True)
class NetworkCost:
    """The closed-form cost of a whole network: its layers in order, and their totals.

    ``params_excluding_norm`` follows the published tables (convolution and FC weights and biases,
    learned scales; no normalization parameters); ``params_trainable`` adds the normalization layers'
    scale and shift (torchvision's and Keras's trainable count). The counter's ``CountResult`` has
    the same two names.
    """

    layers: tuple

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        """``2 * macs``: one multiply and one add per MAC."""
        return 2 * self.macs

    @property
    def params_excluding_norm(self) -> int:
        return sum(layer.params for layer in self.layers if layer.layer_kind is not LayerKind.NORM)

    @property
    def params_trainable(self) -> int:
        return sum(layer.params for layer in self.layers)

    def select(self, *, prefix: str | None = None, kind: str | None = None) -> "NetworkCost":
        """The layers whose name starts with ``prefix`` and/or whose kind is ``kind``: a ``LayerKind``
        (``"depthwise"``) or a family (``"conv"``)."""
        return NetworkCost(tuple(layer for layer in self.layers
                                 if (prefix is None or layer.name == prefix or layer.name.startswith(prefix + "."))
                                 and (kind is None or kind in (layer.layer_kind, layer.kind))))

    def costed(self) -> "NetworkCost":
        """Only the layers that multiply-accumulate (convolutions and FC layers), as the counter lists them."""
        return NetworkCost(tuple(layer for layer in self.layers if layer.layer_kind.multiplies))

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)


def norm_cost(channels: int, name: str = "norm") -> LayerCost:
    """A normalization layer over ``channels``: no MACs, a scale and a shift per channel."""
    channels = _positive_int("channels", channels)
    return LayerCost(name, 0, 2 * channels, channels, channels, (channels,), LayerKind.NORM)


def scale_cost(channels: int, name: str = "scale") -> LayerCost:
    """A learned per-channel scale (ConvNeXt's layer scale): no MACs in the papers' convention,
    ``channels`` parameters."""
    channels = _positive_int("channels", channels)
    return LayerCost(name, 0, channels, channels, channels, (channels,), LayerKind.SCALE)


def total_cost(layers: Iterable[LayerCost], name: str = "total") -> LayerCost:
    """Sum MACs and parameters of ``layers``; activations are those of the first input and last output."""
    layers = list(layers)
    if not layers:
        raise ValueError("total_cost needs at least one layer, got an empty list")
    return LayerCost(
        name=name,
        macs=sum(layer.macs for layer in layers),
        params=sum(layer.params for layer in layers),
        input_activations=layers[0].input_activations,
        output_activations=layers[-1].output_activations,
        output_shape=layers[-1].output_shape,
    )


def _as_int(name: str, value, kind: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}") from None


def _positive_int(name: str, value) -> int:
    value = _as_int(name, value, "positive")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _pair(name: str, value: IntPair) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return _positive_int(name, value[0]), _positive_int(name, value[1])
    v = _positive_int(name, value)
    return v, v


def _nonnegative_int(name: str, value) -> int:
    value = _as_int(name, value, "non-negative")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def padding_amounts(size: int, kernel: int, stride: int = 1, padding: Padding = "SAME",
                    dilation: int = 1) -> tuple[int, int]:
    """Zeros added before and after one spatial dimension.

    ``SAME`` pads ``max((ceil(size/stride) - 1) * stride + dilation*(kernel-1) + 1 - size, 0)``
    in total, the smaller half first (the TensorFlow/XLA rule); ``VALID`` pads nothing;
    an int pads that many on both sides; a pair ``(lo, hi)`` pads asymmetrically.
    """
    size = _positive_int("size", size)
    kernel = _positive_int("kernel", kernel)
    stride = _positive_int("stride", stride)
    dilation = _positive_int("dilation", dilation)
    effective = dilation * (kernel - 1) + 1
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return 0, 0
        if mode == "SAME":
            out = -(-size // stride)
            total = max((out - 1) * stride + effective - size, 0)
            return total // 2, total - total // 2
        raise ValueError(f"padding must be 'SAME', 'VALID', an int or a (lo, hi) pair, got {padding!r}")
    if isinstance(padding, (list, tuple)):
        if len(padding) != 2:
            raise ValueError(f"padding pair must have two entries (lo, hi), got {padding!r}")
        return _nonnegative_int("padding", padding[0]), _nonnegative_int("padding", padding[1])
    p = _nonnegative_int("padding", padding)
    return p, p


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: Padding = "SAME",
                     dilation: int = 1) -> int:
    """Output length of one spatial dimension.

    ``out = floor((size + pad_lo + pad_hi - dilation*(kernel-1) - 1) / stride) + 1``;
    for ``SAME`` this equals ``ceil(size / stride)``.
    """
    lo, hi = padding_amounts(size, kernel, stride, padding, dilation)
    effective = dilation * (kernel - 1) + 1
    padded = size + lo + hi
    if padded < effective:
        raise ValueError(
            f"kernel {kernel} with dilation {dilation} spans {effective} pixels, more than the "
            f"padded input size {padded} (size={size}, padding={padding!r})"
        )
    return (padded - effective) // stride + 1


def conv2d_cost(height: int, width: int, in_channels: int, out_channels: int,
                kernel: IntPair = 3, stride: IntPair = 1, padding: Padding = "SAME",
                dilation: IntPair = 1, groups: int = 1, bias: bool = False,
                name: str = "conv") -> LayerCost:
    """Cost of a 2-D convolution with ``groups`` channel groups.

    ``MACs = H_out * W_out * C_out * (C_in / groups) * K_h * K_w`` and
    ``params = K_h * K_w * (C_in / groups) * C_out (+ C_out if bias)``.
    ``groups=1`` is a standard convolution, ``groups=C_in`` a depthwise one.
    """
    height = _positive_int("height", height)
    width = _positive_int("width", width)
    in_channels = _positive_int("in_channels", in_channels)
    out_channels = _positive_int("out_channels", out_channels)
    groups = _positive_int("groups", groups)
    kh, kw = _pair("kernel", kernel)
    sh, sw = _pair("stride", stride)
    dh, dw = _pair("dilation", dilation)
    if in_channels % groups:
        raise ValueError(f"in_channels={in_channels} is not divisible by groups={groups}")
    if out_channels % groups:
        raise ValueError(f"out_channels={out_channels} is not divisible by groups={groups}")
    if isinstance(padding, (list, tuple)) and len(padding) == 2 and all(
            isinstance(p, (list, tuple)) for p in padding):
        pad_h, pad_w = padding
    else:
        pad_h = pad_w = padding
    out_h = conv_output_size(height, kh, sh, pad_h, dh)
    out_w = conv_output_size(width, kw, sw, pad_w, dw)
    taps = kh * kw * (in_channels // groups)
    return LayerCost(
        name=name,
        macs=out_h * out_w * out_channels * taps,
        params=taps * out_channels + (out_channels if bias else 0),
        input_activations=height * width * in_channels,
        output_activations=out_h * out_w * out_channels,
        output_shape=(out_h, out_w, out_channels),
        layer_kind=classify((kh, kw), groups, in_channels, out_channels),
    )


def standard_conv_cost(height: int, width: int, in_channels: int, out_channels: int,
                       kernel: IntPair = 3, stride: IntPair = 1, padding: Padding = "SAME",
                       dilation: IntPair = 1, bias: bool = False) -> LayerCost:
    """Standard convolution: ``D_K * D_K * M * N * D_F * D_F`` MACs (MobileNet eq. 2)."""
    return conv2d_cost(height, width, in_channels, out_channels, kernel, stride, padding,
                       dilation, groups=1, bias=bias, name="standard")


def depthwise_conv_cost(height: int, width: int, channels: int, kernel: IntPair = 3,
                        stride: IntPair = 1, padding: Padding = "SAME", dilation: IntPair = 1,
                        depth_multiplier: int = 1, bias: bool = False) -> LayerCost:
    """Depthwise convolution: ``D_K * D_K * M * D_F * D_F`` MACs (MobileNet eq. 3).

    One ``K x K`` filter per input channel (``depth_multiplier`` filters each).
    """
    channels = _positive_int("channels", channels)
    depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
    return conv2d_cost(height, width, channels, channels * depth_multiplier, kernel, stride,
                       padding, dilation, groups=channels, bias=bias, name="depthwise")


def pointwise_conv_cost(height: int, width: int, in_channels: int, out_channels: int,
                        bias: bool = False) -> LayerCost:
    """Pointwise (1x1) convolution: ``M * N * D_F * D_F`` MACs."""
    return conv2d_cost(height, width, in_channels, out_channels, 1, 1, "VALID", 1, groups=1,
                       bias=bias, name="pointwise")


def grouped_conv_cost(height: int, width: int, in_channels: int, out_channels: int,
                      groups: int, kernel: IntPair = 3, stride: IntPair = 1,
                      padding: Padding = "SAME", dilation: IntPair = 1,
                      bias: bool = False) -> LayerCost:
    """Group convolution (ShuffleNet, ResNeXt): standard cost divided by ``groups``."""
    return conv2d_cost(height, width, in_channels, out_channels, kernel, stride, padding,
                       dilation, groups=groups, bias=bias, name="grouped")


def dense_cost(in_features: int, out_features: int, bias: bool = True, name: str = "dense") -> LayerCost:
    """Fully connected layer: ``I * J`` MACs and ``I * J (+ J)`` parameters."""
    in_features = _positive_int("in_features", in_features)
    out_features = _positive_int("out_features", out_features)
    return LayerCost(
        name=name,
        macs=in_features * out_features,
        params=in_features * out_features + (out_features if bias else 0),
        input_activations=in_features,
        output_activations=out_features,
        output_shape=(out_features,),
        layer_kind=LayerKind.LINEAR,
    )


def depthwise_separable_cost(height: int, width: int, in_channels: int, out_channels: int,
                             kernel: IntPair = 3, stride: IntPair = 1,
                             padding: Padding = "SAME") -> tuple[LayerCost, LayerCost]:
    """The two layers of a depthwise separable convolution (MobileNet eq. 4).

    ``D_K*D_K*M*D_F*D_F + M*N*D_F*D_F`` MACs, with ``D_F`` the output size
    (the depthwise layer carries the stride).
    """
    dw = depthwise_conv_cost(height, width, in_channels, kernel, stride, padding)
    out_h, out_w, _ = dw.output_shape
    pw = pointwise_conv_cost(out_h, out_w, in_channels, out_channels)
    return dw, pw


def separable_ratio(out_channels: int, kernel: int) -> Fraction:
    """Exact ratio of separable to standard MACs (and parameters): ``1/N + 1/D_K^2`` (MobileNet eq. 5)."""
    n = _positive_int("out_channels", out_channels)
    k = _positive_int("kernel", kernel)
    return Fraction(1, n) + Fraction(1, k * k)



def valid_taps(size: int, kernel: int, stride: int = 1, padding: Padding = "SAME",
               dilation: int = 1, input_dilation: int = 1) -> int:
    """Kernel taps, summed over all output positions of one dimension, that land on real input.

    Taps that fall on padding zeros (or on zeros inserted by ``input_dilation``)
    are excluded. With no padding this is ``out * kernel``; XLA's cost model
    counts only these taps, so a convolution's XLA flops are
    ``2 * N_batch * C_out * (C_in / groups) * valid_taps(H) * valid_taps(W)``.
    Computed by ``tap_count`` in closed form (no loop over output positions).
    """
    size = _positive_int("size", size)
    input_dilation = _positive_int("input_dilation", input_dilation)
    dilated = (size - 1) * input_dilation + 1
    lo, hi = padding_amounts(dilated, kernel, stride, padding, dilation)
    conv_output_size(dilated, kernel, stride, (lo, hi), dilation)  # the kernel must fit
    return tap_count(size, kernel, stride, lo, hi, dilation, input_dilation)


def _congruent(first: int, last: int, a: int, c: int, m: int) -> int:
    """How many integers ``t`` in ``[first, last]`` have ``a * t = c (mod m)``: the solutions form one
    residue class modulo ``m / gcd(a, m)`` (or none), counted by two floor divisions."""
    if last < first:
        return 0
    g = math.gcd(a, m)
    if c % g:
        return 0
    step = m // g
    t0 = (c // g) * pow(a // g, -1, step) % step if step > 1 else 0
    return (last - t0) // step - (first - 1 - t0) // step


def tap_count(size: int, kernel: int, stride: int, lo: int, hi: int, dilation: int = 1,
              input_dilation: int = 1) -> int:
    """Pairs ``(output position o, tap k)`` of one dimension whose input position
    ``p = o * stride + k * dilation - lo`` is a real input value: ``0 <= p < (size - 1) * input_dilation + 1``
    and ``p`` a multiple of ``input_dilation``. ``lo`` and ``hi`` may be negative (a crop, as XLA writes
    gradients). For each tap the valid ``o`` form an interval intersected with one residue class, so
    the count costs ``O(kernel)`` integer operations, never a loop over outputs (a 30000-long input
    with a 2001-tap kernel: 2001 steps, not 60 million)."""
    if size <= 0 or kernel <= 0:
        return 0
    dilated = (size - 1) * input_dilation + 1
    out = (dilated + lo + hi - dilation * (kernel - 1) - 1) // stride + 1
    if out <= 0:
        return 0
    count = 0
    for k in range(kernel):
        shift = lo - k * dilation  # o * stride must lie in [shift, shift + dilated - 1]
        first = max(0, -(-shift // stride))
        last = min(out - 1, (shift + dilated - 1) // stride)
        count += _congruent(first, last, stride, shift % input_dilation, input_dilation)
    return count


def scatter_tap_count(size: int, kernel: int, stride: int, lo: int, dilation: int, input_dilation: int) -> int:
    """Pairs ``(input value i, tap k)`` of one dimension that meet on the stride's grid: output position
    ``(i * input_dilation + lo - k * dilation) / stride`` an integer. ``size * kernel`` at stride 1 (each
    input value meets every tap: a transposed convolution); with a stride, the pairs it skips are not
    products. The output's range is not asked (a transposed convolution's cropped border still counts,
    as PyTorch and fvcore count one)."""
    if size <= 0 or kernel <= 0:
        return 0
    if stride == 1:
        return size * kernel
    return sum(_congruent(0, size - 1, input_dilation, (k * dilation - lo) % stride, stride) for k in range(kernel))


def memory_access_cost_1x1(height: int, width: int, in_channels: int, out_channels: int,
                           groups: int = 1) -> int:
    """Memory access cost of a 1x1 (group) convolution, ShuffleNet v2 sec. 2 (G1, G2).

    ``h w (c1 + c2) + c1 c2 / g``: read the input, write the output, read the
    weights, counted in values (not bytes), ignoring caches. The paper abbreviates
    it "MAC"; this book writes *memory accesses* to keep it apart from MACs,
    multiply-accumulates.
    """
    height, width = _positive_int("height", height), _positive_int("width", width)
    c1, c2 = _positive_int("in_channels", in_channels), _positive_int("out_channels", out_channels)
    groups = _positive_int("groups", groups)
    if c1 % groups or c2 % groups:
        raise ValueError(f"channels {c1}->{c2} are not divisible by groups={groups}")
    return height * width * (c1 + c2) + c1 * c2 // groups


def memory_access_lower_bound(height: int, width: int, macs: int) -> float:
    """ShuffleNet v2 eq. (1): a 1x1 convolution with ``B = h w c1 c2`` multiply-accumulates makes at
    least ``2 sqrt(h w B) + B / (h w)`` memory accesses, with equality when ``c1 = c2``. (The paper
    calls ``B`` the FLOPs; it is the multiply-accumulates ``h w c1 c2``, hence ``macs``.)"""
    hw = _positive_int("height", height) * _positive_int("width", width)
    b = _positive_int("macs", macs)
    return 2 * math.sqrt(hw * b) + b / hw

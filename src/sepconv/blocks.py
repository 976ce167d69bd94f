"""The block library: every block of the book's networks, as a resolved spec and the module it builds.

A *resolved* block spec is a frozen dataclass of concrete numbers (channels, kernel, stride,
activation): what one row of a paper's table becomes once a width rule and a resolution have been
applied (``sepconv.models``). Each spec has two readers, and only these two:

* ``build(rngs)``: the Flax NNX module that computes the block;
* ``layer_costs(size, path)``: the block's closed-form cost for a ``size x size``
  input, one ``LayerCost`` per parameterized layer, named by the module path the counter reports
  (``features.3.conv_dw.conv``), and the output size.

Composite blocks derive their parts (``parts()``: convolution sub-specs) once, and both readers use
those same parts, so the module and the closed form cannot disagree on what a block contains.
Naming follows timm and TF-slim: ``conv_pw`` (expansion), ``conv_dw`` (depthwise), ``conv_pwl``
(linear projection), ``se`` (squeeze-and-excite).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Union

import jax
import jax.numpy as jnp
from flax import nnx

from .kinds import LayerKind, classify
from .shapes_only import construct, new_layer
from .cost import LayerCost, conv2d_cost, conv_output_size, dense_cost, norm_cost, scale_cost

__all__ = ["ACTIVATIONS", "activation", "relu6", "channel_shuffle", "ceil_pool_padding",
           "ConvSpec", "ConvNormAct", "SeparableSpec", "DepthwiseSeparable", "SqueezeExciteSpec",
           "SqueezeExcite",
           "NormSpec", "PixelLinearSpec", "InvertedBottleneck", "UniversalInvertedBottleneck", "UIBSpec", "fused_ib",
           "MBConvSpec", "InvertedResidual", "MobileMQASpec", "MobileMQA", "GlobalPoolSpec", "GlobalPool", "ShuffleV1Spec", "ShuffleV1Unit", "ShuffleV2Spec", "ShuffleV2Unit",
           "FireSpec", "Fire", "XceptionBlockSpec", "XceptionBlock", "ConvNeXtBlockSpec", "ConvNeXtBlock",
           "DownsampleSpec", "Downsample", "PoolSpec", "Pool", "ClassifierSpec", "Classifier", "Block"]

Padding = Union[str, tuple]


def relu6(x):
    """``min(max(x, 0), 6)``, the activation of MobileNet v2 (and of v1 in TF-slim and Keras)."""
    return jnp.clip(x, 0.0, 6.0)


#: Activations by the names the specs use; ``hard_swish`` is ``x * relu6(x + 3) / 6`` (MobileNetV3 sec. 5.2).
ACTIVATIONS = {
    "relu": jax.nn.relu, "relu6": relu6, "hard_swish": jax.nn.hard_swish, "silu": jax.nn.silu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False), "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
}


def activation(name: str | None):
    """The function of an activation name; ``None`` is the identity (a linear layer)."""
    if name is None:
        return lambda x: x
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def channel_shuffle(x, groups: int = 2):
    """Interleave the channels of ``groups`` groups (ShuffleNet sec. 3.1): ``(.., g, C/g) -> (.., C/g, g)``."""
    *lead, c = x.shape
    if c % groups:
        raise ValueError(f"{c} channels cannot be shuffled in {groups} groups")
    return x.reshape(*lead, groups, c // groups).swapaxes(-1, -2).reshape(*lead, c)


def ceil_pool_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """Padding after the input that gives Caffe's ``ceil`` output length ``ceil((n - window) / stride) + 1``."""
    out = -(-(size - window) // stride) + 1
    return 0, max((out - 1) * stride + window - size, 0)


class Block:
    """What every resolved block spec provides (see the module docstring)."""

    def build(self, rngs: nnx.Rngs) -> nnx.Module:
        raise NotImplementedError

    def layer_costs(self, size: int, path: str) -> tuple[list[LayerCost], int]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _run(parts, size: int, path: str) -> tuple[list[LayerCost], int]:
    """Cost of sub-specs applied one after the other."""
    out = []
    for name, spec in parts:
        layers, size = spec.layer_costs(size, _join(path, name))
        out += layers
    return out, size


# ----------------------------------------------------------------------------------------------------
# Convolution -> normalization -> activation
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvSpec(Block):
    """A convolution, then ``norm`` (``"batch"``, ``"layer"`` or ``None``), then ``act``.

    ``groups = c_in = c_out`` is a depthwise convolution. Costs: ``conv2d_cost`` (MACs
    ``H_out W_out C_out (C_in / g) K^2``), plus the normalization's scale and shift.
    """

    c_in: int
    c_out: int
    kernel: int = 3
    stride: int = 1
    groups: int = 1
    act: str | None = "relu"
    padding: Padding = "SAME"
    norm: str | None = "batch"
    bias: bool = False

    def __post_init__(self):
        if self.c_in % self.groups or self.c_out % self.groups:
            raise ValueError(f"channels {self.c_in}->{self.c_out} are not divisible by groups={self.groups}")
        if self.norm not in (None, "batch", "layer"):
            raise ValueError(f"norm must be 'batch', 'layer' or None, got {self.norm!r}")
        activation(self.act)

    @property
    def layer_kind(self) -> LayerKind:
        """The convolution's ``LayerKind`` (``sepconv.kinds.classify``)."""
        return classify((self.kernel, self.kernel), self.groups, self.c_in, self.c_out)

    @property
    def depthwise(self) -> bool:
        return self.layer_kind is LayerKind.DEPTHWISE

    def build(self, rngs):
        return construct(self, lambda: ConvNormAct(self, rngs=rngs))

    def layer_costs(self, size, path):
        conv = conv2d_cost(size, size, self.c_in, self.c_out, self.kernel, self.stride, self.padding,
                           groups=self.groups, bias=self.bias, name=_join(path, "conv"))
        out = [conv]
        if self.norm == "batch":
            out.append(norm_cost(self.c_out, _join(path, "bn")))
        elif self.norm == "layer":
            out.append(norm_cost(self.c_out, _join(path, "norm")))
        return out, conv.output_shape[0]

    def describe(self):
        kind = "dw" if self.depthwise else f"g{self.groups}" if self.groups > 1 else ""
        return f"conv {self.kernel}x{self.kernel}{' ' + kind if kind else ''}, s{self.stride}"


class ConvNormAct(nnx.Module):
    """``act(norm(conv(x)))`` for a ``ConvSpec``: ``norm`` is BatchNorm (``bn``), LayerNorm (``norm``) or
    none, as the spec says; a convolution carries a bias only when the spec says so."""

    def __init__(self, spec: ConvSpec, *, rngs: nnx.Rngs):
        self.conv = new_layer(nnx.Conv, spec.c_in, spec.c_out, (spec.kernel, spec.kernel), strides=spec.stride,
                           padding=spec.padding, feature_group_count=spec.groups, use_bias=spec.bias, rngs=rngs)
        self.bn = nnx.BatchNorm(spec.c_out, momentum=0.9, epsilon=1e-3, rngs=rngs) if spec.norm == "batch" else None
        self.norm = nnx.LayerNorm(spec.c_out, epsilon=1e-6, rngs=rngs) if spec.norm == "layer" else None
        self.act = spec.act

    def __call__(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.norm is not None:
            x = self.norm(x)
        return activation(self.act)(x)


# ----------------------------------------------------------------------------------------------------
# Depthwise separable convolution (MobileNet v1, Xception)
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeparableSpec(Block):
    """A depthwise ``kernel x kernel`` convolution (carrying the stride), then a 1x1 pointwise one.

    MobileNet v1 (Fig. 3): BN and ``act`` after each (``dw_norm=True``). Xception (a Keras
    ``SeparableConv2D`` without bias): nothing between the two, BN and ``act`` after the pointwise one
    (``dw_norm=False``). MACs ``D_K^2 M D_F^2 + M N D_F^2`` (MobileNet eq. 5).
    """

    c_in: int
    c_out: int
    kernel: int = 3
    stride: int = 1
    act: str | None = "relu"
    dw_norm: bool = True

    def parts(self):
        dw = ConvSpec(self.c_in, self.c_in, self.kernel, self.stride, groups=self.c_in,
                      act=self.act if self.dw_norm else None, norm="batch" if self.dw_norm else None)
        return [("conv_dw", dw), ("conv_pw", ConvSpec(self.c_in, self.c_out, 1, act=self.act))]

    def build(self, rngs):
        return DepthwiseSeparable(self, rngs=rngs)

    def layer_costs(self, size, path):
        return _run(self.parts(), size, path)

    def describe(self):
        return f"sep {self.kernel}x{self.kernel}, s{self.stride}"


class DepthwiseSeparable(nnx.Module):
    """``conv_pw(conv_dw(x))`` for a ``SeparableSpec``."""

    def __init__(self, spec: SeparableSpec, *, rngs: nnx.Rngs):
        (_, dw), (_, pw) = spec.parts()
        self.conv_dw, self.conv_pw = dw.build(rngs), pw.build(rngs)

    def __call__(self, x):
        return self.conv_pw(self.conv_dw(x))


# ----------------------------------------------------------------------------------------------------
# The Universal Inverted Bottleneck (MobileNetV4): the one inverted-bottleneck skeleton of the library.
# MobileNet v2/v3's inverted residual, EfficientNet's MBConv and Fused-MBConv, ConvNeXt's block and
# MobileNetV4's blocks are all instances of it.
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SqueezeExciteSpec:
    """``x * gate(W2 act(W1 mean(x) + b1) + b2)`` (Hu et al. 2018), W1 and W2 biased 1x1 convolutions
    through ``squeeze`` channels. MobileNetV3: ReLU and a hard sigmoid; EfficientNet: SiLU and a sigmoid."""

    channels: int
    squeeze: int
    act: str = "relu"
    gate: str = "hard_sigmoid"

    def layer_costs(self, path):
        return [conv2d_cost(1, 1, self.channels, self.squeeze, 1, bias=True, name=_join(path, "fc1")),
                conv2d_cost(1, 1, self.squeeze, self.channels, 1, bias=True, name=_join(path, "fc2"))]

    def build(self, rngs):
        return construct(self, lambda: SqueezeExcite(self, rngs=rngs))


class SqueezeExcite(nnx.Module):
    def __init__(self, spec: SqueezeExciteSpec, *, rngs: nnx.Rngs):
        self.fc1 = new_layer(nnx.Conv, spec.channels, spec.squeeze, (1, 1), rngs=rngs)
        self.fc2 = new_layer(nnx.Conv, spec.squeeze, spec.channels, (1, 1), rngs=rngs)
        self.act, self.gate = spec.act, spec.gate

    def __call__(self, x):
        s = x.mean(axis=(1, 2), keepdims=True)
        return x * activation(self.gate)(self.fc2(activation(self.act)(self.fc1(s))))


@dataclass(frozen=True)
class NormSpec:
    """A normalization layer on its own (``"batch"`` or ``"layer"``): a scale and a shift per channel, no MACs."""

    channels: int
    kind: str = "batch"

    def build(self, rngs):
        if self.kind == "batch":
            return nnx.BatchNorm(self.channels, momentum=0.9, epsilon=1e-3, rngs=rngs)
        return nnx.LayerNorm(self.channels, epsilon=1e-6, rngs=rngs)

    def layer_costs(self, size, path):
        return [norm_cost(self.channels, path)], size


@dataclass(frozen=True)
class PixelLinearSpec:
    """A Linear layer applied to every pixel (ConvNeXt writes its 1x1 convolutions this way), then ``act``:
    ``h w c_in c_out`` MACs, like the 1x1 convolution it is."""

    c_in: int
    c_out: int
    bias: bool = True
    act: str | None = None

    def build(self, rngs):
        return new_layer(nnx.Linear, self.c_in, self.c_out, use_bias=self.bias, rngs=rngs)

    def layer_costs(self, size, path):
        d = dense_cost(self.c_in, self.c_out, bias=self.bias)
        pixels = size * size
        return [LayerCost(path, pixels * d.macs, d.params, pixels * self.c_in, pixels * self.c_out,
                          (size, size, self.c_out), layer_kind=LayerKind.LINEAR)], size


class InvertedBottleneck(Block):
    """The Universal Inverted Bottleneck (UIB; Qin et al. 2024, MobileNetV4 sec. 4, Fig. 4).

    ``[start k1 x k1 depthwise] -> 1x1 expansion to `expanded` -> [middle k2 x k2 depthwise]
    -> [squeeze-excite] -> 1x1 linear projection to `c_out` -> [layer scale]``, plus the input when
    ``stride == 1 and c_in == c_out`` (``has_skip``, computed, never passed). The two optional depthwise
    layers make four instances (``start_kernel``, ``mid_kernel``; 0 is "absent"):

    ============  =====  ======  ==============================================
    instance      start  middle  where it comes from
    ============  =====  ======  ==============================================
    IB            no     yes     MobileNetV2's inverted residual (``MBConvSpec``)
    ConvNeXt-like yes    no      ConvNeXt (``ConvNeXtBlockSpec``)
    ExtraDW       yes    yes     new in MobileNetV4: cheap depth *and* receptive field
    FFN           no     no      the transformer's feed-forward network (two 1x1s)
    ============  =====  ======  ==============================================

    and a fifth, FusedIB (``fused=True``, EfficientNetV2's Fused-MBConv): one ``k x k`` convolution
    replaces the expansion and the middle depthwise. The stride sits on the middle depthwise layer, or on
    the start one when there is no middle one (MobileNetV4's rule); an FFN cannot stride. MACs at stride
    1 on an ``h x w`` input, ``t = expanded / c_in``::

        h w (c_in k1^2  +  c_in t c_in  +  t c_in k2^2  +  t c_in c_out)

    (MobileNetV2 sec. 3.3's ``h w d' t (d' + k^2 + d'')`` when ``k1`` is absent).

    Subclasses name the parts after the reference they reproduce (``NAMES``) and say how each layer is
    normalized; the skeleton, the module (``UniversalInvertedBottleneck``) and the closed form are this
    class's, once. Every subclass provides the attributes ``c_in, expanded, c_out, start_kernel,
    mid_kernel, stride, act, se, fused, layer_scale, drop_path``.
    """

    #: Names of the parts: start depthwise, expansion, middle depthwise, projection, fused convolution.
    NAMES = {"start": "dw_start", "expand": "conv_pw", "mid": "conv_dw", "project": "conv_pwl", "fused": "conv_exp"}

    @property
    def has_expansion(self) -> bool:
        return self.expanded != self.c_in

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out

    @property
    def form(self) -> str:
        """``IB``, ``ConvNeXt``, ``ExtraDW``, ``FFN`` or ``FusedIB``."""
        if self.fused:
            return "FusedIB"
        return {(False, True): "IB", (True, False): "ConvNeXt", (True, True): "ExtraDW",
                (False, False): "FFN"}[(bool(self.start_kernel), bool(self.mid_kernel))]

    def _check(self):
        for name in ("c_in", "expanded", "c_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride!r}")
        if self.stride > 1 and not (self.fused or self.start_kernel or self.mid_kernel):
            raise ValueError("an FFN block (no depthwise layer) cannot stride; got stride 2 with "
                             "start_kernel=0 and mid_kernel=0")
        activation(self.act)

    # the layers each part is made of; subclasses with other conventions (ConvNeXt) override these
    def _start(self, stride):
        return [(self.NAMES["start"], ConvSpec(self.c_in, self.c_in, self.start_kernel, stride, groups=self.c_in,
                                               act=None))]

    def _expand(self):
        return [(self.NAMES["expand"], ConvSpec(self.c_in, self.expanded, 1, act=self.act))]

    def _project(self):
        return [(self.NAMES["project"], ConvSpec(self.expanded, self.c_out, 1, act=None))]

    def parts(self):
        """The block's layers in order, as ``(name, spec)``: the one list the module and the closed form read."""
        parts = []
        if self.fused:
            if self.has_expansion:
                parts.append((self.NAMES["fused"], ConvSpec(self.c_in, self.expanded, self.kernel, self.stride,
                                                            act=self.act)))
            else:
                parts.append((self.NAMES["fused"], ConvSpec(self.c_in, self.c_out, self.kernel, self.stride,
                                                            act=self.act)))
        else:
            if self.start_kernel:
                parts += self._start(1 if self.mid_kernel else self.stride)
            if self.has_expansion:
                parts += self._expand()
            if self.mid_kernel:
                parts.append((self.NAMES["mid"], ConvSpec(self.expanded, self.expanded, self.mid_kernel, self.stride,
                                                          groups=self.expanded, act=self.act)))
        if self.se is not None:
            parts.append(("se", self.se))
        if not (self.fused and not self.has_expansion):
            parts += self._project()
        return parts

    def build(self, rngs):
        return self.MODULE(self, rngs=rngs)

    def layer_costs(self, size, path):
        out = []
        for name, spec in self.parts():
            if isinstance(spec, SqueezeExciteSpec):
                out += spec.layer_costs(_join(path, name))
                continue
            layers, size = spec.layer_costs(size, _join(path, name))
            out += layers
        if self.layer_scale is not None:
            out.append(scale_cost(self.c_out, _join(path, "gamma")))
        return out, size


class UniversalInvertedBottleneck(nnx.Module):
    """The module of any ``InvertedBottleneck`` spec: its parts, in order, under their names (a part the
    spec does not have is ``None``), then the layer scale ``gamma``, stochastic depth and the skip."""

    def __init__(self, spec: InvertedBottleneck, *, rngs: nnx.Rngs):
        parts = spec.parts()
        built = {name: part.build(rngs) for name, part in parts}
        for name in dict.fromkeys([*spec.NAMES.values(), "se", *built]):
            setattr(self, name, built.get(name))
        order = [name for name, _ in parts]
        after = [part.act if isinstance(part, PixelLinearSpec) else None for _, part in parts]
        self.order, self.after = tuple(order), tuple(after)
        self.layer_scale = spec.layer_scale
        self.gamma = (nnx.Param(jnp.full((spec.c_out,), spec.layer_scale, jnp.float32))
                      if spec.layer_scale is not None else None)
        self.has_skip = spec.has_skip
        self.drop_path = (nnx.Dropout(spec.drop_path, broadcast_dims=(1, 2, 3), rngs=rngs)
                          if spec.drop_path > 0 and spec.has_skip else None)

    def __call__(self, x):
        y = x
        for name, act in zip(self.order, self.after):
            y = getattr(self, name)(y)
            if act is not None:
                y = activation(act)(y)
        if self.gamma is not None:
            y = y * self.gamma[...]
        if not self.has_skip:
            return y
        return x + (self.drop_path(y) if self.drop_path is not None else y)


class InvertedResidual(UniversalInvertedBottleneck):
    """The module of an ``MBConvSpec`` (MobileNet v2/v3's inverted residual, EfficientNet's MBConv)."""


@dataclass(frozen=True)
class UIBSpec(InvertedBottleneck):
    """A Universal Inverted Bottleneck as MobileNetV4 writes it (TF Model Garden ``mobilenet.py``, timm
    ``UniversalInvertedResidual``): every convolution followed by BatchNorm; the start depthwise layer
    has no activation, the expansion and middle depthwise layers have ``act``, the projection is linear.
    ``layer_scale`` (the hybrid models: 1e-5) multiplies the output by a learned per-channel ``gamma``."""

    c_in: int
    expanded: int
    c_out: int
    start_kernel: int = 0
    mid_kernel: int = 3
    stride: int = 1
    act: str = "relu"
    layer_scale: float | None = None
    se: SqueezeExciteSpec | None = None
    drop_path: float = 0.0
    fused: bool = False

    MODULE = UniversalInvertedBottleneck

    def __post_init__(self):
        self._check()
        if self.fused and self.start_kernel:
            raise ValueError("a FusedIB block has no start depthwise layer; got start_kernel="
                             f"{self.start_kernel}")

    @property
    def has_expansion(self) -> bool:
        # MobileNetV4 always has its expansion layer (an FFN or ConvNeXt-like block is nothing without it)
        return True if not self.fused else self.expanded != self.c_in

    @property
    def kernel(self) -> int:
        """The fused convolution's kernel (FusedIB): the middle kernel."""
        return self.mid_kernel

    def describe(self):
        if self.fused:
            return f"FusedIB {self.mid_kernel}x{self.mid_kernel}, exp {self.expanded}, s{self.stride}"
        k = "-".join(f"{k}x{k}" if k else "." for k in (self.start_kernel, self.mid_kernel))
        return f"UIB {self.form} {k}, exp {self.expanded}, s{self.stride}"


def fused_ib(c_in: int, expanded: int, c_out: int, kernel: int = 3, stride: int = 1, act: str = "relu") -> UIBSpec:
    """FusedIB (EfficientNetV2's Fused-MBConv, MobileNetV4's first block): ``kernel x kernel`` conv -> 1x1."""
    return UIBSpec(c_in, expanded, c_out, 0, kernel, stride, act, fused=True)


@dataclass(frozen=True)
class MBConvSpec(InvertedBottleneck):
    """The inverted residual (MobileNetV2 Table 1), with MobileNetV3's and EfficientNet's options: the
    UIB's IB instance (no start depthwise, ``kernel x kernel`` middle depthwise), BN and ``act`` after
    the expansion and the depthwise layer.

    1x1 expansion to ``expanded`` channels (only if ``expanded != c_in``), ``kernel x kernel``
    depthwise with the stride, optional squeeze-and-excite, linear 1x1 projection to ``c_out``;
    the input is added when ``stride == 1 and c_in == c_out``.
    ``fused=True`` is EfficientNetV2's Fused-MBConv (the UIB's FusedIB): one ``kernel x kernel``
    convolution replaces expansion and depthwise. Stride-1 MACs: ``h w d' t (d' + k^2 + d'')``
    (MobileNetV2 sec. 3.3). ``drop_path`` is the stochastic-depth rate used in training
    (EfficientNet), ignored in eval mode.
    """

    c_in: int
    expanded: int
    c_out: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu6"
    se: SqueezeExciteSpec | None = None
    fused: bool = False
    drop_path: float = 0.0

    NAMES = {"start": "dw_start", "expand": "conv_pw", "mid": "conv_dw", "project": "conv_pwl", "fused": "conv_exp"}
    MODULE = InvertedResidual
    start_kernel = 0
    layer_scale = None

    @property
    def mid_kernel(self) -> int:
        return self.kernel

    def describe(self):
        kind = "fused-MBConv" if self.fused else "MBConv"
        extras = ", SE" if self.se else ""
        expansion = f"exp {self.expanded}" if self.has_expansion else "no expansion"
        return f"{kind} {self.kernel}x{self.kernel}, {expansion}{extras}, {self.act}, s{self.stride}"


# ----------------------------------------------------------------------------------------------------
# Mobile MQA (MobileNetV4's attention block)
# ----------------------------------------------------------------------------------------------------

class _MultiQueryAttention(nnx.Module):
    """``softmax(q k^T / sqrt(d_k)) v`` with ``heads`` query heads sharing one key and one value."""

    def __init__(self, key_dim: int):
        self.key_dim = key_dim

    def __call__(self, q, k, v):
        # q: (B, N, heads, d_k); k: (B, M, d_k); v: (B, M, d_v). The heads share the key and the value,
        # so they are N * heads queries of one attention: two batched products, (B, N h, M) and (B, N h, d_v)
        b, n, heads, _ = q.shape
        batched = ((0,), (0,))
        scores = jax.lax.dot_general(q.reshape(b, n * heads, -1), k, (((2,), (2,)), batched)) * self.key_dim ** -0.5
        out = jax.lax.dot_general(jax.nn.softmax(scores, axis=-1), v, (((2,), (1,)), batched))
        return out.reshape(b, n, heads, -1)


@dataclass(frozen=True)
class MobileMQASpec(Block):
    """Mobile MQA (Qin et al. 2024, MobileNetV4 sec. 3.2, eq. 2): multi-query attention (Shazeer 2019)
    whose keys and values are computed on a map downsampled by ``kv_stride`` (a ``kernel x kernel``
    stride-``kv_stride`` depthwise convolution and BatchNorm, when ``kv_stride > 1``).

    ``BN -> q = W_q x (heads x key_dim channels); k = W_k DW(x), v = W_v DW(x) (key_dim and value_dim:
    one key and one value shared by every head) -> o = softmax(q k^T / sqrt(d_k)) v -> W_o o -> [gamma]``,
    plus the input. With ``N = h w`` queries and ``M = N / kv_stride^2`` keys the attention costs
    ``heads N M (d_k + d_v)`` MACs, beside the projections'
    ``N c_in heads d_k + M c_in (d_k + d_v) + N heads d_v c_out``.
    """

    c_in: int
    c_out: int
    heads: int
    key_dim: int
    value_dim: int
    kv_stride: int = 1
    kernel: int = 3
    layer_scale: float | None = None
    drop_path: float = 0.0

    def __post_init__(self):
        for name in ("c_in", "c_out", "heads", "key_dim", "value_dim", "kv_stride", "kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def has_skip(self) -> bool:
        return self.c_in == self.c_out

    def parts(self):
        linear = functools.partial(ConvSpec, kernel=1, act=None, norm=None)
        down = ConvSpec(self.c_in, self.c_in, self.kernel, self.kv_stride, groups=self.c_in, act=None)
        kv = self.kv_stride > 1
        return {"norm": NormSpec(self.c_in), "query": linear(self.c_in, self.heads * self.key_dim),
                "key_down": down if kv else None, "key": linear(self.c_in, self.key_dim),
                "value_down": down if kv else None, "value": linear(self.c_in, self.value_dim),
                "output": linear(self.heads * self.value_dim, self.c_out)}

    def attention_macs(self, size: int) -> int:
        """``heads N M (d_k + d_v)``: the two products ``q k^T`` and ``softmax(.) v``."""
        n = size * size
        m = conv_output_size(size, self.kernel, self.kv_stride, "SAME") ** 2 if self.kv_stride > 1 else n
        return self.heads * n * m * (self.key_dim + self.value_dim)

    def build(self, rngs):
        return MobileMQA(self, rngs=rngs)

    def layer_costs(self, size, path):
        p = self.parts()
        out = (p["norm"].layer_costs(size, _join(path, "norm"))[0]
               + p["query"].layer_costs(size, _join(path, "query"))[0])
        kv_size = size
        for name in ("key", "value"):
            s = size
            if p[name + "_down"] is not None:
                layers, s = p[name + "_down"].layer_costs(size, _join(path, name + "_down"))
                out += layers
            out += p[name].layer_costs(s, _join(path, name))[0]
            kv_size = s
        n, m = size * size, kv_size * kv_size
        out.append(LayerCost(_join(path, "attn"), self.attention_macs(size), 0,
                             n * self.heads * self.key_dim + m * (self.key_dim + self.value_dim),
                             n * self.heads * self.value_dim, (size, size, self.heads * self.value_dim),
                             layer_kind=LayerKind.LINEAR))
        out += p["output"].layer_costs(size, _join(path, "output"))[0]
        if self.layer_scale is not None:
            out.append(scale_cost(self.c_out, _join(path, "gamma")))
        return out, size

    def describe(self):
        return f"Mobile MQA {self.heads}x{self.key_dim}, kv s{self.kv_stride}"


class MobileMQA(nnx.Module):
    def __init__(self, spec: MobileMQASpec, *, rngs: nnx.Rngs):
        p = spec.parts()
        self.norm = p["norm"].build(rngs)
        self.query = p["query"].build(rngs)
        self.key_down = p["key_down"].build(rngs) if p["key_down"] is not None else None
        self.key = p["key"].build(rngs)
        self.value_down = p["value_down"].build(rngs) if p["value_down"] is not None else None
        self.value = p["value"].build(rngs)
        self.attn = _MultiQueryAttention(spec.key_dim)
        self.output = p["output"].build(rngs)
        self.heads, self.key_dim, self.value_dim = spec.heads, spec.key_dim, spec.value_dim
        self.layer_scale = spec.layer_scale
        self.gamma = (nnx.Param(jnp.full((spec.c_out,), spec.layer_scale, jnp.float32))
                      if spec.layer_scale is not None else None)
        self.has_skip = spec.has_skip
        self.drop_path = (nnx.Dropout(spec.drop_path, broadcast_dims=(1, 2, 3), rngs=rngs)
                          if spec.drop_path > 0 and spec.has_skip else None)

    def __call__(self, x):
        b, h, w, _ = x.shape
        y = self.norm(x)
        q = self.query(y).reshape(b, h * w, self.heads, self.key_dim)
        kx = self.key_down(y) if self.key_down is not None else y
        vx = self.value_down(y) if self.value_down is not None else y
        k = self.key(kx).reshape(b, -1, self.key_dim)
        v = self.value(vx).reshape(b, -1, self.value_dim)
        o = self.output(self.attn(q, k, v).reshape(b, h, w, self.heads * self.value_dim))
        if self.gamma is not None:
            o = o * self.gamma[...]
        if not self.has_skip:
            return o
        return x + (self.drop_path(o) if self.drop_path is not None else o)


@dataclass(frozen=True)
class GlobalPoolSpec(Block):
    """Global average pooling, keeping a ``1 x 1`` map (MobileNetV4 pools *before* its last 1x1 convolution)."""

    def build(self, rngs):
        return GlobalPool()

    def layer_costs(self, size, path):
        return [], 1

    def describe(self):
        return "global avgpool"


class GlobalPool(nnx.Module):
    def __call__(self, x):
        return jnp.mean(x, axis=(1, 2), keepdims=True)
# ----------------------------------------------------------------------------------------------------
# ShuffleNet units
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShuffleV1Spec(Block):
    """A ShuffleNet v1 unit (Zhang et al. 2018, Fig. 2): 1x1 group conv -> ReLU -> channel shuffle ->
    3x3 depthwise (stride) -> 1x1 group conv, a quarter of ``c_out`` in the bottleneck. Stride 1 adds the
    input; stride 2 concatenates a 3x3 average-pooled input, so the branch makes ``c_out - c_in``.
    ``first_grouped=False`` for stage 2's first unit, whose 24-channel input is not grouped.
    Unit cost: ``h w (2 c m / g + 9 m)`` MACs (sec. 3.2)."""

    c_in: int
    c_out: int
    groups: int
    stride: int
    first_grouped: bool = True

    def parts(self):
        b = self.c_out // 4
        branch_out = self.c_out - self.c_in if self.stride == 2 else self.c_out
        return [("conv_pw", ConvSpec(self.c_in, b, 1, groups=self.groups if self.first_grouped else 1)),
                ("conv_dw", ConvSpec(b, b, 3, self.stride, groups=b, act=None)),
                ("conv_pwl", ConvSpec(b, branch_out, 1, groups=self.groups, act=None))]

    def build(self, rngs):
        return ShuffleV1Unit(self, rngs=rngs)

    def layer_costs(self, size, path):
        return _run(self.parts(), size, path)

    def describe(self):
        return f"shuffle unit g{self.groups}, s{self.stride}"


class ShuffleV1Unit(nnx.Module):
    def __init__(self, spec: ShuffleV1Spec, *, rngs: nnx.Rngs):
        (_, pw), (_, dw), (_, pwl) = spec.parts()
        self.conv_pw, self.conv_dw, self.conv_pwl = pw.build(rngs), dw.build(rngs), pwl.build(rngs)
        self.stride, self.groups = spec.stride, spec.groups
        self.shuffle = spec.first_grouped and spec.groups > 1

    def __call__(self, x):
        y = self.conv_pw(x)
        if self.shuffle:
            y = channel_shuffle(y, self.groups)
        y = self.conv_pwl(self.conv_dw(y))
        if self.stride == 2:
            shortcut = nnx.avg_pool(x, (3, 3), (2, 2), padding="SAME", count_include_pad=False)
            return jax.nn.relu(jnp.concatenate([shortcut, y], axis=-1))
        return jax.nn.relu(x + y)


@dataclass(frozen=True)
class ShuffleV2Spec(Block):
    """A ShuffleNet v2 unit (Ma et al. 2018, Fig. 3c, d), ending with a shuffle of two groups.

    Stride 1: split the channels in two, transform one half (1x1 -> 3x3 depthwise -> 1x1), concatenate.
    Stride 2: both branches see the whole input. ``convention`` picks how the stride-2 unit is built:

    * ``"torchvision"``: each branch outputs ``c_out / 2``; the left one is depthwise -> 1x1.
    * ``"megvii"`` (the authors' ShuffleNet-Series code): the left (projection) branch keeps all
      ``c_in`` channels (depthwise -> 1x1 ``c_in -> c_in``), the right one outputs ``c_out - c_in``.
    """

    c_in: int
    c_out: int
    stride: int
    convention: str = "torchvision"

    def __post_init__(self):
        if self.convention not in ("torchvision", "megvii"):
            raise ValueError(f"convention must be 'torchvision' or 'megvii', got {self.convention!r}")

    def branches(self):
        half = self.c_out // 2
        if self.stride == 1:
            return [], [("0", ConvSpec(half, half, 1)), ("1", ConvSpec(half, half, 3, groups=half, act=None)),
                        ("2", ConvSpec(half, half, 1))]
        left = self.c_in if self.convention == "megvii" else half
        right = self.c_out - left
        branch1 = [("0", ConvSpec(self.c_in, self.c_in, 3, self.stride, groups=self.c_in, act=None)),
                   ("1", ConvSpec(self.c_in, left, 1))]
        branch2 = [("0", ConvSpec(self.c_in, half, 1)), ("1", ConvSpec(half, half, 3, self.stride, groups=half, act=None)),
                   ("2", ConvSpec(half, right, 1))]
        return branch1, branch2

    def build(self, rngs):
        return ShuffleV2Unit(self, rngs=rngs)

    def layer_costs(self, size, path):
        branch1, branch2 = self.branches()
        left, _ = _run(branch1, size, _join(path, "branch1"))
        right, out = _run(branch2, size, _join(path, "branch2"))
        return left + right, out

    def describe(self):
        return f"shuffle v2 unit, s{self.stride}"


class ShuffleV2Unit(nnx.Module):
    def __init__(self, spec: ShuffleV2Spec, *, rngs: nnx.Rngs):
        branch1, branch2 = spec.branches()
        self.branch1 = nnx.List([s.build(rngs) for _, s in branch1]) if branch1 else None
        self.branch2 = nnx.List([s.build(rngs) for _, s in branch2])
        self.stride = spec.stride

    def __call__(self, x):
        if self.branch1 is None:
            keep, x2 = jnp.split(x, 2, axis=-1)
        else:
            keep = x
            for layer in self.branch1:
                keep = layer(keep)
            x2 = x
        for layer in self.branch2:
            x2 = layer(x2)
        return channel_shuffle(jnp.concatenate([keep, x2], axis=-1), 2)


# ----------------------------------------------------------------------------------------------------
# SqueezeNet's fire module
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FireSpec(Block):
    """A fire module (Iandola et al. 2016, Fig. 1): a 1x1 squeeze, then parallel 1x1 and 3x3 expands,
    concatenated. Every convolution has a bias and a ReLU, no normalization."""

    c_in: int
    squeeze: int
    expand1x1: int
    expand3x3: int

    def parts(self):
        conv = functools.partial(ConvSpec, norm=None, bias=True)
        return [("squeeze", conv(self.c_in, self.squeeze, 1)),
                ("expand1x1", conv(self.squeeze, self.expand1x1, 1)),
                ("expand3x3", conv(self.squeeze, self.expand3x3, 3, padding=((1, 1), (1, 1))))]

    def build(self, rngs):
        return Fire(self, rngs=rngs)

    def layer_costs(self, size, path):
        (n1, squeeze), (n2, e1), (n3, e3) = self.parts()
        layers, size = squeeze.layer_costs(size, _join(path, n1))
        return layers + e1.layer_costs(size, _join(path, n2))[0] + e3.layer_costs(size, _join(path, n3))[0], size

    def describe(self):
        return f"fire {self.squeeze}/{self.expand1x1}/{self.expand3x3}"


class Fire(nnx.Module):
    def __init__(self, spec: FireSpec, *, rngs: nnx.Rngs):
        (_, s), (_, e1), (_, e3) = spec.parts()
        self.squeeze, self.expand1x1, self.expand3x3 = s.build(rngs), e1.build(rngs), e3.build(rngs)

    def __call__(self, x):
        s = self.squeeze(x)
        return jnp.concatenate([self.expand1x1(s), self.expand3x3(s)], axis=-1)


# ----------------------------------------------------------------------------------------------------
# Xception's blocks
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class XceptionBlockSpec(Block):
    """An Xception block (Chollet 2017, Fig. 5): separable convolutions to ``widths``, each preceded by a
    ReLU (the first one only with ``pre_relu``). ``down``: 3x3 stride-2 max pooling, plus a 1x1 stride-2
    convolution shortcut (entry and exit flows); otherwise the input is added (middle flow)."""

    c_in: int
    widths: tuple
    pre_relu: bool = True
    down: bool = True

    def parts(self):
        parts, c = [], self.c_in
        for i, width in enumerate(self.widths):
            parts.append((f"seps.{i}", SeparableSpec(c, width, act=None, dw_norm=False)))
            c = width
        if self.down:
            parts.append(("shortcut", ConvSpec(self.c_in, c, 1, 2, act=None)))
        return parts

    def build(self, rngs):
        return XceptionBlock(self, rngs=rngs)

    def layer_costs(self, size, path):
        parts = self.parts()
        seps = parts[:len(self.widths)]
        layers, out = _run(seps, size, path)
        if self.down:
            shortcut, out = parts[-1][1].layer_costs(size, _join(path, "shortcut"))
            layers += shortcut
        return layers, out

    def describe(self):
        return f"xception block {'/'.join(map(str, self.widths))}{', down' if self.down else ''}"


class XceptionBlock(nnx.Module):
    def __init__(self, spec: XceptionBlockSpec, *, rngs: nnx.Rngs):
        parts = spec.parts()
        self.seps = nnx.List([s.build(rngs) for name, s in parts if name.startswith("seps")])
        self.shortcut = parts[-1][1].build(rngs) if spec.down else None
        self.pre_relu = spec.pre_relu

    def __call__(self, x):
        y = x
        for i, sep in enumerate(self.seps):
            y = sep(jax.nn.relu(y) if i > 0 or self.pre_relu else y)
        if self.shortcut is None:
            return x + y
        return nnx.max_pool(y, (3, 3), (2, 2), padding="SAME") + self.shortcut(x)


# ----------------------------------------------------------------------------------------------------
# ConvNeXt
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvNeXtBlockSpec(InvertedBottleneck):
    """A ConvNeXt block (Liu et al. 2022, Fig. 4), the UIB's ConvNeXt-like instance: 7x7 depthwise (with
    bias, no normalization of its own) -> LayerNorm -> Linear ``dim -> 4 dim`` -> GELU -> Linear
    ``4 dim -> dim`` -> layer scale ``gamma`` (initialized to ``layer_scale``) -> stochastic depth, plus
    the input. The Linear layers act on every pixel: each is a 1x1 convolution, ``h w dim 4dim`` MACs."""

    dim: int
    kernel: int = 7
    expansion: int = 4
    layer_scale: float = 1e-6
    drop_path: float = 0.0

    NAMES = {"start": "conv_dw", "expand": "pw1", "mid": "dw_mid", "project": "pw2", "fused": "conv_exp"}
    mid_kernel, stride, act, se, fused = 0, 1, "gelu", None, False

    def build(self, rngs):
        return ConvNeXtBlock(self, rngs=rngs)

    @property
    def c_in(self) -> int:
        return self.dim

    @property
    def c_out(self) -> int:
        return self.dim

    @property
    def expanded(self) -> int:
        return self.expansion * self.dim

    @property
    def start_kernel(self) -> int:
        return self.kernel

    @property
    def depthwise(self) -> ConvSpec:
        return ConvSpec(self.dim, self.dim, self.kernel, groups=self.dim, act=None, norm=None, bias=True)

    def _start(self, stride):
        return [(self.NAMES["start"], self.depthwise), ("norm", NormSpec(self.dim, "layer"))]

    def _expand(self):
        return [(self.NAMES["expand"], PixelLinearSpec(self.dim, self.expanded, act="gelu"))]

    def _project(self):
        return [(self.NAMES["project"], PixelLinearSpec(self.expanded, self.dim))]

    def describe(self):
        return f"ConvNeXt block {self.kernel}x{self.kernel}, {self.dim}"


class ConvNeXtBlock(UniversalInvertedBottleneck):
    """The module of a ``ConvNeXtBlockSpec``."""
@dataclass(frozen=True)
class DownsampleSpec(Block):
    """ConvNeXt's downsampling layer: LayerNorm, then a 2x2 stride-2 convolution with bias."""

    c_in: int
    c_out: int

    def build(self, rngs):
        return Downsample(self, rngs=rngs)

    def layer_costs(self, size, path):
        conv = conv2d_cost(size, size, self.c_in, self.c_out, 2, 2, "VALID", bias=True, name=_join(path, "conv"))
        return [norm_cost(self.c_in, _join(path, "norm")), conv], conv.output_shape[0]

    def describe(self):
        return "LN, conv 2x2, s2"


class Downsample(nnx.Module):
    def __init__(self, spec: DownsampleSpec, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(spec.c_in, epsilon=1e-6, rngs=rngs)
        self.conv = new_layer(nnx.Conv, spec.c_in, spec.c_out, (2, 2), strides=2, padding="VALID", rngs=rngs)

    def __call__(self, x):
        return self.conv(self.norm(x))


# ----------------------------------------------------------------------------------------------------
# Pooling and the classifier
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PoolSpec(Block):
    """Max or average pooling; ``ceil=True`` rounds the output length up (Caffe, SqueezeNet)."""

    kind: str = "max"
    window: int = 3
    stride: int = 2
    padding: Padding = "SAME"
    ceil: bool = False

    def build(self, rngs):
        return Pool(self)

    def layer_costs(self, size, path):
        if self.ceil:
            return [], -(-(size - self.window) // self.stride) + 1
        pad = self.padding[0] if isinstance(self.padding, tuple) else self.padding
        return [], conv_output_size(size, self.window, self.stride, pad)

    def describe(self):
        return f"{self.kind}pool {self.window}x{self.window}, s{self.stride}"


class Pool(nnx.Module):
    def __init__(self, spec: PoolSpec):
        self.kind, self.window, self.stride, self.padding, self.ceil = (spec.kind, spec.window, spec.stride,
                                                                        spec.padding, spec.ceil)

    def __call__(self, x):
        padding = ([ceil_pool_padding(n, self.window, self.stride) for n in x.shape[1:3]] if self.ceil
                   else self.padding)
        pool = nnx.max_pool if self.kind == "max" else nnx.avg_pool
        return pool(x, (self.window, self.window), (self.stride, self.stride), padding=padding)


@dataclass(frozen=True)
class ClassifierSpec(Block):
    """The head: global average pooling, then [LayerNorm] [-> FC ``hidden`` -> act] [-> dropout] -> FC.

    ``conv=True`` is SqueezeNet's head instead: a biased 1x1 convolution to the classes and a ReLU
    *before* the pooling, no FC layer. ``bias=False`` drops the last FC layer's bias (the ShuffleNet v2
    authors' code)."""

    c_in: int
    classes: int
    hidden: int | None = None
    hidden_act: str | None = None
    norm: str | None = None
    dropout: float = 0.0
    conv: bool = False
    bias: bool = True

    def build(self, rngs):
        return Classifier(self, rngs=rngs)

    def layer_costs(self, size, path):
        if self.conv:
            conv = conv2d_cost(size, size, self.c_in, self.classes, 1, bias=True, name=_join(path, "conv"))
            return [conv], 1
        layers, c = [], self.c_in
        if self.norm == "layer":
            layers.append(norm_cost(c, _join(path, "norm")))
        if self.hidden:
            layers.append(dense_cost(c, self.hidden, name=_join(path, "hidden")))
            c = self.hidden
        layers.append(dense_cost(c, self.classes, bias=self.bias, name=_join(path, "fc")))
        return layers, 1

    def describe(self):
        return f"{'conv 1x1, ' if self.conv else ''}pool, {'FC ' + str(self.hidden) + ', ' if self.hidden else ''}FC"


class Classifier(nnx.Module):
    def __init__(self, spec: ClassifierSpec, *, rngs: nnx.Rngs):
        self.conv = new_layer(nnx.Conv, spec.c_in, spec.classes, (1, 1), rngs=rngs) if spec.conv else None
        self.norm = nnx.LayerNorm(spec.c_in, epsilon=1e-6, rngs=rngs) if spec.norm == "layer" else None
        self.hidden = (new_layer(nnx.Linear, spec.c_in, spec.hidden, rngs=rngs)
                       if spec.hidden and not spec.conv else None)
        self.hidden_act = spec.hidden_act
        self.dropout = nnx.Dropout(spec.dropout, rngs=rngs) if spec.dropout > 0 and not spec.conv else None
        c = spec.hidden or spec.c_in
        self.fc = None if spec.conv else new_layer(nnx.Linear, c, spec.classes, use_bias=spec.bias, rngs=rngs)

    def __call__(self, x):
        if self.conv is not None:
            return jnp.mean(jax.nn.relu(self.conv(x)), axis=(1, 2))
        x = jnp.mean(x, axis=(1, 2))
        if self.norm is not None:
            x = self.norm(x)
        if self.hidden is not None:
            x = activation(self.hidden_act)(self.hidden(x))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


# ----------------------------------------------------------------------------------------------------
# Structural reparameterization (RepVGG, MobileOne, RepLKNet, RepViT): each block has two forms, the
# train-time one with parallel branches and the deploy-time one with a single convolution per layer.
# ``sepconv.reparam.reparameterize`` turns a model of the first form into one of the second.
# ----------------------------------------------------------------------------------------------------

#: The two forms of a reparameterizable block.
FORMS = ("train", "deploy")


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be 'train' or 'deploy', got {form!r}")


def symmetric_padding(kernel: int) -> tuple:
    """``kernel // 2`` on every side (PyTorch's ``padding=k//2``): branches of different odd kernel sizes
    then read windows with one common centre at every stride, which is what lets them fold into one kernel
    (TensorFlow's ``SAME`` pads ``(0, 1)`` for an even input at stride 2, and a 1x1 branch would not be centred)."""
    if kernel % 2 == 0:
        raise ValueError(f"a reparameterizable branch needs an odd kernel, got {kernel}")
    p = kernel // 2
    return ((p, p), (p, p))


def conv_norm(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: str | None = None,
              form: str = "train") -> ConvSpec:
    """A convolution with symmetric padding and BatchNorm (``form="train"``) or with the BatchNorm already
    folded into a bias (``"deploy"``, chapter 9's fold)."""
    _check_form(form)
    deploy = form == "deploy"
    return ConvSpec(c_in, c_out, kernel, stride, groups, act, symmetric_padding(kernel),
                    norm=None if deploy else "batch", bias=deploy)


@dataclass(frozen=True)
class RepConvSpec(Block):
    """A reparameterizable convolution: RepVGG's block (Ding et al. 2021, Fig. 4), MobileOne's block
    (Vasu et al. 2023, Fig. 3) and RepLKNet's large depthwise kernel (Ding et al. 2022, sec. 3).

    Train form: ``act(se(sum_i BN_i(conv_kxk_i(x)) + BN(conv_scale(x)) + BN(x)))`` with ``branches``
    ``kernel x kernel`` branches (MobileOne's over-parameterization k), one ``small_kernel`` branch
    (1x1 in RepVGG and MobileOne, where ``kernel > 1``; RepLKNet's 5x5 beside a 31x31) and the identity
    branch, a lone BatchNorm, where ``identity`` and the shapes allow (stride 1, ``c_in == c_out``:
    ``has_identity``, computed). All with ``groups`` groups. Deploy form: ``act(se(reparam_conv(x)))``,
    one ``kernel x kernel`` convolution with a bias. Both compute the same function in eval mode
    (``sepconv.reparam``); the train form runs ``branches`` ``kernel x kernel`` convolutions, the small one
    and the BatchNorms, the deploy form one convolution.
    """

    c_in: int
    c_out: int
    kernel: int = 3
    stride: int = 1
    groups: int = 1
    branches: int = 1
    small_kernel: int = 1
    identity: bool = True
    act: str | None = "relu"
    se: SqueezeExciteSpec | None = None
    form: str = "train"

    def __post_init__(self):
        _check_form(self.form)
        if isinstance(self.branches, bool) or not isinstance(self.branches, int) or self.branches < 1:
            raise ValueError(f"branches must be a positive integer, got {self.branches!r}")
        if self.small_kernel > self.kernel:
            raise ValueError(f"small_kernel {self.small_kernel} is larger than kernel {self.kernel}")
        symmetric_padding(self.kernel), symmetric_padding(self.small_kernel)
        activation(self.act)

    @property
    def has_identity(self) -> bool:
        return self.identity and self.stride == 1 and self.c_in == self.c_out

    @property
    def has_scale(self) -> bool:
        return self.small_kernel < self.kernel

    def parts(self):
        if self.form == "deploy":
            return [("reparam_conv", conv_norm(self.c_in, self.c_out, self.kernel, self.stride, self.groups,
                                               form="deploy"))]
        parts = [(f"conv_kxk.{i}", conv_norm(self.c_in, self.c_out, self.kernel, self.stride, self.groups))
                 for i in range(self.branches)]
        if self.has_scale:
            parts.append(("conv_scale", conv_norm(self.c_in, self.c_out, self.small_kernel, self.stride, self.groups)))
        return parts

    def build(self, rngs):
        return RepConv(self, rngs=rngs)

    def layer_costs(self, size, path):
        out = []
        for name, spec in self.parts():
            layers, new = spec.layer_costs(size, _join(path, name))
            out += layers
        if self.form == "train" and self.has_identity:
            out.append(norm_cost(self.c_out, _join(path, "identity")))
        if self.se is not None:
            out += self.se.layer_costs(_join(path, "se"))
        return out, new

    def describe(self):
        kind = "dw" if self.groups == self.c_in == self.c_out and self.groups > 1 else ""
        if self.form == "deploy":
            return f"conv {self.kernel}x{self.kernel}{' ' + kind if kind else ''}, s{self.stride}{', SE' if self.se else ''}"
        extra = f" + {self.small_kernel}x{self.small_kernel}" if self.has_scale else ""
        return (f"{self.branches}x conv {self.kernel}x{self.kernel}{' ' + kind if kind else ''}{extra}"
                f"{' + id' if self.has_identity else ''}, s{self.stride}{', SE' if self.se else ''}")


class RepConv(nnx.Module):
    """The module of a ``RepConvSpec``, in either form (the unused attributes are ``None``)."""

    def __init__(self, spec: RepConvSpec, *, rngs: nnx.Rngs):
        parts = dict(spec.parts())
        train = spec.form == "train"
        self.conv_kxk = (nnx.List([parts[f"conv_kxk.{i}"].build(rngs) for i in range(spec.branches)])
                         if train else None)
        self.conv_scale = parts["conv_scale"].build(rngs) if train and spec.has_scale else None
        self.identity = (nnx.BatchNorm(spec.c_out, momentum=0.9, epsilon=1e-3, rngs=rngs)
                         if train and spec.has_identity else None)
        self.reparam_conv = None if train else parts["reparam_conv"].build(rngs)
        self.se = SqueezeExcite(spec.se, rngs=rngs) if spec.se is not None else None
        self.act = spec.act

    def __call__(self, x):
        if self.reparam_conv is not None:
            y = self.reparam_conv(x)
        else:
            y = self.conv_kxk[0](x)
            for conv in list(self.conv_kxk)[1:]:
                y = y + conv(x)
            if self.conv_scale is not None:
                y = y + self.conv_scale(x)
            if self.identity is not None:
                y = y + self.identity(x)
        if self.se is not None:
            y = self.se(y)
        return activation(self.act)(y)


@dataclass(frozen=True)
class RepViTMlpSpec(Block):
    """RepViT's channel mixer (Wang et al. 2024, Fig. 2): 1x1 ``dim -> hidden`` + BN, GELU, 1x1
    ``hidden -> dim`` + BN, plus the input. Deploy form: the BatchNorms folded into biases."""

    dim: int
    hidden: int
    form: str = "train"

    def parts(self):
        return [("conv1", conv_norm(self.dim, self.hidden, act="gelu", form=self.form)),
                ("conv2", conv_norm(self.hidden, self.dim, form=self.form))]

    def build(self, rngs):
        return RepViTMlp(self, rngs=rngs)

    def layer_costs(self, size, path):
        return _run(self.parts(), size, path)

    def describe(self):
        return f"MLP {self.dim}-{self.hidden}-{self.dim}"


class RepViTMlp(nnx.Module):
    def __init__(self, spec: RepViTMlpSpec, *, rngs: nnx.Rngs):
        (_, c1), (_, c2) = spec.parts()
        self.conv1, self.conv2 = c1.build(rngs), c2.build(rngs)

    def __call__(self, x):
        return x + self.conv2(self.conv1(x))


@dataclass(frozen=True)
class RepViTBlockSpec(Block):
    """A RepViT block (Wang et al. 2024, Fig. 2; timm ``repvit.py``): the token mixer
    ``BN(BN(dw_kxk(x)) + dw_1x1(x) + x)`` (a RepVGG block on one depthwise layer; the 1x1 depthwise
    convolution has a bias), optional squeeze-and-excite, then the channel mixer ``RepViTMlpSpec``.
    Deploy form: the token mixer is one ``kernel x kernel`` depthwise convolution with a bias."""

    dim: int
    mlp_ratio: int = 2
    kernel: int = 3
    se: SqueezeExciteSpec | None = None
    form: str = "train"

    def parts(self):
        d = self.dim
        if self.form == "deploy":
            mixer = [("token_mixer.conv", conv_norm(d, d, self.kernel, groups=d, form="deploy"))]
        else:
            mixer = [("token_mixer.conv", conv_norm(d, d, self.kernel, groups=d)),
                     ("token_mixer.conv1", ConvSpec(d, d, 1, groups=d, act=None, padding=symmetric_padding(1),
                                                    norm=None, bias=True))]
        return mixer + [("channel_mixer", RepViTMlpSpec(d, d * self.mlp_ratio, self.form))]

    def build(self, rngs):
        return RepViTBlock(self, rngs=rngs)

    def layer_costs(self, size, path):
        parts = self.parts()
        out, size = _run(parts[:-1], size, path)
        if self.form == "train":
            out.append(norm_cost(self.dim, _join(path, "token_mixer.bn")))
        if self.se is not None:
            out += self.se.layer_costs(_join(path, "se"))
        more, size = _run(parts[-1:], size, path)
        return out + more, size

    def describe(self):
        return f"RepViT block {self.kernel}x{self.kernel}{', SE' if self.se else ''}"


class RepViTTokenMixer(nnx.Module):
    """``bn(conv(x) + conv1(x) + x)`` in the train form, ``conv(x)`` in the deploy form."""

    def __init__(self, parts: dict, dim: int, *, rngs: nnx.Rngs):
        self.conv = parts["token_mixer.conv"].build(rngs)
        train = "token_mixer.conv1" in parts
        self.conv1 = parts["token_mixer.conv1"].build(rngs) if train else None
        self.bn = nnx.BatchNorm(dim, momentum=0.9, epsilon=1e-3, rngs=rngs) if train else None

    def __call__(self, x):
        if self.bn is None:
            return self.conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)


class RepViTBlock(nnx.Module):
    def __init__(self, spec: RepViTBlockSpec, *, rngs: nnx.Rngs):
        parts = dict(spec.parts())
        self.token_mixer = RepViTTokenMixer(parts, spec.dim, rngs=rngs)
        self.se = SqueezeExcite(spec.se, rngs=rngs) if spec.se is not None else None
        self.channel_mixer = parts["channel_mixer"].build(rngs)

    def __call__(self, x):
        x = self.token_mixer(x)
        if self.se is not None:
            x = self.se(x)
        return self.channel_mixer(x)


@dataclass(frozen=True)
class RepViTDownsampleSpec(Block):
    """RepViT's downsampling layer (Wang et al. 2024, sec. 3.3; timm ``RepVitDownsample``): a RepViT block
    without squeeze-and-excite, a ``kernel x kernel`` stride-2 depthwise convolution + BN, a 1x1
    ``c_in -> c_out`` convolution + BN, then a residual channel mixer."""

    c_in: int
    c_out: int
    mlp_ratio: int = 2
    kernel: int = 3
    form: str = "train"

    def parts(self):
        return [("pre_block", RepViTBlockSpec(self.c_in, self.mlp_ratio, self.kernel, None, self.form)),
                ("spatial_downsample", conv_norm(self.c_in, self.c_in, self.kernel, 2, self.c_in, form=self.form)),
                ("channel_downsample", conv_norm(self.c_in, self.c_out, form=self.form)),
                ("ffn", RepViTMlpSpec(self.c_out, self.c_out * self.mlp_ratio, self.form))]

    def build(self, rngs):
        return RepViTDownsample(self, rngs=rngs)

    def layer_costs(self, size, path):
        return _run(self.parts(), size, path)

    def describe(self):
        return f"RepViT downsample {self.kernel}x{self.kernel} dw, s2"


class RepViTDownsample(nnx.Module):
    def __init__(self, spec: RepViTDownsampleSpec, *, rngs: nnx.Rngs):
        (_, pre), (_, spatial), (_, channel), (_, ffn) = spec.parts()
        self.pre_block, self.spatial_downsample = pre.build(rngs), spatial.build(rngs)
        self.channel_downsample, self.ffn = channel.build(rngs), ffn.build(rngs)

    def __call__(self, x):
        return self.ffn(self.channel_downsample(self.spatial_downsample(self.pre_block(x))))


@dataclass(frozen=True)
class NormLinearClassifierSpec(Block):
    """RepViT's head (timm ``RepVitClassifier``): global average pooling, then BatchNorm -> Linear, twice
    when ``distillation`` (a classifier head and a distillation head, DeiT's, whose outputs are averaged
    at inference). Deploy form: one Linear, the BatchNorms folded in and the two heads averaged."""

    c_in: int
    classes: int
    distillation: bool = True
    form: str = "train"

    def __post_init__(self):
        _check_form(self.form)

    def layer_costs(self, size, path):
        if self.form == "deploy":
            return [dense_cost(self.c_in, self.classes, name=_join(path, "fc"))], 1
        out = []
        for head in ("head", "head_dist") if self.distillation else ("head",):
            out += [norm_cost(self.c_in, _join(path, f"{head}.bn")),
                    dense_cost(self.c_in, self.classes, name=_join(path, f"{head}.l"))]
        return out, 1

    def build(self, rngs):
        return NormLinearClassifier(self, rngs=rngs)

    def describe(self):
        return "pool, BN, FC" + (" (x2, averaged)" if self.distillation and self.form == "train" else "")


class NormLinear(nnx.Module):
    def __init__(self, c_in: int, classes: int, *, rngs: nnx.Rngs):
        self.bn = nnx.BatchNorm(c_in, momentum=0.9, epsilon=1e-3, rngs=rngs)
        self.l = new_layer(nnx.Linear, c_in, classes, rngs=rngs)  # noqa: E741  (timm's name)

    def __call__(self, x):
        return self.l(self.bn(x))


class NormLinearClassifier(nnx.Module):
    def __init__(self, spec: NormLinearClassifierSpec, *, rngs: nnx.Rngs):
        train = spec.form == "train"
        self.head = NormLinear(spec.c_in, spec.classes, rngs=rngs) if train else None
        self.head_dist = NormLinear(spec.c_in, spec.classes, rngs=rngs) if train and spec.distillation else None
        self.fc = None if train else new_layer(nnx.Linear, spec.c_in, spec.classes, rngs=rngs)

    def __call__(self, x):
        x = jnp.mean(x, axis=(1, 2))
        if self.fc is not None:
            return self.fc(x)
        if self.head_dist is None:
            return self.head(x)
        return (self.head(x) + self.head_dist(x)) / 2


__all__ += ["FORMS", "symmetric_padding", "conv_norm", "RepConvSpec", "RepConv", "RepViTMlpSpec", "RepViTMlp",
            "RepViTBlockSpec", "RepViTBlock", "RepViTTokenMixer", "RepViTDownsampleSpec", "RepViTDownsample",
            "NormLinearClassifierSpec", "NormLinearClassifier", "NormLinear"]

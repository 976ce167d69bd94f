"""What kind of layer is this: one vocabulary and one rule, read from shapes.

A layer that multiply-accumulates is one of

* ``linear``: a matrix product (a fully connected layer, ``dot_general``);
* ``depthwise``: a convolution with one input and one output channel per group
  (``groups = C_in = C_out > 1``; MobileNet sec. 3.1's "one filter per input channel");
* ``grouped``: any other convolution with ``groups > 1`` (ShuffleNet, ResNeXt);
* ``pointwise``: a 1x1 convolution with one group;
* ``full``: any other convolution (a standard ``K x K`` one).

Two kinds of layer cost no MACs but hold parameters: ``norm`` (a normalization layer's scale and
shift) and ``scale`` (a learned per-channel scale, ConvNeXt's layer scale).

``LayerKind`` is a ``str`` enum, so ``kind == "depthwise"`` and ``{"depthwise": ..}[kind]`` work
and a kind prints as its name. ``LayerKind.family`` groups the kinds as the closed-form cost has
always named them: ``conv``, ``dense``, ``norm``, ``scale``.

One rule (``classify``) reads the kind from a convolution's kernel size, groups and channels;
``equation_kind`` applies it to a jaxpr equation (in any layout its dimension numbers give) and
``module_kind`` to a Flax layer. In an equation a depthwise-shaped convolution with input dilation
or batch groups (a transposed layer, a gradient) is not a depthwise layer: it is ``grouped``.
"""

from __future__ import annotations

import enum
from typing import Sequence

__all__ = ["LayerKind", "MULTIPLYING", "classify", "equation_kind", "is_depthwise_equation", "module_kind"]


class LayerKind(enum.StrEnum):
    """The kind of a layer (module docstring). Equal to, hashed as and printed as its string."""

    LINEAR = "linear"
    DEPTHWISE = "depthwise"
    GROUPED = "grouped"
    POINTWISE = "pointwise"
    FULL = "full"
    NORM = "norm"
    SCALE = "scale"

    def __repr__(self) -> str:
        # as the plain string it replaces, so that printed lists and dicts of kinds read as before
        return repr(self.value)

    @property
    def multiplies(self) -> bool:
        """Whether a layer of this kind multiply-accumulates (a convolution or a matrix product)."""
        return self in MULTIPLYING

    @property
    def family(self) -> str:
        """``conv`` (the four convolution kinds), ``dense`` (``linear``), ``norm`` or ``scale``."""
        if self is LayerKind.LINEAR:
            return "dense"
        if self in (LayerKind.NORM, LayerKind.SCALE):
            return self.value
        return "conv"


#: The kinds that multiply-accumulate.
MULTIPLYING = frozenset({LayerKind.LINEAR, LayerKind.DEPTHWISE, LayerKind.GROUPED, LayerKind.POINTWISE,
                         LayerKind.FULL})


def classify(kernel: Sequence[int], groups: int, in_channels: int, out_channels: int | None = None) -> LayerKind:
    """The kind of a convolution with spatial kernel size ``kernel`` (e.g. ``(3, 3)``), ``groups``
    channel groups, ``in_channels`` and ``out_channels`` channels.

    ``groups = in_channels > 1`` is ``depthwise`` when ``out_channels`` is ``in_channels`` or not
    given, ``grouped`` otherwise (a depth multiplier); other ``groups > 1`` are ``grouped``; with one
    group a kernel of ones is ``pointwise``, any other ``full``.
    """
    if groups > 1:
        if groups == in_channels and (out_channels is None or out_channels == in_channels):
            return LayerKind.DEPTHWISE
        return LayerKind.GROUPED
    return LayerKind.POINTWISE if all(k == 1 for k in kernel) else LayerKind.FULL


def equation_kind(eqn) -> LayerKind:
    """The kind of a ``dot_general`` (``linear``) or ``conv_general_dilated`` jaxpr equation, its
    channels and kernel read through its dimension numbers (any layout). A convolution with input
    dilation or batch groups is never ``depthwise``."""
    if eqn.primitive.name == "dot_general":
        return LayerKind.LINEAR
    if eqn.primitive.name != "conv_general_dilated":
        raise ValueError(f"equation_kind classifies dot_general and conv_general_dilated, got {eqn.primitive.name!r}")
    p = eqn.params
    lhs_spec, rhs_spec, _ = p["dimension_numbers"]
    lhs, rhs = (v.aval for v in eqn.invars)
    groups = p["feature_group_count"]
    in_channels = lhs.shape[lhs_spec[1]]
    out_channels = rhs.shape[rhs_spec[0]]
    kernel = [rhs.shape[d] for d in rhs_spec[2:]]
    kind = classify(kernel, groups, in_channels, out_channels)
    plain = p["batch_group_count"] == 1 and all(d == 1 for d in p["lhs_dilation"])
    return kind if kind is not LayerKind.DEPTHWISE or plain else LayerKind.GROUPED


def is_depthwise_equation(eqn) -> bool:
    """Whether ``eqn`` is a depthwise convolution (``equation_kind``), the kind a shift rewrite handles."""
    return eqn.primitive.name == "conv_general_dilated" and equation_kind(eqn) is LayerKind.DEPTHWISE


def module_kind(module) -> LayerKind:
    """The kind of a Flax NNX ``Linear`` (``linear``) or ``Conv`` layer, from its attributes. A
    ``Conv``'s output channels are not asked: one input channel per group is ``depthwise``."""
    from flax import nnx

    if isinstance(module, nnx.Linear):
        return LayerKind.LINEAR
    return classify(module.kernel_size, module.feature_group_count, module.in_features)

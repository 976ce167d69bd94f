"""The block library (sepconv.blocks): each spec's closed-form cost by hand, its kind and description, and
the module it builds; the shapes-only build (sepconv.shapes_only)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sepconv import blocks
from sepconv.blocks import (ConvNormAct, ConvSpec, FireSpec, MBConvSpec, SeparableSpec, SqueezeExciteSpec,
                            channel_shuffle, ceil_pool_padding)
from sepconv.compat import variable_value
from sepconv.shapes_only import building_shapes


def _costs(spec, size, path="b"):
    layers, out = spec.layer_costs(size, path)
    return {layer.name: (layer.macs, layer.params, str(layer.layer_kind)) for layer in layers}, out


def test_a_strided_convolution_by_hand():
    # 10x10x16 -> 5x5x32 (SAME, stride 2): 25 positions x 32 outputs x 16 inputs x 9 taps
    costs, out = _costs(ConvSpec(16, 32, 3, stride=2), 10)
    assert out == 5
    assert costs == {"b.conv": (25 * 32 * 16 * 9, 9 * 16 * 32, "full"), "b.bn": (0, 2 * 32, "norm")}


def test_a_separable_block_by_hand():
    # MobileNet eq. 4 at D_F = 6, M = 8, N = 16, D_K = 3: 9 * 8 * 36 + 8 * 16 * 36
    costs, out = _costs(SeparableSpec(8, 16), 6)
    assert out == 6 and costs == {
        "b.conv_dw.conv": (36 * 8 * 9, 9 * 8, "depthwise"), "b.conv_dw.bn": (0, 16, "norm"),
        "b.conv_pw.conv": (36 * 8 * 16, 8 * 16, "pointwise"), "b.conv_pw.bn": (0, 32, "norm")}
    assert sum(macs for macs, _, _ in costs.values()) == 36 * 8 * (9 + 16)


def test_an_inverted_residual_by_hand():
    # MobileNetV2 sec. 3.3 at stride 1: h w d' t (d' + k^2 + d'') with h = w = 7, d' = 8, t = 6, d'' = 16, k = 3
    costs, out = _costs(MBConvSpec(8, 48, 16), 7)
    macs = {name: m for name, (m, _, kind) in costs.items() if kind != "norm"}
    assert out == 7 and sum(macs.values()) == 49 * 8 * 6 * (8 + 9 + 16)
    assert {name: kind for name, (_, _, kind) in costs.items() if kind != "norm"} == {
        "b.conv_pw.conv": "pointwise", "b.conv_dw.conv": "depthwise", "b.conv_pwl.conv": "pointwise"}


def test_squeeze_excite_and_fire_by_hand():
    se = SqueezeExciteSpec(32, 8)
    assert [(c.name, c.macs, c.params) for c in se.layer_costs("se")] == [
        ("se.fc1", 32 * 8, 32 * 8 + 8), ("se.fc2", 8 * 32, 8 * 32 + 32)]  # biased 1x1 convolutions on 1x1
    # SqueezeNet fire2 at 55x55: squeeze 96 -> 16, expand 16 -> 64 (1x1) and 16 -> 64 (3x3), all biased
    costs, out = _costs(FireSpec(96, 16, 64, 64), 55)
    n = 55 * 55
    assert out == 55 and costs == {"b.squeeze.conv": (n * 96 * 16, 96 * 16 + 16, "pointwise"),
                                   "b.expand1x1.conv": (n * 16 * 64, 16 * 64 + 64, "pointwise"),
                                   "b.expand3x3.conv": (n * 16 * 64 * 9, 9 * 16 * 64 + 64, "full")}


def test_kinds_and_descriptions():
    assert ConvSpec(8, 8, 3, groups=8).depthwise and ConvSpec(8, 8, 3, groups=8).describe() == "conv 3x3 dw, s1"
    assert not ConvSpec(8, 16, 3, groups=8).depthwise  # a depth multiplier: grouped
    assert ConvSpec(8, 16, 3, groups=8).describe() == "conv 3x3 g8, s1"
    assert ConvSpec(8, 16, 1, stride=2).describe() == "conv 1x1, s2"
    assert ConvSpec(8, 16, 1).layer_kind == "pointwise" and ConvSpec(8, 8, 5, groups=2).layer_kind == "grouped"


def test_each_name_means_one_thing():
    # the aliases are gone: a spec's costs are ``layer_costs`` (not "layers"), and the convolution
    # module that may build a LayerNorm is ``ConvNormAct`` (not "ConvBN")
    assert not hasattr(SeparableSpec(8, 16), "layers")
    assert not hasattr(blocks, "ConvBN") and "ConvBN" not in blocks.__all__


def test_conv_norm_act_builds_the_norm_its_spec_names():
    rngs = nnx.Rngs(0)
    batch = ConvNormAct(ConvSpec(4, 8, 3), rngs=rngs)
    layer = ConvNormAct(ConvSpec(4, 8, 3, norm="layer", act=None), rngs=rngs)
    none = ConvNormAct(ConvSpec(4, 8, 3, norm=None, bias=True), rngs=rngs)
    assert isinstance(batch.bn, nnx.BatchNorm) and batch.norm is None
    assert isinstance(layer.norm, nnx.LayerNorm) and layer.bn is None
    assert none.bn is None and none.norm is None and none.conv.bias is not None
    with pytest.raises(ValueError, match="norm must be 'batch', 'layer' or None, got 'group'"):
        ConvSpec(4, 8, norm="group")


@pytest.mark.parametrize("spec, size", [(ConvSpec(3, 8, 3, stride=2), 9), (SeparableSpec(4, 6, stride=2), 8),
                                        (MBConvSpec(4, 24, 4), 5), (FireSpec(8, 2, 4, 4), 6)])
def test_the_module_has_the_output_size_and_weights_of_the_closed_form(spec, size):
    layers, out = spec.layer_costs(size, "")
    module = spec.build(nnx.Rngs(0))
    y = module(jnp.ones((1, size, size, spec.c_in)))
    assert y.shape[1:3] == (out, out)
    kernels = sum(int(np.prod(node.kernel.shape)) + (int(np.prod(node.bias.shape)) if node.bias is not None else 0)
                  for _, node in nnx.iter_graph(module) if isinstance(node, (nnx.Conv, nnx.Linear)))
    assert kernels == sum(layer.params for layer in layers if layer.layer_kind.multiplies)


def test_building_shapes_copies_equal_specs_and_starts_kernels_at_zero():
    spec = ConvSpec(4, 8, 3)
    with building_shapes():
        a, b = spec.build(nnx.Rngs(0)), spec.build(nnx.Rngs(1))
    assert a is not b and a.conv.kernel is not b.conv.kernel  # copies, not one shared module
    assert not np.any(variable_value(a.conv.kernel)) and not np.any(variable_value(b.conv.kernel))
    drawn = spec.build(nnx.Rngs(0))  # outside the context: a random draw
    assert np.any(variable_value(drawn.conv.kernel))


def test_shuffle_and_pool_padding_by_hand():
    x = jnp.arange(6.0).reshape(1, 6)  # channels [a0 a1 a2 | b0 b1 b2] in 2 groups -> a0 b0 a1 b1 a2 b2
    assert channel_shuffle(x, 2).tolist() == [[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]]
    with pytest.raises(ValueError, match="6 channels cannot be shuffled in 4 groups"):
        channel_shuffle(x, 4)
    # Caffe's ceil rule: 112 -> ceil((112 - 3) / 2) + 1 = 56 outputs need 1 zero after the input
    assert ceil_pool_padding(112, 3, 2) == (0, 1) and ceil_pool_padding(7, 3, 2) == (0, 0)

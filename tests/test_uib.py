"""The Universal Inverted Bottleneck and Mobile MQA (sepconv.blocks): costs derived by hand, the module
checked against a brute-force computation, and the old blocks shown to be instances of the one skeleton."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sepconv import blocks
from sepconv.blocks import ConvNeXtBlockSpec, InvertedBottleneck, MBConvSpec, MobileMQASpec, UIBSpec, fused_ib
from sepconv.counter import count
from draws import normal


def _macs_params(spec, size):
    layers, out = spec.layer_costs(size, "")
    costed = [l for l in layers if l.kind in ("conv", "dense")]
    return sum(l.macs for l in costed), sum(l.params for l in costed), out


# c_in = c_out = 16, expansion 64, start kernel 3, middle kernel 5, an 8 x 8 input: each term written out
#   start dw 3x3 : 8*8*16*9   = 9216     params 16*9  = 144
#   expand 1x1   : 8*8*16*64  = 65536    params 16*64 = 1024
#   middle dw 5x5: 8*8*64*25  = 102400   params 64*25 = 1600
#   project 1x1  : 8*8*64*16  = 65536    params 64*16 = 1024
HAND = {
    ("ExtraDW", 1): (9216 + 65536 + 102400 + 65536, 144 + 1024 + 1600 + 1024, 8),
    # stride 2 sits on the middle depthwise: it and the projection run on 4 x 4
    ("ExtraDW", 2): (9216 + 65536 + 4 * 4 * 64 * 25 + 4 * 4 * 64 * 16, 144 + 1024 + 1600 + 1024, 4),
    ("IB", 1): (65536 + 102400 + 65536, 1024 + 1600 + 1024, 8),
    ("ConvNeXt", 1): (9216 + 65536 + 65536, 144 + 1024 + 1024, 8),
    # no middle depthwise: the start one carries the stride, everything after runs on 4 x 4
    ("ConvNeXt", 2): (4 * 4 * 16 * 9 + 4 * 4 * 16 * 64 + 4 * 4 * 64 * 16, 144 + 1024 + 1024, 4),
    ("FFN", 1): (65536 + 65536, 1024 + 1024, 8),
}
KERNELS = {"ExtraDW": (3, 5), "IB": (0, 5), "ConvNeXt": (3, 0), "FFN": (0, 0)}


@pytest.mark.parametrize("form, stride", list(HAND))
def test_the_four_forms_cost_what_the_hand_derivation_says(form, stride):
    start, mid = KERNELS[form]
    spec = UIBSpec(16, 64, 16, start, mid, stride)
    assert spec.form == form
    assert _macs_params(spec, 8) == HAND[(form, stride)]
    assert spec.has_skip == (stride == 1)


def test_fused_ib_cost():
    # 3x3 stride-2 convolution 16 -> 64 on 8x8 (output 4x4): 4*4*64*16*9; then 1x1 64 -> 24 on 4x4
    spec = fused_ib(16, 64, 24, 3, 2)
    assert spec.form == "FusedIB" and not spec.has_skip
    assert _macs_params(spec, 8) == (4 * 4 * 64 * 16 * 9 + 4 * 4 * 64 * 24, 16 * 64 * 9 + 64 * 24, 4)


def test_bad_blocks_are_clear_errors():
    with pytest.raises(ValueError, match="an FFN block .* cannot stride"):
        UIBSpec(16, 64, 16, 0, 0, 2)
    with pytest.raises(ValueError, match="stride must be 1 or 2, got 3"):
        UIBSpec(16, 64, 16, 3, 3, 3)
    with pytest.raises(ValueError, match="expanded must be a positive integer, got 0"):
        UIBSpec(16, 0, 16)
    with pytest.raises(ValueError, match="heads must be a positive integer, got 0"):
        MobileMQASpec(32, 32, 0, 8, 8)


def test_old_blocks_are_instances_of_the_universal_block():
    ib = MBConvSpec(16, 96, 24, 3, 2)
    convnext = ConvNeXtBlockSpec(96)
    fused = MBConvSpec(24, 96, 48, 3, 2, act="silu", fused=True)
    assert all(isinstance(b, InvertedBottleneck) for b in (ib, convnext, fused))
    assert (ib.form, convnext.form, fused.form) == ("IB", "ConvNeXt", "FusedIB")
    # ConvNeXt: the depthwise convolution before the expansion (Liu et al. 2022, sec. 2.5), expansion 4
    assert (convnext.start_kernel, convnext.mid_kernel, convnext.expanded) == (7, 0, 384)
    # the same skeleton builds the same kind of module
    for spec in (ib, convnext):
        assert isinstance(spec.build(nnx.Rngs(0)), blocks.UniversalInvertedBottleneck)


def test_ib_instance_equals_mobilenet_v2_bottleneck_formula():
    """MobileNetV2 sec. 3.3: h w d' t (d' + k^2 + d'') at stride 1 (a UIBSpec with the middle kernel only)."""
    h, d, t, d2, k = 14, 32, 6, 48, 3
    spec = UIBSpec(d, d * t, d2, 0, k, 1)
    assert _macs_params(spec, h)[0] == h * h * d * t * (d + k * k + d2)


def _reference_uib(module, spec, x):
    """The block computed from its weights with lax convolutions, BatchNorm in eval mode written out."""
    def conv_bn(layer, y, groups, stride, act):
        w = np.asarray(layer.conv.kernel[...])
        y = jax.lax.conv_general_dilated(y, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         feature_group_count=groups)
        bn = layer.bn
        y = (y - bn.mean[...]) / np.sqrt(bn.var[...] + bn.epsilon) * bn.scale[...] + bn.bias[...]
        return jax.nn.relu(y) if act else y

    y = x
    if spec.start_kernel:
        y = conv_bn(module.dw_start, y, spec.c_in, 1 if spec.mid_kernel else spec.stride, False)
    y = conv_bn(module.conv_pw, y, 1, 1, True)
    if spec.mid_kernel:
        y = conv_bn(module.conv_dw, y, spec.expanded, spec.stride, True)
    y = conv_bn(module.conv_pwl, y, 1, 1, False)
    if spec.layer_scale is not None:
        y = y * spec.layer_scale
    return x + y if spec.has_skip else y


@pytest.mark.parametrize("start, mid, stride", [(3, 5, 1), (5, 3, 2), (0, 3, 1), (3, 0, 2), (0, 0, 1)])
def test_uib_module_computes_the_brute_force_block(start, mid, stride):
    spec = UIBSpec(8, 24, 8, start, mid, stride, layer_scale=0.5)
    module = spec.build(nnx.Rngs(0))
    module.eval()
    x = jnp.asarray(normal(1, (2, 6, 6, 8)))
    np.testing.assert_allclose(module(x), _reference_uib(module, spec, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", [UIBSpec(8, 24, 8, 3, 5, 1, layer_scale=1e-5), UIBSpec(8, 32, 16, 5, 0, 2),
                                  fused_ib(8, 32, 16, 3, 2), MBConvSpec(8, 48, 8, 5, 1, act="hard_swish"),
                                  ConvNeXtBlockSpec(16), MobileMQASpec(16, 16, 2, 8, 8, kv_stride=2, layer_scale=1e-5),
                                  MobileMQASpec(16, 24, 4, 4, 6)],
                         ids=lambda s: s.describe())
def test_closed_form_equals_the_counter_layer_by_layer(spec):
    size = 7
    module = spec.build(nnx.Rngs(0))
    counted = count(module, jax.ShapeDtypeStruct((1, size, size, spec.c_in if hasattr(spec, "c_in") else 16),
                                                 jnp.float32))
    assert counted.complete
    per_path = {}
    for op in counted.ops:
        per_path[op.path] = per_path.get(op.path, 0) + op.total_macs
    layers, _ = spec.layer_costs(size, "")
    closed = {l.name.lstrip("."): l.macs for l in layers if l.kind in ("conv", "dense")}
    assert per_path == closed
    params = sum(l.params for l in layers)
    assert counted.params_trainable == params


def test_mobile_mqa_attention_macs_by_hand():
    # 8x8 queries (N = 64), keys and values on the 4x4 map a stride-2 3x3 depthwise leaves (M = 16),
    # 2 heads, d_k = d_v = 8: q k^T is 2*64*16*8 MACs and softmax(.) v as many
    spec = MobileMQASpec(32, 32, heads=2, key_dim=8, value_dim=8, kv_stride=2)
    assert spec.attention_macs(8) == 2 * 64 * 16 * 8 * 2
    layers = {l.name: l for l in spec.layer_costs(8, "b")[0]}
    # one key and one value shared by the heads: 32 -> 8 each, against 32 -> 2*8 for the queries
    assert layers["b.key.conv"].params == layers["b.value.conv"].params == 32 * 8
    assert layers["b.query.conv"].params == 32 * 16
    assert layers["b.key_down.conv"].params == 9 * 32 and layers["b.key_down.conv"].macs == 4 * 4 * 32 * 9
    assert layers["b.output.conv"].macs == 64 * 16 * 32


def test_mobile_mqa_module_computes_multi_query_attention():
    """Against a NumPy computation from the module's weights: every head attends over the same keys."""
    spec = MobileMQASpec(8, 8, heads=3, key_dim=4, value_dim=5, kv_stride=1, layer_scale=0.25)
    module = spec.build(nnx.Rngs(0))
    module.eval()
    x = normal(3, (1, 4, 4, 8))
    bn = module.norm
    y = (x - np.asarray(bn.mean[...])) / np.sqrt(np.asarray(bn.var[...]) + bn.epsilon) * np.asarray(bn.scale[...]) \
        + np.asarray(bn.bias[...])
    y = y.reshape(16, 8)
    wq, wk, wv, wo = (np.asarray(m.conv.kernel[...])[0, 0] for m in (module.query, module.key, module.value,
                                                                   module.output))
    q, k, v = (y @ wq).reshape(16, 3, 4), y @ wk, y @ wv
    heads = []
    for h in range(3):
        s = q[:, h] @ k.T / 2.0  # sqrt(d_k) = 2
        p = np.exp(s - s.max(1, keepdims=True))
        heads.append((p / p.sum(1, keepdims=True)) @ v)
    out = np.concatenate(heads, axis=1) @ wo * 0.25 + x.reshape(16, 8)
    np.testing.assert_allclose(np.asarray(module(jnp.asarray(x))).reshape(16, 8), out, rtol=1e-4, atol=1e-4)

"""The transforms' shared pieces (``sepconv.transforms``): the BatchNorm affine, the one int8 grid, the
quantization study's table and claims, and what the compiled shifted layer is. Values derived by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sepconv.benchmarks.compiled import entry_steps
from sepconv.transforms import batchnorm_affine, symmetric_grid
from sepconv.transforms import quantization_study as qs
from sepconv.transforms.shifts import depthwise_by_shifts


def _batchnorm(gamma, beta, mean, var, eps):
    bn = nnx.BatchNorm(len(gamma), epsilon=eps, rngs=nnx.Rngs(0))
    bn.scale[...], bn.bias[...] = jnp.asarray(gamma), jnp.asarray(beta)
    bn.mean[...], bn.var[...] = jnp.asarray(mean), jnp.asarray(var)
    return bn


@pytest.mark.parametrize("xp", [np, jnp])
def test_batchnorm_affine_by_hand(xp):
    # gamma 2, beta 0.5, mean 1, var 3, eps 0.001: scale 2 / sqrt(3.001), shift 0.5 - scale
    bn = _batchnorm([2.0, 1.0], [0.5, 0.0], [1.0, 0.0], [3.0, 1.0], 1e-3)
    scale, shift = batchnorm_affine(bn, xp)
    assert np.asarray(scale) == pytest.approx([2 / np.sqrt(3.001), 1 / np.sqrt(1.001)], rel=1e-6)
    assert np.asarray(shift) == pytest.approx([0.5 - 2 / np.sqrt(3.001), 0.0], rel=1e-6, abs=1e-7)
    bn.eval()
    x = jnp.asarray([[1.5, -2.0]])
    assert np.asarray(bn(x)) == pytest.approx(np.asarray(x) * np.asarray(scale) + np.asarray(shift), rel=1e-5)


def test_the_int8_grid_by_hand_in_numpy_and_jax():
    w = np.array([[0.5, -1.27], [0.01, 0.02]])
    # one scale for the tensor: 1.27 / 127 = 0.01, so every weight is a whole number of hundredths
    per_tensor = np.array([[0.5, -1.27], [0.01, 0.02]])
    # per output channel (the last axis): 0.5 / 127 for the first column, 0.01 for the second
    s = 0.5 / 127
    per_channel = np.array([[0.5, -1.27], [round(0.01 / s) * s, 0.02]])
    for array in (w, jnp.asarray(w, jnp.float32)):
        assert np.asarray(symmetric_grid(array, "tensor")) == pytest.approx(per_tensor, rel=1e-6)
        assert np.asarray(symmetric_grid(array, "channel")) == pytest.approx(per_channel, rel=1e-6)
    assert isinstance(symmetric_grid(w, "tensor"), np.ndarray)  # NumPy in, NumPy (float64) out
    # 4 bits: 7 levels each side, scale 1.27 / 7; 0.5 is 2.76 steps, rounded to 3
    assert float(symmetric_grid(w, "tensor", bits=4)[0, 0]) == pytest.approx(3 * 1.27 / 7)


def test_the_int8_grid_refuses_bad_arguments_in_one_line():
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16, got 1"):
        symmetric_grid(np.ones(3), bits=1)
    with pytest.raises(ValueError, match="per must be 'tensor' or 'channel', got 'row'"):
        symmetric_grid(np.ones(3), "row")


def _study(int8_drop=0.0, relu_max=7.0):
    """A quantization study made by hand: three ReLU6 models and one ReLU model."""
    relu6 = [("relu6", seed) for seed in range(3)]
    accuracy = {}
    for key in relu6:
        accuracy.update({(key, "float (folded)"): 0.90, (key, "w8 per tensor"): 0.895, (key, qs.INT8): 0.90 - int8_drop,
                         (key, "w4 per tensor"): 0.80, (key, "w4 per channel"): 0.88})
    accuracy.update({(("relu", 0), "float (folded)"): 0.9, (("relu", 0), qs.INT8): 0.9})
    ranges = {key: np.array([[0.0, 1.0], [0.0, 6.0]]) for key in relu6}
    ranges["relu", 0] = np.array([[0.0, 1.0], [0.0, relu_max]])
    spreads = {("before folding", "full"): [(2.0, 1.0)], ("before folding", "depthwise"): [(2.0, 1.0)],
               ("before folding", "pointwise"): [(2.0, 1.0)], ("before folding", "linear"): [(2.0, 1.0)],
               ("after folding", "full"): [(8.0, 1.5)], ("after folding", "depthwise"): [(4.0, 3.0)],
               ("after folding", "pointwise"): [(2.0, 1.2)], ("after folding", "linear"): [(2.0, 1.0)]}
    return qs.QuantizationStudy(accuracy, ranges, spreads)


def test_quantization_claims_on_a_study_made_by_hand():
    study = _study()
    assert study.loss("w4 per tensor") == pytest.approx(0.10) and study.loss("w4 per channel") == pytest.approx(0.02)
    assert all(qs.quantization_claims(study, 0.015).values())
    broken = qs.quantization_claims(_study(int8_drop=0.02, relu_max=5.0), 0.015)
    assert [claim for claim, holds in broken.items() if not holds] == [
        "int8 (weights per channel, activations) is within 1.5 points of float, every model, ReLU or ReLU6",
        "ReLU6 activations never exceed 6, every model; the ReLU model's do"]


def test_quantization_table_lists_every_model_and_layer_kind():
    lines = qs.quantization_table(_study())
    assert lines[1].split() == ["relu6", "0", "90.0%", "89.5%", "90.0%", "80.0%", "88.0%", "6.00"]
    assert lines[4].split() == ["relu", "0", "90.0%", "90.0%", "7.00"]  # the ReLU model: float and int8 only
    assert lines[-1].split() == ["after", "folding", "linear", "2.00", "1.00"]


def test_the_shifted_layer_compiles_to_a_padded_copy_and_one_loop():
    def depthwise(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=x.shape[-1])

    x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 1, 4))
    steps = entry_steps(depthwise_by_shifts(depthwise), x, w)
    if jax.default_backend() != "cpu":
        pytest.skip("the step layout is XLA CPU's")
    # 8x8 padded by one on each side for a 3x3 kernel: a 10x10 copy, then one loop to the 8x8 output
    (pad, _, pad_shape, _), (_, loop_op, loop_shape, loop_reads) = steps
    assert pad_shape == (1, 10, 10, 4) and loop_shape == (1, 8, 8, 4) and loop_op == "fusion" and pad in loop_reads


# Two compiled modules written by hand in the layouts of two XLA CPU versions: convolutions inside fusions
# (jaxlib 0.10, where a chain can become one library call) and in the entry computation (jaxlib 0.7).
_FUSED = """HloModule m

%fused_computation (p: f32[1,8,8,4]) -> f32[1,8,8,4] {
  %a = f32[1,8,8,4]{3,2,1,0} convolution(%p, %w), window={size=3x3}
  ROOT %b = f32[1,8,8,4]{3,2,1,0} convolution(%a, %w), window={size=3x3}
}

%fused_computation.1 (p: f32[1,8,8,4]) -> f32[1,8,8,4] {
  ROOT %c = f32[1,8,8,4]{3,2,1,0} convolution(%p, %w), window={size=3x3}
}

ENTRY %main (x: f32[1,8,8,4]) -> f32[1,8,8,4] {
  %f = f32[1,8,8,4]{3,2,1,0} fusion(%x), kind=kCustom, calls=%fused_computation
  ROOT %g = f32[1,8,8,4]{3,2,1,0} fusion(%f), kind=kCustom, calls=%fused_computation.1
}
"""
_ENTRY = """HloModule m

%fused_computation (p: f32[1,8,8,4]) -> f32[1,8,8,4] {
  ROOT %clamp = f32[1,8,8,4]{3,2,1,0} clamp(%lo, %p, %hi)
}

ENTRY %main (x: f32[1,8,8,4]) -> f32[1,8,8,4] {
  %a = f32[1,8,8,4]{3,2,1,0} convolution(%x, %w), window={size=3x3}
  %f = f32[1,8,8,4]{3,2,1,0} fusion(%a), kind=kLoop, calls=%fused_computation
  ROOT %b = f32[1,8,8,4]{3,2,1,0} convolution(%f, %w), window={size=3x3}
}
"""


def test_convolutions_are_counted_per_fusion_never_in_the_entry():
    from sepconv.benchmarks.compiled import convolutions_per_fusion

    assert convolutions_per_fusion(_FUSED) == [2, 1]
    assert convolutions_per_fusion(_ENTRY) == []  # the last fusion does not swallow the entry's convolutions


def test_a_rewritten_program_keeps_each_operation_s_scope():
    """``rewrite_equations`` evaluates each equation inside the name stack it was traced under, so the
    compiled program's ``op_name``s still say which module an operation came from: the rewritten
    convolution's and the untouched addition's alike."""
    import re

    from jax import lax

    from sepconv.transforms.rewrite import rewrite_equations

    def fn(x, w):
        with jax.named_scope("block_a"):
            y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        with jax.named_scope("block_b"):
            return y + 1.0

    x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((1, 1, 2, 3))
    rewritten = rewrite_equations(fn, lambda eqn: eqn.primitive.name == "conv_general_dilated",
                                  lambda eqn, x, w: [jnp.einsum("nhwc,cd->nhwd", x, w[0, 0])])
    names = set(re.findall(r'op_name="([^"]+)"', jax.jit(rewritten).lower(x, w).compile().as_text()))
    assert {"jit(fn)/block_a/nhwc,cd->nhwd/dot_general", "jit(fn)/block_b/add"} <= names
    np.testing.assert_allclose(jax.jit(rewritten)(x, w), fn(x, w))

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sepconv.blocks import ConvSpec, SeparableSpec
from sepconv.layers import SeparableConv, separable_to_standard_kernel
from draws import normal


@pytest.mark.parametrize("stride, padding", [(1, "SAME"), (2, "SAME"), (1, "VALID"), (2, "VALID")])
def test_separable_equals_standard_conv_with_product_kernel(stride, padding):
    sep = SeparableConv(6, 10, kernel=3, stride=stride, padding=padding, rngs=nnx.Rngs(0))
    std = nnx.Conv(6, 10, (3, 3), strides=stride, padding=padding, use_bias=False, rngs=nnx.Rngs(1))
    std.kernel[...] = sep.standard_kernel()
    x = normal(3, (2, 11, 9, 6))
    np.testing.assert_allclose(np.asarray(sep(x)), np.asarray(std(x)), rtol=1e-5, atol=1e-5)


def test_product_kernel_has_rank_one_channel_slices():
    sep = SeparableConv(4, 7, kernel=5, rngs=nnx.Rngs(0))
    w = np.asarray(sep.standard_kernel())
    assert w.shape == (5, 5, 4, 7)
    for m in range(4):
        assert np.linalg.matrix_rank(w[:, :, m, :].reshape(25, 7)) == 1


def test_kernel_shapes_are_checked():
    with pytest.raises(ValueError, match=r"depthwise kernel must have shape \(K, K, 1, M\)"):
        separable_to_standard_kernel(jnp.ones((3, 3, 2, 4)), jnp.ones((1, 1, 4, 5)))
    with pytest.raises(ValueError, match=r"pointwise kernel must have shape \(1, 1, 4, N\)"):
        separable_to_standard_kernel(jnp.ones((3, 3, 1, 4)), jnp.ones((1, 1, 3, 5)))
    with pytest.raises(ValueError, match="not divisible by groups=4"):
        ConvSpec(6, 8, groups=4)
    with pytest.raises(ValueError, match="unknown activation 'relu7'"):
        ConvSpec(6, 8, act="relu7")


def test_block_structure():
    block = SeparableSpec(8, 16, stride=2).build(nnx.Rngs(0))
    assert block.conv_dw.conv.feature_group_count == 8
    assert block.conv_dw.conv.kernel.shape == (3, 3, 1, 8)
    assert block.conv_pw.conv.kernel.shape == (1, 1, 8, 16)
    block.eval()
    assert block(jnp.ones((1, 9, 9, 8))).shape == (1, 5, 5, 16)

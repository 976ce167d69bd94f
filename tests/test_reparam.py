"""Structural reparameterization: every fold equals the multi-branch forward pass it replaces."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from sepconv import blocks, reparam
from sepconv.counter import count
from sepconv.interop import pure_module
from sepconv.layers import randomize_batchnorm
from sepconv.models.network import materialize
from draws import normal


def _conv(x, kernel, stride=1, groups=1, pad=None):
    """A plain convolution with symmetric padding of half the kernel (float64 on the host via NumPy inputs)."""
    k = kernel.shape[0]
    p = k // 2 if pad is None else pad
    return np.asarray(lax.conv_general_dilated(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32),
                                               (stride, stride), ((p, p), (p, p)),
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                               feature_group_count=groups), np.float64)


def _random_module(spec, seed):
    """The module of ``spec`` with every kernel, bias and BatchNorm statistic random (so no fold is trivially
    right), in eval mode. Drawn on the host: nothing is compiled per shape."""
    model = materialize(nnx.eval_shape(lambda: spec.build(nnx.Rngs(0))), seed)
    randomize_batchnorm(model, seed)
    rng = np.random.default_rng(seed + 1000)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, (nnx.Conv, nnx.Linear)) and node.bias is not None:
            node.bias[...] = jnp.asarray(rng.standard_normal(node.bias.shape), jnp.float32)
    model.eval()
    return model


def _outputs(model, x):
    fn, state = pure_module(model, flat=True)
    return np.asarray(jax.jit(fn)(state, x), np.float64)


def _assert_same_function(a, b):
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, np.max(np.abs(a)))


# ---------------------------------------------------------------------------------------------------
# The array folds, against plain convolutions
# ---------------------------------------------------------------------------------------------------

def test_identity_branch_by_hand():
    """One channel, BatchNorm gamma 2, beta 0.5, mean 1, var 3, eps 1e-3: y = 2 (x - 1) / sqrt(3.001) + 0.5."""
    g, h = reparam.batchnorm_affine([2.0], [0.5], [1.0], [3.0], 1e-3)
    kernel, bias = reparam.fold_affine(reparam.identity_kernel(1), None, g, h)
    assert kernel.shape == (1, 1, 1, 1)
    np.testing.assert_allclose(kernel.ravel(), [2 / np.sqrt(3.001)])
    np.testing.assert_allclose(bias, [0.5 - 2 / np.sqrt(3.001)])


@pytest.mark.parametrize("seed", range(6))
def test_identity_kernel_returns_its_input(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 3]))
    channels = groups * int(rng.integers(1, 4))
    size = int(rng.choice([1, 3, 5]))
    x = normal(seed, (1, 6, 7, channels))
    np.testing.assert_allclose(_conv(x, reparam.identity_kernel(channels, groups, size), groups=groups), x, atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_a_centred_small_kernel_is_the_same_convolution(seed):
    """With symmetric padding a k x k kernel padded to K x K computes the same outputs, at strides 1 to 3."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 3, 5]))
    big = k + 2 * int(rng.integers(0, 4))
    stride = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    x, w = normal(seed, (2, int(rng.integers(big, big + 6)), int(rng.integers(big, big + 6)), c_in),
                  (k, k, c_in // groups, c_out))
    small = _conv(x, w, stride, groups)
    large = _conv(x, reparam.centered(w, big), stride, groups)
    np.testing.assert_allclose(large, small, atol=1e-4 * max(1, np.abs(small).max()))


def test_centring_errors_name_the_sizes():
    with pytest.raises(ValueError, match="a 3x3 kernel cannot be centred in 4x4"):
        reparam.centered(np.zeros((3, 3, 1, 1)), 4)
    with pytest.raises(ValueError, match="5 channels cannot be split in 2 groups"):
        reparam.identity_kernel(5, 2)
    with pytest.raises(ValueError, match="odd kernel, got 4"):
        blocks.RepConvSpec(4, 4, 4)
    with pytest.raises(ValueError, match="form must be 'train' or 'deploy', got 'fused'"):
        blocks.RepConvSpec(4, 4, form="fused")


@pytest.mark.parametrize("seed", range(4))
def test_replknet_small_kernel_merge(seed):
    """RepLKNet: a 13x13 depthwise kernel plus a parallel 5x5 one, each BatchNorm-folded, is one 13x13 kernel."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 6))
    x, big, small = normal(seed, (1, 20, 18, c), (13, 13, 1, c), (5, 5, 1, c))
    b1, b2 = rng.standard_normal(c), rng.standard_normal(c)
    stride = int(rng.integers(1, 3))
    kernel, bias = reparam.merge_small_kernel(big, b1, small, b2)
    expected = _conv(x, big, stride, c) + b1 + _conv(x, small, stride, c) + b2
    np.testing.assert_allclose(_conv(x, kernel, stride, c) + bias, expected, atol=1e-3)


def test_batchnorm_into_a_linear_layer():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 3)), rng.standard_normal(3)
    scale, shift, mean, var = rng.uniform(0.5, 1.5, 6), rng.standard_normal(6), rng.standard_normal(6), rng.uniform(0.5, 1.5, 6)
    bn = (x - mean) / np.sqrt(var + 1e-5) * scale + shift
    w2, b2 = reparam.fold_batchnorm_into_linear(*reparam.batchnorm_affine(scale, shift, mean, var, 1e-5), w, b)
    np.testing.assert_allclose(x @ w2 + b2, bn @ w + b, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Whole blocks: random shapes, strides, groups, branches; the train form against the reparameterized one
# ---------------------------------------------------------------------------------------------------

def _rep_conv_spec(rng):
    kernel = int(rng.choice([1, 3, 5, 7]))
    small = int(rng.choice([k for k in (1, 3, 5) if k <= kernel]))
    groups = int(rng.choice([1, 2, 3]))
    c_in = groups * int(rng.integers(1, 4))
    c_out = c_in if rng.random() < 0.5 else groups * int(rng.integers(1, 4))
    se = (blocks.SqueezeExciteSpec(c_out, int(rng.integers(1, 4)), "relu", "sigmoid") if rng.random() < 0.3 else None)
    return blocks.RepConvSpec(c_in, c_out, kernel, int(rng.integers(1, 3)), groups, int(rng.integers(1, 5)), small,
                              bool(rng.random() < 0.8), str(rng.choice(["relu", "gelu"])) if rng.random() < 0.7 else None,
                              se)


@pytest.mark.parametrize("seed", range(10))
def test_rep_conv_fold_is_exact(seed):
    """RepVGG / MobileOne / RepLKNet blocks of random shapes: the reparameterized block computes the same
    function with the structure and cost of the deploy form."""
    rng = np.random.default_rng(seed)
    spec = _rep_conv_spec(rng)
    train = _random_module(spec, seed)
    deploy = reparam.reparameterize(train)
    x = normal(seed, (2, int(rng.integers(5, 12)), int(rng.integers(5, 12)), spec.c_in))
    _assert_same_function(_outputs(train, x), _outputs(deploy, x))
    deployed_spec = dataclasses.replace(spec, form="deploy")
    deploy_macs = count(deploy, x).macs
    assert deploy_macs == count(deployed_spec.build(nnx.Rngs(0)), x).macs  # every draw, not only those with extra branches
    assert deploy_macs < count(train, x).macs or (not spec.has_scale and spec.branches == 1)
    assert deploy.conv_kxk is None and deploy.identity is None and train.conv_kxk is not None  # a copy


def test_the_folds_cover_every_branch_kind():
    """The random draws of the test above include the identity, the small-kernel branch, several kxk
    branches, grouped and depthwise layers, stride 2 and squeeze-excite."""
    specs = [_rep_conv_spec(np.random.default_rng(seed)) for seed in range(10)]
    assert any(s.has_identity for s in specs) and any(s.has_scale for s in specs)
    assert any(s.branches > 1 for s in specs) and any(s.groups > 1 for s in specs)
    assert any(s.stride == 2 for s in specs) and any(s.se is not None for s in specs)


@pytest.mark.parametrize("seed", range(4))
def test_repvit_blocks_fold_exactly(seed):
    rng = np.random.default_rng(seed)
    dim = 8 * int(rng.integers(1, 3))
    kernel = int(rng.choice([3, 5]))
    se = blocks.SqueezeExciteSpec(dim, 8, "relu", "sigmoid") if seed % 2 else None
    for spec in (blocks.RepViTBlockSpec(dim, 2, kernel, se), blocks.RepViTDownsampleSpec(dim, dim + 8, 2, kernel)):
        train = _random_module(spec, seed)
        x = normal(seed, (2, 9, 10, dim))
        deploy = reparam.reparameterize(train)
        _assert_same_function(_outputs(train, x), _outputs(deploy, x))
        assert not any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(deploy))


def test_distilled_head_folds_into_one_linear_layer():
    spec = blocks.NormLinearClassifierSpec(16, 5, distillation=True)
    train = _random_module(spec, 3)
    x = normal(3, (4, 3, 3, 16))
    deploy = reparam.reparameterize(train)
    _assert_same_function(_outputs(train, x), _outputs(deploy, x))
    assert deploy.head is None and deploy.fc.kernel.shape == (16, 5)

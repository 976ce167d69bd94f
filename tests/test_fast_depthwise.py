"""Depthwise convolutions as shifted multiply-adds compute what XLA's grouped convolution computes."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from sepconv.counter import count, count_macs, sub_jaxprs
from sepconv.interop import pure_module
from sepconv.transforms.shifts import REWRITTEN_NAME, depthwise_by_shifts, is_depthwise
from sepconv.layers import randomize_batchnorm
from sepconv.models import build_model
from draws import normal


def _depthwise_convs(fn, *args) -> int:
    """Depthwise convolutions left anywhere in the traced program."""
    def walk(jaxpr):
        return sum(is_depthwise(eqn) + sum(walk(sub) for sub in sub_jaxprs(eqn)) for eqn in jaxpr.eqns)
    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def _grads(fn, x, w, seed=7):
    """Gradients of ``<fn(x, w), g>`` with respect to ``x`` and ``w`` (``g`` drawn once), compiled."""
    g = normal(seed, jax.eval_shape(fn, x, w).shape)
    return jax.jit(jax.grad(lambda x, w: jnp.vdot(fn(x, w), g), argnums=(0, 1)))(x, w)


@settings(max_examples=20, deadline=None)  # each example compiles four programs
@given(size=st.integers(1, 12), channels=st.integers(2, 6), kernel=st.integers(1, 5), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), pad=st.tuples(st.integers(-1, 3), st.integers(0, 3)), seed=st.integers(0, 99))
def test_matches_the_grouped_convolution(size, channels, kernel, stride, dilation, pad, seed):
    if size + sum(pad) < (kernel - 1) * dilation + 1:
        return  # no output: the convolution itself rejects it
    x, w = normal(seed, (2, size, size + 1, channels), (kernel, kernel, 1, channels))

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (stride, stride), (pad, pad[::-1]), rhs_dilation=(dilation, dilation),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)

    # compiled, as it is used (run eagerly, every shifted slice would compile on its own)
    np.testing.assert_allclose(jax.jit(depthwise_by_shifts(conv))(x, w), jax.jit(conv)(x, w), rtol=1e-5, atol=1e-5)
    assert _depthwise_convs(depthwise_by_shifts(conv), x, w) == 0
    # the written-out gradient (``_sum_of_taps_backward``), input and kernel, at any stride, dilation and
    # padding (negative padding crops)
    for got, expected in zip(_grads(depthwise_by_shifts(conv), x, w), _grads(conv, x, w)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dimension_numbers, x_shape, w_shape", [
    (("NCHW", "OIHW", "NCHW"), (2, 4, 9, 7), (4, 1, 3, 3)),
    (("NHWC", "HWIO", "NCHW"), (2, 9, 7, 4), (3, 3, 1, 4)),  # the output in another layout than the input
    (("NWC", "WIO", "NWC"), (2, 11, 4), (5, 1, 4)),  # one spatial dimension
    (("NDHWC", "DHWIO", "NDHWC"), (1, 5, 6, 7, 3), (3, 3, 3, 1, 3)),  # three
])
def test_any_layout_and_number_of_spatial_dimensions(dimension_numbers, x_shape, w_shape):
    x, w = normal(0, x_shape, w_shape)
    spatial = len(x_shape) - 2
    channels = x_shape[dimension_numbers[0].index("C")]

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (2,) * spatial, "SAME", dimension_numbers=dimension_numbers,
                                        feature_group_count=channels)

    # compiled, as it is used (run eagerly, every shifted slice would compile on its own)
    np.testing.assert_allclose(jax.jit(depthwise_by_shifts(conv))(x, w), jax.jit(conv)(x, w), rtol=1e-5, atol=1e-5)
    for got, expected in zip(_grads(depthwise_by_shifts(conv), x, w), _grads(conv, x, w)):  # and the gradients
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_other_convolutions_are_left_alone():
    x = jnp.ones((1, 8, 8, 4))

    def convs(x, standard, grouped, multiplier):
        dn = ("NHWC", "HWIO", "NHWC")
        a = lax.conv_general_dilated(x, standard, (1, 1), "SAME", dimension_numbers=dn)
        b = lax.conv_general_dilated(a, grouped, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=2)
        return lax.conv_general_dilated(b, multiplier, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=4)

    args = (x, jnp.ones((3, 3, 4, 4)), jnp.ones((3, 3, 2, 4)), jnp.ones((3, 3, 1, 8)))  # last: channel multiplier 2
    before, after = jax.make_jaxpr(convs)(*args), jax.make_jaxpr(depthwise_by_shifts(convs))(*args)
    assert str(before) == str(after)


@pytest.mark.parametrize("name, resolution", [("mobilenet_v1", 224), ("mobilenet_v2", 224), ("shufflenet_v2", 224),
                                              ("xception", 299)])
def test_whole_networks_compute_the_same_and_count_the_same(name, resolution):
    model = randomize_batchnorm(build_model(name), seed=1)
    fn, state = pure_module(model)
    x = normal(2, (1, resolution, resolution, 3))
    fast = depthwise_by_shifts(fn)
    np.testing.assert_allclose(jax.jit(fast)(state, x), jax.jit(fn)(state, x), rtol=1e-4, atol=1e-5)
    counted = count(fn, state, x)
    depthwise = [op for op in counted.ops if op.feature_group_count > 1 and op.kernel_shape[2] == 1]
    assert depthwise and _depthwise_convs(fast, state, x) == 0
    # the rewritten layers are costed by the rule fast_depthwise registers: the same MACs, layer by layer
    rewritten = count(fast, state, x)
    assert rewritten.complete and count_macs(fast, state, x) == counted.macs
    assert rewritten.macs_excluding_padding == counted.macs_excluding_padding
    assert sorted((op.macs, op.kernel_shape) for op in rewritten.ops) == sorted((op.macs, op.kernel_shape)
                                                                               for op in counted.ops)
    calls = [e.params["name"] for e in jax.make_jaxpr(fast)(state, x).jaxpr.eqns if e.primitive.name in ("jit", "pjit")]
    assert sum(n.startswith(REWRITTEN_NAME) for n in calls) == len(depthwise)


def test_gradients_and_pytrees_pass_through():
    dn = ("NHWC", "HWIO", "NHWC")

    def layer(params, x):
        y = lax.conv_general_dilated(x, params["dw"], (1, 1), "SAME", dimension_numbers=dn, feature_group_count=3)
        return {"out": jax.nn.relu(y + params["bias"]), "mean": jnp.mean(y)}

    def loss(fn, params, x):
        return jnp.sum(fn(params, x)["out"] ** 2)

    params = {"dw": normal(0, (3, 3, 1, 3)), "bias": jnp.ones(3)}
    x = normal(1, (2, 6, 6, 3))
    fast = depthwise_by_shifts(layer)
    assert jax.tree.structure(fast(params, x)) == jax.tree.structure(layer(params, x))
    got, expected = jax.grad(loss, argnums=1)(fast, params, x), jax.grad(loss, argnums=1)(layer, params, x)
    for key in params:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5)


def test_keras_models_are_rewritten_too():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras is not on the JAX backend")
    from sepconv.interop.keras import keras_application, keras_function

    fn, trainable, fixed = keras_function(keras_application(keras.applications.MobileNetV2, input_shape=(96, 96, 3)))
    x = normal(0, (1, 96, 96, 3))
    fast = depthwise_by_shifts(fn)
    np.testing.assert_allclose(jax.jit(fast)(trainable, fixed, x), jax.jit(fn)(trainable, fixed, x), atol=1e-6)
    assert _depthwise_convs(fn, trainable, fixed, x) == 17 and _depthwise_convs(fast, trainable, fixed, x) == 0


def test_the_gradient_keeps_the_input_not_a_copy_per_tap():
    """JAX's own derivative of the shifted sum keeps the K^2 shifted slices of the input for the kernel's
    gradient; the written-out one keeps the input and the taps: the compiled gradient program of a 3x3
    layer needs less scratch memory than three copies of its input (the slices alone would be nine)."""
    x, w = normal(0, (4, 32, 32, 16), (3, 3, 1, 16))

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=16)

    shifted = depthwise_by_shifts(conv)
    g = normal(1, x.shape)
    step = jax.jit(jax.grad(lambda x, w: jnp.vdot(shifted(x, w), g), argnums=(0, 1)))
    temp = step.lower(x, w).compile().memory_analysis().temp_size_in_bytes
    assert temp < 3 * x.nbytes, (temp, x.nbytes)

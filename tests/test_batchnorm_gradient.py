"""BatchNorm in training with its gradient written out (``sepconv.transforms.batchnorm_gradient``): Flax's
outputs bit for bit, the gradient of the plain arithmetic (float64) and by hand, and Flax's own code
wherever the configuration is not the common one."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from draws import normal
from sepconv.transforms.batchnorm_gradient import batch_normalize, written_out_batchnorm


def _plain(x, scale, bias, eps):
    """The definition, in plain arithmetic that JAX differentiates itself: the batch's mean and variance over
    every axis but the last, then the affine map."""
    axes = tuple(range(x.ndim - 1))
    mu = x.mean(axes)
    var = jnp.maximum(0.0, (x * x).mean(axes) - mu * mu)
    return (x - mu) / jnp.sqrt(var + eps) * scale + bias, mu, var


def _trained(channels, dtype=jnp.float32):
    bn = nnx.BatchNorm(channels, epsilon=1e-3, momentum=0.9, param_dtype=dtype, rngs=nnx.Rngs(0))
    bn.scale[...] = jnp.linspace(0.5, 2.0, channels, dtype=dtype)
    bn.bias[...] = jnp.linspace(-1.0, 1.0, channels, dtype=dtype)
    bn.mean[...] = jnp.full(channels, 0.25, dtype)
    bn.var[...] = jnp.full(channels, 2.0, dtype)
    bn.train()
    return bn


def test_outputs_and_running_statistics_are_flax_s_bit_for_bit():
    x = jnp.asarray(normal(0, (4, 5, 6, 7)) * 3 + 1)
    results = []
    for written in (False, True):
        bn = _trained(7)
        if written:
            with written_out_batchnorm():
                y = bn(x)
        else:
            y = bn(x)
        results.append((np.asarray(y), np.asarray(bn.mean[...]), np.asarray(bn.var[...])))
    for ours, flax_s in zip(*results):
        np.testing.assert_array_equal(ours, flax_s)
    assert not np.allclose(results[0][1], 0.25)  # the running mean moved


def test_the_gradient_is_the_plain_arithmetic_s_in_float64():
    """Every input's gradient, with a cotangent on each output (the mean and variance too), against JAX's
    derivative of the definition."""
    with jax.enable_x64(True):
        x, scale, bias = (jnp.asarray(a, jnp.float64) for a in normal(1, (3, 4, 5, 6), (6,), (6,)))
        x = x * jnp.arange(1.0, 7.0) + 2.0
        cotangents = tuple(jnp.asarray(a, jnp.float64) for a in normal(2, (3, 4, 5, 6), (6,), (6,)))
        outs, ours = jax.vjp(lambda *a: batch_normalize(*a, 1e-3), x, scale, bias)
        expected_outs, expected = jax.vjp(lambda *a: _plain(*a, 1e-3), x, scale, bias)
        for got, want in zip(outs, expected_outs):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        for got, want in zip(ours(cotangents), expected(cotangents)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_the_gradient_by_hand():
    """Two channels, two values each: x = (1, 3) and (0, 4), so mu = (2, 2), var = (1, 4), xhat = (-1, 1)
    in both (eps 0). With g = (1, 0) and (2, 2), scale (1, 3): dbias = (1, 4), dscale = (-1, 0); and
    dx = r scale (g - dbias / 2 - xhat dscale / 2) = (0, 0) in the first channel, 3/2 (0, 0) in the second."""
    x = jnp.asarray([[1.0, 0.0], [3.0, 4.0]])
    g = jnp.asarray([[1.0, 2.0], [0.0, 2.0]])
    _, vjp = jax.vjp(lambda *a: batch_normalize(*a, 0.0), x, jnp.asarray([1.0, 3.0]), jnp.zeros(2))
    dx, dscale, dbias = vjp((g, jnp.zeros(2), jnp.zeros(2)))
    np.testing.assert_allclose(dbias, [1.0, 4.0])
    np.testing.assert_allclose(dscale, [-1.0, 0.0])
    np.testing.assert_allclose(dx, [[0.0, 0.0], [0.0, 0.0]], atol=1e-7)
    # a cotangent on the mean alone spreads evenly over the values it averaged
    dx, _, _ = vjp((jnp.zeros((2, 2)), jnp.asarray([4.0, 0.0]), jnp.zeros(2)))
    np.testing.assert_allclose(dx, [[2.0, 0.0], [2.0, 0.0]])


def _has_written_out_gradient(fn, x) -> bool:
    """Whether ``fn(state, x)`` traces to the written-out gradient's call (traced afresh: ``make_jaxpr``
    would hand back the trace of a function it traced before)."""
    return "custom_vjp_call" in str(jax.make_jaxpr(lambda s, x: fn(s, x))(_STATE, x))


_GRAPH, _STATE = nnx.split(_trained(4))


def test_only_the_common_configuration_is_rewritten():
    x = jnp.asarray(normal(3, (2, 3, 3, 4)))

    def bn(state, x, **options):  # the module rebuilt inside the trace, which may update its statistics
        return nnx.merge(_GRAPH, state)(x, **options)

    with written_out_batchnorm():
        assert _has_written_out_gradient(bn, x)
        assert not _has_written_out_gradient(lambda s, x: bn(s, x, use_running_average=True), x)  # eval mode
        assert not _has_written_out_gradient(lambda s, x: bn(s, x, mask=x > 0), x)
        assert not _has_written_out_gradient(lambda s, x: bn(s, x.astype(jnp.float16)), x)  # another float type
        with written_out_batchnorm():  # nested: still one rewrite
            assert _has_written_out_gradient(bn, x)
    assert not _has_written_out_gradient(bn, x)  # restored on the way out
    assert "__call__" in nnx.BatchNorm.__dict__

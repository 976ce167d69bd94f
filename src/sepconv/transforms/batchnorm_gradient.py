"""BatchNorm in training, its gradient written out: what the layer keeps for the backward pass is its
input and two numbers per channel, as PyTorch's and cuDNN's kernels keep them.

In training mode (Ioffe and Szegedy 2015, Algorithm 1) BatchNorm normalizes each channel ``c`` with the
statistics of the batch, over the ``M`` values of every position and image (Flax's fast variance):

    mu = mean(x),  var = max(0, mean(x^2) - mu^2),  r = 1 / sqrt(var + eps),
    y = (x - mu) * (r * scale) + bias

and its gradient, with ``xhat = (x - mu) r`` recomputed from the input (Algorithm 1's backward):

    dbias = sum(g),  dscale = sum(g xhat),
    dx = r scale (g - dbias / M - xhat dscale / M)

(plus the gradients that reach ``mu`` and ``var`` themselves, ``g_mu / M + 2 g_var (x - mu) / M``, zero
in a training step, which reads them only to update the running statistics). JAX's own derivative of
the same arithmetic keeps ``x - mu`` for the backward pass: XLA writes it as one more tensor the size of
the layer's output, for every BatchNorm of the network (MobileNetV2 at batch 16: a tenth of the step).

``batch_normalize`` is that function (the forward pass the same operations as ``flax.nnx.BatchNorm``'s,
in the same order, so its outputs are Flax's bit for bit); ``written_out_batchnorm()`` makes every
``nnx.BatchNorm`` of the common configuration (training mode, channels last, scale and bias, one float
type throughout, no mask or named axis) compute with it while a program is traced: ``fast_training`` traces with it.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
from jax import lax

from ..compat import replaced, set_variable_value, variable_value
from .reductions import per_image_sums

__all__ = ["batch_normalize", "written_out_batchnorm"]


def _statistics(x):
    axes = tuple(range(x.ndim - 1))
    mu, mu2 = x.mean(axes), lax.square(x).mean(axes)
    return mu, mu2 - lax.square(mu)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_normalize(x, scale, bias, epsilon: float):
    """``(y, mu, var)`` of BatchNorm in training mode over every axis of ``x`` but the last (module
    docstring): the normalized ``x`` and the batch's mean and (fast, clipped) variance per channel,
    computed as ``flax.nnx.BatchNorm`` computes them. Its gradient is written out."""
    mu, spread = _statistics(x)
    var = jnp.maximum(0.0, spread)
    y = x - mu
    mul = lax.rsqrt(var + epsilon)
    mul *= scale
    y *= mul
    y += bias
    return y, mu, var


def _forward(x, scale, bias, epsilon):
    y, mu, var = batch_normalize(x, scale, bias, epsilon)
    return (y, mu, var), (x, scale, mu, var)


def _backward(epsilon, residuals, cotangents):
    x, scale, mu, var = residuals
    g, g_mu, g_var = cotangents
    count = x.size // x.shape[-1]
    r = lax.rsqrt(var + epsilon)
    xhat = (x - mu) * r
    dbias, dscale = (s.sum(0) for s in per_image_sums((g, g * xhat)))  # both sums in one pass over g and x
    # var = max(0, mean(x^2) - mu^2) carries a gradient only where it is positive (JAX's max gives half
    # at exactly zero, which only a constant channel reaches).
    live = (var > 0).astype(x.dtype)
    dx = (r * scale) * (g - dbias / count - xhat * (live * dscale / count)) \
        + g_mu / count + (2 * live * g_var / count) * (x - mu)
    return dx, dscale, dbias


batch_normalize.defvjp(_forward, _backward)


def _written_out(original, module, x, use_running_average=None, *, mask=None):
    """``nnx.BatchNorm.__call__`` through ``batch_normalize`` where the configuration is the common one
    (else ``original``, Flax's); the running statistics updated as Flax updates them (``momentum``, no
    gradient through them)."""
    if use_running_average is None:
        use_running_average = module.use_running_average
    scale, bias = module.scale, module.bias
    common = (use_running_average is False and mask is None and getattr(module, "axis_name", None) is None
              and getattr(module, "axis", -1) in (-1, x.ndim - 1) and getattr(module, "use_fast_variance", False)
              and scale is not None and bias is not None and x.dtype in (jnp.float32, jnp.float64)
              and module.dtype in (None, x.dtype) and variable_value(scale).dtype == x.dtype
              and variable_value(bias).dtype == x.dtype and variable_value(module.mean).dtype == x.dtype)
    if not common:
        return original(module, x, use_running_average, mask=mask)
    y, mu, var = batch_normalize(x, variable_value(scale), variable_value(bias), module.epsilon)
    m = module.momentum
    set_variable_value(module.mean, lax.stop_gradient(m * variable_value(module.mean) + (1 - m) * mu))
    set_variable_value(module.var, lax.stop_gradient(m * variable_value(module.var) + (1 - m) * var))
    return y


@contextlib.contextmanager
def written_out_batchnorm():
    """While inside, every ``flax.nnx.BatchNorm`` in training mode computes through ``batch_normalize``
    (module docstring); any other configuration, and eval mode, as Flax computes it."""
    from flax import nnx

    original = nnx.BatchNorm.__dict__.get("__call__")
    if original is None or getattr(original, "_sepconv_written_out", False):  # another Flax, or already inside
        yield
        return

    def call(module, x, use_running_average=None, *, mask=None):
        return _written_out(original, module, x, use_running_average, mask=mask)

    call._sepconv_written_out = True
    with replaced(nnx.BatchNorm, "__call__", call):
        yield

"""BatchNorm at inference: one affine map per channel, and folded into the convolution before it.

In eval mode BatchNorm computes ``x * g + (beta - mu * g)`` with ``g = gamma / sqrt(var + eps)``
per channel (``batchnorm_affine``). Folded into the convolution before it (Jacob et al. 2018,
sec. 3.2):

    w'[..., c] = w[..., c] * g_c,   b'_c = beta_c + (b_c - mu_c) * g_c

``fold_batchnorm`` returns a copy of a model in which every ``ConvNormAct`` is one convolution with a
bias: the same function (to float rounding), one pass over the output fewer. LayerNorm (ConvNeXt)
normalizes with statistics of each input and does not fold.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..blocks import ConvNormAct

__all__ = ["batchnorm_affine", "fold_batchnorm"]


def batchnorm_affine(bn, xp=jnp) -> tuple:
    """``(scale, shift)`` with ``bn(x) = x * scale + shift`` in eval mode: ``scale = gamma / sqrt(var +
    eps)``, ``shift = beta - mu * scale``. ``xp=np`` computes in float64 NumPy (for folding, whose
    result is stored in the model's float type), ``jnp`` in the parameters' own type."""
    value = (lambda v: np.asarray(v[...], np.float64)) if xp is np else (lambda v: v[...])
    scale = value(bn.scale) / xp.sqrt(value(bn.var) + bn.epsilon)
    return scale, value(bn.bias) - value(bn.mean) * scale


def fold_batchnorm(model: nnx.Module) -> nnx.Module:
    """A copy of ``model`` (eval mode) with each ``ConvNormAct``'s BatchNorm folded into its convolution
    (module docstring); the original is unchanged."""
    model = nnx.clone(model)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, ConvNormAct) and node.bn is not None:
            bn, conv = node.bn, node.conv
            value = lambda v: np.asarray(v[...], np.float64)  # noqa: E731  (fold in float64, store float32)
            g, bias = batchnorm_affine(bn, np)
            if conv.bias is not None:
                bias = bias + value(conv.bias) * g
            conv.kernel[...] = jnp.asarray(value(conv.kernel) * g, conv.kernel.dtype)
            conv.bias = nnx.Param(jnp.asarray(bias, conv.kernel.dtype))
            conv.use_bias = True
            node.bn = None
    model.eval()
    return model

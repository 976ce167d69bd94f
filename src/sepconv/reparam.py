"""Structural reparameterization: train a network with parallel branches, deploy one convolution per layer.

Convolution is linear in its kernel, and at inference BatchNorm is an affine map per channel, so
parallel branches that read the same input with the same stride and groups and are summed fold into
one convolution (Ding et al. 2021, RepVGG, sec. 3.3):

* **BatchNorm into its convolution** (chapter 9, ``deploy.fold_batchnorm``):
  ``w' = w g``, ``b' = beta + (b - mu) g`` with ``g = gamma / sqrt(var + eps)`` per output channel.
* **A smaller kernel into a larger one**: a ``k x k`` kernel padded with zeros to ``K x K`` (``K - k``
  even) computes the same convolution, provided both pad their input symmetrically by half their kernel
  (``blocks.symmetric_padding``): the windows then share their centre at every stride. RepVGG's 1x1 into
  3x3, MobileOne's 1x1 "scale" branch, RepLKNet's 5x5 into 31x31 (Ding et al. 2022, sec. 3.2).
* **The identity as a kernel**: ``x`` itself is the 1x1 convolution with kernel
  ``I[0, 0, c mod (C / groups), c] = 1``, so an identity branch with a BatchNorm is one more kernel.
* **A sum of branches** is the convolution with the sum of their kernels and of their biases; a
  BatchNorm after the sum (RepViT's token mixer) folds into that one convolution.
* **BatchNorm into a following Linear layer** (RepViT's head): ``W' = W diag(g)``,
  ``b' = b + W (beta - mu g)``; two heads averaged are one head with the averaged weights.

The array functions work in float64 on NumPy arrays (Flax's ``HWIO`` kernels:
``(K, K, C_in / groups, C_out)``); ``reparameterize(model)`` applies them to every reparameterizable
block of a model (``blocks.RepConv``, ``RepViTTokenMixer``, ``NormLinearClassifier``) after chapter 9's
``fold_batchnorm`` has folded every ``ConvNormAct``, and returns a copy in the deploy form: the same
function, with the structure and cost of ``form="deploy"``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from .blocks import NormLinearClassifier, RepConv, RepViTTokenMixer
from .deploy import fold_batchnorm

__all__ = ["batchnorm_affine", "fold_affine", "centered", "identity_kernel", "merge_branches", "merge_small_kernel",
           "fold_batchnorm_into_linear", "reparameterize"]


def _array(value) -> np.ndarray:
    return np.asarray(value, np.float64)


def batchnorm_affine(scale, bias, mean, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm at inference as ``y = g x + h`` per channel: ``g = scale / sqrt(var + eps)``,
    ``h = bias - mean g`` (float64)."""
    g = _array(scale) / np.sqrt(_array(var) + eps)
    return g, _array(bias) - _array(mean) * g


def _affine_of(bn: nnx.BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    return batchnorm_affine(bn.scale[...], bn.bias[...], bn.mean[...], bn.var[...], bn.epsilon)


def fold_affine(kernel, bias, g, h) -> tuple[np.ndarray, np.ndarray]:
    """``g (conv(x, kernel) + bias) + h`` as one convolution: ``(kernel g, g bias + h)``, ``g`` and ``h``
    per output channel (the last axis of ``kernel``); ``bias=None`` is no bias."""
    kernel, g, h = _array(kernel), _array(g), _array(h)
    b = np.zeros(kernel.shape[-1]) if bias is None else _array(bias)
    return kernel * g, g * b + h


def centered(kernel, size: int) -> np.ndarray:
    """A ``k x k`` kernel (``HWIO``) zero-padded to ``size x size``, centred: the same convolution when both
    pad their input by half their kernel. ``size - k`` must be even and not negative."""
    kernel = _array(kernel)
    k = kernel.shape[0]
    if kernel.shape[1] != k:
        raise ValueError(f"kernel must be square, got spatial shape {kernel.shape[:2]}")
    if size < k or (size - k) % 2:
        raise ValueError(f"a {k}x{k} kernel cannot be centred in {size}x{size} (the difference must be even and >= 0)")
    p = (size - k) // 2
    return np.pad(kernel, ((p, p), (p, p), (0, 0), (0, 0)))


def identity_kernel(channels: int, groups: int = 1, size: int = 1) -> np.ndarray:
    """The ``size x size`` kernel of a convolution with ``groups`` groups that returns its input:
    ``I[c, c, c mod (channels / groups), c] = 1`` at the centre, zeros elsewhere."""
    if groups < 1 or channels % groups:
        raise ValueError(f"{channels} channels cannot be split in {groups} groups")
    per = channels // groups
    kernel = np.zeros((size, size, per, channels))
    c = np.arange(channels)
    kernel[size // 2, size // 2, c % per, c] = 1.0
    return kernel


def merge_branches(branches) -> tuple[np.ndarray, np.ndarray]:
    """Parallel convolutions ``[(kernel, bias), ...]`` (same input, stride, groups and output channels,
    symmetric padding, odd kernels) summed: one ``(kernel, bias)`` with the largest kernel size."""
    branches = [(_array(k), np.zeros(_array(k).shape[-1]) if b is None else _array(b)) for k, b in branches]
    if not branches:
        raise ValueError("merge_branches needs at least one branch")
    size = max(k.shape[0] for k, _ in branches)
    kernel = sum(centered(k, size) for k, _ in branches)
    return kernel, sum(b for _, b in branches)


def merge_small_kernel(large, large_bias, small, small_bias) -> tuple[np.ndarray, np.ndarray]:
    """RepLKNet's reparameterization (Ding et al. 2022, sec. 3.2): a large depthwise kernel and a parallel
    small one (each with its BatchNorm already folded) as one large kernel."""
    return merge_branches([(large, large_bias), (small, small_bias)])


def fold_batchnorm_into_linear(g, h, weight, bias) -> tuple[np.ndarray, np.ndarray]:
    """``Linear(BN(x))`` as one Linear layer: Flax's ``weight`` is ``(in, out)``, so ``W' = diag(g) W`` and
    ``b' = b + h W``."""
    weight = _array(weight)
    return _array(g)[:, None] * weight, _array(bias) + _array(h) @ weight


#: A module attribute that held ``None`` (static to NNX) given a module: ``nnx.data`` marks it as data.
_data = getattr(nnx, "data", lambda value: value)


def _set(variable, value) -> None:
    variable[...] = jnp.asarray(value, variable[...].dtype)


def _conv_kernel_bias(conv_bn) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of a ``ConvNormAct`` whose BatchNorm has been folded (``fold_batchnorm``)."""
    conv = conv_bn.conv
    bias = conv.bias[...] if conv.bias is not None else None
    return _array(conv.kernel[...]), bias


def _fuse_rep_conv(node: RepConv) -> None:
    branches = [_conv_kernel_bias(c) for c in node.conv_kxk]
    if node.conv_scale is not None:
        branches.append(_conv_kernel_bias(node.conv_scale))
    target = node.conv_kxk[0]
    if node.identity is not None:
        k = branches[0][0]
        groups = target.conv.feature_group_count
        branches.append(fold_affine(identity_kernel(k.shape[-1], groups), None, *_affine_of(node.identity)))
    kernel, bias = merge_branches(branches)
    _set(target.conv.kernel, kernel)
    _set(target.conv.bias, bias)
    node.reparam_conv = _data(target)
    node.conv_kxk = node.conv_scale = node.identity = None


def _fuse_token_mixer(node: RepViTTokenMixer) -> None:
    dim = node.conv.conv.kernel.shape[-1]
    kernel, bias = merge_branches([_conv_kernel_bias(node.conv), _conv_kernel_bias(node.conv1),
                                   (identity_kernel(dim, dim), None)])
    kernel, bias = fold_affine(kernel, bias, *_affine_of(node.bn))
    _set(node.conv.conv.kernel, kernel)
    _set(node.conv.conv.bias, bias)
    node.conv1 = node.bn = None


def _fuse_classifier(node: NormLinearClassifier) -> None:
    heads = [h for h in (node.head, node.head_dist) if h is not None]
    folded = [fold_batchnorm_into_linear(*_affine_of(h.bn), h.l.kernel[...], h.l.bias[...]) for h in heads]
    fc = node.head.l
    _set(fc.kernel, sum(w for w, _ in folded) / len(folded))
    _set(fc.bias, sum(b for _, b in folded) / len(folded))
    node.fc = _data(fc)
    node.head = node.head_dist = None


def reparameterize(model: nnx.Module) -> nnx.Module:
    """A copy of ``model`` (eval mode) in the deploy form: every ``ConvNormAct`` folded (chapter 9's
    ``fold_batchnorm``), then every reparameterizable block's branches merged into one convolution and
    every BatchNorm-Linear head into one Linear layer (module docstring). The original is unchanged."""
    model = fold_batchnorm(model)
    for _, node in list(nnx.iter_graph(model)):
        if isinstance(node, RepConv) and node.reparam_conv is None:
            _fuse_rep_conv(node)
        elif isinstance(node, RepViTTokenMixer) and node.bn is not None:
            _fuse_token_mixer(node)
        elif isinstance(node, NormLinearClassifier) and node.fc is None:
            _fuse_classifier(node)
    model.eval()
    return model

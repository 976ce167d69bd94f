"""Inference the fast way on a CPU: every convolution as the computation a CPU runs best.

``fast_inference(fn)`` rewrites a traced function: depthwise convolutions as shifted multiply-adds
(``transforms.shifts``), 1x1 convolutions as the matrix product they are (``lax.dot_general``,
which XLA CPU hands to its matrix-multiply library) and narrow full convolutions (a network's
3-channel stem) as im2col and one matrix product. The same function, the same MACs.
"""

from __future__ import annotations

import itertools
from typing import Callable

import jax.numpy as jnp
from jax import lax

from .rewrite import rewrite_equations
from .shifts import is_depthwise, shifted_equation

__all__ = ["fast_inference", "fast_equation", "is_pointwise", "is_narrow_conv", "isis_channels_last_conv",
           "IM2COL_MAX_CHANNELS", "pointwise_matmul", "im2col_matmul"]


def is_channels_last_conv(eqn) -> bool:
    """A convolution laid out as Flax lays it out: ``N...C`` input and output, ``...IO`` kernel."""
    if eqn.primitive.name != "conv_general_dilated":
        return False
    lhs_spec, rhs_spec, out_spec = eqn.params["dimension_numbers"]
    n = eqn.invars[1].aval.ndim
    return (tuple(lhs_spec) == tuple(out_spec) == (0, n - 1, *range(1, n - 1))
            and tuple(rhs_spec) == (n - 1, n - 2, *range(n - 2)))


def is_pointwise(eqn) -> bool:
    """Whether ``eqn`` is a 1x1 convolution that is one matrix product as laid out: channels last in
    the input and output (NHWC, Flax's layout), an ``HWIO`` kernel, stride 1, no padding or dilation,
    one group."""
    if not is_channels_last_conv(eqn):
        return False
    p, rhs = eqn.params, eqn.invars[1].aval
    return (p["feature_group_count"] == 1 and p["batch_group_count"] == 1
            and all(rhs.shape[d] == 1 for d in range(rhs.ndim - 2)) and all(s == 1 for s in p["window_strides"])
            and all(d == 1 for d in p["lhs_dilation"]) and all(tuple(q) == (0, 0) for q in p["padding"]))


#: Full convolutions with fewer input channels than this become im2col + one matrix product in
#: ``fast_inference`` (a network's stem: 3 channels in, where a convolution library vectorizes badly).
IM2COL_MAX_CHANNELS = 16


def is_narrow_conv(eqn) -> bool:
    """Whether ``eqn`` is a full (one group) channels-last convolution with fewer than
    ``IM2COL_MAX_CHANNELS`` input channels and no input dilation: a stem that ``fast_inference``
    computes as im2col and one matrix product."""
    if not is_channels_last_conv(eqn):
        return False
    p, rhs = eqn.params, eqn.invars[1].aval
    return (p["feature_group_count"] == 1 and p["batch_group_count"] == 1 and rhs.shape[-2] < IM2COL_MAX_CHANNELS
            and all(d == 1 for d in p["lhs_dilation"]))


def im2col_matmul(eqn, x, w):
    """``patches(x) @ w``: the ``K_h K_w C`` input values under each output position side by side
    (im2col, chapter 1's GEMM view), then one matrix product with the kernel as a ``(K_h K_w C, D)``
    matrix. For a 3-channel stem the patches are small and the product runs at matrix speed."""
    p = eqn.params
    spatial = w.ndim - 2
    pads = [(0, 0)] + [tuple(q) for q in p["padding"]] + [(0, 0)]
    x = lax.pad(x, jnp.zeros((), x.dtype), [(lo, hi, 0) for lo, hi in pads])
    kernel = w.shape[:spatial]
    strides, dilation = p["window_strides"], p["rhs_dilation"]
    out_size = [(x.shape[1 + i] - (kernel[i] - 1) * dilation[i] - 1) // strides[i] + 1 for i in range(spatial)]
    columns = []
    for offset in itertools.product(*(range(k) for k in kernel)):
        start = [0] + [o * d for o, d in zip(offset, dilation)] + [0]
        limit = [x.shape[0]] + [st + (o - 1) * s + 1 for st, o, s in zip(start[1:], out_size, strides)] + [x.shape[-1]]
        columns.append(lax.slice(x, start, limit, [1, *strides, 1]))
    patches = jnp.concatenate(columns, axis=-1)
    out = lax.dot_general(patches, w.reshape(-1, w.shape[-1]), (((patches.ndim - 1,), (0,)), ((), ())),
                          precision=p.get("precision"), preferred_element_type=p.get("preferred_element_type"))
    return out.astype(eqn.outvars[0].aval.dtype)

def pointwise_matmul(eqn, x, w):
    """``y[..., d] = sum_c x[..., c] w[c, d]``: a 1x1 convolution as the matrix product it is."""
    kernel = w.reshape(w.shape[-2], w.shape[-1])
    out = lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                          precision=eqn.params.get("precision"),
                          preferred_element_type=eqn.params.get("preferred_element_type"))
    return out.astype(eqn.outvars[0].aval.dtype)


def fast_equation(eqn, x, w) -> list:
    """The outputs of a convolution equation computed the fast way on CPU: a depthwise one as shifted
    multiply-adds, a 1x1 one as a matrix product, a narrow one (a stem) as im2col and a matrix
    product, any other as traced."""
    if is_depthwise(eqn):
        return [shifted_equation(eqn, x, w)]
    if is_pointwise(eqn):
        return [pointwise_matmul(eqn, x, w)]
    if is_narrow_conv(eqn):
        return [im2col_matmul(eqn, x, w)]
    return [eqn.primitive.bind(x, w, **eqn.params)]


def fast_inference(fn: Callable) -> Callable:
    """``fn`` with depthwise convolutions as shifted multiply-adds, 1x1 convolutions as matrix
    products (``lax.dot_general``, which XLA CPU hands to its matrix-multiply library) and narrow
    full convolutions (the 3-channel stem) as im2col and a matrix product; the same
    function, the same MACs (the counter costs a ``dot_general`` as the convolution it replaces).
    For inference: fold BatchNorm first (``transforms.batchnorm.fold_batchnorm``) so each layer is one
    convolution plus a bias."""
    return rewrite_equations(fn, lambda eqn: is_depthwise(eqn) or is_pointwise(eqn) or is_narrow_conv(eqn),
                             fast_equation)

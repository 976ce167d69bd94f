"""Inference the fast way on a CPU: every convolution as the computation a CPU runs best.

``fast_inference(fn)`` rewrites a traced function: depthwise convolutions as shifted multiply-adds
(``transforms.shifts``), 1x1 convolutions as the matrix product they are (``lax.dot_general``,
which XLA CPU hands to its matrix-multiply library) and narrow full convolutions (a network's
3-channel stem) as broadcast multiply-adds or im2col and one matrix product. The same function, the same
MACs. ``fast_training(fn)`` is the training step's form: the products carry written-out gradients
(``channel_product``), and a stem stays a product, whose gradient is one.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .rewrite import counted_call, rewrite_equations
from .shifts import is_depthwise, shifted_equation
from .windows import kernel_offsets, output_size, pad_spatial, window_slice

__all__ = ["fast_inference", "fast_equation", "is_pointwise", "is_narrow_conv", "is_channels_last_conv",
           "IM2COL_MAX_CHANNELS", "pointwise_matmul", "im2col_matmul", "channel_product", "fast_training",
           "is_full_channels_last_conv", "broadcast_conv", "is_broadcast_conv", "BROADCAST_MAX_TAPS", "BROADCAST_NAME",
           "is_dense_product", "dense_product"]


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


def is_full_channels_last_conv(eqn) -> bool:
    """A full (one group) channels-last convolution without input dilation: what ``im2col_matmul`` computes."""
    p = eqn.params
    return (is_channels_last_conv(eqn) and p["feature_group_count"] == 1 and p["batch_group_count"] == 1
            and all(d == 1 for d in p["lhs_dilation"]))


def is_narrow_conv(eqn) -> bool:
    """Whether ``eqn`` is a full channels-last convolution (``is_full_channels_last_conv``) with fewer than
    ``IM2COL_MAX_CHANNELS`` input channels: a stem, which ``fast_inference`` computes as broadcast
    multiply-adds or im2col and one matrix product."""
    return is_full_channels_last_conv(eqn) and eqn.invars[1].aval.shape[-2] < IM2COL_MAX_CHANNELS


def _window_slices(eqn, x, kernel):
    """``[(offset, slice)]``: for each tap ``offset`` of the kernel, the input values it meets at every output
    position (``windows.window_slice`` of the padded channels-last input)."""
    p = eqn.params
    padding, strides, dilation = [tuple(q) for q in p["padding"]], p["window_strides"], p["rhs_dilation"]
    _, out_size = output_size(x, kernel, strides, padding, dilation)
    xp = pad_spatial(x, padding)
    return [(offset, window_slice(xp, offset, out_size, strides, dilation)) for offset in kernel_offsets(kernel)]


def im2col_matmul(eqn, x, w):
    """``patches(x) @ w``: the ``K_h K_w C`` input values under each output position side by side
    (im2col, chapter 1's GEMM view), then one matrix product with the kernel as a ``(K_h K_w C, D)``
    matrix. For a 3-channel stem the patches are small and the product runs at matrix speed."""
    patches = jnp.concatenate([piece for _, piece in _window_slices(eqn, x, w.shape[:-2])], axis=-1)
    return dense_product(eqn, patches, w.reshape(-1, w.shape[-1]))


#: A narrow convolution with at most this many multiply-adds per output value (``K_h K_w C``: 27 for a
#: 3x3 stem on an RGB image) runs as that many broadcast multiply-adds in ``fast_inference``.
BROADCAST_MAX_TAPS = 32

#: The name of the ``jit`` call each broadcast convolution becomes (for reading a jaxpr).
BROADCAST_NAME = "broadcast_conv"


def broadcast_conv(eqn, x, w):
    """``y[..., d] = sum_{tap, c} window_tap(x)[..., c] * w[tap, c, d]``: every one of the ``K_h K_w C``
    input values under an output position scales a row of the kernel, and the ``K_h K_w C`` scaled rows
    add up. XLA fuses the sum into one loop over the output, vectorized along its ``D`` channels, with no
    patch matrix written to memory. Alone, a stem (27 terms, 112x112x32 outputs, batch 1) took 0.24 ms
    against 0.34 for im2col and a product on the recording machine; in whole networks at batch 1 it was
    the faster in 9 of 9 interleaved rounds on MobileNet v1 and MobileNetV3-Large and not told apart on
    MobileNet v2 and EfficientNet-B0, where XLA fuses the multiply-adds into the first depthwise layer's
    loop, which reads each value nine times. One ``jit`` call the counter costs as the convolution it
    replaces."""
    out_dtype = eqn.outvars[0].aval.dtype

    def rewritten(x, w):
        total = None
        for offset, piece in _window_slices(eqn, x, w.shape[:-2]):
            for c in range(w.shape[-2]):
                term = piece[..., c:c + 1] * w[offset + (c,)]
                total = term if total is None else total + term
        return total.astype(out_dtype)

    return counted_call(eqn, rewritten, BROADCAST_NAME, x, w)


def is_broadcast_conv(eqn) -> bool:
    """A narrow convolution (``is_narrow_conv``) with at most ``BROADCAST_MAX_TAPS`` multiply-adds per
    output value: what ``fast_inference`` computes by ``broadcast_conv``."""
    rhs = eqn.invars[1].aval
    return is_narrow_conv(eqn) and int(np.prod(rhs.shape[:-1])) <= BROADCAST_MAX_TAPS


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def channel_product(x, kernel, precision=None, preferred_element_type=None):
    """``y[..., d] = sum_c x[..., c] kernel[c, d]``: ``lax.dot_general`` over the last axis of ``x``, with
    its gradient written out as the two products it is,

        dx = g kernel^T (over d)        dkernel = x^T g (over every position, ``...``)

    each one ``dot_general`` on the operands as they are laid out. ``dkernel`` contracts the positions, the
    leading axis of both operands, and XLA CPU's matrix-product library wants its left operand's
    contracted axis last: XLA copies that operand transposed (for a 1x1 layer's input, the forward pass
    writes the activation twice), so the narrower of ``x`` and ``g`` goes left (``(g^T x)^T`` when ``x`` is
    wider: MobileNetV2's projections, whose inputs are six times wider). JAX's own transpose rule computes
    ``dkernel`` as ``(g^T x)^T``; XLA CPU folds that outer transpose into the layout of ``g``, so the
    fusion that produces ``g`` (BatchNorm's backward, an activation's) writes it transposed, position-minor,
    and the product runs on that layout: on MobileNetV2's first expansion (200,704 positions, 16 to 96
    channels) the two took ten times the product on ``g`` as laid out."""
    return lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=precision,
                           preferred_element_type=preferred_element_type)


def _channel_product_forward(x, kernel, precision, preferred_element_type):
    return channel_product(x, kernel, precision, preferred_element_type), (x, kernel)


def _channel_product_backward(precision, preferred_element_type, residuals, g):
    x, kernel = residuals
    dx = lax.dot_general(g, kernel, (((g.ndim - 1,), (1,)), ((), ())), precision=precision)
    positions = tuple(range(x.ndim - 1))
    if x.shape[-1] <= g.shape[-1]:
        dkernel = lax.dot_general(x, g, ((positions, positions), ((), ())), precision=precision)
    else:  # the product's left operand is the one XLA CPU copies position-minor: let it be the narrower
        dkernel = lax.dot_general(g, x, ((positions, positions), ((), ())), precision=precision).T
    return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


channel_product.defvjp(_channel_product_forward, _channel_product_backward)


def is_dense_product(eqn) -> bool:
    """Whether ``eqn`` is a dense layer's ``dot_general``: the last axis of ``x`` against the first of a
    2-D kernel, no batch axes (``nnx.Linear``'s product), which ``channel_product`` computes."""
    if eqn.primitive.name != "dot_general":
        return False
    (lhs_c, rhs_c), (lhs_b, rhs_b) = eqn.params["dimension_numbers"]
    x, w = (v.aval for v in eqn.invars)
    return (not lhs_b and not rhs_b and w.ndim == 2 and tuple(lhs_c) == (x.ndim - 1,) and tuple(rhs_c) == (0,)
            and x.dtype == w.dtype)


def dense_product(eqn, x, w):
    """The product ``eqn`` computes (a dense layer's, or a 1x1 convolution's with ``w`` as its 2-D kernel)
    through ``channel_product`` (its gradient written out), in ``eqn``'s precision and output type."""
    out = channel_product(x, w, eqn.params.get("precision"), eqn.params.get("preferred_element_type"))
    return out.astype(eqn.outvars[0].aval.dtype)


def pointwise_matmul(eqn, x, w):
    """``y[..., d] = sum_c x[..., c] w[c, d]``: a 1x1 convolution as the matrix product it is."""
    return dense_product(eqn, x, w.reshape(w.shape[-2], w.shape[-1]))


def fast_equation(eqn, x, w) -> list:
    """The outputs of a convolution equation computed the fast way on CPU: a depthwise one as shifted
    multiply-adds, a 1x1 one as a matrix product, a narrow one as broadcast multiply-adds (a stem: at most
    ``BROADCAST_MAX_TAPS`` per output value) or im2col and a matrix product, any other as traced."""
    if is_depthwise(eqn):
        return [shifted_equation(eqn, x, w)]
    if is_pointwise(eqn):
        return [pointwise_matmul(eqn, x, w)]
    if is_broadcast_conv(eqn):
        return [broadcast_conv(eqn, x, w)]
    if is_narrow_conv(eqn):
        return [im2col_matmul(eqn, x, w)]
    return [eqn.primitive.bind(x, w, **eqn.params)]


def fast_training(fn: Callable) -> Callable:
    """``fn`` for a training step on CPU: depthwise convolutions as shifted multiply-adds, 1x1 convolutions
    as matrix products and every other full channels-last convolution as im2col and a matrix product,
    and the classifier's product (``is_dense_product``), each with its gradient written out
    (``transforms.shifts``' one-pass kernel gradient, ``channel_product``: XLA CPU computes the classifier's
    kernel gradient from the loss's scattered gradient by its own slow loop, not its matrix library),
    and BatchNorm in training mode with its gradient written out (``transforms.batchnorm_gradient``, which
    keeps the layer's input for the backward pass instead of a centred copy). The same function, the same MACs. Unlike ``fast_inference`` it rewrites wide full convolutions too:
    under ``jax.vmap`` over models (``training.fit_together``) a convolution would become a grouped one,
    XLA CPU's slow path, and a matrix product a batched one."""

    from .batchnorm_gradient import written_out_batchnorm

    def apply(eqn, x, w):
        if is_depthwise(eqn):
            return [shifted_equation(eqn, x, w)]
        if is_dense_product(eqn):
            return [dense_product(eqn, x, w)]
        return [pointwise_matmul(eqn, x, w) if is_pointwise(eqn) else im2col_matmul(eqn, x, w)]

    @functools.wraps(fn)
    def traced(*args):
        with written_out_batchnorm():
            return fn(*args)

    return rewrite_equations(traced, lambda eqn: is_depthwise(eqn) or is_full_channels_last_conv(eqn)
                             or is_dense_product(eqn), apply)


def fast_inference(fn: Callable) -> Callable:
    """``fn`` with depthwise convolutions as shifted multiply-adds, 1x1 convolutions as matrix
    products (``lax.dot_general``, which XLA CPU hands to its matrix-multiply library) and narrow
    full convolutions (the 3-channel stem) as broadcast multiply-adds (``broadcast_conv``) or im2col and a
    matrix product; the same function, the same MACs (the counter costs a ``dot_general`` as the
    convolution it replaces, and each broadcast one by its own rule).
    For inference: fold BatchNorm first (``transforms.batchnorm.fold_batchnorm``) so each layer is one
    convolution plus a bias."""
    return rewrite_equations(fn, lambda eqn: is_depthwise(eqn) or is_pointwise(eqn) or is_narrow_conv(eqn),
                             fast_equation)

"""Depthwise convolutions as shifted multiply-adds: the same numbers, computed another way.

A ``K x K`` depthwise convolution does ``K^2`` multiply-adds per output element:

    y[n, i, j, c] = sum_{a, b} x_pad[n, s*i + d*a, s*j + d*b, c] * w[a, b, 0, c]

(stride ``s``, dilation ``d``). Written as ``K^2`` strided slices of the padded
input, each scaled by one tap of the kernel and summed, XLA fuses it into one
element-wise loop that streams the input: a memory-bound computation running
near memory bandwidth. XLA CPU's grouped convolution (``feature_group_count =
C``) instead runs far below it (chapter 6 measures both).

``depthwise_by_shifts(fn)`` rewrites a traced function: each depthwise
``conv_general_dilated`` of ``fn`` becomes that sum, everything else runs as
traced. It works on any JAX function, our Flax models and Keras models on the
JAX backend alike; the MACs are unchanged, only how they are executed. Each
rewritten layer is a ``jit`` call whose element-wise body hides its
multiply-accumulates, so this module registers a counter rule for those calls
(``counter.register_call_rule``, keyed by the identity of each traced call): the counter costs a rewritten layer as the
convolution it replaces, and a function counts the same before and after the rewrite.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core

from .compat import is_drop_var
from .counter import conv_record, register_call_rule, sub_jaxprs

__all__ = ["depthwise_by_shifts", "fast_inference", "rewrite_equations", "fast_equation", "is_depthwise", "is_pointwise",
           "shifted_depthwise_conv", "REWRITTEN_NAME"]

#: The name of the ``jit`` call each rewritten depthwise convolution becomes (for reading a jaxpr; the
#: counter finds its rule by the call's identity, never by this name).
REWRITTEN_NAME = "depthwise_by_shifts"


#: Call-like primitives whose body is rewritten in place (inlined); others run unchanged.
_INLINED = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call",
                      "custom_vjp_call"})


def is_depthwise(eqn) -> bool:
    """Whether ``eqn`` is a depthwise convolution this module rewrites: one input channel per
    group, as many groups as input and output channels, no input dilation, no batch groups."""
    if eqn.primitive.name != "conv_general_dilated":
        return False
    p = eqn.params
    lhs_spec, rhs_spec, _ = p["dimension_numbers"]
    lhs, rhs = (v.aval for v in eqn.invars)
    channels = lhs.shape[lhs_spec[1]]
    return (p["feature_group_count"] == channels > 1 and rhs.shape[rhs_spec[1]] == 1
            and rhs.shape[rhs_spec[0]] == channels and p["batch_group_count"] == 1
            and all(d == 1 for d in p["lhs_dilation"]))


def shifted_depthwise_conv(x, w, *, window_strides, padding, rhs_dilation, dimension_numbers, out_dtype=None):
    """``sum_taps slice(pad(x)) * w[tap]``: what ``lax.conv_general_dilated`` computes for a depthwise
    kernel, in the layouts ``dimension_numbers`` (a ``ConvDimensionNumbers``) gives."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = len(lhs_spec) - 2
    config = [(0, 0, 0)] * x.ndim
    for i in range(spatial):
        config[lhs_spec[2 + i]] = (padding[i][0], padding[i][1], 0)
    x = lax.pad(x, jnp.zeros((), x.dtype), config)
    kernel = [w.shape[rhs_spec[2 + i]] for i in range(spatial)]
    out_size = [(x.shape[lhs_spec[2 + i]] - (kernel[i] - 1) * rhs_dilation[i] - 1) // window_strides[i] + 1
                for i in range(spatial)]
    if min(out_size) < 1:
        raise ValueError(f"kernel {kernel} with dilation {tuple(rhs_dilation)} does not fit the padded input "
                         f"{x.shape}")
    # The kernel as (*spatial taps, C), broadcast against x at its channel axis.
    taps = jnp.transpose(w, [*rhs_spec[2:], rhs_spec[1], rhs_spec[0]]).reshape(*kernel, -1)
    channel_shape = [1] * x.ndim
    channel_shape[lhs_spec[1]] = taps.shape[-1]
    total = None
    for offset in itertools.product(*(range(k) for k in kernel)):
        start, limit, strides = [0] * x.ndim, list(x.shape), [1] * x.ndim
        for i, o in enumerate(offset):
            d = lhs_spec[2 + i]
            start[d] = o * rhs_dilation[i]
            limit[d] = start[d] + (out_size[i] - 1) * window_strides[i] + 1
            strides[d] = window_strides[i]
        term = lax.slice(x, start, limit, strides) * taps[offset].reshape(channel_shape)
        total = term if total is None else total + term
    # Our result has logical dim k (batch, channel, spatial...) at position lhs_spec[k]; the output wants out_spec[k].
    perm = [0] * x.ndim
    for k in range(x.ndim):
        perm[out_spec[k]] = lhs_spec[k]
    if perm != list(range(x.ndim)):
        total = jnp.transpose(total, perm)
    return total.astype(out_dtype) if out_dtype is not None else total


def _rewritten_conv(eqn, x, w):
    p = eqn.params
    geometry = dict(window_strides=tuple(p["window_strides"]), padding=tuple(map(tuple, p["padding"])),
                    rhs_dilation=tuple(p["rhs_dilation"]), dimension_numbers=p["dimension_numbers"],
                    out_dtype=eqn.outvars[0].aval.dtype)

    def rewritten(x, w):
        return shifted_depthwise_conv(x, w, **geometry)

    record = conv_record(eqn)
    rewritten.__name__ = REWRITTEN_NAME
    call = jax.jit(rewritten)
    # the counter's rule for this one call, found by the identity of its traced body (the very
    # object the program's equation carries: ``call(x, w)`` below reuses the trace)
    register_call_rule(call.trace(x, w).jaxpr, lambda _eqn, record=record: record)
    return call(x, w)


def _channels_last_conv(eqn) -> bool:
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
    if not _channels_last_conv(eqn):
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
    if not _channels_last_conv(eqn):
        return False
    p, rhs = eqn.params, eqn.invars[1].aval
    return (p["feature_group_count"] == 1 and p["batch_group_count"] == 1 and rhs.shape[-2] < IM2COL_MAX_CHANNELS
            and all(d == 1 for d in p["lhs_dilation"]))


def _im2col_matmul(eqn, x, w):
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


def _pointwise_matmul(eqn, x, w):
    """``y[..., d] = sum_c x[..., c] w[c, d]``: a 1x1 convolution as the matrix product it is."""
    kernel = w.reshape(w.shape[-2], w.shape[-1])
    out = lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                          precision=eqn.params.get("precision"),
                          preferred_element_type=eqn.params.get("preferred_element_type"))
    return out.astype(eqn.outvars[0].aval.dtype)


def _contains(jaxpr, match) -> bool:
    for eqn in jaxpr.eqns:
        if match(eqn) or any(_contains(sub, match) for sub in sub_jaxprs(eqn)):
            return True
    return False


def _inlined_body(eqn):
    """The closed jaxpr of a call-like equation whose body is inlined, else ``None``."""
    if eqn.primitive.name not in _INLINED:
        return None
    body = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    if isinstance(body, core.Jaxpr):
        body = core.ClosedJaxpr(body, ())
    return body if isinstance(body, core.ClosedJaxpr) else None


def _evaluate(jaxpr, consts, args, match, apply):
    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for v, value in itertools.chain(zip(jaxpr.constvars, consts), zip(jaxpr.invars, args)):
        env[v] = value
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        body = _inlined_body(eqn)
        if match(eqn):
            outvals = apply(eqn, *invals)
        elif body is not None and _contains(body.jaxpr, match):
            outvals = _evaluate(body.jaxpr, body.consts, invals[len(invals) - len(body.jaxpr.invars):], match, apply)
        else:
            bound = eqn.primitive.get_bind_params(eqn.params)
            subfuns, params = bound if isinstance(bound, tuple) else ((), bound)  # older JAX returns a pair
            with eqn.ctx.manager if hasattr(eqn, "ctx") else contextlib.nullcontext():
                out = eqn.primitive.bind(*subfuns, *invals, **params)
            outvals = out if eqn.primitive.multiple_results else [out]
        for v, value in zip(eqn.outvars, outvals):
            if not is_drop_var(v):
                env[v] = value
    return [read(v) for v in jaxpr.outvars]


def rewrite_equations(fn: Callable, match: Callable, apply: Callable) -> Callable:
    """``fn`` with every equation ``eqn`` for which ``match(eqn)`` holds computed by
    ``apply(eqn, *inputs)`` (a list of outputs) instead; everything else runs as traced. Bodies of
    ``jit`` and other calls are inlined where they hold a match; ``scan``, ``cond`` and ``while``
    bodies are left as they are. The interpreter behind ``depthwise_by_shifts``, ``fast_inference``
    and the quantization simulator of ``sepconv.deploy``."""

    @functools.wraps(fn)
    def rewritten(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args), match, apply)
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return rewritten


def depthwise_by_shifts(fn: Callable) -> Callable:
    """``fn`` with each depthwise convolution computed as shifted multiply-adds (module docstring).

    The result takes and returns what ``fn`` does; ``jax.jit`` it (it retraces ``fn`` on each
    un-jitted call). Convolutions inside ``scan``, ``cond`` or ``while`` bodies are left as they are.
    """
    return rewrite_equations(fn, is_depthwise, lambda eqn, x, w: [_rewritten_conv(eqn, x, w)])


def fast_equation(eqn, x, w) -> list:
    """The outputs of a convolution equation computed the fast way on CPU: a depthwise one as shifted
    multiply-adds, a 1x1 one as a matrix product, a narrow one (a stem) as im2col and a matrix
    product, any other as traced."""
    if is_depthwise(eqn):
        return [_rewritten_conv(eqn, x, w)]
    if is_pointwise(eqn):
        return [_pointwise_matmul(eqn, x, w)]
    if is_narrow_conv(eqn):
        return [_im2col_matmul(eqn, x, w)]
    return [eqn.primitive.bind(x, w, **eqn.params)]


def fast_inference(fn: Callable) -> Callable:
    """``fn`` with depthwise convolutions as shifted multiply-adds, 1x1 convolutions as matrix
    products (``lax.dot_general``, which XLA CPU hands to its matrix-multiply library) and narrow
    full convolutions (the 3-channel stem) as im2col and a matrix product; the same
    function, the same MACs (the counter costs a ``dot_general`` as the convolution it replaces).
    For inference: fold BatchNorm first (``sepconv.deploy.fold_batchnorm``) so each layer is one
    convolution plus a bias."""
    return rewrite_equations(fn, lambda eqn: is_depthwise(eqn) or is_pointwise(eqn) or is_narrow_conv(eqn),
                             fast_equation)

"""Exact cost counting from the computation itself.

``count(fn, *args)`` traces ``fn`` (any JAX function, or a Flax NNX module
called on ``args``) to a jaxpr and costs each equation:

* ``conv_general_dilated``: ``MACs = prod(out_shape) * C_in_per_group * prod(kernel_spatial)``,
  whatever the stride, padding, dilation, batch and ``feature_group_count``;
* ``dot_general``: ``MACs = prod(out_shape) * prod(contracted dims)``;
* element-wise, reduction and data-movement primitives: no MACs (listed with
  their output sizes, since papers count only convolution and FC MACs);
* call-like primitives (``jit``/``pjit``, ``custom_jvp_call``, ...): costed by
  recursing into their jaxpr; ``scan`` multiplies its body by its length.

A primitive it cannot cost (``while`` with an unknown trip count, ``cond``, a
primitive it does not know, a depthwise layer rewritten by
``fast_depthwise.depthwise_by_shifts``) is listed in ``CountResult.uncosted``; it is never
skipped silently. ``CountResult.complete`` says whether the count is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import numpy as np

from .cost import valid_taps

__all__ = ["count", "count_macs", "CountResult", "OpRecord", "parameter_counts", "pure_module", "sub_jaxprs",
           "REWRITTEN_NAME", "ZERO_MAC_PRIMITIVES"]

#: The name of the ``jit`` call ``fast_depthwise.depthwise_by_shifts`` makes of each depthwise layer:
#: element-wise operations whose MACs the counter cannot see, so it reports the call as uncosted.
REWRITTEN_NAME = "depthwise_by_shifts"

#: Primitives that perform no multiply-accumulate. They are known, costed as 0 MACs.
ZERO_MAC_PRIMITIVES = frozenset("""
abs acos acosh add and argmax argmin asin asinh atan atan2 atanh bitcast_convert_type broadcast_in_dim
cbrt ceil clamp concatenate convert_element_type copy copy_p cos cosh cumlogsumexp cummax cummin cumprod
cumsum custom_lin device_put div dynamic_slice dynamic_update_slice eq erf erf_inv erfc exp exp2 expm1
expand_dims floor gather ge gt imag integer_pow iota is_finite le lgamma log log1p logistic lt max min
mul ne neg nextafter not or pad population_count pow real reduce_and reduce_max reduce_min reduce_or
reduce_precision reduce_prod reduce_sum reduce_xor rem reshape rev round rsqrt scatter scatter-add
scatter_add select_n select_and_scatter_add shift_left shift_right_arithmetic shift_right_logical sign
sin sinh slice sort split sqrt square squeeze stop_gradient sub tan tanh transpose xor
reduce_window_sum reduce_window_max reduce_window_min reduce_window argsort top_k clz
random_bits random_seed random_wrap random_unwrap threefry2x32 sharding_constraint mesh_cast
optimization_barrier name pvary
""".split())

#: Call-like primitives whose cost is the cost of the jaxpr they carry.
CALL_PRIMITIVES = frozenset("""
pjit jit closed_call core_call remat checkpoint remat2 custom_jvp_call custom_vjp_call
custom_vjp_call_jaxpr xla_call named_call shard_map
""".split())


@dataclass(frozen=True)
class OpRecord:
    """One multiply-accumulate equation: a convolution or a matrix product."""

    primitive: str
    input_shape: tuple
    kernel_shape: tuple
    output_shape: tuple
    feature_group_count: int
    macs: int
    macs_excluding_padding: int

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class PrimitiveCount:
    primitive: str
    calls: int = 0
    macs: int = 0
    output_elements: int = 0


@dataclass
class CountResult:
    """What ``count`` found. ``macs`` is exact when ``complete`` is true."""

    macs: int = 0
    macs_excluding_padding: int = 0
    ops: list = field(default_factory=list)
    by_primitive: dict = field(default_factory=dict)
    uncosted: dict = field(default_factory=dict)
    params: int | None = None
    params_excluding_norm: int | None = None
    activations: int = 0
    peak_activation_bytes: int = 0

    @property
    def flops(self) -> int:
        """``2 * macs``: one multiply and one add per MAC."""
        return 2 * self.macs

    @property
    def complete(self) -> bool:
        return not self.uncosted

    def to_dict(self) -> dict:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "macs_excluding_padding": self.macs_excluding_padding,
            "params": self.params,
            "params_excluding_norm": self.params_excluding_norm,
            "activations": self.activations,
            "peak_activation_bytes": self.peak_activation_bytes,
            "complete": self.complete,
            "uncosted": dict(self.uncosted),
            "by_primitive": {k: v.__dict__ for k, v in self.by_primitive.items()},
        }


def _size(aval) -> int:
    return int(math.prod(aval.shape))


def _nbytes(aval) -> int:
    return _size(aval) * np.dtype(aval.dtype).itemsize


def _conv_record(eqn) -> OpRecord:
    lhs, rhs = (v.aval for v in eqn.invars)
    out = eqn.outvars[0].aval
    p = eqn.params
    lhs_spec, rhs_spec, _ = p["dimension_numbers"]
    in_per_group = rhs.shape[rhs_spec[1]]
    kernel_spatial = [rhs.shape[d] for d in rhs_spec[2:]]
    macs = _size(out) * in_per_group * math.prod(kernel_spatial)
    taps = 1
    for i, k in enumerate(kernel_spatial):
        taps *= valid_taps(lhs.shape[lhs_spec[2 + i]], k, p["window_strides"][i], tuple(p["padding"][i]),
                           p["rhs_dilation"][i], p["lhs_dilation"][i])
    batch_and_out = _size(out) // math.prod(out.shape[d] for d in p["dimension_numbers"][2][2:])
    return OpRecord("conv_general_dilated", tuple(lhs.shape), tuple(rhs.shape), tuple(out.shape),
                    int(p["feature_group_count"]), int(macs), int(batch_and_out * in_per_group * taps))


def _dot_record(eqn) -> OpRecord:
    lhs, rhs = (v.aval for v in eqn.invars)
    out = eqn.outvars[0].aval
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    macs = _size(out) * math.prod(lhs.shape[d] for d in lhs_contract)
    return OpRecord("dot_general", tuple(lhs.shape), tuple(rhs.shape), tuple(out.shape), 1, int(macs), int(macs))


def sub_jaxprs(eqn):
    """The jaxprs an equation carries in its parameters (also inside tuples, as ``cond`` has them)."""
    for value in eqn.params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, jax.extend.core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jax.extend.core.Jaxpr):
                yield v


def _walk(jaxpr, result: CountResult, multiplier: int, tainted: set, own_inputs: bool = False) -> int:
    """Cost ``jaxpr`` into ``result``; return the peak of its live activation bytes.

    ``tainted`` holds the variables derived from the activation inputs (not from
    parameters alone); only those count towards activation memory. With
    ``own_inputs`` the jaxpr's activation inputs are live until their last use
    (the top level); otherwise they belong to the caller and count zero here.
    """
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not isinstance(v, jax.extend.core.Literal):
                last_use[v] = i
    outputs = {v for v in jaxpr.outvars if not isinstance(v, jax.extend.core.Literal)}
    live = {v: _nbytes(v.aval) for v in jaxpr.invars if own_inputs and v in tainted}
    current = peak = sum(live.values())
    for i, eqn in enumerate(jaxpr.eqns):
        name = eqn.primitive.name
        is_act = any(v in tainted for v in eqn.invars if not isinstance(v, jax.extend.core.Literal))
        out_bytes = sum(_nbytes(v.aval) for v in eqn.outvars) if is_act else 0
        inner_peak = 0
        stats = result.by_primitive.setdefault(name, PrimitiveCount(name))
        stats.calls += multiplier
        stats.output_elements += multiplier * sum(_size(v.aval) for v in eqn.outvars)
        if name in ("conv_general_dilated", "dot_general"):
            rec = _conv_record(eqn) if name == "conv_general_dilated" else _dot_record(eqn)
            result.ops.append(rec)
            result.macs += multiplier * rec.macs
            result.macs_excluding_padding += multiplier * rec.macs_excluding_padding
            result.activations += multiplier * _size(eqn.outvars[0].aval)
            stats.macs += multiplier * rec.macs
        elif name in CALL_PRIMITIVES or name == "scan":
            subs = list(sub_jaxprs(eqn))
            if eqn.params.get("name") == REWRITTEN_NAME:  # a depthwise conv as element-wise ops: its MACs are hidden
                result.uncosted[REWRITTEN_NAME] = result.uncosted.get(REWRITTEN_NAME, 0) + multiplier
            elif len(subs) != 1:
                result.uncosted[name] = result.uncosted.get(name, 0) + multiplier
            else:
                inner = subs[0]
                times = multiplier * (int(eqn.params["length"]) if name == "scan" else 1)
                offset = len(eqn.invars) - len(inner.invars)
                inner_tainted = {iv for ov, iv in zip(eqn.invars[offset:], inner.invars)
                                 if not isinstance(ov, jax.extend.core.Literal) and ov in tainted}
                inner_peak = _walk(inner, result, times, inner_tainted)
        elif name not in ZERO_MAC_PRIMITIVES:
            result.uncosted[name] = result.uncosted.get(name, 0) + multiplier
        if is_act:
            tainted.update(eqn.outvars)
        peak = max(peak, current + max(out_bytes, inner_peak))
        for v in eqn.outvars:
            if v in tainted:
                live[v] = _nbytes(v.aval)
                current += live[v]
        for v in eqn.invars:
            if not isinstance(v, jax.extend.core.Literal) and last_use.get(v) == i \
                    and v in live and v not in outputs:
                current -= live.pop(v)
    return peak


def parameter_counts(model) -> tuple[int, int]:
    """``(all parameters, parameters outside normalization layers)`` of an NNX module.

    Published tables count convolution and fully connected weights and biases
    but not BatchNorm's scale and offset; the second number follows them.
    """
    from flax import nnx

    norm_types = (nnx.BatchNorm, nnx.LayerNorm, nnx.GroupNorm, nnx.RMSNorm)
    total = norm = 0
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            own = sum(int(np.size(v.get_value() if hasattr(v, "get_value") else v.value))
                      for v in vars(node).values() if isinstance(v, nnx.Param))
            total += own
            if isinstance(node, norm_types):
                norm += own
    return total, total - norm


def pure_module(module, flat: bool = False) -> tuple[Callable, Any]:
    """``(fn, state)`` with ``fn(state, *args) == module(*args)``: an NNX module as a pure function of its state.

    With ``flat`` the state is a plain list of arrays, as Keras's ``stateless_call`` takes its
    variables: flattening an NNX ``State`` costs a fraction of a millisecond per call, which
    timings of small models would otherwise include.
    """
    from flax import nnx

    graphdef, state = nnx.split(module)
    leaves, treedef = jax.tree_util.tree_flatten(state)

    def fn(state, *args, **kwargs):
        if flat:
            state = jax.tree_util.tree_unflatten(treedef, state)
        return nnx.merge(graphdef, state)(*args, **kwargs)

    return fn, (leaves if flat else state)


def count(fn: Callable | Any, *args, **kwargs) -> CountResult:
    """Trace ``fn(*args, **kwargs)`` and count its MACs, activations and (for a module) parameters.

    ``fn`` may be any JAX-traceable function or a Flax NNX module; a module is
    split into its graph and state so that its parameters are inputs, not
    activations. Activation memory is the peak of simultaneously live
    intermediate values derived from ``args`` (parameters excluded), in bytes.
    """
    from flax import nnx

    result = CountResult()
    if isinstance(fn, nnx.Module):
        result.params, result.params_excluding_norm = parameter_counts(fn)
        pure, state = pure_module(fn)
        closed = jax.make_jaxpr(pure)(state, *args, **kwargs)
        n_state = len(jax.tree_util.tree_leaves(state))
        act_inputs = closed.jaxpr.invars[n_state:]
    elif callable(fn):
        closed = jax.make_jaxpr(fn)(*args, **kwargs)
        act_inputs = closed.jaxpr.invars
    else:
        raise TypeError(f"count needs a callable or an nnx.Module, got {type(fn).__name__}")
    result.peak_activation_bytes = _walk(closed.jaxpr, result, 1, set(act_inputs), own_inputs=True)
    return result


def count_macs(fn: Callable | Any, *args, **kwargs) -> int:
    """Exact MACs of ``fn(*args)``; raises ``ValueError`` if any primitive could not be costed."""
    result = count(fn, *args, **kwargs)
    if not result.complete:
        raise ValueError(f"cannot cost primitives {sorted(result.uncosted)}; MACs would be incomplete")
    return result.macs

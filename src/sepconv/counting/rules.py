"""The cost rules: which primitives multiply-accumulate, and how many times.

A ``Rules`` registry holds one rule per primitive (``rule(eqn) -> OpRecord``, like fvcore's op
handles or torch's ``register_flop_formula``) and rules for particular traced ``jit`` calls, found
by identity, never by a function's name. Registering a second rule for the same primitive or call
is a ``ValueError`` naming it: nothing is overwritten. ``RULES`` is the registry every count reads;
``conv_record`` and ``dot_record`` are its two rules, ``fast_depthwise`` adds a call rule for each
depthwise convolution it rewrites. ``ZERO_MAC_PRIMITIVES`` are known to cost no MACs;
``CALL_PRIMITIVES`` are followed into the one body they carry.

Tap counts (which kernel taps meet real input, which meet the stride's grid) are ``sepconv.cost``'s:
the closed form and the counter share them.
"""

from __future__ import annotations

import math
import weakref
from types import MappingProxyType
from typing import Callable

import numpy as np
from jax.extend import core

from ..cost import scatter_tap_count, tap_count
from .records import OpRecord
from .values import is_literal, size

__all__ = ["Rules", "RULES", "COST_RULES", "CALL_RULES", "register_cost_rule", "register_call_rule", "conv_record",
           "dot_record", "ZERO_MAC_PRIMITIVES", "CALL_PRIMITIVES", "JIT_PRIMITIVES", "REPEATING_PRIMITIVES",
           "ELEMENTWISE_MULS", "ELEMENTWISE_ADDS"]

#: Primitives that perform no multiply-accumulate. They are known, costed as 0 MACs.
ZERO_MAC_PRIMITIVES = frozenset("""
abs acos acosh add add_any and argmax argmin asin asinh atan atan2 atanh bitcast_convert_type broadcast_in_dim
cbrt ceil clamp concatenate convert_element_type copy copy_p cos cosh cumlogsumexp cummax cummin cumprod
cumsum custom_lin device_put div dynamic_slice dynamic_update_slice eq erf erf_inv erfc exp exp2 expm1
expand_dims floor gather ge gt imag integer_pow iota is_finite le lgamma log log1p logistic lt max min
mul ne neg nextafter not or pad population_count pow real reduce_and reduce_max reduce_min reduce_or
reduce_precision reduce_prod reduce_sum reduce_xor rem reshape rev round rsqrt scatter scatter-add
scatter_add select_n select_and_scatter_add select_and_gather_add shift_left shift_right_arithmetic
shift_right_logical sign sin sinh slice sort split sqrt square squeeze stop_gradient sub tan tanh transpose xor
reduce_window_sum reduce_window_max reduce_window_min reduce_window argsort top_k clz
random_bits random_seed random_wrap random_unwrap random_fold_in random_split random_clone threefry2x32
sharding_constraint mesh_cast optimization_barrier name pvary psum pmax pmin pmean all_gather all_to_all
ppermute psum_scatter axis_index reduce_scatter
psum_invariant all_gather_invariant all_gather_reduced pbroadcast unreduced_psum preduced reshard
reduced_vary_cast_p vary_unreduced_cast_p
lt_to le_to eq_to conj complex mulhi digamma polygamma igamma igammac igamma_grad_a bessel_i0e bessel_i1e zeta
regularized_incomplete_beta random_gamma scatter-max scatter-min scatter-mul scatter-sub scatter_mul
scatter_min scatter_max scatter_sub select_and_scatter approx_top_k broadcast_to zeros_like tile
rng_bit_generator rng_uniform philox2x32 philox4x32 threefry4x32 iota_2x32_shape
debug_callback debug_print inspect_sharding layout_constraint with_memory_space_constraint create_token
after_all shape_assertion dimension_size platform_index lu_pivots_to_permutation
""".split())

#: Call-like primitives whose cost is the cost of the one jaxpr they carry: the one list of them (a
#: rewrite that inlines calls reads it too).
CALL_PRIMITIVES = frozenset("""
pjit jit closed_call core_call remat checkpoint remat2 custom_jvp_call custom_vjp_call
custom_vjp_call_jaxpr xla_call named_call
""".split())

#: The call primitives of ``jax.jit``; one of them may carry a call rule (``Rules.register_call``).
JIT_PRIMITIVES = frozenset({"jit", "pjit"})
#: Primitives that carry one body run many times: ``scan`` (its length), ``shard_map`` and ``xla_pmap``
#: (their devices).
REPEATING_PRIMITIVES = frozenset({"scan", "shard_map", "xla_pmap"})


def _body(call) -> core.Jaxpr:
    """The ``Jaxpr`` of ``call``: a ``Jaxpr``, a ``ClosedJaxpr``, or what ``jax.jit(f).trace(...)`` returns."""
    if hasattr(call, "jaxpr") and not isinstance(call, core.Jaxpr):
        call = call.jaxpr
    if isinstance(call, core.ClosedJaxpr):
        call = call.jaxpr
    if not isinstance(call, core.Jaxpr):
        raise TypeError(f"register_call_rule needs the jaxpr of one traced call (jax.jit(f).trace(*args).jaxpr), "
                        f"got {type(call).__name__}")
    return call


class Rules:
    """Cost rules: one per primitive name, and one per traced ``jit`` call.

    Call rules are keyed by identity: ``id`` of the first result variable of the call's traced body
    -> ``(that variable, rule)``. A result variable is the same object in every copy of the body that
    dead-code elimination makes; the entry goes when the traced body is freed.
    """

    def __init__(self):
        self._primitives: dict[str, Callable] = {}
        self._calls: dict[int, tuple] = {}
        #: read-only views of the rules
        self.primitives = MappingProxyType(self._primitives)
        self.calls = MappingProxyType(self._calls)

    def register(self, primitive: str, rule: Callable | None = None):
        """Register ``rule(eqn) -> OpRecord`` for ``primitive`` (usable as a decorator). A primitive
        has one rule: registering a second is a ``ValueError``."""
        def decorate(rule):
            if primitive in self._primitives:
                raise ValueError(f"a cost rule for primitive {primitive!r} is registered already")
            self._primitives[primitive] = rule
            return rule
        return decorate(rule) if rule is not None else decorate

    def register_call(self, call, rule: Callable) -> None:
        """Cost the ``jit`` call whose body is ``call`` (``jax.jit(f).trace(*args).jaxpr``: the very
        object the traced program's equation carries) by ``rule(eqn) -> OpRecord`` instead of following
        its body: a rewrite whose body hides the multiply-accumulates it computes. The rule belongs to
        that one traced call, found by identity; another call of a function with the same name is not
        affected. Registering a second rule for the same call is a ``ValueError``."""
        body = _body(call)
        if not body.outvars or is_literal(body.outvars[0]):
            raise ValueError("register_call_rule needs a call whose first result is computed by its body")
        result = body.outvars[0]
        key = id(result)
        held = self._calls.get(key)
        if held is not None and held[0] is result:
            raise ValueError(f"a cost rule for this call (result {result}) is registered already")
        self._calls[key] = (result, rule)
        weakref.finalize(body, self._calls.pop, key, None)

    def for_primitive(self, name: str) -> Callable | None:
        """The rule of primitive ``name``, or ``None``."""
        return self._primitives.get(name)

    def for_call(self, eqn) -> Callable | None:
        """The rule registered for the traced call ``eqn`` carries, or ``None``."""
        call = eqn.params.get("jaxpr")
        if call is None:
            return None
        body = call.jaxpr if isinstance(call, core.ClosedJaxpr) else call
        if not body.outvars or is_literal(body.outvars[0]):
            return None
        held = self._calls.get(id(body.outvars[0]))
        return held[1] if held is not None and held[0] is body.outvars[0] else None

    def copy(self) -> "Rules":
        """A registry holding the same rules, to extend for some counts without changing these."""
        other = Rules()
        other._primitives.update(self._primitives)
        other._calls.update(self._calls)
        return other


#: The rules every count reads (``count`` and ``count_training``).
RULES = Rules()
#: Read-only views of ``RULES``: rules by primitive name, and rules of traced calls.
COST_RULES = RULES.primitives
CALL_RULES = RULES.calls
register_cost_rule = RULES.register
register_call_rule = RULES.register_call


def _complex_factor(*avals) -> int:
    """Real multiplies per product: a complex MAC is 4 real ones (``(a+bi)(c+di)``), a real times a
    complex value 2, a real MAC 1."""
    return 2 ** sum(bool(np.issubdtype(a.dtype, np.complexfloating)) for a in avals)


def _in_transpose(eqn) -> bool:
    return "transpose(" in str(eqn.source_info.name_stack)


@RULES.register("conv_general_dilated")
def conv_record(eqn, backward: bool | None = None, role: str | None = None) -> OpRecord:
    """A convolution's MACs (the contract page has the rules and why) and, for XLA's count, the
    products on real input only (``macs_excluding_padding``).

    Per spatial dimension, with input ``I``, kernel ``K`` and output ``O`` positions: a forward
    convolution counts ``O * K`` (every tap of every output, padding taps included); one with input
    dilation counts the input values' taps (``I * K`` at stride 1, fewer when the stride skips some);
    a convolution of a gradient (inside ``transpose``) relates a layer's input, kernel and output and
    counts as its layer. With its ``role`` known (``count_training``) that is exact: a weight gradient
    (the kernel is the equation's output) counts the output's taps over the cotangent, ``O * K``, or
    the input's, ``I * K``, for a transposed layer (input dilation); an input gradient (the kernel is
    the equation's kernel) counts the cotangent's taps, ``I * K`` of the equation's input, or the
    output's, ``O * K``, for a transposed layer (a stride). Without it (the gradient of a function)
    the fewest of the three pairings is taken, the same number whenever the kernel is no larger than
    the feature maps.
    """
    lhs, rhs = (v.aval for v in eqn.invars)
    out = eqn.outvars[0].aval
    p = eqn.params
    if backward is None:
        backward = _in_transpose(eqn)
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    in_per_group = rhs.shape[rhs_spec[1]]
    spatial = range(len(lhs_spec) - 2)
    sizes = [lhs.shape[lhs_spec[2 + i]] for i in spatial]
    kernels = [rhs.shape[rhs_spec[2 + i]] for i in spatial]
    outs = [out.shape[out_spec[2 + i]] for i in spatial]
    # products per pair of (output position, tap): batch x output channels x input channels per group
    per_pair = out.shape[out_spec[0]] * out.shape[out_spec[1]] * in_per_group * _complex_factor(lhs, rhs)
    strides, lhs_dil, rhs_dil = p["window_strides"], p["lhs_dilation"], p["rhs_dilation"]
    if size(out) == 0 or size(lhs) == 0 or size(rhs) == 0:
        macs = real = 0  # an empty output (a kernel larger than its input): nothing is computed
    else:
        gather = math.prod(outs) * math.prod(kernels)
        scatter = math.prod(scatter_tap_count(sizes[i], kernels[i], strides[i], p["padding"][i][0], rhs_dil[i],
                                          lhs_dil[i]) for i in spatial)
        pairs = math.prod(sizes) * math.prod(outs)
        dilated_input = any(d != 1 for d in lhs_dil)
        if role == "weight_grad":
            taps = pairs if dilated_input else gather
        elif role == "input_grad":
            taps = gather if any(s != 1 for s in strides) else scatter
        elif backward:
            taps = min(gather, scatter, pairs)
        elif dilated_input:
            taps = scatter
        else:
            taps = gather
        macs = per_pair * taps
        real = per_pair * math.prod(tap_count(sizes[i], kernels[i], strides[i], *p["padding"][i], rhs_dil[i],
                                              lhs_dil[i]) for i in spatial)
    return OpRecord("conv_general_dilated", tuple(lhs.shape), tuple(rhs.shape), tuple(out.shape),
                    int(p["feature_group_count"]), int(macs), int(real))


@RULES.register("dot_general")
def dot_record(eqn) -> OpRecord:
    """``prod(output) * prod(contracted dimensions)`` MACs, a complex product 4 real ones. A product that
    contracts nothing (an outer product, ``einsum('i,j->ij')``) is 1 MAC per output value: the weight
    gradient of an unbatched layer has that form and must cost its forward MACs."""
    lhs, rhs = (v.aval for v in eqn.invars)
    out = eqn.outvars[0].aval
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    macs = size(out) * math.prod(lhs.shape[d] for d in lhs_contract) * _complex_factor(lhs, rhs)
    return OpRecord("dot_general", tuple(lhs.shape), tuple(rhs.shape), tuple(out.shape), 1, int(macs), int(macs))


#: Element-wise primitives whose output elements are reported as multiplications / additions.
ELEMENTWISE_MULS = frozenset({"mul"})
ELEMENTWISE_ADDS = frozenset({"add", "sub", "add_any"})

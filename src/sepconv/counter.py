"""Exact cost counting from the computation itself.

``count(fn, *args)`` traces ``fn`` (any JAX function, or a Flax NNX module called on ``args``) to a
jaxpr and costs it in separate passes: a walk that lists every equation with how many times it
runs and the module it belongs to; the cost rules, one per primitive; the liveness of activation
memory. The counting contract (the book's page "What the counter counts" has the whole table):

* **MACs** are the multiply-accumulates of contractions, the papers' "Mult-Adds":
  ``conv_general_dilated``: ``prod(out_shape) * C_in_per_group * prod(kernel_spatial)``, every tap
  of every output, padding taps included, for any stride, dilation, batch, feature or batch
  groups; with input dilation (a transposed convolution) the inserted zeros are not multiplied:
  ``prod(input) * prod(kernel_spatial) * C_out / groups`` at stride 1, only the pairs on the
  stride's grid with a stride; a convolution of a gradient costs its forward layer's MACs; an empty
  output costs nothing. ``dot_general``: ``prod(out_shape) * prod(contracted dims)`` (an outer
  product: 1 per output value). A complex MAC is 4 real ones. ``FLOPs = 2 * MACs``.
* **Element-wise arithmetic** (BatchNorm, activations, gating, a product written by hand) is not
  a MAC in any paper's table. It is reported apart, never hidden: ``elementwise_muls`` counts the
  elements ``mul`` produces, ``elementwise_adds`` those of ``add``/``sub`` and the additions of
  ``reduce_sum``. A contraction written as ``(a[:, :, None] * b[None]).sum(1)`` shows there.
* Only live code is counted: equations whose results nothing uses (as in a gradient that
  discards the forward pass's value) are dropped first, as XLA drops them.
* Calls (``jit``, ``custom_jvp_call``, ``remat``...) are followed; ``scan`` multiplies its body
  by its length; ``shard_map`` (and ``pmap``, which JAX writes as one) by the number of devices
  it runs on, so the count is the whole program's. A ``cond`` whose branches have the same MACs
  costs those; a ``while`` whose body has no MACs costs none. RNG primitives cost nothing.
* Everything else a rule does not cover is listed in ``CountResult.uncosted``, never skipped:
  ``complete`` says whether ``macs`` is exact.

Rules live in ``COST_RULES`` (by primitive) and ``CALL_RULES`` (for one traced ``jit`` call, by
identity, never by a function's name), like fvcore's op handles or torch's
``register_flop_formula``; registering a second rule for the same primitive or call is an error.
``fast_depthwise`` registers a rule for each depthwise convolution it rewrites. Each costed
operation records the module path of the NNX layer that ran it (``features.3.conv_dw.conv``) and,
in a gradient, whether it is the forward pass, an input gradient or a weight gradient
(``count_training``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import jax
import numpy as np
from jax.extend import core

from .compat import replaced, variable_value
from .cost import tap_count
from .kinds import LayerKind, classify


__all__ = ["count", "count_macs", "count_training", "CountResult", "OpRecord", "parameter_counts", "pure_module",
           "sub_jaxprs", "register_cost_rule", "register_call_rule", "COST_RULES", "CALL_RULES",
           "ZERO_MAC_PRIMITIVES", "conv_record", "ROLES"]

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

#: Call-like primitives whose cost is the cost of the one jaxpr they carry.
CALL_PRIMITIVES = frozenset("""
pjit jit closed_call core_call remat checkpoint remat2 custom_jvp_call custom_vjp_call
custom_vjp_call_jaxpr xla_call named_call
""".split())

#: What a costed operation is in a gradient program (``count_training``); ``backward`` where the
#: two kinds of gradient cannot be told apart (a function, not a model).
ROLES = ("forward", "input_grad", "weight_grad", "backward")


@dataclass(frozen=True)
class OpRecord:
    """One multiply-accumulate operation: a convolution or a matrix product.

    ``macs`` is per execution; ``calls`` how many times the program runs it (``scan`` lengths,
    devices of a ``shard_map``); ``path`` the module (or ``jax.named_scope``) it ran in.
    """

    primitive: str
    input_shape: tuple
    kernel_shape: tuple
    output_shape: tuple
    feature_group_count: int
    macs: int
    macs_excluding_padding: int
    path: str = ""
    role: str = "forward"
    calls: int = 1

    @property
    def total_macs(self) -> int:
        return self.macs * self.calls

    @property
    def kind(self) -> LayerKind:
        """What the operation is (``sepconv.kinds``), read from its shapes as a forward layer
        (channels last, an HWIO kernel): ``linear`` (a matrix product), ``depthwise`` (one input
        channel per group; the output channels are not asked), ``grouped``, ``pointwise`` (1x1) or
        ``full``. A gradient's operations have other shapes; classify them by the forward operation
        of the same ``path``."""
        if self.primitive != "conv_general_dilated":
            return LayerKind.LINEAR
        return classify(self.kernel_shape[:-2], self.feature_group_count, self.input_shape[-1])

    def to_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        d["total_macs"] = self.total_macs
        return d


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
    elementwise_muls: int = 0
    elementwise_adds: int = 0

    @property
    def flops(self) -> int:
        """``2 * macs``: one multiply and one add per MAC."""
        return 2 * self.macs

    @property
    def complete(self) -> bool:
        return not self.uncosted

    def macs_by_role(self) -> dict:
        """MACs per role (``ROLES``), for a gradient program."""
        out = {}
        for op in self.ops:
            out[op.role] = out.get(op.role, 0) + op.total_macs
        return out

    def layers(self) -> list[dict]:
        """One row per module path (or named scope) and role: its MACs and operations, in program order."""
        rows = {}
        for op in self.ops:
            row = rows.setdefault((op.path, op.role), {"path": op.path, "role": op.role, "macs": 0, "ops": 0})
            row["macs"] += op.total_macs
            row["ops"] += op.calls
        return list(rows.values())

    def to_dict(self) -> dict:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "macs_excluding_padding": self.macs_excluding_padding,
            "params": self.params,
            "params_excluding_norm": self.params_excluding_norm,
            "activations": self.activations,
            "peak_activation_bytes": self.peak_activation_bytes,
            "elementwise_muls": self.elementwise_muls,
            "elementwise_adds": self.elementwise_adds,
            "complete": self.complete,
            "uncosted": dict(self.uncosted),
            "macs_by_role": self.macs_by_role(),
            "by_primitive": {k: v.__dict__ for k, v in self.by_primitive.items()},
            "ops": [op.to_dict() for op in self.ops],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_csv(self) -> str:
        """Every costed operation as CSV (path, role, primitive, shapes, groups, MACs per call, calls,
        total), then the totals: a row ``(total), all`` with ``macs``, and for a gradient program one
        row per role. Every row says whether the count is ``complete``; the total rows list what is
        ``uncosted`` (``primitive=calls``, separated by ``;``). Summing the operation rows gives the total."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        complete = str(self.complete).lower()
        writer.writerow(["path", "role", "primitive", "input_shape", "kernel_shape", "output_shape", "groups",
                         "macs", "calls", "total_macs", "complete", "uncosted"])
        for op in self.ops:
            writer.writerow([op.path, op.role, op.primitive, "x".join(map(str, op.input_shape)),
                             "x".join(map(str, op.kernel_shape)), "x".join(map(str, op.output_shape)),
                             op.feature_group_count, op.macs, op.calls, op.total_macs, complete, ""])
        uncosted = ";".join(f"{k}={v}" for k, v in sorted(self.uncosted.items()))
        totals = [("all", self.macs)]
        roles = self.macs_by_role()
        if set(roles) - {"forward"}:
            totals += [(role, roles[role]) for role in ROLES if role in roles]
        for role, macs in totals:
            writer.writerow([TOTAL_PATH, role, "", "", "", "", "", macs, "", macs, complete, uncosted])
        return buffer.getvalue()


#: The ``path`` of the total rows of ``CountResult.to_csv``.
TOTAL_PATH = "(total)"


def _size(aval) -> int:
    return int(math.prod(aval.shape))


def _nbytes(aval) -> int:
    """Bytes of a value; ``dtype.itemsize`` also covers JAX's extended dtypes (PRNG keys)."""
    return _size(aval) * aval.dtype.itemsize


# ----------------------------------------------------------------------------------------------------
# Cost rules
# ----------------------------------------------------------------------------------------------------

#: Rules by primitive name: ``rule(eqn) -> OpRecord`` for an equation that multiply-accumulates.
COST_RULES: dict[str, Callable] = {}
#: Rules for particular ``jit`` calls, keyed by identity: ``id`` of the first result variable of the
#: call's traced body -> ``(that variable, rule)``; ``rule(eqn) -> OpRecord``. Never by a function's
#: name, which any program may reuse. A result variable is the same object in every copy of the body
#: that dead-code elimination makes; the entry goes when the traced body is freed.
CALL_RULES: dict[int, tuple] = {}


def register_cost_rule(primitive: str, rule: Callable | None = None):
    """Register ``rule(eqn) -> OpRecord`` for ``primitive`` (usable as a decorator). A primitive
    has one rule: registering a second is a ``ValueError``."""
    def decorate(rule):
        if primitive in COST_RULES:
            raise ValueError(f"a cost rule for primitive {primitive!r} is registered already")
        COST_RULES[primitive] = rule
        return rule
    return decorate(rule) if rule is not None else decorate


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


def register_call_rule(call, rule: Callable) -> None:
    """Cost the ``jit`` call whose body is ``call`` (``jax.jit(f).trace(*args).jaxpr``: the very
    object the traced program's equation carries) by ``rule(eqn) -> OpRecord`` instead of following
    its body: a rewrite whose body hides the multiply-accumulates it computes. The rule belongs to
    that one traced call, found by identity; another call of a function with the same name is not
    affected. Registering a second rule for the same call is a ``ValueError``."""
    body = _body(call)
    if not body.outvars or _literal(body.outvars[0]):
        raise ValueError("register_call_rule needs a call whose first result is computed by its body")
    result = body.outvars[0]
    key = id(result)
    held = CALL_RULES.get(key)
    if held is not None and held[0] is result:
        raise ValueError(f"a cost rule for this call (result {result}) is registered already")
    CALL_RULES[key] = (result, rule)
    weakref.finalize(body, CALL_RULES.pop, key, None)


def _call_rule(eqn) -> Callable | None:
    call = eqn.params.get("jaxpr")
    if call is None:
        return None
    body = call.jaxpr if isinstance(call, core.ClosedJaxpr) else call
    if not body.outvars or _literal(body.outvars[0]):
        return None
    held = CALL_RULES.get(id(body.outvars[0]))
    return held[1] if held is not None and held[0] is body.outvars[0] else None


def _complex_factor(*avals) -> int:
    """Real multiplies per product: a complex MAC is 4 real ones (``(a+bi)(c+di)``), a real times a
    complex value 2, a real MAC 1."""
    return 2 ** sum(bool(np.issubdtype(a.dtype, np.complexfloating)) for a in avals)


def _scatter_taps(size: int, kernel: int, stride: int, lo: int, dilation: int, input_dilation: int) -> int:
    """Pairs ``(input value i, tap k)`` of one dimension that meet on the stride's grid: output position
    ``(i * input_dilation + lo - k * dilation) / stride`` an integer. ``size * kernel`` at stride 1 (each
    input value meets every tap: a transposed convolution); with a stride, the pairs it skips are not
    products. The output's range is not asked (a transposed convolution's cropped border still counts,
    as PyTorch and fvcore count one)."""
    if size <= 0 or kernel <= 0:
        return 0
    if stride == 1:
        return size * kernel
    from .cost import _congruent

    return sum(_congruent(0, size - 1, input_dilation, (k * dilation - lo) % stride, stride) for k in range(kernel))


def _in_transpose(eqn) -> bool:
    return "transpose(" in str(eqn.source_info.name_stack)


@register_cost_rule("conv_general_dilated")
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
    if _size(out) == 0 or _size(lhs) == 0 or _size(rhs) == 0:
        macs = real = 0  # an empty output (a kernel larger than its input): nothing is computed
    else:
        gather = math.prod(outs) * math.prod(kernels)
        scatter = math.prod(_scatter_taps(sizes[i], kernels[i], strides[i], p["padding"][i][0], rhs_dil[i],
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


@register_cost_rule("dot_general")
def dot_record(eqn) -> OpRecord:
    """``prod(output) * prod(contracted dimensions)`` MACs, a complex product 4 real ones. A product that
    contracts nothing (an outer product, ``einsum('i,j->ij')``) is 1 MAC per output value: the weight
    gradient of an unbatched layer has that form and must cost its forward MACs."""
    lhs, rhs = (v.aval for v in eqn.invars)
    out = eqn.outvars[0].aval
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    macs = _size(out) * math.prod(lhs.shape[d] for d in lhs_contract) * _complex_factor(lhs, rhs)
    return OpRecord("dot_general", tuple(lhs.shape), tuple(rhs.shape), tuple(out.shape), 1, int(macs), int(macs))


#: Element-wise primitives whose output elements are reported as multiplications / additions.
_ELEMENTWISE_MULS = frozenset({"mul"})
_ELEMENTWISE_ADDS = frozenset({"add", "sub", "add_any"})


# ----------------------------------------------------------------------------------------------------
# Pass 1: the walk
# ----------------------------------------------------------------------------------------------------

def sub_jaxprs(eqn):
    """The jaxprs an equation carries in its parameters (also inside tuples, as ``cond`` has them)."""
    for value in eqn.params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, core.Jaxpr):
                yield v


_TRANSFORM = re.compile(r"^[A-Za-z_]+\((.*)\)$")


def _stack(eqn, outer: str = "") -> str:
    """The equation's whole name stack: the stacks of the calls, loops and branches it sits in
    (``outer``), then its own. A body's equations carry only their stack within the body."""
    own = str(eqn.source_info.name_stack)
    return "/".join(part for part in (outer, own) if part)


def _scope(stack: str) -> tuple[str, bool]:
    """``(innermost scope, in a transpose)`` from a name stack, e.g.
    ``transpose(jvp(features.3))/features.3.conv_dw`` -> ``("features.3.conv_dw", True)``."""
    backward = "transpose(" in stack
    last = stack.rsplit("/", 1)[-1]
    while True:
        match = _TRANSFORM.match(last)
        if not match:
            break
        last = match.group(1)
    return last.rsplit("/", 1)[-1], backward


def _shard_count(eqn) -> int:
    """How many devices run a ``shard_map`` body: the sizes of the mesh axes it makes manual."""
    mesh = eqn.params["mesh"]
    manual = eqn.params.get("newly_manual_axes") or eqn.params.get("manual_axes") or mesh.axis_names
    sizes = dict(zip(mesh.axis_names, mesh.axis_sizes)) if hasattr(mesh, "axis_sizes") else dict(mesh.shape)
    return int(math.prod(sizes[a] for a in manual))


@dataclass
class _Site:
    eqn: Any
    calls: int
    record: OpRecord | None = None
    stack: str = ""
    ruled: bool = False  # costed by a call rule (``record`` is final)


def _walk(jaxpr, calls: int, sites: list, uncosted: dict, outer: str = "") -> None:
    """Append every equation of ``jaxpr`` (following calls) to ``sites``, with how often it runs and
    its whole name stack (``outer``: the stacks of the equations it is nested in)."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        stack = _stack(eqn, outer)
        call_rule = _call_rule(eqn) if name in ("jit", "pjit") else None
        if call_rule is not None:
            sites.append(_Site(eqn, calls, call_rule(eqn), stack, True))
        elif name in CALL_PRIMITIVES or name in ("scan", "shard_map", "xla_pmap"):
            subs = list(sub_jaxprs(eqn))
            if len(subs) != 1:
                uncosted[name] = uncosted.get(name, 0) + calls
                continue
            times = calls
            if name == "scan":
                times *= int(eqn.params["length"])
            elif name == "shard_map":
                times *= _shard_count(eqn)
            elif name == "xla_pmap":
                times *= int(eqn.params["axis_size"])
            _walk(subs[0], times, sites, uncosted, stack)
        elif name in ("cond", "while"):
            branches = list(sub_jaxprs(eqn))
            costs = []
            for branch in branches:
                inner_sites, inner_uncosted = [], {}
                _walk(branch, calls, inner_sites, inner_uncosted, stack)
                costs.append((inner_sites, inner_uncosted))
            macs = [sum(_site_record(s).macs * s.calls for s in inner if _site_record(s) is not None)
                    for inner, _ in costs]
            complete = all(not u for _, u in costs)
            if name == "while":
                # cond_jaxpr and body_jaxpr: without a known trip count only a loop with no MACs is exact
                if complete and not any(macs):
                    sites.append(_Site(eqn, calls, stack=stack))
                else:
                    uncosted[name] = uncosted.get(name, 0) + calls
            elif complete and len(set(macs)) == 1:
                sites.extend(costs[int(np.argmax([len(s) for s, _ in costs]))][0])
            else:
                uncosted[name] = uncosted.get(name, 0) + calls
        else:
            sites.append(_Site(eqn, calls, stack=stack))


def _site_record(site: _Site) -> OpRecord | None:
    if not site.ruled and site.record is None and site.eqn.primitive.name in COST_RULES:
        rule = COST_RULES[site.eqn.primitive.name]
        if rule is conv_record:
            site.record = conv_record(site.eqn, backward="transpose(" in site.stack)
        else:
            site.record = rule(site.eqn)
    return site.record


# ----------------------------------------------------------------------------------------------------
# Pass 2: costing, and pass 3: activation memory
# ----------------------------------------------------------------------------------------------------

def _cost(sites: list, result: CountResult, role_of: Callable) -> None:
    for site in sites:
        eqn, calls = site.eqn, site.calls
        name = eqn.primitive.name
        record = _site_record(site)
        label = "jit" if name in ("jit", "pjit") else name
        stats = result.by_primitive.setdefault(label, PrimitiveCount(label))
        stats.calls += calls
        stats.output_elements += calls * sum(_size(v.aval) for v in eqn.outvars)
        if record is not None:
            path, backward = _scope(site.stack)
            role = role_of(eqn, backward)
            if not site.ruled and name == "conv_general_dilated" and role in ("weight_grad", "input_grad"):
                record = conv_record(eqn, backward, role)
            record = OpRecord(record.primitive, record.input_shape, record.kernel_shape, record.output_shape,
                              record.feature_group_count, record.macs, record.macs_excluding_padding, path,
                              role, calls)
            result.ops.append(record)
            result.macs += record.total_macs
            result.macs_excluding_padding += calls * record.macs_excluding_padding
            result.activations += calls * math.prod(record.output_shape)
            stats.macs += record.total_macs
        elif name in _ELEMENTWISE_MULS:
            result.elementwise_muls += calls * _size(eqn.outvars[0].aval)
        elif name in _ELEMENTWISE_ADDS:
            result.elementwise_adds += calls * _size(eqn.outvars[0].aval)
        elif name == "reduce_sum":
            result.elementwise_adds += calls * (_size(eqn.invars[0].aval) - _size(eqn.outvars[0].aval))
        elif name not in ZERO_MAC_PRIMITIVES and name not in ("while",):
            result.uncosted[label] = result.uncosted.get(label, 0) + calls


def _literal(v) -> bool:
    return isinstance(v, core.Literal)


def _peak_bytes(jaxpr, tainted: set, own_inputs: bool = False) -> int:
    """Peak bytes of simultaneously live values derived from the data inputs (``tainted``).

    With ``own_inputs`` the jaxpr's data inputs are live until their last use (the top level);
    otherwise they belong to the caller. A call's body contributes its own peak while it runs.
    """
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not _literal(v):
                last_use[v] = i
    outputs = {v for v in jaxpr.outvars if not _literal(v)}
    live = {v: _nbytes(v.aval) for v in jaxpr.invars if own_inputs and v in tainted}
    current = peak = sum(live.values())
    for i, eqn in enumerate(jaxpr.eqns):
        is_data = any(v in tainted for v in eqn.invars if not _literal(v))
        out_bytes = sum(_nbytes(v.aval) for v in eqn.outvars) if is_data else 0
        inner_peak = 0
        for inner in sub_jaxprs(eqn):
            offset = len(eqn.invars) - len(inner.invars)
            inner_tainted = {iv for ov, iv in zip(eqn.invars[max(offset, 0):], inner.invars)
                             if not _literal(ov) and ov in tainted}
            inner_peak = max(inner_peak, _peak_bytes(inner, inner_tainted))
        if is_data:
            tainted.update(eqn.outvars)
        peak = max(peak, current + max(out_bytes, inner_peak))
        for v in eqn.outvars:
            if v in tainted:
                live[v] = _nbytes(v.aval)
                current += live[v]
        for v in eqn.invars:
            if not _literal(v) and last_use.get(v) == i and v in live and v not in outputs:
                current -= live.pop(v)
    return peak


# ----------------------------------------------------------------------------------------------------
# Models: parameters, pure functions, module paths
# ----------------------------------------------------------------------------------------------------

def _value_size(variable) -> int:
    value = variable_value(variable)
    return int(math.prod(np.shape(value))) if not hasattr(value, "shape") else int(math.prod(value.shape))


def parameter_counts(model) -> tuple[int, int]:
    """``(all parameters, parameters outside normalization layers)`` of an NNX module.

    Published tables count convolution and fully connected weights and biases but not
    BatchNorm's scale and offset; the second number follows them. Works on abstract
    (``nnx.eval_shape``) models: only shapes are read.
    """
    from flax import nnx

    norm_types = (nnx.BatchNorm, nnx.LayerNorm, nnx.GroupNorm, nnx.RMSNorm)
    total = norm = 0
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            own = sum(_value_size(v) for v in vars(node).values() if isinstance(v, nnx.Param))
            total += own
            if isinstance(node, norm_types):
                norm += own
    return total, total - norm


_PATH_TAG = "_sepconv_counter_path"


@contextlib.contextmanager
def _module_scopes(root):
    """While tracing, run every submodule of ``root`` inside ``jax.named_scope(<its path>)``, so each
    equation's name stack says which layer it belongs to (``features.3.conv_dw.conv``)."""
    from flax import nnx

    paths, classes, tagged = {}, set(), []
    for path, node in nnx.iter_graph(root):  # one walk of the graph (a large model has thousands of nodes)
        if isinstance(node, nnx.Module):
            classes.add(type(node))
            if path:
                paths[id(node)] = ".".join(map(str, path))
                # also as a static attribute, which copies of the module made by ``nnx.remat``,
                # ``nnx.scan`` or ``nnx.vmap`` (a split and a merge) keep
                vars(node)[_PATH_TAG] = paths[id(node)]
                tagged.append(node)
    patched = []
    for cls in classes:
        if not any("__call__" in c.__dict__ for c in cls.__mro__ if c is not object):
            continue  # not callable (a container such as nnx.List)
        own = cls.__dict__.get("__call__")
        original = cls.__call__

        def call(self, *args, __original=original, **kwargs):
            path = paths.get(id(self)) or vars(self).get(_PATH_TAG)
            if path is None:
                return __original(self, *args, **kwargs)
            with jax.named_scope(path):
                return __original(self, *args, **kwargs)

        cls.__call__ = call
        patched.append((cls, own))
    try:
        yield
    finally:
        for node in tagged:
            vars(node).pop(_PATH_TAG, None)
        for cls, own in patched:
            if own is None:
                del cls.__call__
            else:
                cls.__call__ = own


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


def _is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def _split_static(args, kwargs):
    """Leaves of ``(args, kwargs)`` that are arrays (or shapes) are traced; all others are static."""
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    traced = [i for i, leaf in enumerate(leaves) if _is_array(leaf)]

    def rebuild(arrays):
        values = list(leaves)
        for i, a in zip(traced, arrays):
            values[i] = a
        return jax.tree_util.tree_unflatten(treedef, values)

    return [leaves[i] for i in traced], rebuild


def _trace(fn, args, kwargs, model=None, scoped=True):
    """The closed jaxpr of ``fn(*args, **kwargs)`` (a module's state first, if ``model``), and its data inputs."""
    arrays, rebuild = _split_static(args, kwargs)
    if model is not None:
        from flax import nnx

        graphdef, state = nnx.split(model)

        def traced(state, *arrays):
            merged = nnx.merge(graphdef, state)
            a, k = rebuild(arrays)
            with _module_scopes(merged) if scoped else contextlib.nullcontext():
                return fn(merged, *a, **k)

        closed = jax.make_jaxpr(traced)(state, *arrays)
        n_state = len(jax.tree_util.tree_leaves(state))
        return closed, closed.jaxpr.invars[n_state:]

    def traced(*arrays):
        a, k = rebuild(arrays)
        return fn(*a, **k)

    closed = jax.make_jaxpr(traced)(*arrays)
    return closed, closed.jaxpr.invars


def _live_code(jaxpr):
    """``jaxpr`` without the equations whose results are never used, as XLA compiles it: a gradient
    program, for instance, keeps a forward pass that nothing reads. Falls back to ``jaxpr``
    where this JAX lacks the (internal) pass."""
    try:
        from jax._src.interpreters import partial_eval as pe

        live, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
    except Exception:  # pragma: no cover - depends on JAX internals
        return jaxpr
    return live


def _result(closed, data_inputs, role_of) -> CountResult:
    result = CountResult()
    sites = []
    jaxpr = _live_code(closed.jaxpr)
    data = {new for old, new in zip(closed.jaxpr.invars, jaxpr.invars) if old in set(data_inputs)}
    _walk(jaxpr, 1, sites, result.uncosted)
    _cost(sites, result, role_of)
    result.peak_activation_bytes = _peak_bytes(jaxpr, data, own_inputs=True)
    return result


def _plain_role(eqn, backward: bool) -> str:
    return "backward" if backward else "forward"


def count(fn: Callable | Any, *args, **kwargs) -> CountResult:
    """Trace ``fn(*args, **kwargs)`` and count its MACs, activations and (for a module) parameters.

    ``fn`` may be any JAX-traceable function or a Flax NNX module (abstract ones included); a
    module is split into its graph and state so that its parameters are inputs, not
    activations. Arguments that are arrays or ``jax.ShapeDtypeStruct`` (shapes without data) are
    traced; every other argument (an int, a string, a flag) is passed as a static Python value.
    Activation memory is the peak of simultaneously live intermediate values derived from the
    traced arguments (parameters excluded), in bytes.
    """
    from flax import nnx

    if isinstance(fn, nnx.Module):
        closed, data = _trace(lambda m, *a, **k: m(*a, **k), args, kwargs, model=fn)
        result = _result(closed, data, _plain_role)
        result.params, result.params_excluding_norm = parameter_counts(fn)
        return result
    if not callable(fn):
        raise TypeError(f"count needs a callable or an nnx.Module, got {type(fn).__name__}")
    closed, data = _trace(fn, args, kwargs)
    return _result(closed, data, _plain_role)


def count_macs(fn: Callable | Any, *args, **kwargs) -> int:
    """Exact MACs of ``fn(*args)``; raises ``ValueError`` if any primitive could not be costed."""
    result = count(fn, *args, **kwargs)
    if not result.complete:
        raise ValueError(f"cannot cost primitives {sorted(result.uncosted)}; MACs would be incomplete")
    return result.macs


def _cross_entropy(logits, labels):
    import jax.numpy as jnp

    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))


def _training_input(x, labels, loss):
    """``(x, labels)`` checked: an array (or shapes) with a batch axis, integer labels of shape
    ``(batch,)`` for the default loss. A ``ValueError`` naming the value otherwise."""
    import jax.numpy as jnp

    if not _is_array(x) or not hasattr(x, "shape"):
        raise ValueError(f"x must be an array or a jax.ShapeDtypeStruct with a batch axis, got {type(x).__name__} "
                         f"{_short(x)}")
    if len(x.shape) < 1:
        raise ValueError(f"x must have a batch axis, got shape {tuple(x.shape)}")
    batch = x.shape[0]
    if labels is None:
        return x, jax.ShapeDtypeStruct((batch,), jnp.int32)
    if not _is_array(labels) or not hasattr(labels, "shape"):
        raise ValueError(f"labels must be an array or a jax.ShapeDtypeStruct, got {type(labels).__name__} "
                         f"{_short(labels)}")
    if loss is None and (not np.issubdtype(labels.dtype, np.integer) or tuple(labels.shape) != (batch,)):
        raise ValueError(f"labels must be integer class indices of shape ({batch},) for the default cross-entropy "
                         f"loss, got {labels.dtype} of shape {tuple(labels.shape)} (pass loss= for other labels)")
    return x, labels


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def count_training(model, x, labels=None, loss: Callable | None = None) -> CountResult:
    """Count one training step's gradient: ``jax.value_and_grad`` of ``loss(model(x), labels)`` with
    respect to the model's parameters, the model in training mode (BatchNorm on batch statistics).

    Every costed operation carries its role, read from what its operands depend on: ``forward``
    (nothing of the gradient: the forward pass, and its recomputation under ``remat``);
    ``input_grad`` (the gradient flowing back to a layer's input: one operand is the cotangent, the
    other comes from the parameters alone); ``weight_grad`` (a parameter's gradient: cotangent
    and activations). The gradient is ``jax.vjp``'s with its seed an input of the traced program, so
    that what depends on it is known also inside ``remat``, ``scan`` and ``cond``.
    ``peak_activation_bytes`` is the most memory the step's values derived from the data hold at
    once: activations kept for the backward pass, cotangents and gradients. ``loss`` defaults to
    softmax cross-entropy on integer ``labels`` (shape ``(batch,)``).
    """
    from flax import nnx

    if not isinstance(model, nnx.Module):
        raise TypeError(f"count_training needs an nnx.Module, got {type(model).__name__}")
    x, labels = _training_input(x, labels, loss)
    loss = loss or _cross_entropy
    graphdef, state = nnx.split(model)

    def step(state, x, labels, seed):
        merged = nnx.merge(graphdef, state)
        merged.train()
        definition, params, rest = nnx.split(merged, nnx.Param, ...)

        def objective(params):
            # fresh variables for the other state (BatchNorm's statistics), made here, so that the
            # model may update them inside the differentiated function
            m = nnx.merge(definition, params, jax.tree.map(lambda a: a, rest))
            with _module_scopes(m):
                return loss(m(x), labels)

        value, pullback = jax.vjp(objective, params)
        return value, pullback(seed.astype(value.dtype))[0]

    seed = jax.ShapeDtypeStruct((), np.float32)
    with _cheap_missing_sharding():
        closed = jax.make_jaxpr(step)(state, x, labels, seed)
    n_state = len(jax.tree_util.tree_leaves(state))
    invars = closed.jaxpr.invars
    data = set(invars[n_state:n_state + 2])
    from_data = _dependents(closed.jaxpr, data)
    from_params = _dependents(closed.jaxpr, set(invars[:n_state]))
    from_seed = _dependents(closed.jaxpr, {invars[-1]})

    def role_of(eqn, backward):
        operands = [v for v in eqn.invars if not _literal(v)]
        if not any(v in from_seed for v in operands):
            return "forward"
        param_only = any(v in from_params and v not in from_data and v not in from_seed for v in operands)
        return "input_grad" if param_only else "weight_grad"

    result = _result(closed, data, role_of)
    result.params, result.params_excluding_norm = parameter_counts(model)
    return result


def _cheap_missing_sharding():
    """While a training step is traced, a tracer asked for its ``sharding`` (Flax does, each time
    BatchNorm stores its running statistics) raises its AttributeError without first searching the
    program traced so far for the error's origin: that search grows with the program, and made
    counting a large EfficientNet's training step take five times as long (38 s instead of 8 s for
    B7). Only the wording of a tracing error changes. Nothing is patched on a JAX without the method.
    """
    try:
        from jax._src.interpreters.partial_eval import DynamicJaxprTracer as tracer
    except ImportError:  # pragma: no cover - depends on JAX internals
        tracer = None
    return replaced(tracer, "_origin_msg", lambda self: "")


def _dependents(jaxpr, sources: set) -> set:
    """Variables of ``jaxpr``, and of every body nested in it (calls, ``scan``, ``cond``, ``while``,
    ``shard_map``), whose value depends on ``sources``. A loop's carry depends on them if its initial
    value or the body's new value does (iterated to a fixed point)."""
    found = set(sources)

    def hit(v) -> bool:
        return not _literal(v) and v in found

    def bind(pairs) -> bool:
        """Mark inner variables whose outer counterpart depends; whether anything new was marked."""
        new = [iv for ov, iv in pairs if hit(ov) and iv not in found]
        found.update(new)
        return bool(new)

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            name = eqn.primitive.name
            subs = list(sub_jaxprs(eqn))
            if not subs:
                if any(hit(v) for v in eqn.invars):
                    found.update(eqn.outvars)
            elif name == "scan":
                body = subs[0]
                n_consts, n_carry = eqn.params["num_consts"], eqn.params["num_carry"]
                bind(zip(eqn.invars, body.invars))
                while True:
                    visit(body)
                    if not bind(zip(body.outvars[:n_carry], body.invars[n_consts:n_consts + n_carry])):
                        break
                bind(zip(body.outvars, eqn.outvars))
            elif name == "while":
                cond, body = eqn.params["cond_jaxpr"].jaxpr, eqn.params["body_jaxpr"].jaxpr
                nc, nb = eqn.params["cond_nconsts"], eqn.params["body_nconsts"]
                carry = eqn.invars[nc + nb:]
                bind(zip(eqn.invars[:nc] + carry, cond.invars))
                bind(zip(eqn.invars[nc:nc + nb] + carry, body.invars))
                while True:
                    visit(body)
                    changed = bind(zip(body.outvars, body.invars[nb:]))
                    changed |= bind(zip(body.outvars, cond.invars[nc:]))
                    if not changed:
                        break
                visit(cond)
                data_dependent_stop = any(hit(v) for v in cond.outvars)
                for ov, iv, bv in zip(eqn.outvars, carry, body.outvars):
                    if data_dependent_stop or hit(iv) or hit(bv):
                        found.add(ov)
            elif name == "cond":
                index, operands = eqn.invars[0], eqn.invars[1:]
                for branch in subs:
                    bind(zip(operands, branch.invars))
                    visit(branch)
                for i, ov in enumerate(eqn.outvars):
                    if hit(index) or any(hit(branch.outvars[i]) for branch in subs):
                        found.add(ov)
            else:  # a call: its inputs are the last of the equation's
                for inner in subs:
                    offset = len(eqn.invars) - len(inner.invars)
                    bind(zip(eqn.invars[max(offset, 0):], inner.invars))
                    visit(inner)
                    if len(inner.outvars) == len(eqn.outvars):
                        bind(zip(inner.outvars, eqn.outvars))
                    elif any(hit(v) for v in eqn.invars):
                        found.update(eqn.outvars)

    visit(jaxpr)
    return found

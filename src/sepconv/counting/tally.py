"""Pass 2 of a count: the walked sites tallied into a ``CountResult`` by the rules."""

from __future__ import annotations

import math
from typing import Callable

from .records import CountResult, OpRecord, PrimitiveCount
from .rules import ELEMENTWISE_ADDS, ELEMENTWISE_MULS, JIT_PRIMITIVES, ZERO_MAC_PRIMITIVES, Rules, conv_record
from .values import size
from .walk import scope, site_record

__all__ = ["tally"]


def tally(sites: list, result: CountResult, role_of: Callable, rules: Rules) -> None:
    """Add the walked ``sites`` into ``result``: each record (with its module path and ``role_of(eqn,
    backward)``) into the MACs, element-wise multiplications and additions apart, every primitive no
    rule covers into ``uncosted``."""
    for site in sites:
        eqn, calls = site.eqn, site.calls
        name = eqn.primitive.name
        record = site_record(site, rules)
        label = "jit" if name in JIT_PRIMITIVES else name
        stats = result.by_primitive.setdefault(label, PrimitiveCount(label))
        stats.calls += calls
        stats.output_elements += calls * sum(size(v.aval) for v in eqn.outvars)
        if record is not None:
            path, backward = scope(site.stack)
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
        elif name in ELEMENTWISE_MULS:
            result.elementwise_muls += calls * size(eqn.outvars[0].aval)
        elif name in ELEMENTWISE_ADDS:
            result.elementwise_adds += calls * size(eqn.outvars[0].aval)
        elif name == "reduce_sum":
            result.elementwise_adds += calls * (size(eqn.invars[0].aval) - size(eqn.outvars[0].aval))
        elif name not in ZERO_MAC_PRIMITIVES and name not in ("while",):
            result.uncosted[label] = result.uncosted.get(label, 0) + calls

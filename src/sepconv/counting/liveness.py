"""Liveness of activation memory: the most bytes of values derived from the data held at once."""

from __future__ import annotations

from .values import is_literal, nbytes, sub_jaxprs

__all__ = ["peak_bytes"]


def peak_bytes(jaxpr, tainted: set, own_inputs: bool = False) -> int:
    """Peak bytes of simultaneously live values derived from the data inputs (``tainted``).

    With ``own_inputs`` the jaxpr's data inputs are live until their last use (the top level);
    otherwise they belong to the caller. A call's body contributes its own peak while it runs.
    """
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not is_literal(v):
                last_use[v] = i
    outputs = {v for v in jaxpr.outvars if not is_literal(v)}
    live = {v: nbytes(v.aval) for v in jaxpr.invars if own_inputs and v in tainted}
    current = peak = sum(live.values())
    for i, eqn in enumerate(jaxpr.eqns):
        is_data = any(v in tainted for v in eqn.invars if not is_literal(v))
        out_bytes = sum(nbytes(v.aval) for v in eqn.outvars) if is_data else 0
        inner_peak = 0
        for inner in sub_jaxprs(eqn):
            offset = len(eqn.invars) - len(inner.invars)
            inner_tainted = {iv for ov, iv in zip(eqn.invars[max(offset, 0):], inner.invars)
                             if not is_literal(ov) and ov in tainted}
            inner_peak = max(inner_peak, peak_bytes(inner, inner_tainted))
        if is_data:
            tainted.update(eqn.outvars)
        peak = max(peak, current + max(out_bytes, inner_peak))
        for v in eqn.outvars:
            if v in tainted:
                live[v] = nbytes(v.aval)
                current += live[v]
        for v in eqn.invars:
            if not is_literal(v) and last_use.get(v) == i and v in live and v not in outputs:
                current -= live.pop(v)
    return peak

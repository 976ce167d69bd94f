"""Dependence: which variables of a program (and of every body nested in it) derive from given ones.

``count_training`` reads a gradient operation's role from it: what depends on the cotangent seed,
on the parameters, on the data.
"""

from __future__ import annotations

from .values import is_literal, sub_jaxprs

__all__ = ["dependents"]


def dependents(jaxpr, sources: set) -> set:
    """Variables of ``jaxpr``, and of every body nested in it (calls, ``scan``, ``cond``, ``while``,
    ``shard_map``), whose value depends on ``sources``. A loop's carry depends on them if its initial
    value or the body's new value does (iterated to a fixed point)."""
    found = set(sources)

    def hit(v) -> bool:
        return not is_literal(v) and v in found

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

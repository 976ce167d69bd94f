"""The walk: every equation of a program, following calls, with how often it runs and where.

Pass 1 of a count. Each equation becomes a ``Site``: the equation, the number of times the program
runs it (``scan`` lengths, devices of a ``shard_map``), and its whole name stack, from which the
module path (``features.3.conv_dw.conv``) and whether it sits in a gradient (``transpose``) are read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import OpRecord
from .rules import CALL_PRIMITIVES, JIT_PRIMITIVES, REPEATING_PRIMITIVES, Rules, conv_record
from .values import sub_jaxprs

__all__ = ["Site", "walk", "site_record", "scope"]


_TRANSFORM = re.compile(r"^[A-Za-z_]+\((.*)\)$")


def _stack(eqn, outer: str = "") -> str:
    """The equation's whole name stack: the stacks of the calls, loops and branches it sits in
    (``outer``), then its own. A body's equations carry only their stack within the body."""
    own = str(eqn.source_info.name_stack)
    return "/".join(part for part in (outer, own) if part)


def scope(stack: str) -> tuple[str, bool]:
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
class Site:
    """One equation as the walk found it: how many times it runs, its name stack, and its record
    once costed (``ruled``: by a call rule, final)."""

    eqn: Any
    calls: int
    record: OpRecord | None = None
    stack: str = ""
    ruled: bool = False  # costed by a call rule (``record`` is final)


def walk(jaxpr, calls: int, sites: list, uncosted: dict, rules: Rules, outer: str = "") -> None:
    """Append every equation of ``jaxpr`` (following calls) to ``sites``, with how often it runs and
    its whole name stack (``outer``: the stacks of the equations it is nested in). A ``jit`` call with
    a rule in ``rules`` is one site; other calls are followed; a ``scan`` multiplies its body by its
    length, a ``shard_map`` or ``pmap`` by its devices; a ``cond`` whose branches cost the same MACs
    costs those; a ``while`` costs nothing if its body multiplies nothing. Anything else is recorded
    in ``uncosted``."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        stack = _stack(eqn, outer)
        call_rule = rules.for_call(eqn) if name in JIT_PRIMITIVES else None
        if call_rule is not None:
            sites.append(Site(eqn, calls, call_rule(eqn), stack, True))
        elif name in CALL_PRIMITIVES or name in REPEATING_PRIMITIVES:
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
            walk(subs[0], times, sites, uncosted, rules, stack)
        elif name in ("cond", "while"):
            branches = list(sub_jaxprs(eqn))
            costs = []
            for branch in branches:
                inner_sites, inner_uncosted = [], {}
                walk(branch, calls, inner_sites, inner_uncosted, rules, stack)
                costs.append((inner_sites, inner_uncosted))
            macs = [sum(site_record(s, rules).macs * s.calls for s in inner if site_record(s, rules) is not None)
                    for inner, _ in costs]
            complete = all(not u for _, u in costs)
            if name == "while":
                # cond_jaxpr and body_jaxpr: without a known trip count only a loop with no MACs is exact
                if complete and not any(macs):
                    sites.append(Site(eqn, calls, stack=stack))
                else:
                    uncosted[name] = uncosted.get(name, 0) + calls
            elif complete and len(set(macs)) == 1:
                sites.extend(costs[int(np.argmax([len(s) for s, _ in costs]))][0])
            else:
                uncosted[name] = uncosted.get(name, 0) + calls
        else:
            sites.append(Site(eqn, calls, stack=stack))


def site_record(site: Site, rules: Rules) -> OpRecord | None:
    """The ``OpRecord`` of a site by its primitive's rule (computed once), or ``None``."""
    rule = None if site.ruled or site.record is not None else rules.for_primitive(site.eqn.primitive.name)
    if rule is not None:
        if rule is conv_record:
            site.record = conv_record(site.eqn, backward="transpose(" in site.stack)
        else:
            site.record = rule(site.eqn)
    return site.record

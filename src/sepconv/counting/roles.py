"""Roles: what a costed operation is in a gradient program.

``forward`` (the forward pass, and its recomputation under ``remat``), ``input_grad`` (the gradient
flowing back to a layer's input), ``weight_grad`` (a parameter's gradient), read from what each
operation's operands depend on (``dependence``); ``backward`` where the two kinds of gradient cannot
be told apart (the gradient of a function, not of a model).
"""

from __future__ import annotations

from typing import Callable

from .dependence import dependents
from .values import is_literal

__all__ = ["ROLES", "plain_role", "gradient_roles"]

#: The roles, in the order totals list them.
ROLES = ("forward", "input_grad", "weight_grad", "backward")


def plain_role(eqn, backward: bool) -> str:
    """The role of an operation of a function's program: ``backward`` inside a transpose, else ``forward``."""
    return "backward" if backward else "forward"


def gradient_roles(jaxpr, data: set, params: set, seed) -> Callable:
    """``role_of(eqn, backward)`` for a training step's program: ``forward`` if no operand depends on the
    cotangent ``seed``; ``input_grad`` if one operand comes from the ``params`` alone (the layer's
    weights meeting the cotangent); ``weight_grad`` otherwise (cotangent and activations from ``data``)."""
    from_data = dependents(jaxpr, data)
    from_params = dependents(jaxpr, params)
    from_seed = dependents(jaxpr, {seed})

    def role_of(eqn, backward):
        operands = [v for v in eqn.invars if not is_literal(v)]
        if not any(v in from_seed for v in operands):
            return "forward"
        param_only = any(v in from_params and v not in from_data and v not in from_seed for v in operands)
        return "input_grad" if param_only else "weight_grad"

    return role_of

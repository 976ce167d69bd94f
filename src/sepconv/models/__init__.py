"""The networks of the book: specs read like the papers' tables, resolved into typed blocks.

``resolve_model(name, **options)`` gives a ``ResolvedNetwork``; from it come the closed-form cost
(``model_cost``), the Flax NNX model (``build_model``, or ``abstract_model`` for shapes only) and
the counter's result (``count_model``). ``MODEL_NAMES`` lists the registered networks.
"""

from __future__ import annotations

from .network import Network, ResolvedNetwork, materialize
from .registry import (MODELS, ModelEntry, Option, abstract_model, build_model, count_model, model_cost, model_entry,
                       model_names, register_model, resolve_model)
from .rounding import make_divisible, v1_depth

__all__ = ["MODEL_NAMES", "MODELS", "ModelEntry", "Option", "Network", "ResolvedNetwork", "materialize",
           "abstract_model", "build_model", "count_model", "model_cost", "model_entry", "model_names",
           "register_model", "resolve_model", "make_divisible", "v1_depth"]

MODEL_NAMES = model_names()

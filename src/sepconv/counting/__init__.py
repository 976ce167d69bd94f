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

Rules live in a ``Rules`` registry (``RULES``: by primitive, and for one traced ``jit`` call by
identity, never by a function's name), like fvcore's op handles or torch's
``register_flop_formula``; registering a second rule for the same primitive or call is an error.
``fast_depthwise`` registers a rule for each depthwise convolution it rewrites. Each costed
operation records the module path of the NNX layer that ran it (``features.3.conv_dw.conv``) and,
in a gradient, whether it is the forward pass, an input gradient or a weight gradient
(``count_training``).

The package, one job a module: ``records`` (``OpRecord``, ``CountResult``), ``rules`` (the registry,
the convolution and matrix-product rules, the lists of primitives), ``values`` (sizes, nested
jaxprs), ``walk`` (pass 1), ``tally`` (pass 2), ``prune`` (dead code), ``liveness`` (activation
memory), ``dependence`` and ``roles`` (roles in a gradient), ``training_step`` (``count_training``),
``scopes`` (module paths), ``modules`` (parameter counts), ``trace`` (``count``),
``printing`` (CSV, text).
"""

from .modules import parameter_counts
from .printing import TOTAL_PATH, report_text, result_csv
from .records import CountResult, OpRecord, PrimitiveCount
from .roles import ROLES
from .rules import (CALL_PRIMITIVES, CALL_RULES, COST_RULES, JIT_PRIMITIVES, RULES, ZERO_MAC_PRIMITIVES, Rules,
                    conv_record, dot_record, register_call_rule, register_cost_rule)
from .trace import count, count_macs
from .training_step import count_training
from .values import sub_jaxprs

__all__ = ["count", "count_macs", "count_training", "CountResult", "OpRecord", "PrimitiveCount", "parameter_counts",
           "sub_jaxprs", "Rules", "RULES", "register_cost_rule", "register_call_rule", "COST_RULES",
           "CALL_RULES", "ZERO_MAC_PRIMITIVES", "CALL_PRIMITIVES", "JIT_PRIMITIVES", "conv_record", "dot_record",
           "ROLES", "TOTAL_PATH", "result_csv", "report_text"]

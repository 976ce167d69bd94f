"""What a count finds: one record per multiply-accumulating operation, and the result of a count.

``OpRecord`` is one convolution or matrix product (its shapes, MACs, module path, role in a gradient
and how many times it runs); ``CountResult`` the totals of a program. Printing them (CSV, the command
line's text) is ``sepconv.counting.printing``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..kinds import LayerKind, classify
from .printing import TOTAL_PATH, result_csv
from .roles import ROLES

__all__ = ["ROLES", "OpRecord", "PrimitiveCount", "CountResult", "TOTAL_PATH"]


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
    """What ``count`` found. ``macs`` is exact when ``complete`` is true. For a module,
    ``params_trainable`` counts every parameter and ``params_excluding_norm`` leaves out the
    normalization layers' scale and shift (the published tables' convention), as ``NetworkCost``."""

    macs: int = 0
    macs_excluding_padding: int = 0
    ops: list = field(default_factory=list)
    by_primitive: dict = field(default_factory=dict)
    uncosted: dict = field(default_factory=dict)
    params_trainable: int | None = None
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
            "params": self.params_trainable,
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
        """Every costed operation as CSV, then the totals (``printing.result_csv``)."""
        return result_csv(self)

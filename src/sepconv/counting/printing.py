"""A count printed: CSV of every operation with its totals, and the command line's text report."""

from __future__ import annotations

import csv
import io

from .roles import ROLES

__all__ = ["TOTAL_PATH", "result_csv", "report_text"]

#: The ``path`` of the total rows of ``result_csv`` (``CountResult.to_csv``).
TOTAL_PATH = "(total)"


def result_csv(result) -> str:
    """A ``CountResult``'s every costed operation as CSV (path, role, primitive, shapes, groups, MACs
    per call, calls, total), then the totals: a row ``(total), all`` with ``macs``, and for a gradient program one
    row per role. Every row says whether the count is ``complete``; the total rows list what is
    ``uncosted`` (``primitive=calls``, separated by ``;``). Summing the operation rows gives the total."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    complete = str(result.complete).lower()
    writer.writerow(["path", "role", "primitive", "input_shape", "kernel_shape", "output_shape", "groups",
                     "macs", "calls", "total_macs", "complete", "uncosted"])
    for op in result.ops:
        writer.writerow([op.path, op.role, op.primitive, "x".join(map(str, op.input_shape)),
                         "x".join(map(str, op.kernel_shape)), "x".join(map(str, op.output_shape)),
                         op.feature_group_count, op.macs, op.calls, op.total_macs, complete, ""])
    uncosted = ";".join(f"{k}={v}" for k, v in sorted(result.uncosted.items()))
    totals = [("all", result.macs)]
    roles = result.macs_by_role()
    if set(roles) - {"forward"}:
        totals += [(role, roles[role]) for role in ROLES if role in roles]
    for role, macs in totals:
        writer.writerow([TOTAL_PATH, role, "", "", "", "", "", macs, "", macs, complete, uncosted])
    return buffer.getvalue()


def report_text(report: dict, layers: list | None = None) -> str:
    """The command line's ``count`` report as text: one ``key: value`` line per entry (integers with
    thousands separators), then with ``layers`` (``CountResult.layers()``) a table of MACs per module."""
    lines = [f"{key:>22}: {value:,}" if isinstance(value, int) and not isinstance(value, bool)
             else f"{key:>22}: {value}" for key, value in report.items()]
    if layers is not None:
        lines += ["", f"{'layer':<40}{'role':>12}{'MACs':>16}"]
        lines += [f"{row['path'] or '(no module)':<40}{row['role']:>12}{row['macs']:>16,}" for row in layers]
    return "\n".join(lines)

"""The old home of the runtime comparison, now ``sepconv.benchmarks.runtimes``; re-exported here so that
``from sepconv.runtimes import ...`` keeps working."""

from .benchmarks.runtimes import RUNTIME_RATIOS, runtime_comparison  # noqa: F401

__all__ = ["RUNTIME_RATIOS", "runtime_comparison"]

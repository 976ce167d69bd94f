"""Freed memory kept in the process, so that a large buffer is not paged in afresh on every call.

glibc's ``malloc`` maps a large block straight from the kernel and unmaps it when it is freed: a block
above its mmap threshold (at most 32 MiB), and any block a thread's own arena (a 64 MiB heap) cannot
hold. The next call allocates it again, and every 4 KiB page faults, and is zeroed by the kernel, the
first time it is written. XLA CPU allocates each call's outputs and its scratch space this way, and so
does PyTorch's CPU allocator; ONNX Runtime and LiteRT plan their memory once. On the recording machine a
jitted ``x * 2 + 1`` writing 64 MiB faulted 16,384 times per call (every page) and took 17 ms; with
freed memory kept it faulted none and took 3 ms. Large buffers are a training step's (MobileNetV2 at batch
16: 74 MiB per expanded activation), not inference's at batch 1, which reuses small blocks anyway.

``kept_environment()`` is the environment of a process that keeps freed memory: glibc's tunables (read by
the dynamic loader when the process starts, before any thread exists) for one arena shared by all threads
(``arena_max=1``), no mapped blocks (``mmap_max=0``: every block comes from the heap) and no trimming of
the heap's free top (``trim_threshold`` at its largest), so freed memory stays mapped and later calls
reuse it once the heap has grown to the program's size (a few calls). Set from inside a running process
(``mallopt``) it does not hold: the threads that NumPy's and XLA's thread pools start on import keep arenas
of their own. The setting is per process, so every program timed in it, JAX or PyTorch, runs under it;
a benchmark records which one it ran under (``state``).
"""

from __future__ import annotations

import os
import resource

__all__ = ["kept_environment", "state", "minor_faults", "GLIBC_TUNABLES_VALUE"]

#: ``GLIBC_TUNABLES`` of a process that keeps freed memory (module docstring).
GLIBC_TUNABLES_VALUE = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"


def kept_environment(environment: dict | None = None) -> dict:
    """``environment`` (default: this process's) with glibc's tunables set to keep freed memory, for a
    process about to start; tunables already set stay, ours come after them and take precedence."""
    env = dict(os.environ if environment is None else environment)
    present = env.get("GLIBC_TUNABLES", "")
    if GLIBC_TUNABLES_VALUE not in present:
        env["GLIBC_TUNABLES"] = f"{present}:{GLIBC_TUNABLES_VALUE}" if present else GLIBC_TUNABLES_VALUE
    return env


def state() -> str:
    """``"freed memory kept"`` when this process started with ``kept_environment``'s tunables, else
    ``"default"``."""
    return "freed memory kept" if GLIBC_TUNABLES_VALUE in os.environ.get("GLIBC_TUNABLES", "") else "default"


def minor_faults() -> int:
    """Minor page faults of this process so far (``getrusage``): each a page touched for the first time."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

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

Large buffers also cost in the processor's address translation: memory comes in 4 KiB pages unless a
program asks the kernel for transparent huge pages (2 MiB) with ``madvise``, which is all a kernel set to
``madvise`` (``/sys/kernel/mm/transparent_hugepage/enabled``, the recording machine's) gives. glibc asks
for them on the memory it allocates with the tunable ``glibc.malloc.hugetlb=1`` (glibc 2.35 onwards):
``environment("huge pages")``. A fresh 2 MiB page is one fault instead of 512. On the recording machine,
in one run, MobileNetV2's training step at batch 32 took 43.9 ms per image with freed memory kept and
24.1 with huge pages asked for as well; in the recorded run freed memory kept alone took 23.2 (that slow
state comes and goes; ``tools/training_bench.py`` times the step under each setting). ``SETTINGS`` names the
settings; ``environment(setting)`` gives each, ``state()`` says which this process started with.
"""

from __future__ import annotations

import os
import resource

__all__ = ["kept_environment", "environment", "state", "minor_faults", "GLIBC_TUNABLES_VALUE", "HUGE_PAGE_TUNABLES",
           "SETTINGS", "MMAP_THRESHOLD_MAX"]

#: glibc's largest mmap threshold on a 64-bit machine (``DEFAULT_MMAP_THRESHOLD_MAX``): a block above it is
#: always mapped from the kernel afresh, and unmapped when freed, unless the process keeps freed memory.
MMAP_THRESHOLD_MAX = 32 * 2**20

#: ``GLIBC_TUNABLES`` of a process that keeps freed memory (module docstring).
GLIBC_TUNABLES_VALUE = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"
#: ``GLIBC_TUNABLES`` of a process whose allocations ask for transparent huge pages (module docstring).
HUGE_PAGE_TUNABLES = "glibc.malloc.hugetlb=1"
#: The settings a benchmark compares, by the name ``state`` reports, with their tunables.
SETTINGS = {"default": "", "freed memory kept": GLIBC_TUNABLES_VALUE, "huge pages": HUGE_PAGE_TUNABLES}


def environment(setting: str, base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) with glibc's tunables of ``setting`` (a key of
    ``SETTINGS``), for a process about to start; tunables already set stay, ours come after them and take
    precedence."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown allocator setting {setting!r}: one of {', '.join(SETTINGS)}")
    env = dict(os.environ if base is None else base)
    present, tunables = env.get("GLIBC_TUNABLES", ""), SETTINGS[setting]
    if tunables and tunables not in present:
        env["GLIBC_TUNABLES"] = f"{present}:{tunables}" if present else tunables
    return env


def kept_environment(environment_: dict | None = None) -> dict:
    """``environment("freed memory kept", environment_)``: freed memory kept (module docstring)."""
    return environment("freed memory kept", environment_)


def state() -> str:
    """The settings of ``SETTINGS`` this process started with, joined by ``" and "`` (``"freed memory kept"``,
    ``"huge pages"``, both), or ``"default"``."""
    present = os.environ.get("GLIBC_TUNABLES", "")
    found = [name for name, tunables in SETTINGS.items() if tunables and tunables in present]
    return " and ".join(found) or "default"


def minor_faults() -> int:
    """Minor page faults of this process so far (``getrusage``): each a page touched for the first time."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

"""Freed memory kept: a program whose output is larger than glibc's largest mmap threshold stops faulting
its pages in on every call. Page faults are counted, never timed; each case runs in a fresh process,
since the setting is read when a process starts."""

import json
import platform
import subprocess
import sys

import pytest

from sepconv.benchmarks import allocator

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

PROGRAM = """
import json
import jax, jax.numpy as jnp
from sepconv.benchmarks import allocator
x = jnp.ones((1 << 24,), jnp.float32)  # 64 MiB: above glibc's largest mmap threshold (32 MiB)
f = jax.jit(lambda x: x * 2.0 + 1.0)
for _ in range(16):  # the heap grows to the program's size in the first calls
    f(x).block_until_ready()
before = allocator.minor_faults()
for _ in range(4):
    f(x).block_until_ready()
print(json.dumps({"state": allocator.state(), "faults": (allocator.minor_faults() - before) / 4}))
"""


def _run(setting: str) -> dict:
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120,
                          env=allocator.environment(setting, env))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _huge_pages_on_request() -> bool:
    """The kernel gives transparent huge pages to memory that asks (``always`` or ``madvise``) and glibc
    can ask (2.35 onwards)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            mode = f.read()
    except OSError:
        return False
    version = tuple(int(v) for v in platform.libc_ver()[1].split(".")[:2] if v.isdigit())
    return "[never]" not in mode and version >= (2, 35)


def test_kept_memory_is_not_paged_in_again():
    pages = (1 << 24) * 4 // 4096  # of the 64 MiB output
    default, kept = _run("default"), _run("freed memory kept")
    assert default["state"] == "default" and kept["state"] == "freed memory kept"
    # by default every call maps its output afresh: (nearly) every page faults; kept, almost none does
    assert default["faults"] > pages / 2, default
    assert kept["faults"] < pages / 20, kept


def test_tunables_already_set_are_kept():
    env = allocator.kept_environment({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "A": "1"})
    assert env["A"] == "1"
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=0:" + allocator.GLIBC_TUNABLES_VALUE
    assert allocator.kept_environment(env) == env  # once


@pytest.mark.skipif(not _huge_pages_on_request(), reason="no transparent huge pages on request here")
def test_huge_pages_fault_once_per_two_mebibytes():
    """Asked for huge pages, a fresh 64 MiB output faults about once per 2 MiB page (32), not once per
    4 KiB page (16,384); the test allows an eighth of the small pages."""
    pages = (1 << 24) * 4 // 4096
    huge = _run("huge pages")
    assert huge["state"] == "huge pages"
    assert huge["faults"] < pages / 8, huge


def test_settings_by_name():
    assert allocator.environment("default", {"A": "1"}) == {"A": "1"}
    both = allocator.environment("huge pages", allocator.kept_environment({}))
    assert both["GLIBC_TUNABLES"] == allocator.GLIBC_TUNABLES_VALUE + ":" + allocator.HUGE_PAGE_TUNABLES
    with pytest.raises(ValueError, match="unknown allocator setting 'fast': one of default, freed memory kept, huge pages"):
        allocator.environment("fast")


def test_state_names_every_setting_present(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", allocator.HUGE_PAGE_TUNABLES)
    assert allocator.state() == "huge pages"
    monkeypatch.setenv("GLIBC_TUNABLES", allocator.GLIBC_TUNABLES_VALUE + ":" + allocator.HUGE_PAGE_TUNABLES)
    assert allocator.state() == "freed memory kept and huge pages"
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert allocator.state() == "default"

"""Phase 1: run one submission's code in a sandbox and collect its answers as plain data.

Where the sandbox runs depends on what the grader may do (``mode()``; ``SEPCONV_SANDBOX`` forces one):

``namespace`` (the grader runs as root and may create namespaces: CI, a course server)
    ``unshare --mount --pid --net --ipc --fork --kill-child`` and :mod:`._launcher`: no network (not even
    the machine's loopback servers) and no shared System V memory; a new root holding only the
    system and Python folders (read-only) and the submission's private folder, a fresh ``/proc``, ``/tmp``
    and ``/dev/shm``; the runner under its own unprivileged user (one per sandbox running on the machine),
    in its own session, with limits on CPU time, memory, processes and file size. Tests, solutions,
    master notebooks and other submissions are not in its file system at all; the grader's processes are
    not in its PID namespace, and when it ends the kernel kills whatever it started.
``userns`` (no root, but unprivileged user namespaces: most Linux laptops)
    the same jail inside ``unshare --user --map-root-user``, without the separate user: processes are
    counted per user of the whole machine, so the limit is the grader's user's current count plus 512.
``uid`` (root without namespaces: some containers)
    the runner under its own user, session and limits, cleaned up by a ``kill(-1)`` as that user; the
    file system is the machine's, so files readable by everyone (a master notebook left in ``/tmp``) are
    readable by the submission.
``plain`` (no root, no namespaces: macOS, a locked-down laptop)
    own session and limits only (processes as in ``userns``): the submission runs as the grader's user,
    can read whatever the grader can, and a process that leaves its session escapes the cleanup. Phase 2
    still scores only plain data.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("namespace", "userns", "uid", "plain")
UID_BASE = 60100
#: Sandbox users: ``UID_BASE`` to ``UID_BASE + UIDS - 1``, one per sandbox running on the machine.
UIDS = 256
#: What a sandbox may write, in bytes: one file, its /tmp, and what comes back to the grader.
FILE_BYTES = 64 << 20
#: The most runs of one submission: the first, and one more after each cell removed for ending the
#: process or running past its limit.
MAX_RUNS = 4
#: The lock files of the sandbox users (``_claim_uid``).
USERS = Path("/tmp/sepconv-sandbox-users")


@functools.lru_cache(maxsize=None)
def mode() -> str:
    """The strongest sandbox that works on this machine (module docstring), found by running a one-line
    submission in each, strongest first; ``SEPCONV_SANDBOX`` names one instead."""
    forced = os.environ.get("SEPCONV_SANDBOX")
    root, unshare = os.geteuid() == 0, shutil.which("unshare")
    if forced:
        if forced not in MODES:
            raise ValueError(f"SEPCONV_SANDBOX={forced!r}: not one of {', '.join(MODES)}")
        chosen = forced
    else:
        candidates = [m for m, possible in (("namespace", root and unshare), ("userns", unshare), ("uid", root))
                      if possible]
        chosen = next((c for c in candidates if _works(c)), "plain")
    if chosen == "plain" and root:
        raise ValueError("the grader runs as root but can neither create namespaces nor run Python as another "
                         "user: it will not run submissions as root (grade as an ordinary user instead)")
    return chosen


def _works(candidate: str) -> bool:
    """Whether a submission ``x = 1`` comes back as ``{"x": 1}`` from the sandbox ``candidate``."""
    with tempfile.TemporaryDirectory(prefix="sepconv-probe-") as work:
        os.chmod(work, 0o700)
        try:
            result = run([(0, "x = 1")], {"answers": ["x"], "calls": []}, Path(work), timeout=60,
                         sandbox_mode=candidate)
            return result.finished and json.loads((result.files / "answers.json").read_text()) == {"x": 1}
        except (OSError, ValueError, subprocess.SubprocessError):
            return False


@dataclass
class Phase1:
    """What the sandbox left: its files (a folder only the grader reads), the cells removed and why,
    and anything odd, by name."""

    files: Path
    removed: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    mode: str = ""
    runs: int = 0
    finished: bool = False


def _mirrors() -> list[str]:
    import sepconv

    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, str(Path(sepconv.__file__).resolve().parent),
             str(Path(sys.executable).resolve().parent)}
    return sorted(p for p in paths if p and os.path.isdir(p))


def _limits(sandbox_mode: str, cpu_s: float, memory_bytes: int) -> dict:
    limits = {"RLIMIT_CPU": int(cpu_s) + 1, "RLIMIT_AS": int(memory_bytes), "RLIMIT_FSIZE": FILE_BYTES,
              "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 1024}
    # processes (threads included) are counted per user of the whole machine: the sandbox's own user, or
    # the grader's, whose current processes it may not use up
    limits["RLIMIT_NPROC"] = 512 if sandbox_mode in ("namespace", "uid") else _tasks(os.getuid()) + 512
    return limits


def _tasks(uid: int) -> int:
    """Processes and threads of ``uid`` now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count


def _env(home: str) -> dict:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "JAX_PLATFORMS": "cpu", "XDG_CACHE_HOME": f"{home}/.cache", "MPLCONFIGDIR": f"{home}/.mpl",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def _kill_user(uid: int) -> None:
    """Kill every process of ``uid``: a child takes that user and sends SIGKILL to all it may signal."""
    for _ in range(3):
        child = os.fork()
        if child == 0:
            try:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(child, 0)


def _kill_session(sid: int) -> None:
    for _ in range(3):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) == sid:
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass


def _open_in(folder: Path, name: str) -> int:
    """A file descriptor of ``folder/name`` that follows no link, neither ``folder`` nor ``name`` (the
    sandbox owns its ``out`` folder and may swap it or its files for links to the grader's files, FIFOs
    or devices), and never blocks on opening."""
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    finally:
        os.close(directory)


def _progress(path: Path) -> list[str]:
    """The last lines of the runner's progress file; none when it is not a plain file (a FIFO, a link)."""
    import stat

    try:
        fd = _open_in(path.parent, path.name)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return []
        f.seek(max(0, info.st_size - 65536))
        return f.read(65536).decode(errors="replace").splitlines()


def _started(lines: list[str]) -> int | None:
    """The cell the runner started last and has not ended (its progress file's last line ``start I``)."""
    words = lines[-1].split() if lines else []
    # ASCII digits only: ``"\u00b2".isdigit()`` holds but ``int`` refuses it, and an exception here would
    # leave the sandbox running
    ok = len(words) == 2 and words[0] == "start" and words[1].isascii() and words[1].isdigit()
    return int(words[1]) if ok else None


def _collect(out: Path, target: Path, problems: list) -> None:
    """Copy the regular files the sandbox wrote (no links followed, sizes capped) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        directory = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)  # ``out`` may be a link
        try:
            names = os.listdir(directory)
        finally:
            os.close(directory)
    except OSError:
        problems.append("the sandbox's output folder is not a folder: ignored")
        return
    budget = FILE_BYTES
    for name in sorted(names):
        if not (name.endswith((".json", ".npy")) and name.replace(".", "").replace("_", "").isalnum()):
            continue
        try:
            fd = _open_in(out, name)
        except OSError:
            problems.append(f"sandbox file {name} is not a plain file: ignored")
            continue
        with os.fdopen(fd, "rb") as f:
            import stat

            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > budget:
                problems.append(f"sandbox file {name} is not a plain file or is too large: ignored")
                continue
            budget -= info.st_size
            (target / name).write_bytes(f.read(info.st_size))


def run(cells: list[tuple[int, str]], spec: dict, work: Path, *, slot: int = 0, cell_limit=lambda index: 60.0,
        timeout: float = 1200.0, memory_bytes: int = 4 << 30, sandbox_mode: str | None = None) -> Phase1:
    """Run the code ``cells`` (``(index, source)``) of one submission in the sandbox of ``mode()``;
    ``spec`` names the answers and calls to record (:mod:`._runner`). A cell that runs past
    ``cell_limit(index)`` seconds or ends the process is removed and the submission run again (at most
    ``MAX_RUNS`` runs); the whole may take ``timeout`` seconds. ``work`` is a folder only the grader may
    read; the answers come back in ``Phase1.files`` there."""
    sandbox_mode = sandbox_mode or mode()
    with _claim_uid(slot) if sandbox_mode in ("namespace", "uid") else contextlib.nullcontext() as uid:
        return _run(cells, spec, work, uid, sandbox_mode, cell_limit, timeout, memory_bytes)


@contextlib.contextmanager
def _claim_uid(slot: int):
    """A user id no other sandbox on this machine holds (graders in other processes included): a lock on
    a file per id, in a folder only root may enter, held while the sandbox runs."""
    import fcntl

    import stat

    folder = USERS
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    # in the ``uid`` mode a submission shares /tmp: a folder it made there first, holding links, would
    # have the grader (root) open and truncate any file
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{folder} is not a folder of the grader's alone: remove it")
    for offset in range(UIDS):
        uid = UID_BASE + (slot + offset) % UIDS
        handle = os.fdopen(os.open(folder / str(uid), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            yield uid
        finally:
            handle.close()
        return
    raise RuntimeError(f"all {UIDS} sandbox users are busy")


def _run(cells, spec, work, uid, sandbox_mode, cell_limit, timeout, memory_bytes) -> Phase1:
    result = Phase1(files=work / "answers", mode=sandbox_mode)
    start = time.monotonic()
    runner = Path(__file__).with_name("_runner.py")
    os.chmod(work, 0o711)  # the sandbox user may pass through to its own folder, not list or read the rest
    last_out = None
    for attempt in range(MAX_RUNS):
        result.runs = attempt + 1
        private = Path(tempfile.mkdtemp(prefix="run", dir=work))
        (private / "out").mkdir()
        (private / "cells.json").write_text(json.dumps([[i, s] for i, s in cells if i not in result.removed]))
        own = sandbox_mode in ("namespace", "userns", "uid")
        (private / "spec.json").write_text(json.dumps({**spec, "own_processes": own}))
        shutil.copy(runner, private / "_runner.py")
        if uid is not None:
            for path in (private, private / "out", private / "cells.json", private / "spec.json", private / "_runner.py"):
                os.chown(path, uid, uid)
        os.chmod(private, 0o700)
        last_out = private / "out"
        remaining = timeout - (time.monotonic() - start)
        limits = _limits(sandbox_mode, max(remaining, 1), memory_bytes)
        errors = open(work / "stderr", "w+b")  # a file, not a pipe: a chatty submission never blocks on it
        if sandbox_mode in ("namespace", "userns"):
            (work / "root").mkdir(exist_ok=True)
            job = {"root": str(work / "root"), "private": str(private), "mirror": _mirrors(), "uid": uid,
                   "limits": limits, "python": sys.executable, "env": _env("/sandbox"), "tmp_bytes": FILE_BYTES}
            (work / "job.json").write_text(json.dumps(job))
            command = [shutil.which("unshare"), *(["--user", "--map-root-user"] if sandbox_mode == "userns" else []),
                       "--mount", "--pid", "--net", "--ipc", "--fork", "--kill-child", sys.executable, "-I",
                       str(Path(__file__).with_name("_launcher.py")), str(work / "job.json")]
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=errors, start_new_session=True)
        else:
            def prepare(uid=uid, limits=limits):
                if uid is not None:
                    os.setgroups([])
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                for name, value in limits.items():
                    resource.setrlimit(getattr(resource, name), (value, value))

            process = subprocess.Popen([sys.executable, "-I", "_runner.py"], cwd=private, env=_env(str(private)),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                       start_new_session=True, preexec_fn=prepare)
        try:
            why = _watch(process, private, cell_limit, start, timeout)
        except BaseException:  # whatever goes wrong here, nothing the submission started outlives it
            process.kill()
            process.wait()
            errors.close()
            if uid is not None and sandbox_mode == "uid":
                _kill_user(uid)
            elif sandbox_mode == "plain":
                _kill_session(process.pid)
            raise
        process.wait()
        errors.seek(max(0, os.fstat(errors.fileno()).st_size - 300))
        stderr = errors.read().decode(errors="replace").strip()
        errors.close()
        if uid is not None and sandbox_mode == "uid":
            _kill_user(uid)
        elif sandbox_mode == "plain":
            _kill_session(process.pid)
        lines = _progress(private / "out" / "progress")
        if "done" in lines[-1:] and not why:
            result.finished = True
            break
        if time.monotonic() - start > timeout:
            result.problems.append(f"sandbox killed: the submission ran longer than {timeout:g} s in all")
            break
        last, index = (lines[-1] if lines else ""), _started(lines)
        if index is not None and index not in result.removed:
            result.removed[index] = why or (f"ended the process (exit status {process.returncode})")
            continue
        if last == "calls":
            result.problems.append("sandbox killed while calling the answers' functions")
        elif not lines:
            result.problems.append(f"sandbox did not start: {stderr.splitlines()[-1] if stderr else process.returncode}")
        else:
            result.problems.append(f"sandbox ended between cells (exit status {process.returncode})")
        break
    else:
        result.problems.append(f"gave up after {MAX_RUNS} runs: cells removed {sorted(result.removed)}")
    if last_out is not None:
        _collect(last_out, result.files, result.problems)
    for child in work.iterdir():
        if child.name.startswith("run"):
            shutil.rmtree(child, ignore_errors=True)
    return result


def _watch(process, private, cell_limit, start, timeout):
    """Wait for the sandbox ``process``, killing it when a cell or the whole runs past its limit; why, or None."""
    why, cell, started = None, None, time.monotonic()
    while process.poll() is None:
        time.sleep(0.05)
        lines = _progress(private / "out" / "progress")
        now = time.monotonic()
        index = _started(lines)
        if index is not None:
            if index != cell:
                cell, started = index, now
            if now - started > cell_limit(index):
                why = f"ran longer than {cell_limit(index):g} s"
        if now - start > timeout:
            why = why or f"the submission ran longer than {timeout:g} s in all"
        if why:
            process.kill()
            break
    return why

"""Phase 1's jailer: run as (namespace) root inside ``unshare --mount --pid --fork --kill-child``.

Builds a new root on a tmpfs holding only what Python needs, read-only (the system folders, the Python
installation, the virtual environment and the package folders on ``sys.path``) and the private folder of
the submission at ``/sandbox``, with a fresh ``/proc`` of the new PID namespace and an empty ``/tmp``;
then forks the runner, which enters the new root, drops to the sandbox's user (when one is given), starts
its own session, takes its resource limits and runs ``_runner.py``. This process is PID 1 of the
namespace: when it ends (the runner ended, or the grader killed ``unshare``, which kills it), the kernel
kills every process the submission left behind. Reads one argument, the job file (JSON, written by
:mod:`sepconv.grading.sandbox`).
"""

import ctypes
import json
import os
import resource
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source, target, fstype, flags, data=None):
    if _libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                   data and data.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def _mirror(root, path, writable=False):
    real = os.path.realpath(path)
    if not os.path.exists(real):
        return
    target = root + real
    if os.path.isdir(real):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(real, target, None, MS_BIND | MS_REC)
    if not writable:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    root = job["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for top in ("/usr", "/etc", "/sys"):
        _mirror(root, top)
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            os.symlink(os.readlink(link), root + link)
        else:
            _mirror(root, link)
    # the fresh /tmp first: a Python or a project that lives below /tmp (a clone there, its venv) is then
    # mirrored inside it, instead of being hidden by it
    os.makedirs(root + "/tmp")
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={job['tmp_bytes']}")
    for path in job["mirror"]:
        _mirror(root, path)
    os.makedirs(root + "/dev", exist_ok=True)
    _mirror(root, "/dev", writable=True)
    if os.path.isdir(root + "/dev/shm"):  # the machine's shared memory would be a channel between sandboxes
        _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={job['tmp_bytes']}")
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV)
    os.makedirs(root + "/sandbox")
    _mount(job["private"], root + "/sandbox", None, MS_BIND)
    sys.stdout.flush()
    # this process enters the new root too: through /proc/1/root and /proc/1/cwd, a sandbox of the same
    # user (the ``userns`` mode) could otherwise walk the grader's file system
    os.chroot(root)
    os.chdir("/")
    child = os.fork()
    if child == 0:
        try:
            os.chdir("/sandbox")
            uid = job["uid"]
            if uid is not None:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            os.setsid()
            for name, value in job["limits"].items():
                resource.setrlimit(getattr(resource, name), (value, value))
            os.execve(job["python"], [job["python"], "-I", "/sandbox/_runner.py"], job["env"])
        except BaseException as error:
            os.write(2, f"sandbox: {error}\n".encode())
        os._exit(127)
    while True:  # reap every orphan the submission leaves (zombies would count against its process limit)
        pid, status = os.wait()
        if pid == child:
            break
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()

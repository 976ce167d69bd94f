"""Run every chapter and every assignment handout in an emulated Colab runtime (``make colab``).

    python tools/colab.py run [NOTEBOOK ...]   # all chapters, book/index.ipynb and the handouts by default
    python tools/colab.py env DIR              # only build one emulated runtime in DIR
    python tools/colab.py refresh FREEZE OSINFO --source "googlecolab/backend-info@<commit> (<date>)"

Results go to ``.colab/results.json`` and one log per notebook to ``.colab/logs/`` (``SEPCONV_COLAB_WORK``
names another folder, so two runs can go side by side).

The runtime is built from Colab's published package list, kept in ``tools/colab/`` (``pip-freeze.txt`` and
``os-info.txt`` as published, ``SOURCE`` says where from and of when; ``refresh`` replaces them with a newer
pair): a virtual environment on Colab's Python (``os-info.txt``: 3.13; ``--python`` or ``COLAB_PYTHON``
names the interpreter, else ``python3.13`` on the PATH or from pyenv), pip at Colab's version, and the
packages of ``touched.txt`` with every pinned line of ``pip-freeze.txt`` as a constraint, so they and their
dependencies have Colab's versions. A module ``google.colab`` (a stub: no chapter calls it; the submodules that libraries import when it is
there, jax's debugger for one, import but fail when called) is imported when the kernel starts, as in Colab, so the install cell runs. Each notebook gets a fresh runtime (a Colab
session is one notebook's) and runs in an empty folder (Colab's ``/content`` holds no repository).

Chapters (chapters/*.ipynb, book/index.ipynb): the first cell installs this package from a wheel built from
the working tree (``SEPCONV_INSTALL``), exactly as it would from the repository, then nbval runs the whole
notebook in that runtime and compares every output with the stored one, with the project's sanitize file
(tests/nbval_sanitize.cfg), as ``make test`` does; but for glue's records (``sepconv.notebook.glue``), which
feed the website build and which glue, without myst-nb, does not make in Colab: they are taken out of the
stored outputs first; and for the few printed figures that are facts of the compiler version (XLA's
compiled buffers): ``tools/colab/nbval_sanitize.cfg`` masks each, with its notebook and its reason, in this
comparison only (the chapter asserts beside it what holds under both versions).

Handouts (book/assignments/*.ipynb): built with ``otter assign`` (``sepconv.assignments.build``); their
solutions notebook (the handout answered with the solutions) runs whole in the runtime, opening, as the
student's handout does, with the install cell (installing the wheel, ``SEPCONV_INSTALL``, with the extras
``chapters`` and ``course``) and then the cell that starts otter; it passes when no cell raises and every
``grader.check`` reports its tests passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tools" / "colab"
WORK = Path(os.environ.get("SEPCONV_COLAB_WORK", ROOT / ".colab"))  # where the runtimes are built
BIN = Path(sys.executable).parent


def colab_python_version() -> str:
    """``3.13`` from os-info.txt's ``Python 3.13.15``."""
    m = re.search(r"^Python (\d+)\.(\d+)", (DATA / "os-info.txt").read_text(), re.M)
    if not m:
        raise SystemExit("error: tools/colab/os-info.txt names no Python version")
    return f"{m.group(1)}.{m.group(2)}"


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(asked: str | None) -> tuple[str, str]:
    """(interpreter, why): the one asked for, else Colab's version from the PATH or pyenv, else this one."""
    want = colab_python_version()
    if asked:
        have = _version_of(asked)
        if have is None:
            raise SystemExit(f"error: cannot run the Python {asked!r}")
        return asked, f"Python {have} as asked" + ("" if have == want else f" (Colab has {want})")
    candidates = [f"python{want}"]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        candidates += [str(Path(root, "versions", v, "bin", f"python{want}"))
                       for v in sorted(versions, reverse=True) if v.startswith(want + ".")]
    for python in candidates:
        if _version_of(python) == want:
            return python, f"Python {want}, Colab's"
    have = _version_of(sys.executable)
    return sys.executable, (f"Python {have}: no Python {want} (Colab's) was found on the PATH or in pyenv; "
                            f"set COLAB_PYTHON to one")


def constraints(path: Path) -> Path:
    """Every ``name==version`` line of pip-freeze.txt, as a constraints file."""
    lines = [line for line in (DATA / "pip-freeze.txt").read_text().splitlines()
             if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+$", line)]
    path.write_text("\n".join(lines) + "\n")
    return path


def pinned(name: str) -> str | None:
    for line in (DATA / "pip-freeze.txt").read_text().splitlines():
        if "==" in line and line.split("==")[0].lower().replace("_", "-") == name:
            return line.split("==")[1]
    return None


#: Submodules of google.colab that libraries import when they see it: jax (its debugger) imports
#: ``output`` with ``jax`` itself, etils and treescope import ``output`` and ``_reprs`` when asked to draw.
STUB_MODULES = ("output", "_reprs")
STUB_MODULE = '''"""Stands in for a module of Colab's google.colab (make colab): importable; calling into it fails."""


def __getattr__(name):
    def missing(*args, **kwargs):
        raise NotImplementedError(f"{__name__}.{name} is not emulated (make colab)")
    return missing
'''


def build_env(target: Path, python: str) -> Path:
    """A fresh emulated runtime in ``target``; returns its Python."""
    if target.exists():
        shutil.rmtree(target)
    subprocess.run([python, "-m", "venv", str(target)], check=True)
    py = target / "bin" / "python"
    base = [f"{n}=={pinned(n)}" for n in ("pip", "setuptools", "wheel") if pinned(n)]
    subprocess.run([str(py), "-m", "pip", "install", "-q", *base], check=True, capture_output=True)
    touched = [line.strip() for line in (DATA / "touched.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    cons = constraints(target / "colab-constraints.txt")
    uv = BIN / "uv"
    if uv.exists():  # the same versions, several times faster than pip (make install brings uv)
        cmd = [str(uv), "pip", "install", "-q", "--python", str(py), "-c", str(cons), *touched]
    else:
        cmd = [str(py), "-m", "pip", "install", "-q", "-c", str(cons), *touched]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"error: could not build the Colab runtime: {run.stderr.strip()[-2000:]}")
    stub = target / "colab-stub" / "google" / "colab"  # a namespace package `google`, as protobuf's is
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stands in for Colab\'s google.colab (make colab)."""\n')
    for name in STUB_MODULES:  # imported by libraries once google.colab is there (jax's debugger, etils)
        (stub / f"{name}.py").write_text(STUB_MODULE)
    return py


def wheel() -> Path:
    """A wheel of the working tree, built as pip builds the repository's git URL."""
    dist = WORK / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    uv = BIN / "uv"
    cmd = ([str(uv), "build", "--wheel", "-q", "-o", str(dist), str(ROOT)] if uv.exists() else
           [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)])
    subprocess.run(cmd, check=True, capture_output=True)
    (built,) = dist.glob("sepconv-*.whl")
    return built


def kernelspec(jupyter: Path, py: Path, env: dict) -> None:
    spec = jupyter / "kernels" / "colab"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(py), "-c", "import google.colab; from ipykernel.kernelapp import launch_new_instance; "
            "launch_new_instance()", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Colab (emulated)",
                                                  "language": "python", "env": env}, indent=1))


def _install_cell(nb):
    """The handout's install cell (tools/install_cell.py writes it into every master), or None."""
    return next((c for c in nb.cells if c.cell_type == "code" and "from sepconv.colab import install" in c.source),
                None)


def sanitize_config(dest: Path) -> Path:
    """The project's sanitize file (tests/nbval_sanitize.cfg) followed by the Colab-only sections
    (tools/colab/nbval_sanitize.cfg), written to ``dest``: the configuration of the Colab comparison."""
    dest.write_text((ROOT / "tests" / "nbval_sanitize.cfg").read_text().rstrip("\n") + "\n\n"
                    + (DATA / "nbval_sanitize.cfg").read_text())
    return dest


def run_chapter(path: Path, env: dict, jupyter: Path) -> dict:
    content = Path(tempfile.mkdtemp(prefix="colab-content-"))
    sanitize = sanitize_config(Path(tempfile.mkdtemp(prefix="colab-sanitize-")) / "nbval_sanitize.cfg")
    try:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:  # glue's records feed the website build; in Colab (no myst-nb) glue shows nothing
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.outputs if not (o.get("data") and all(
                    k.startswith("application/papermill.record/") for k in o["data"]))]
        nbformat.write(nb, content / path.name)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(content),
               "-c", os.devnull, "--nbval", "--nbval-kernel-name", "colab", "--nbval-cell-timeout", "1800",
               "--nbval-sanitize-with", str(sanitize), str(content / path.name)]
        run = subprocess.run(cmd, cwd=content, capture_output=True, text=True,
                             env={**os.environ, **env, "JUPYTER_PATH": str(jupyter)})
        out = run.stdout + run.stderr
        summary = next((line for line in reversed(out.splitlines()) if re.search(r"passed|failed|error", line)), "")
        ok = run.returncode == 0
        plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
        differ = sorted({int(n) for n in re.findall(r"Cell (\d+): Cell outputs differ", plain)})
        raised = sorted({int(n) for n in re.findall(r"Cell (\d+): Cell execution caused an exception", plain)})
        summary += f"; outputs differ in cells {differ or 'none'}, cells raising {raised or 'none'}"
        detail = "" if ok else _first_failure(plain)
        return {"ok": ok, "summary": summary.strip("= "), "detail": detail, "log": out}
    finally:
        shutil.rmtree(content, ignore_errors=True)
        shutil.rmtree(sanitize.parent, ignore_errors=True)


def _first_failure(out: str) -> str:
    lines = out.splitlines()
    keys = ("Error", "Exception", "mismatch", "Traceback", "assert", "Notebook cell execution failed")
    hits = [line.strip() for line in lines if any(k in line for k in keys)]
    return " | ".join(hits[:4])[:600]


def run_handout(master: Path, env: dict, jupyter: Path) -> dict:
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT / "src"))
    from sepconv.assignments import build

    with tempfile.TemporaryDirectory(prefix="colab-handout-") as tmp:
        built = build(master, Path(tmp, "built"))
        nb = nbformat.read(built.solutions, as_version=4)
        install = _install_cell(nb)
        if install is None:
            return {"ok": False, "summary": "no install cell (run `python tools/install_cell.py --write`)",
                    "detail": "", "log": ""}
        content = Path(tmp, "content")  # the handout is not on Colab's disk: only the kernel sees it
        content.mkdir()
        os.environ.update(env, JUPYTER_PATH=str(jupyter))
        client = NotebookClient(nb, kernel_name="colab", timeout=1800, allow_errors=True,
                                resources={"metadata": {"path": str(content)}})
        client.execute()
    errors, checks = [], {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "error":
                errors.append(f"{out.ename}: {out.evalue}"[:300])
        m = re.search(r"""grader\.check\(\s*["'](\w+)["']""", cell.source)
        if m:
            text = "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)
            checks[m.group(1)] = bool(re.search(r"passed", text, re.I)) and not re.search(r"fail|error", text, re.I)
    said = [line for o in install.outputs for line in (o.get("text", "") or "").splitlines() if line.strip()]
    raised = len(errors)
    if said:
        errors.insert(0, "install said: " + " / ".join(said[-2:])[:300])
    ok = not raised and bool(checks) and all(checks.values())
    passed = sum(checks.values())
    summary = f"{passed} of {len(checks)} checks passed, {raised} cells raised"
    log = "\n\n".join(f"--- cell\n{c.source}\n--- output\n" + "\n".join(
        o.get("text", "") or o.get("data", {}).get("text/plain", "") or "\n".join(o.get("traceback", []))
        for o in c.outputs) for c in nb.cells if c.cell_type == "code")
    return {"ok": ok, "summary": summary, "detail": " | ".join(dict.fromkeys(errors))[:600], "log": log}


def run(paths, python: str | None) -> int:
    py_cmd, why = find_python(python)
    WORK.mkdir(exist_ok=True)
    print(f"Colab runtime from tools/colab ({(DATA / 'SOURCE').read_text().strip().splitlines()[0]}); {why}",
          flush=True)
    wheel_path = wheel()
    jupyter = WORK / "jupyter"
    results = {}
    for path in paths:
        start = time.perf_counter()
        runtime = WORK / "runtime"
        py = build_env(runtime, py_cmd)
        env = {"PYTHONPATH": str(runtime / "colab-stub"), "SEPCONV_INSTALL": str(wheel_path),
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel's debugger
               # `!pip` finds the runtime's pip first, as in Colab
               "PATH": f"{runtime / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        kernelspec(jupyter, py, env)
        setup = time.perf_counter() - start
        try:
            if path.parent.name == "assignments":
                result = run_handout(path, env, jupyter)
            else:
                result = run_chapter(path, env, jupyter)
        except Exception as error:  # one notebook's failure is reported, the others still run
            result = {"ok": False, "summary": f"{type(error).__name__}: {error}"[:600], "detail": "", "log": ""}
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["setup_seconds"] = round(setup, 1)
        versions = subprocess.run([str(py), "-c", "from importlib.metadata import version as v; "
                                   "print(*(f'{n} {v(n)}' for n in ('jax', 'flax', 'numpy')), sep=', ')"],
                                  capture_output=True, text=True).stdout.strip()
        result["ran_with"] = versions
        name = str(path.relative_to(ROOT))
        results[name] = result
        logs = WORK / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"{path.parent.name}-{path.stem}.log").write_text(re.sub(r"\x1b\[[0-9;]*m", "", result.pop("log")))
        (WORK / "results.json").write_text(json.dumps(results, indent=1))
        print(f"{'PASS' if result['ok'] else 'FAIL'}  {name}  {result['seconds']:.0f} s  {result['summary']}"
              + f" (ran with {versions})" + (f"\n      {result['detail']}" if result["detail"] else ""), flush=True)
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    failed = [n for n, r in results.items() if not r["ok"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def refresh(freeze: Path, osinfo: Path, source: str) -> int:
    for f in (freeze, osinfo):
        if not f.is_file():
            raise SystemExit(f"error: no file {str(f)!r}")
    if not re.search(r"^jax==", freeze.read_text(), re.M):
        raise SystemExit(f"error: {freeze} is not a pip freeze of a Colab runtime (no jax== line)")
    if not re.search(r"^Python \d+\.\d+", osinfo.read_text(), re.M):
        raise SystemExit(f"error: {osinfo} names no Python version")
    shutil.copy(freeze, DATA / "pip-freeze.txt")
    shutil.copy(osinfo, DATA / "os-info.txt")
    (DATA / "SOURCE").write_text(f"{source}\nfiles: pip-freeze.txt, os-info.txt (copied unchanged; refreshed with "
                                 f"`python tools/colab.py refresh`)\n")
    print(f"tools/colab now holds {source}; Colab's Python {colab_python_version()}")
    return 0


def default_paths() -> list[Path]:
    return (sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "book" / "index.ipynb"]
            + sorted((ROOT / "book" / "assignments").glob("*.ipynb")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run notebooks in the emulated runtime")
    r.add_argument("notebooks", nargs="*", type=Path)
    r.add_argument("--python", default=os.environ.get("COLAB_PYTHON"))
    e = sub.add_parser("env", help="build one emulated runtime")
    e.add_argument("dir", type=Path)
    e.add_argument("--python", default=os.environ.get("COLAB_PYTHON"))
    f = sub.add_parser("refresh", help="replace the stored package list")
    f.add_argument("freeze", type=Path)
    f.add_argument("osinfo", type=Path)
    f.add_argument("--source", required=True, help='e.g. "googlecolab/backend-info@<commit> (<date>)"')
    args = parser.parse_args(argv)
    if args.command == "refresh":
        return refresh(args.freeze, args.osinfo, args.source)
    if args.command == "env":
        py, why = find_python(args.python)
        print(f"{build_env(args.dir, py)} ({why})")
        return 0
    paths = [p.resolve() for p in args.notebooks] or default_paths()
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"error: no notebook {str(missing[0])!r}")
    return run(paths, args.python)


if __name__ == "__main__":
    sys.exit(main())

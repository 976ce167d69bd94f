"""Set up a Colab runtime for a chapter: install only what the chapter needs and Colab lacks, and say so.

The first code cell of every notebook (written by ``tools/install_cell.py``; the same cell everywhere but
for the extras it names) does nothing outside Colab. In Colab it runs::

    pip install --no-deps <the repository>    # this package alone (SEPCONV_INSTALL overrides the source)
    from sepconv.colab import install
    install(["chapters"])

``install`` reads the requirements of the installed package (the floors of ``pyproject.toml``, through the
package's own metadata, so they live in one place) for the extras asked, compares each with the version
the runtime has, and asks pip for only the requirements that are missing or below their floor: on
Colab's runtime of August 2026, flax 0.11.2 is below the floor 0.12, everything else of the base and
``chapters`` is there. While pip works, the runtime's own jax, jaxlib, accelerator plugins (jax-cuda*,
libtpu) and numpy are held at their versions (pip constraints), so a GPU or TPU runtime keeps its
accelerator build and no package the runtime already imported changes under it. Only when pip finds no
solution with them held (jax2onnx >= 0.17 of the ``deploy`` extra needs jax >= 0.8.1) may jax and its
plugins move, together (``jax[cuda12]`` on a GPU runtime, ``jax[tpu]`` on a TPU one). Then one line says
what changed, and asks for a restart if a changed package had already been imported.

``plan`` holds the decision and takes the versions as data, so the tests check it on any runtime (an
old-flax one, an up-to-date one, a GPU one) without installing anything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # pragma: no cover - pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version

__all__ = ["Plan", "plan", "requirements", "installed_versions", "describe", "install"]

#: Held at the runtime's version while they meet the floors: the accelerator build and the array library
#: everything else on the runtime was built against.
HELD = ("jax", "jaxlib", "numpy")
#: jax's accelerator plugins, and the extra of jax that installs a matching one.
ACCELERATORS = {"jax-cuda12-plugin": "cuda12", "jax-cuda13-plugin": "cuda13", "libtpu": "tpu"}
_JAX_FAMILY = ("jax", "jaxlib", "jax-cuda12-pjrt", "jax-cuda13-pjrt", *ACCELERATORS)


@dataclass
class Plan:
    """What ``install`` asks pip for: ``install`` (requirements missing or below their floor),
    ``hold`` (``name==version`` constraints on the runtime's own packages), ``kept`` (requirements the
    runtime meets: name -> version) and ``accelerator`` (``cuda12``, ``tpu`` or ``None``)."""

    install: list[str] = field(default_factory=list)
    hold: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    accelerator: str | None = None

    def relaxed(self) -> "Plan":
        """The fallback when pip finds no solution with everything held: jax and its plugins may move,
        together (``jax[<accelerator>]`` keeps the plugin matched to jax); numpy stays held."""
        hold = [h for h in self.hold if canonicalize_name(h.split("==")[0]) not in _JAX_FAMILY]
        install = list(self.install)
        if self.accelerator and not any(canonicalize_name(Requirement(r).name) == "jax" for r in install):
            install.append(f"jax[{self.accelerator}]")
        return Plan(install, hold, {k: v for k, v in self.kept.items() if k not in _JAX_FAMILY}, self.accelerator)


def requirements(extras=(), distribution: str = "sepconv") -> list[Requirement]:
    """The requirements of the installed ``distribution`` that apply with ``extras``: the base ones and
    those of each extra asked for. An extra the package does not declare is an error."""
    extras = [extras] if isinstance(extras, str) else list(extras)
    meta = metadata.metadata(distribution)
    declared = {canonicalize_name(e) for e in (meta.get_all("Provides-Extra") or [])}
    unknown = [e for e in extras if canonicalize_name(e) not in declared]
    if unknown:
        raise ValueError(f"{distribution} has no extra {unknown[0]!r} (it has: {', '.join(sorted(declared))})")
    out = []
    for line in metadata.requires(distribution) or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras):
            req.marker = None
            out.append(req)
    return out


def installed_versions() -> dict[str, str]:
    """Every distribution in this environment: canonical name -> version."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
            if d.metadata["Name"]}


def plan(reqs, installed: dict[str, str]) -> Plan:
    """Decide what to install for the requirements ``reqs`` (``Requirement`` objects or strings) given the
    runtime's ``installed`` versions (canonical name -> version): see the module docstring."""
    installed = {canonicalize_name(k): v for k, v in installed.items()}
    accelerator = next((extra for name, extra in ACCELERATORS.items() if name in installed), None)
    result = Plan(accelerator=accelerator)
    for req in reqs:
        req = Requirement(str(req)) if not isinstance(req, Requirement) else req
        name = canonicalize_name(req.name)
        have = installed.get(name)
        if have is not None and req.specifier.contains(Version(have), prereleases=True):
            result.kept[name] = have
            continue
        if name == "jax" and accelerator:  # a new jax needs a matching plugin
            req = Requirement(f"jax[{accelerator}]{req.specifier}")
        result.install.append(str(req))
    moving = {canonicalize_name(Requirement(r).name) for r in result.install}
    jax_moves = "jax" in moving or "jaxlib" in moving
    for name in (*HELD, *sorted(n for n in _JAX_FAMILY if n not in HELD)):
        if name in installed and name not in moving and not (jax_moves and name in _JAX_FAMILY):
            result.hold.append(f"{name}=={installed[name]}")
    return result


def describe(before: dict[str, str], after: dict[str, str], kept=("jax",), imported=(), asked=None) -> str:
    """One line that says what changed between the version maps ``before`` and ``after`` (canonical
    name -> version), which of ``kept`` stayed as the runtime had them, and whether a restart is needed
    (a changed distribution among ``imported``, the distributions of modules already imported). Added
    packages are named where they are among ``asked`` (the requirements installed), counted otherwise."""
    changed = [n for n in sorted(after) if n in before and before[n] != after[n]]
    down = {n for n in changed if _older(after[n], before[n])}  # a dependency's ceiling (wrapt<2 of otter)
    upgraded = [f"{n} {before[n]} -> {after[n]}" for n in changed if n not in down]
    downgraded = [f"{n} {before[n]} -> {after[n]}" for n in changed if n in down]
    new = [n for n in sorted(after) if n not in before and n != "sepconv"]
    named = new if asked is None else [n for n in new if n in {canonicalize_name(a) for a in asked}]
    parts = [f"sepconv {after.get('sepconv', '?')} installed"]
    parts.append(f"upgraded {', '.join(upgraded)}" if upgraded else "upgraded nothing")
    if downgraded:
        parts.append(f"downgraded {', '.join(downgraded)}")
    if new:
        more = len(new) - len(named)
        parts.append("added " + ", ".join([f"{n} {after[n]}" for n in named]
                                          + ([f"{more} {'package' if more == 1 else 'packages'} they need"]
                                             if more else [])))
    same = [f"{n} {after[n]}" for n in kept if n in after and before.get(n) == after[n]]
    if same:
        parts.append(f"kept the runtime's {', '.join(same)}")
    stale = sorted({n for n in imported if n in before and before[n] != after.get(n)})
    if stale:
        parts.append(f"RESTART the session (Runtime > Restart session) and run again: {', '.join(stale)} "
                     "had been imported before this cell")
    return "; ".join(parts) + "."


def _older(a: str, b: str) -> bool:
    try:
        return Version(a) < Version(b)
    except Exception:  # not a PEP 440 version: call it a change, not a downgrade
        return False


def _imported_distributions() -> set[str]:
    top = {name.split(".")[0] for name in list(sys.modules)}
    mapping = metadata.packages_distributions()
    return {canonicalize_name(d) for t in top for d in mapping.get(t, ())}


def _pip(args, constraints) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        cons = Path(tmp, "constraints.txt")
        cons.write_text("".join(f"{c}\n" for c in constraints))
        report = Path(tmp, "report.json")
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--report", str(report),
                              "--constraint", str(cons), *args], capture_output=True, text=True)
        run.report = json.loads(report.read_text()) if run.returncode == 0 and report.exists() else None
        return run


def install(extras=(), quiet: bool = False) -> str:
    """Install what the extras of this package need and the runtime lacks (see the module docstring);
    print and return the one line that says what changed."""
    before = installed_versions()
    chosen = plan(requirements(extras), before)
    if chosen.install:
        run = _pip(chosen.install, chosen.hold)
        if run.returncode != 0 and "ResolutionImpossible" in run.stdout + run.stderr:
            chosen = chosen.relaxed()
            run = _pip(chosen.install, chosen.hold)
        if run.returncode != 0:
            tail = [line for line in (run.stderr or run.stdout).strip().splitlines() if line.strip()][-3:]
            raise RuntimeError(f"pip could not install {' '.join(chosen.install)}: " + " / ".join(tail))
    metadata_cache_clear()
    after = installed_versions()
    line = describe(before, after, kept=[n for n in ("jax", "jaxlib", "numpy") if n in after],
                    imported=_imported_distributions(), asked=[Requirement(r).name for r in chosen.install])
    if not quiet:
        print(line)
    return line


def metadata_cache_clear() -> None:
    """Forget cached directory listings so that what pip just installed can be found and imported."""
    import importlib

    importlib.invalidate_caches()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def main(argv=None) -> int:
    """``python -m sepconv.colab [EXTRA ...]``: the same as ``install(extras)``."""
    args = sys.argv[1:] if argv is None else list(argv)
    bad = [a for a in args if not _NAME.match(a)]
    if bad:
        print(f"error: not an extra name: {bad[0]!r}", file=sys.stderr)
        return 2
    try:
        install(args)
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The install cell: the first code cell of every chapter (chapters/*.ipynb), of book/index.ipynb and of every
assignment master (book/assignments/*.ipynb, whose handouts ``sepconv assign build`` opens with it, before
the cell that starts otter).

    python tools/install_cell.py          # list the notebooks whose first code cell is not the canonical one
    python tools/install_cell.py --write  # make it so (after changing the repository URL, or adding a chapter)

The cell is the same in every notebook but for the extras it installs (``EXTRAS`` below; every notebook has
``chapters``, which Colab already has; the assignments add ``course``, for otter-grader). It does nothing outside Colab; in Colab it installs this package
from the repository, ``git+<url>@<branch>`` read from ``_config.yml`` (``repository:``, the one place the
repository is named; the Colab launch buttons read it too), or from ``SEPCONV_INSTALL`` where that is set
(``make colab`` points it at a wheel of the working tree), then ``sepconv.colab.install`` brings what the
extras need and Colab lacks, and prints one line (so nbval ignores the cell's output: tag
``nbval-ignore-output``).

``--write`` replaces an older install cell (one that tests for ``google.colab``), moving any line after its
``if`` block (a chapter's own setting, e.g. ``XLA_FLAGS``) into a new code cell right after it; in a notebook
whose first code cell is something else, it inserts the install cell before it (``remove-cell`` on the
landing page, whose code the website hides). It also writes the repository URL into the other files that
name it (``URL_FILES``). It changes nothing else.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Extras beyond ``chapters`` that a notebook needs (by file stem). A notebook not listed gets ``chapters``.
EXTRAS = {"09_deployment": ("chapters", "deploy")}
DEFAULT_EXTRAS = ("chapters",)
#: Extras of every assignment master (book/assignments/*.ipynb): the chapters' and otter-grader's.
ASSIGNMENT_EXTRAS = ("chapters", "course")
TAG = "nbval-ignore-output"
#: Files that name the repository in a ``git+`` URL; ``--write`` rewrites it from _config.yml.
URL_FILES = ("book/assignments/requirements.txt", "book/assignments/*.ipynb", "book/instructors.md", "README.md",
             "book/how_to_use.md")
GIT_URL = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+?(?:\.git)?(?:@[\w./-]+)?(?=[\s\"'`)\]\\\\]|$)")

TEMPLATE = '''\
# In Colab: install the book's library and what this notebook needs (one line says what changed).
import os, sys
if "google.colab" in sys.modules:  # pragma: no cover - only in Colab
    import subprocess
    source = os.environ.get("SEPCONV_INSTALL", "{source}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", source], check=True)
    from sepconv.colab import install
    install({extras})'''


def repository(root: Path = ROOT) -> str:
    """``git+<url>@<branch>`` from ``_config.yml``'s ``repository`` section."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config.get("repository") or {}
    url, branch = repo.get("url"), repo.get("branch", "main")
    if not url or not str(url).startswith("https://"):
        raise SystemExit(f"error: _config.yml has no repository url (https://...), found {url!r}")
    return f"git+{str(url).rstrip('/')}@{branch}"


def notebooks(root: Path = ROOT) -> list[Path]:
    return (sorted((root / "chapters").glob("*.ipynb")) + [root / "book" / "index.ipynb"]
            + sorted((root / "book" / "assignments").glob("*.ipynb")))


def extras(path: Path) -> tuple[str, ...]:
    """The extras the install cell of ``path`` names."""
    if path.parent.name == "assignments":
        return ASSIGNMENT_EXTRAS
    return EXTRAS.get(path.stem, DEFAULT_EXTRAS)


def canonical(path: Path, root: Path = ROOT) -> str:
    return TEMPLATE.format(source=repository(root), extras=json.dumps(list(extras(path))))


def tags(path: Path, root: Path = ROOT) -> list[str]:
    return [TAG, "remove-cell"] if path == root / "book" / "index.ipynb" else [TAG]


def first_code(nb) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")


def is_current(path: Path, root: Path = ROOT) -> bool:
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[first_code(nb)]
    return cell.source == canonical(path, root) and list(cell.metadata.get("tags", [])) == tags(path, root)


def _split_old(source: str) -> tuple[bool, str]:
    """(is an install cell, the lines after its ``if "google.colab"`` block)."""
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("if ") and "google.colab" in line), None)
    if start is None:
        return False, ""
    end = start + 1
    depth = 0
    while end < len(lines):
        line = lines[end]
        if depth == 0 and line and not line[0].isspace():
            break
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
        end += 1
    rest = "\n".join(lines[end:]).strip("\n")
    if rest and re.search(r"\bos\.", rest) and not re.search(r"^import os\b", rest, re.M):
        rest = "import os\n\n" + rest
    return True, rest


def write(path: Path, root: Path = ROOT) -> bool:
    """Make the first code cell of ``path`` the canonical one; return whether the file changed."""
    if is_current(path, root):
        return False
    nb = nbformat.read(path, as_version=4)
    index = first_code(nb)
    cell = nb.cells[index]
    old, rest = _split_old(cell.source)
    if old:
        cell.source = canonical(path, root)
        cell.metadata["tags"] = tags(path, root) + [t for t in cell.metadata.get("tags", []) if t not in tags(path, root)]
        outputs, cell.outputs = cell.outputs, []  # outside Colab only the moved lines can print
        if rest:
            new = nbformat.v4.new_code_cell(rest)
            new.id = f"{cell.get('id', 'install')}-setup"[:64]
            new.outputs = outputs
            new.execution_count = cell.execution_count  # its outputs came from that execution
            nb.cells.insert(index + 1, new)
    else:
        new = nbformat.v4.new_code_cell(canonical(path, root), metadata={"tags": tags(path, root)})
        new.id = "install-sepconv"
        nb.cells.insert(index, new)
    nbformat.write(nb, path)
    return True


def _url_files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for pattern in URL_FILES for p in sorted(root.glob(pattern))]


def url_mismatches(root: Path = ROOT) -> list[str]:
    """``file: url`` for each git+ URL in ``URL_FILES`` that is not the repository of _config.yml."""
    want = repository(root)
    base = want.rsplit("@", 1)[0]
    out = []
    for name in _url_files(root):
        text = (root / name).read_text()
        for m in GIT_URL.finditer(text):
            if m.group(0) not in (want, base):
                out.append(f"{name}: {m.group(0)}")
    return out


def write_urls(root: Path = ROOT) -> list[str]:
    want = repository(root)
    changed = []
    for name in _url_files(root):
        path = root / name
        text = path.read_text()
        new = GIT_URL.sub(lambda m: m.group(0) if m.group(0) in (want, want.rsplit("@", 1)[0]) else want, text)
        if new != text:
            path.write_text(new)
            changed.append(name)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite what differs")
    args = parser.parse_args(argv)
    stale = [p for p in notebooks() if not is_current(p)]
    urls = url_mismatches()
    if args.write:
        for p in stale:
            write(p)
            print(f"wrote the install cell of {p.relative_to(ROOT)}")
        for name in write_urls():
            print(f"wrote the repository URL into {name}")
        return 0
    for p in stale:
        print(f"{p.relative_to(ROOT)}: first code cell is not the install cell (run with --write)")
    for u in urls:
        print(f"{u}: not the repository of _config.yml (run with --write)")
    return 1 if stale or urls else 0


if __name__ == "__main__":
    sys.exit(main())

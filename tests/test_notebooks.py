"""The stored outputs are a contract: changing one stored number must fail nbval."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "01_separable_convolution.ipynb"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def _nbval(path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-sanitize-with", str(SANITIZE), str(path)],
                          cwd=path.parent, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("chapter", sorted((ROOT / "chapters").glob("*.ipynb")), ids=lambda p: p.name)
def test_chapters_store_their_outputs(chapter):
    nb = nbformat.read(chapter, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count is not None for c in code), "run `make notebooks` to store outputs"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_a_changed_stored_number_fails_nbval(tmp_path):
    nb = nbformat.read(CHAPTER, as_version=4)
    changed = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and "462,422,016 MACs" in out["text"]:
                out["text"] = out["text"].replace("462,422,016 MACs", "462,422,017 MACs")
                changed += 1
    assert changed == 1
    tampered = tmp_path / CHAPTER.name
    nbformat.write(nb, tampered)
    result = _nbval(tampered)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "462,422,017" in result.stdout and "1 failed" in result.stdout

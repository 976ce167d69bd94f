"""Every chapter installs the package when it runs in Colab, and that install works.

The install is tested for real: a fresh virtual environment runs a chapter's
first cell with a stand-in ``google.colab`` module and ``SEPCONV_INSTALL``
pointing at this repository; the package must build, install into that
environment and import, data files included.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _first_code(path):
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_first_cell_installs_only_in_colab(chapter):
    source = _first_code(chapter)
    assert 'if "google.colab" in sys.modules:' in source
    assert 'os.environ.get("SEPCONV_INSTALL"' in source and '"pip", "install"' in source


def test_first_cell_does_nothing_locally(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # a chapter may set XLA_FLAGS; keep it out of this process
    for chapter in CHAPTERS:
        exec(compile(_first_code(chapter), str(chapter), "exec"), {})
    assert calls == []


def test_colab_cell_installs_the_package_into_a_fresh_environment(tmp_path):
    venv = tmp_path / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the heavy dependencies (JAX, Flax) are borrowed from this environment instead of downloaded again;
    # a plain path in a .pth file does not activate this environment's editable install of sepconv
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    stub = tmp_path / "stub" / "google"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "colab.py").write_text("# stands in for Colab's module\n")
    runner = tmp_path / "run_cell.py"
    runner.write_text("import google.colab\n" + _first_code(CHAPTERS[0]) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SEPCONV_INSTALL=str(ROOT), PYTHONPATH=str(stub.parent), PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([str(python), str(runner)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    check = ("import json, sepconv; from sepconv.published import published_table; "
             "print(json.dumps([sepconv.__file__, len(published_table('mobilenet_v2_checkpoints')), "
             "sepconv.standard_conv_cost(14, 14, 512, 512).macs]))")
    out = subprocess.run([str(python), "-c", check], env={**env, "PYTHONPATH": ""}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    location, rows, macs = json.loads(out.stdout)
    assert str(venv) in location  # the copy installed by the cell, not the repository's source tree
    assert rows == 44 and macs == 3 * 3 * 512 * 512 * 14 * 14

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings  # noqa: E402

settings.register_profile("sepconv", deadline=None, derandomize=True, max_examples=40)
settings.load_profile("sepconv")

import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def site():
    """Build the website once per test run, with warnings as errors; return the HTML folder."""
    if not (ROOT / "book" / "_vendor" / "mathjax" / "tex-chtml.js").exists():
        pytest.fail("MathJax is not vendored: run `make vendor` (make book/test do it)")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(ROOT), "--all", "--warningiserror", "--keep-going"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return ROOT / "_build" / "html"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``): a notebook's cells run in order in one kernel, so they
    stay on one worker; the tests that read the built website share one build."""
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(path.stem))
        elif "site" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("site"))

"""The website builds with warnings as errors and serves what it promises offline."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def site():
    if not (ROOT / "book" / "_vendor" / "mathjax" / "tex-chtml.js").exists():
        pytest.fail("MathJax is not vendored: run `make vendor` (make book/test do it)")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(ROOT), "--warningiserror", "--keep-going"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return HTML


def test_chapters_render_with_local_mathjax(site):
    page = (site / "chapters" / "01_separable_convolution.html").read_text()
    assert re.search(r'src="(\.\./)+_static/\.\./mathjax/tex-chtml\.js', page)
    assert (site / "mathjax" / "tex-chtml.js").exists()
    assert (site / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert "cdn.jsdelivr" not in page and "polyfill.io" not in page


def test_glued_numbers_reach_the_prose(site):
    page = (site / "chapters" / "01_separable_convolution.html").read_text()
    assert '<span class="pasted-text">462,422,016</span>' in page
    assert "Glue ID" not in page  # an unresolved glue key would be reported like this


def test_colab_button_points_at_the_chapter(site):
    page = (site / "chapters" / "01_separable_convolution.html").read_text()
    assert re.search(r"https://colab\.research\.google\.com/github/[^\"]+/blob/main/chapters/"
                     r"01_separable_convolution\.ipynb", page)

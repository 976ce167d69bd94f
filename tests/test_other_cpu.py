"""The chapters whose numbers come from training hold on another CPU: run them under XLA's AVX2 code
path (a stand-in for a machine without AVX-512, whose sums round differently) and compare every stored
output, as `make test` does on this machine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOAT_SENSITIVE = ["05_training", "09_deployment"]


@pytest.mark.parametrize("chapter", FLOAT_SENSITIVE)
def test_chapter_outputs_hold_under_another_instruction_set(chapter):
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_max_isa=AVX2".strip(),
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval", f"chapters/{chapter}.ipynb",
                             "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "-q", "-p", "no:cacheprovider",
                             "-p", "no:xdist"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]

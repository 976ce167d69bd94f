"""The handout's public checks work in Colab: no ./tests folder, no notebook file on disk.

Colab runs a notebook without its file in the working folder, and otter refuses tests kept in a notebook's
metadata there (otter-grader issue #901: ``Tests directory ./tests does not exist``). ``assign build``
ships the public tests inside the cell that starts otter. Here a built handout's cells run, one by one,
in an IPython shell that otter takes for Colab's (its class lives in a stand-in ``google.colab`` package),
in a fresh empty folder: with the solutions' answers every ``grader.check`` passes; untouched, each check
runs and fails (it does not raise).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sepconv.assignments import build

ROOT = Path(__file__).resolve().parents[1]
MASTER = ROOT / "book" / "assignments" / "08_deployment.ipynb"

HARNESS = r'''
import json, re, sys
import nbformat
from google.colab._shell import Shell

shell = Shell.instance()
nb = nbformat.read(sys.argv[1], as_version=4)
checks = {}
for cell in nb.cells:
    if cell.cell_type != "code" or "from sepconv.colab import install" in cell.source:
        continue  # the install cell: this environment has everything (make colab runs it for real)
    match = re.fullmatch(r'\s*grader\.check\("(\w+)"\)\s*', cell.source)
    source = f'_check = grader.check("{match.group(1)}")' if match else cell.source
    result = shell.run_cell(source)
    if match or "otter.Notebook(" in source:  # a student's own cell may fail; otter's may not
        result.raise_error()
    if match:
        checks[match.group(1)] = bool(shell.user_ns["_check"].passed_all)
print(json.dumps({"checks": checks, "colab": "google.colab" in str(shell), "tests": sorted(__import__("os").listdir("tests"))}))
'''


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    base = tmp_path_factory.mktemp("colab")
    built = build(MASTER, base / "dist")
    stub = base / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub.parent / "__init__.py").write_text("")
    (stub / "__init__.py").write_text("# stands in for Colab's package\n")
    (stub / "output.py").write_text("# JAX's debugger imports it when google.colab exists\n")
    (stub / "_shell.py").write_text("from IPython.core.interactiveshell import InteractiveShell\n\n\n"
                                    "class Shell(InteractiveShell):\n    \"\"\"Colab's shell, by name.\"\"\"\n")
    (base / "harness.py").write_text(HARNESS)

    def run(notebook):
        folder = Path(os.path.join(base, f"content_{notebook.parent.name}"))
        folder.mkdir()
        assert list(folder.iterdir()) == []
        env = {**os.environ, "PYTHONPATH": str(base / "stub"), "JAX_PLATFORMS": "cpu"}
        done = subprocess.run([sys.executable, str(base / "harness.py"), str(notebook)], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    return built, run


def test_every_check_passes_in_colab_with_the_solutions(colab):
    built, run = colab
    result = run(built.solutions)
    assert result["colab"]  # otter took the shell for Colab's
    assert result["checks"] == {question: True for question in built.points}
    assert result["tests"] == [f"{question}.py" for question in sorted(built.points)]


def test_the_untouched_handout_checks_run_and_fail_in_colab(colab):
    built, run = colab
    result = run(built.student)
    assert result["checks"] == {question: False for question in built.points}


def test_the_handout_opens_with_the_install_cell_then_starts_otter(colab):
    built, _ = colab
    sys.path.insert(0, str(ROOT / "tools"))
    import install_cell

    for notebook in (built.student, built.solutions):
        code = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
        assert code[0].source == install_cell.canonical(MASTER)  # in Colab, it brings otter-grader
        assert "otter.Notebook(" in code[1].source and "import otter" in code[1].source

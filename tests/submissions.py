"""Tiny submission notebooks for the grader's tests (test_grader_attacks, test_grader_redteam)."""

import textwrap
from pathlib import Path

import nbformat

from sepconv.assignments import build
from sepconv.grading import code_cells

#: Assignment 8 as it was when the grader's attack suites were written (its answers and 12 points are what
#: they forge), kept in tests/grader_target/ so that the course's assignments can change without them.
TARGET = Path(__file__).resolve().parent / "grader_target" / "08_deployment.ipynb"


def build_target(folder):
    """``assign build`` of the attack suites' target assignment into ``folder``."""
    return build(TARGET, folder)


def solution_sources(built) -> list:
    """The code cells of a built assignment's solutions, to paste into a fresh notebook."""
    return [source for _, source in code_cells(built.solutions)]


def notebook(path, *sources, kernel="python3", otter=True):
    """Write a notebook of one code cell per source (dedented) to ``path`` and return ``path``; with otter's
    notebook metadata unless ``otter`` is false, under the kernel named ``kernel``."""
    cells = [nbformat.v4.new_code_cell(textwrap.dedent(s)) for s in sources]
    metadata = {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}}
    if otter:
        metadata["otter"] = {"OK_FORMAT": True}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=metadata), path)
    return path

"""Tiny submission notebooks for the grader's tests (test_grader_attacks, test_grader_redteam)."""

import textwrap

import nbformat


def notebook(path, *sources, kernel="python3", otter=True):
    """Write a notebook of one code cell per source (dedented) to ``path`` and return ``path``; with otter's
    notebook metadata unless ``otter`` is false, under the kernel named ``kernel``."""
    cells = [nbformat.v4.new_code_cell(textwrap.dedent(s)) for s in sources]
    metadata = {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}}
    if otter:
        metadata["otter"] = {"OK_FORMAT": True}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=metadata), path)
    return path

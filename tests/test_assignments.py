import json
from pathlib import Path

import nbformat
import pytest

from sepconv.assignments import build, grade, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "book" / "assignments").glob("*.ipynb"))


def _solution_lines(nb):
    lines = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() == "# BEGIN SOLUTION":
                inside = True
            elif line.strip() == "# END SOLUTION":
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


@pytest.fixture(scope="module", params=SOURCES, ids=lambda p: p.stem)
def built(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    student, grader = build(request.param, out)
    return request.param, student, grader


def test_student_version_has_no_solutions_and_no_hidden_tests(built):
    source, student, grader = built
    reference = nbformat.read(source, as_version=4)
    handout = nbformat.read(student, as_version=4)
    text = "\n".join(c.source for c in handout.cells)
    solutions = _solution_lines(reference)
    assert solutions, "the source notebook marks no solutions"
    assert not [line for line in solutions if line in text]
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert not any("hidden-tests" in c.metadata.get("tags", []) for c in handout.cells)
    assert all(not c.get("outputs") for c in handout.cells if c.cell_type == "code")
    hidden = [t for t in json.loads(Path(grader).read_text())["tests"] if t["hidden"]]
    assert hidden and not [t for t in hidden if t["source"] in text]


def test_reference_scores_full_marks_and_blank_scores_zero(built):
    source, student, grader = built
    full = grade(source, grader)
    assert full.score == full.total > 0, full.to_dict()
    blank = grade(student, grader)
    assert blank.score == 0, blank.to_dict()


def test_partial_work_gets_partial_credit_and_edited_tests_do_not_count(built, tmp_path):
    source, student, grader = built
    nb = nbformat.read(student, as_version=4)
    for cell in nb.cells:
        if "def cost_ratio" in cell.source:
            cell.source = "def cost_ratio(n, k):\n    return Fraction(1, n) + Fraction(1, k * k)"
        if "tests" in cell.metadata.get("tags", []):
            cell.source = "pass  # a student 'fixing' the visible tests"
    partial = tmp_path / "partial.ipynb"
    nbformat.write(nb, partial)
    result = grade(partial, grader)
    earned = {t.name: t.earned for t in result.tests}
    assert earned["q2 example"] == 0.5 and earned["q2 exact fractions"] == 0.5
    assert result.score == 1.0


def test_solution_markers_are_checked():
    assert strip_solutions("x = 1\n    # BEGIN SOLUTION\n    y = 2\n    # END SOLUTION\nz = 3") == \
        'x = 1\n    raise NotImplementedError("write your solution here")\nz = 3'
    with pytest.raises(ValueError, match="without # END SOLUTION"):
        strip_solutions("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="line 1: # END SOLUTION without"):
        strip_solutions("# END SOLUTION")

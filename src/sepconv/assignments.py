"""Course assignments: author once with solutions, hand out without, grade with hidden tests.

A source notebook marks

* solution code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines;
* test cells with the tag ``tests`` (shown to students) or ``hidden-tests``
  (kept for grading only), and their worth in ``metadata["points"]``.

``build`` writes the student notebook (solutions replaced by
``raise NotImplementedError``, hidden tests removed, outputs cleared) and an
autograder file (every test cell with its points). ``grade`` runs a submitted
notebook, then runs each test of the autograder file in the same kernel (the
student's own copies of the test cells are dropped, so editing them gains
nothing) and reports the score.

A small own step rather than nbgrader or otter-grader: those bring a database
or a container runtime that this course does not need; the format here is the
same idea (solution markers, hidden tests) in about a hundred lines.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

__all__ = ["strip_solutions", "build", "grade", "TestResult", "Grade"]

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
TEST_TAGS = ("tests", "hidden-tests")
_BEGIN_RE = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")


def strip_solutions(source: str) -> str:
    """Replace each marked solution block by ``raise NotImplementedError`` at the block's indentation."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), 1):
        begin = _BEGIN_RE.match(line)
        if begin:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            inside = True
            out.append(f'{begin.group(1)}raise NotImplementedError("write your solution here")')
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def _tests(nb) -> list[dict]:
    tests = []
    for index, cell in enumerate(nb.cells):
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type == "code" and tags & set(TEST_TAGS):
            if "points" not in cell.metadata:
                raise ValueError(f"test cell {index} has no 'points' in its metadata")
            tests.append({"name": cell.metadata.get("name", f"test {len(tests) + 1}"),
                          "points": float(cell.metadata["points"]), "hidden": "hidden-tests" in tags,
                          "source": cell.source})
    if not tests:
        raise ValueError("the notebook has no test cells (tag 'tests' or 'hidden-tests')")
    return tests


def build(source: str | Path, outdir: str | Path) -> tuple[Path, Path]:
    """Write ``<name>.ipynb`` (student version) and ``<name>.autograder.json`` into ``outdir``."""
    source, outdir = Path(source), Path(outdir)
    nb = nbformat.read(source, as_version=4)
    tests = _tests(nb)
    student = copy.deepcopy(nb)
    student.cells = [c for c in student.cells if "hidden-tests" not in c.metadata.get("tags", [])]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    outdir.mkdir(parents=True, exist_ok=True)
    student_path = outdir / source.name
    nbformat.write(student, student_path)
    grader_path = outdir / f"{source.stem}.autograder.json"
    grader_path.write_text(json.dumps({"assignment": source.stem, "tests": tests}, indent=2))
    return student_path, grader_path


@dataclass
class TestResult:
    name: str
    points: float
    earned: float
    hidden: bool
    error: str = ""


@dataclass
class Grade:
    score: float
    total: float
    tests: list

    def to_dict(self) -> dict:
        return {"score": self.score, "total": self.total, "tests": [asdict(t) for t in self.tests]}


def grade(submission: str | Path, autograder: str | Path, timeout: int = 600) -> Grade:
    """Run ``submission`` and every test of ``autograder`` in one kernel; a test earns its points if it raises nothing."""
    from nbclient import NotebookClient

    spec = json.loads(Path(autograder).read_text())
    nb = nbformat.read(submission, as_version=4)
    nb.cells = [c for c in nb.cells if not set(c.metadata.get("tags", [])) & set(TEST_TAGS)]
    first_test = len(nb.cells)
    for test in spec["tests"]:
        nb.cells.append(nbformat.v4.new_code_cell(test["source"]))
    NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(submission).parent)}}).execute()
    results = []
    for test, cell in zip(spec["tests"], nb.cells[first_test:]):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        message = f"{errors[0].ename}: {errors[0].evalue}" if errors else ""
        results.append(TestResult(test["name"], test["points"], 0.0 if errors else test["points"], test["hidden"],
                                  message))
    return Grade(sum(r.earned for r in results), sum(r.points for r in results), results)


def add_arguments(parser) -> None:
    """The ``python -m sepconv assign`` options."""
    parser.add_argument("action", choices=("build", "grade"))
    parser.add_argument("notebook", help="build: the source notebook with solutions; grade: the submitted notebook")
    parser.add_argument("--out", default="dist", help="build: folder for the student notebook and autograder file")
    parser.add_argument("--autograder", help="grade: the .autograder.json file written by build")
    parser.add_argument("--json", action="store_true", help="grade: print the result as JSON")


def main(args) -> int:
    if not Path(args.notebook).is_file():
        raise FileNotFoundError(f"no notebook {args.notebook!r}")
    if args.action == "build":
        student, grader = build(args.notebook, args.out)
        print(f"student notebook: {student}\nautograder: {grader}")
        return 0
    if not args.autograder:
        raise ValueError("assign grade needs --autograder FILE")
    result = grade(args.notebook, args.autograder)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for t in result.tests:
            kind = "hidden " if t.hidden else ""
            print(f"{t.earned:g}/{t.points:g}  {kind}{t.name}" + (f"  ({t.error})" if t.error else ""))
        print(f"Score: {result.score:g} / {result.total:g}")
    return 0

"""The course's assignments on otter-grader: build them, grade them safely, and prove both work.

Each assignment is one master notebook in otter-grader's format (``book/assignments/*.ipynb``;
https://otter-grader.readthedocs.io, "Notebook format v1"): raw cells ``# BEGIN QUESTION`` (name,
points, ``manual: true`` for written answers), ``# BEGIN SOLUTION`` / ``# END SOLUTION`` around the
solution cells and ``# BEGIN TESTS`` / ``# END TESTS`` around test cells (``hidden: true`` and
``points`` in each test's config). What this module adds to otter:

``build(master, out)``
    runs ``otter assign`` (student notebook, autograder notebook, the Gradescope autograder zip), then
    refuses the result if any solution text reached the student notebook. Otter copies a cell it does
    not recognize as a solution to the students without a warning (an nbgrader-style
    ``### BEGIN SOLUTION``, a ``# SOLUTION`` comment outside a solution block, an answer typed into
    a prompt); ``build`` checks every line of every solution against the handout, and every marker
    spelling anywhere in it.
``grade(submission, autograder_zip)`` and ``grade_folder(folder, autograder_zip)``
    grade in two phases (:mod:`sepconv.grading`): the submission runs in a sandbox that writes only plain
    data per answer, then the hidden tests run in a clean process on that data. Otter's zip still
    grades on Gradescope; locally, this grader replaces ``otter run`` (which runs the tests inside the
    submission's own Python process).
``variant(student, question, **options)``
    the numbers of a per-student question: the hidden tests draw the same from ``student`` (the grader's,
    see :mod:`sepconv.grading`) with the formula written out in the test, never by calling this.
``check(master)``
    what CI proves for every assignment: the tests are gradable in two phases (each reads exactly one
    answer, and only answers the solutions define); the solutions score full marks; the untouched
    student notebook scores 0 and holds no solution text; a submission that suppresses errors and
    patches every function of ``sepconv`` scores 0. With ``prove_probe`` the solutions are graded with a
    cell that exits the process and one that loops forever added: both removed, full marks.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .grading import Grade, GradingError, grade, grade_folder, read_roster, table
from .grading.hidden import read as read_tests

__all__ = ["build", "ship_public_tests", "grade", "grade_folder", "check", "variant", "Built", "Grade", "solution_leaks",
           "AssignmentError", "GradingError"]

SOLUTION_TAG = "otter_assign_solution_cell"
#: Any spelling of a solution marker: ``# BEGIN SOLUTION``, ``### BEGIN SOLUTION``, ``#begin solution``,
#: ``# SOLUTION``, ``<!-- BEGIN SOLUTION -->``, ``# END SOLUTION NO PROMPT`` ...
MARKER = re.compile(r"(#+|<!--)\s*((BEGIN|END)\s+)?SOLUTION\b", re.IGNORECASE)
_CHECK = re.compile(r"""grader\.check\(\s*["'](\w+)["']\s*\)""")


class AssignmentError(ValueError):
    """A master notebook or a build that would hand out or grade something wrong."""


@dataclass(frozen=True)
class Built:
    """What ``build`` wrote: the student notebook, the autograder notebook (with solutions) and zip."""

    name: str
    student: Path
    solutions: Path
    autograder: Path
    points: dict  # question -> points, autograded questions
    manual: dict  # question -> points, written answers graded by hand


# ----------------------------------------------------------------------------------------------------
# Per-student variants
# ----------------------------------------------------------------------------------------------------

def variant(student: str, question: str, **options) -> dict:
    """The numbers of ``question`` for ``student``: for the option at position ``i`` (keyword order),
    ``options[name][digest[i] % len(options[name])]`` where
    ``digest = hashlib.sha256(f"{student}/{question}".encode()).digest()``. Printed and returned.

    A hidden test recomputes the same in its own code (``hashlib`` and the grader's ``student`` are given
    to tests) and the expected answer from its own formula::

        >>> _d = hashlib.sha256(f"{student}/q3".encode()).digest()
        >>> _c = [32, 48, 64][_d[0] % 3]

    ``variant("ada", "q3", channels=[32, 48, 64])`` -> ``{"channels": ...}``, the same for every call."""
    if type(student) is not str or not student.strip():
        raise ValueError(f"student must be a non-empty string (the notebook's first answer), got {student!r}")
    if type(question) is not str or not question:
        raise ValueError(f"question must be a question's name such as 'q3', got {question!r}")
    if not options:
        raise ValueError("variant needs at least one option: variant(student, 'q3', channels=[32, 48, 64])")
    digest = hashlib.sha256(f"{student}/{question}".encode()).digest()
    if len(options) > len(digest):
        raise ValueError(f"at most {len(digest)} options, got {len(options)}")
    chosen = {}
    for i, (name, values) in enumerate(options.items()):
        if isinstance(values, (str, bytes, dict, set)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ValueError(f"option {name!r} must be a non-empty list of values, got {values!r}")
        chosen[name] = list(values)[digest[i] % len(values)]
    print(f"{question} for {student!r}: " + ", ".join(f"{k} = {v!r}" for k, v in chosen.items()))
    return chosen


# ----------------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------------

def _config(cell) -> dict:
    import yaml

    text = "\n".join(cell.source.splitlines()[1:])
    return yaml.safe_load(text) or {}


def _questions(master: nbformat.NotebookNode) -> tuple[dict, dict, list]:
    """``(autograded points, manual points, solution sources)`` of a master notebook; raises on a
    solution marker outside a solution block."""
    points, manual, solutions = {}, {}, []
    block = None
    for index, cell in enumerate(master.cells):
        first = cell.source.strip().splitlines()[0].strip().upper() if cell.source.strip() else ""
        if cell.cell_type == "raw":
            if first.startswith("# BEGIN QUESTION"):
                config = _config(cell)
                target = manual if config.get("manual") else points
                target[config["name"]] = float(config.get("points", 1))
            elif first == "# BEGIN SOLUTION":
                block = "solution"
            elif first == "# END SOLUTION":
                block = None
            continue
        if block == "solution":
            solutions.append((cell.source, cell.cell_type == "markdown"))
        else:
            # a marker outside a solution block is a solution otter would hand out
            stray = [line for line in cell.source.splitlines() if MARKER.search(line)]
            if stray:
                raise AssignmentError(f"cell {index}: solution marker outside a '# BEGIN SOLUTION' block: "
                                      f"{stray[0].strip()!r} (otter would copy this cell to the students)")
    if not points:
        raise AssignmentError("no autograded question (raw cell '# BEGIN QUESTION' without 'manual: true')")
    if not solutions:
        raise AssignmentError("no solution block (raw cells '# BEGIN SOLUTION' ... '# END SOLUTION')")
    return points, manual, solutions


def _secret_lines(source: str, markdown: bool) -> list[str]:
    """What otter removes from a solution cell: in code, lines ending in ``# SOLUTION`` (without the
    comment) and lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the whole cell when it
    has no such marker (otter would hand it out unchanged) or is written prose."""
    lines = source.splitlines()
    if markdown or not any(MARKER.search(line) for line in lines):
        return lines
    secret, inside = [], False
    for line in lines:
        marker = MARKER.search(line)
        if marker and re.match(r"\s*#+\s*BEGIN\s+SOLUTION", line, re.IGNORECASE):
            inside = True
        elif marker and re.match(r"\s*#+\s*END\s+SOLUTION", line, re.IGNORECASE):
            inside = False
        elif inside:
            secret.append(line)
        elif marker:
            secret.append(line[:marker.start()])
    return secret


def solution_leaks(student: nbformat.NotebookNode, solutions: list[tuple[str, bool]]) -> list[str]:
    """Solution lines (``(source, is_markdown)`` of each solution cell) and solution markers found in a
    student notebook. Trivial lines (blank, ``...``, comments, brackets) do not count."""
    text = "\n".join(cell.source for cell in student.cells)
    handout = {line.strip() for line in text.splitlines()}
    trivial = re.compile(r"^(\.\.\.|#.*|[()\[\]{},:]*|pass|else:|return)$")
    leaks = [line.strip() for source, markdown in solutions for line in _secret_lines(source, markdown)
             if line.strip() and not trivial.match(line.strip()) and line.strip() in handout]
    leaks += [line.strip() for line in text.splitlines() if MARKER.search(line)]
    return leaks


def build(master: str | Path, out: str | Path) -> Built:
    """``otter assign`` the master notebook into ``out`` (``student/``, ``autograder/``), then check
    that no solution text reached the student notebook."""
    master, out = Path(master), Path(out)
    if not master.is_file():
        raise FileNotFoundError(f"no master notebook {str(master)!r}")
    try:
        source = nbformat.read(master, as_version=4)
    except Exception as error:  # not JSON, not a notebook
        raise AssignmentError(f"{master} is not a notebook: {error}") from None
    if "kernelspec" not in source.metadata:  # otter assign needs it to run the notebook
        raise AssignmentError(f"{master} names no kernel (metadata.kernelspec): open and save it in Jupyter, "
                              f"or add {{'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}")
    points, manual, solutions = _questions(source)
    if out.exists():
        shutil.rmtree(out)
    result = subprocess.run([sys.executable, "-m", "otter", "assign", "--no-run-tests", str(master.resolve()),
                             str(out.resolve())],
                            capture_output=True, text=True, cwd=master.parent)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise AssignmentError(f"otter assign failed on {master.name}: {lines[-1] if lines else 'no output'}")
    student = out / "student" / master.name
    leaks = solution_leaks(nbformat.read(student, as_version=4), solutions)
    if leaks:
        raise AssignmentError(f"solution text in the student notebook {student}: {leaks[0]!r}")
    (zip_path,) = sorted((out / "autograder").glob("*.zip"))
    solutions_nb = out / "autograder" / master.name
    ship_public_tests(student, [student, solutions_nb])
    return Built(master.stem, student, solutions_nb, zip_path, points, manual)


#: First line of the cell that starts otter in a handout (``code_cells`` of the grader leaves it out).
INIT = "# Initialize Otter"


def ship_public_tests(handout: Path, notebooks: list[Path]) -> None:
    """Put the public tests of ``handout`` (otter keeps them in the notebook's metadata) into the cell
    that starts otter in each of ``notebooks``: in Colab, where otter cannot read the notebook's file and
    refuses tests kept in metadata (otter-grader issue #901), the cell writes them to ``./tests``, where
    ``grader.check`` finds them. Elsewhere otter reads the metadata, as before. That cell moves to just
    after the install cell (``tools/install_cell.py``), which brings otter in Colab."""
    public = {}
    for question, test in nbformat.read(handout, as_version=4).metadata.get("otter", {}).get("tests", {}).items():
        test = json.loads(json.dumps(test))
        for suite in test.get("suites", []):
            suite["cases"] = [case for case in suite["cases"] if not case.get("hidden")]
        public[question] = test
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        init = next((c for c in nb.cells if c.cell_type == "code" and "otter.Notebook(" in c.source), None)
        if init is None:
            raise AssignmentError(f"{path.name}: no cell starts otter (grader = otter.Notebook(...))")
        start = next(line for line in init.source.splitlines() if "otter.Notebook(" in line)
        init.source = "\n".join([
            f"{INIT} (in Colab, where otter cannot read this file, the public tests go to ./tests for grader.check)",
            "import os, sys",
            "import otter",
            "",
            f"_public_tests = {public!r}",
            'if "google.colab" in sys.modules:',
            '    os.makedirs("tests", exist_ok=True)',
            "    for _question, _test in _public_tests.items():",
            '        with open(os.path.join("tests", _question + ".py"), "w") as _file:',
            '            _file.write("OK_FORMAT = True\\n\\ntest = " + repr(_test) + "\\n")',
            '    grader = otter.Notebook(tests_dir="tests")',
            "else:",
            "    " + start.strip()])
        _install_first(nb)
        nbformat.write(nb, path)


#: A line only the install cell has (tools/install_cell.py writes it into every master).
INSTALL = "from sepconv.colab import install"


def _install_first(nb: nbformat.NotebookNode) -> None:
    """Move the cell that starts otter to just after the install cell, where the master has one: otter
    assign puts its cell first, but in Colab ``import otter`` works only once the install cell has run."""
    cells = nb.cells
    install = next((i for i, c in enumerate(cells) if c.cell_type == "code" and INSTALL in c.source), None)
    init = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "otter.Notebook(" in c.source)
    if install is not None and init < install:
        cells.insert(install, cells.pop(init))  # after the pop, ``install`` is the index just after it


# ----------------------------------------------------------------------------------------------------
# What CI proves
# ----------------------------------------------------------------------------------------------------

#: Inserted after the first cell of a cheating submission: swallow every error, then replace every
#: function and class of the sepconv package by one returning 0.
CHEAT = """\
get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
import importlib, inspect, pkgutil, sepconv
for info in pkgutil.walk_packages(sepconv.__path__, "sepconv."):
    try:
        module = importlib.import_module(info.name)
    except Exception:
        continue
    for name, value in list(vars(module).items()):
        if callable(value) and getattr(value, "__module__", "").startswith("sepconv"):
            setattr(module, name, lambda *args, **kwargs: 0)
"""


def _answer_cells(nb: nbformat.NotebookNode) -> dict:
    """``{question: index of its first solution code cell}`` in an autograder notebook."""
    cells, pending = {}, []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            named = cell.metadata.get("otter", {}).get("tests")
            if named:
                cells.setdefault(named[0], i)
            else:
                pending.append(i)
        match = _CHECK.search(cell.source)
        if match and pending:
            cells.setdefault(match.group(1), pending[0])
            pending = []
    return cells


def _assigned(source: str) -> set:
    """Names a solution cell binds (assignments, definitions, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def gradable(built: Built) -> dict:
    """``{question: answers its tests read}``; raises ``AssignmentError`` on a test that reads no answer
    (except a public, 0-point check of ``student``) or several (one right answer would fail with its neighbour), or a name no solution cell defines (a
    variable of the setup cells, which a submission could change, or a helper the grader lacks)."""
    _, cases = read_tests(built.autograder)
    solution = nbformat.read(built.solutions, as_version=4)
    defined = set()
    for cell in solution.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            defined |= _assigned(cell.source)
    answers = {}
    for case in cases:
        if not case.answers and case.uses_student and not case.hidden and case.points == 0:
            continue  # the public check that the notebook sets `student` (a str): phase 2 reads the grader's
        if len(case.answers) != 1:
            raise AssignmentError(f"{built.name} {case.label} reads {len(case.answers)} answers "
                                  f"({', '.join(case.answers) or 'none'}): one test per answer")
        unknown = set(case.answers) - defined
        if unknown:
            raise AssignmentError(f"{built.name} {case.label} reads {sorted(unknown)[0]!r}, which no solution "
                                  f"cell defines: a test may read answers and the modules of GIVENS only")
        answers.setdefault(case.question, set()).update(case.answers)
    return answers


def _student_of(nb: nbformat.NotebookNode) -> str | None:
    """The string a solution cell assigns to ``student`` (``student = "ada"``), if one does."""
    for cell in nb.cells:
        if cell.cell_type != "code" or SOLUTION_TAG not in cell.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["student"]
                    and isinstance(node.value, ast.Constant) and type(node.value.value) is str):
                return node.value.value
    return None


def check(master: str | Path, work: str | Path | None = None, cell_timeout: float = 120,
          prove_probe: bool = True) -> dict:
    """Build ``master`` and grade three submissions (module docstring); raise ``AssignmentError`` on the
    first thing that does not hold. Returns the grades, by submission. A cell may run ``cell_timeout``
    seconds.

    With ``prove_probe`` the solutions are graded with two cells added: one that ends the process,
    before the first answer, and an endless loop as the last cell, with a limit of 2 s (the other cells
    keep ``cell_timeout``). Full marks with exactly those two cells removed prove both that the
    solutions are right and that a crash or a loop costs no answer its points."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(work) if work else Path(scratch)
        built = build(master, work / "dist")
        gradable(built)
        total = sum(built.points.values())
        grades = {}
        student = _student_of(nbformat.read(built.solutions, as_version=4)) or built.name

        def expect(label, path, score, removed=0, limit=None):
            result = grade(path, built.autograder, cell_timeout=cell_timeout, limit=limit, student=student)
            grades[label] = result
            if abs(result.score - score) > 1e-9 or len(result.removed) != removed or abs(result.total - total) > 1e-9:
                raise AssignmentError(f"{built.name}: the {label} submission scored {result.score:g} of "
                                      f"{result.total:g} with {len(result.removed)} cells removed; expected "
                                      f"{score:g} of {total:g} with {removed}: {result.questions} {result.problems}")

        solution = nbformat.read(built.solutions, as_version=4)
        answers = _answer_cells(solution)
        if not answers:
            raise AssignmentError(f"{built.name}: no solution cell found for any question")
        if prove_probe:
            solution.cells.insert(min(answers.values()), nbformat.v4.new_code_cell("import os\nos._exit(1)"))
            solution.cells.append(nbformat.v4.new_code_cell("while True:\n    pass"))
            loop = len(solution.cells) - 1

            def limit(index):
                return 2.0 if index == loop else cell_timeout

            nbformat.write(solution, work / f"solution_{built.name}.ipynb")
            expect("solution", work / f"solution_{built.name}.ipynb", total, removed=2, limit=limit)
        else:
            expect("solution", built.solutions, total)
        expect("untouched student", built.student, 0)
        cheat = nbformat.read(built.student, as_version=4)
        cheat.cells.insert(1, nbformat.v4.new_code_cell(CHEAT))
        nbformat.write(cheat, work / f"cheat_{built.name}.ipynb")
        expect("error-suppressing, library-patching", work / f"cheat_{built.name}.ipynb", 0)
        return {label: g.to_dict() for label, g in grades.items()}


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------

def _seconds(value: float, option: str) -> float:
    if not (value > 0 and value != float("inf")):  # also refuses nan
        raise ValueError(f"{option} must be a positive, finite number of seconds, got {value:g}")
    return value


def main(args) -> int:
    if args.action == "build":
        built = build(args.master, args.out)
        print(f"student notebook: {built.student}\nsolutions: {built.solutions}\nautograder (Gradescope): "
              f"{built.autograder}\npoints: {sum(built.points.values()):g} autograded + "
              f"{sum(built.manual.values()):g} written")
        return 0
    if args.action == "grade":
        options = {"cell_timeout": _seconds(args.cell_timeout, "--cell-timeout"),
                   "timeout": _seconds(args.timeout, "--timeout")}
        if args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        roster = read_roster(args.roster) if getattr(args, "roster", None) else None
        if Path(args.submission).is_dir():
            rows = grade_folder(args.submission, args.autograder, jobs=args.jobs, roster=roster, **options)
            if args.json:
                print(json.dumps([r.__dict__ for r in rows], indent=2))
            else:
                print(table(rows))
            return 0
        if roster is not None and Path(args.submission).name not in roster:
            raise GradingError(f"{Path(args.submission).name} is not in the roster {Path(args.roster).name}")
        result = grade(args.submission, args.autograder, student=roster[Path(args.submission).name] if roster else None,
                       **options)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            for name, (score, points) in result.questions.items():
                print(f"{score:g}/{points:g}  {name}")
                for hint in result.feedback.get(name, []):
                    print(f"        {hint}")
            for problem in result.problems:
                print(f"note: {problem}")
            print(f"Score: {result.score:g} / {result.total:g} (autograded for {result.student!r}; sandbox: "
                  f"{result.sandbox})")
        return 0
    for master in args.master:
        grades = check(master)
        print(f"{Path(master).stem}: " + ", ".join(f"{label} {g['score']:g}/{g['total']:g}"
                                                    for label, g in grades.items()))
    return 0

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
``grade(submission, autograder_zip)``
    grades with ``otter run`` (no container needed), after a probe: the submission runs once cell by
    cell in a fresh kernel with a time limit per cell; a cell that runs past it (an endless loop) or
    ends the kernel (``os._exit``, a crash) is replaced by a comment, the kernel restarted and the
    cells before it replayed, so the other answers still count. Otter runs the tests in the
    submission's kernel after the submission, on values the tests compare with numbers written into
    them (not recomputed by the library, which a submission could patch); suppressing errors
    (``set_custom_exc``) changes no test's outcome.
``check(master)``
    what CI proves for every assignment: the solutions score full marks; the untouched student
    notebook scores 0 and holds no solution text; a submission that suppresses errors and patches every
    function of ``sepconv`` scores 0. The solutions are graded with a cell that exits the kernel and one
    that loops forever added: within the time limit, with every answer's points. (That proves the probe;
    the two submissions that score 0 hold no such cell, and otter grades them without it.
    ``prove_probe=False`` grades the solutions as they are, without the probe: the test suite proves the
    probe on one assignment, since what it does depends on no assignment's content.)
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

__all__ = ["build", "grade", "check", "Built", "Grade", "solution_leaks", "AssignmentError"]

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


@dataclass
class Grade:
    """Autograded points per question of one submission, and the cells the probe removed."""

    score: float
    total: float
    questions: dict
    removed: dict = field(default_factory=dict)  # cell index -> why
    slowest_cell_s: float = 0.0  # the longest a kept cell ran in the probe

    def to_dict(self) -> dict:
        return asdict(self)


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
    return Built(master.stem, student, out / "autograder" / master.name, zip_path, points, manual)


# ----------------------------------------------------------------------------------------------------
# Grading
# ----------------------------------------------------------------------------------------------------

def _probe(nb: nbformat.NotebookNode, limit, cwd: Path) -> tuple[dict, float]:
    """Run ``nb`` cell by cell; ``({cell index: why}, slowest kept cell in seconds)`` for cells that ran
    past their time limit or ended the kernel. After such a cell the kernel is restarted and the cells
    that ran are replayed (unless no code cell is left to run). ``limit(index)`` is a cell's limit in
    seconds."""
    import time

    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    removed, done, position, slowest = {}, [], 0, 0.0
    while position < len(code):
        client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(cwd)}})
        try:
            with client.setup_kernel():
                for i in done:
                    client.timeout = max(math.ceil(limit(i)), 60)  # it ran once already
                    client.execute_cell(nb.cells[i], i)
                while position < len(code):
                    i = code[position]
                    position += 1
                    client.timeout = math.ceil(limit(i))
                    start = time.perf_counter()
                    try:
                        client.execute_cell(nb.cells[i], i)
                    except CellTimeoutError:
                        removed[i] = f"ran longer than {client.timeout} s"
                        break
                    except DeadKernelError:
                        removed[i] = "ended the kernel"
                        break
                    done.append(i)
                    slowest = max(slowest, time.perf_counter() - start)
        except (CellTimeoutError, DeadKernelError, RuntimeError) as error:  # a replayed cell misbehaved
            removed.setdefault(code[position - 1], f"failed on replay: {type(error).__name__}")
    return removed, slowest


def grade(submission: str | Path, autograder: str | Path, cell_timeout: float = 60, timeout: float = 1200,
          limit=None, *, probe: bool = True) -> Grade:
    """Grade ``submission`` with ``otter run`` against the autograder zip of ``build``, after the probe
    of the module docstring (``cell_timeout`` seconds per cell; ``timeout`` for otter's whole run).
    ``limit(cell index)``, if given, replaces ``cell_timeout`` per cell (in seconds). ``probe=False``
    is only for submissions known to hold no cell that ends the kernel or loops (``check``'s own)."""
    submission, autograder = Path(submission), Path(autograder)
    for path, what in ((submission, "submission"), (autograder, "autograder zip")):
        if not path.is_file():
            raise FileNotFoundError(f"no {what} {str(path)!r}")
    if autograder.suffix != ".zip":
        raise ValueError(f"the autograder is the .zip that `assign build` writes, not {autograder.name!r}")
    try:
        nb = nbformat.read(submission, as_version=4)
    except Exception as error:
        raise ValueError(f"{submission} is not a notebook: {error}") from None
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        removed, slowest = _probe(nb, limit or (lambda index: cell_timeout), folder) if probe else ({}, 0.0)
        for i, why in removed.items():
            nb.cells[i].source = f"# removed by the grader: this cell {why}"
            nb.cells[i].outputs = []
        target = folder / submission.name
        nbformat.write(nb, target)
        (folder / "results").mkdir()
        try:
            run = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(autograder.resolve()),
                                  "-o", "results", target.name], capture_output=True, text=True, cwd=folder,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"otter run took longer than {timeout:g} s on {submission.name}") from None
        results = folder / "results" / "results.json"
        if not results.exists():
            lines = (run.stderr or run.stdout).strip().splitlines()
            raise RuntimeError(f"otter run wrote no results for {submission.name}: {lines[-1] if lines else ''}")
        tests = json.loads(results.read_text())["tests"]
    questions = {t["name"]: (float(t["score"]), float(t["max_score"])) for t in tests if t.get("max_score") is not None
                 and t["name"] != "Public Tests"}
    return Grade(sum(s for s, _ in questions.values()), sum(m for _, m in questions.values()), questions, removed,
                 slowest)


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


def check(master: str | Path, work: str | Path | None = None, cell_timeout: float = 120,
          prove_probe: bool = True) -> dict:
    """Build ``master`` and grade three submissions (module docstring); raise ``AssignmentError`` on the
    first thing that does not hold. Returns the grades, by submission. A cell may run ``cell_timeout``
    seconds.

    The solutions are graded once, with two cells added: one that ends the kernel, before the first
    answer (the kernel restarts and the cells before it are replayed), and an endless loop as the last
    cell, with a limit of 2 s (the other cells keep ``cell_timeout``). Full marks with exactly those two
    cells removed prove both that the solutions are right and that a crash or a loop costs no answer
    its points. With ``prove_probe=False`` the solutions are graded as written, by otter alone (one
    execution instead of the probe's and otter's two)."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(work) if work else Path(scratch)
        built = build(master, work / "dist")
        total = sum(built.points.values())
        grades = {}

        def expect(label, path, score, removed=0, limit=None, probe=True):
            result = grade(path, built.autograder, cell_timeout=cell_timeout, limit=limit, probe=probe)
            grades[label] = result
            if abs(result.score - score) > 1e-9 or len(result.removed) != removed or abs(result.total - total) > 1e-9:
                raise AssignmentError(f"{built.name}: the {label} submission scored {result.score:g} of "
                                      f"{result.total:g} with {len(result.removed)} cells removed; expected "
                                      f"{score:g} of {total:g} with {removed}: {result.questions}")

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
            expect("solution", built.solutions, total, probe=False)
        # The probe is proven above (or, with prove_probe=False, on another assignment); the untouched and
        # the cheating submissions hold no cell that ends the kernel or loops, so otter alone grades them
        # (each is executed once instead of twice).
        expect("untouched student", built.student, 0, probe=False)

        cheat = nbformat.read(built.student, as_version=4)
        cheat.cells.insert(1, nbformat.v4.new_code_cell(CHEAT))
        nbformat.write(cheat, work / f"cheat_{built.name}.ipynb")
        expect("error-suppressing, library-patching", work / f"cheat_{built.name}.ipynb", 0, probe=False)
        return {label: g.to_dict() for label, g in grades.items()}


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------

def main(args) -> int:
    if args.action == "build":
        built = build(args.master, args.out)
        print(f"student notebook: {built.student}\nsolutions: {built.solutions}\nautograder (Gradescope): "
              f"{built.autograder}\npoints: {sum(built.points.values()):g} autograded + "
              f"{sum(built.manual.values()):g} written")
        return 0
    if args.action == "grade":
        if args.cell_timeout <= 0:
            raise ValueError(f"--cell-timeout must be positive, got {args.cell_timeout:g}")
        result = grade(args.submission, args.autograder, cell_timeout=args.cell_timeout)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            for name, (score, points) in result.questions.items():
                print(f"{score:g}/{points:g}  {name}")
            for index, why in result.removed.items():
                print(f"cell {index} removed: it {why}")
            print(f"Score: {result.score:g} / {result.total:g} (autograded)")
        return 0
    for master in args.master:
        grades = check(master)
        print(f"{Path(master).stem}: " + ", ".join(f"{label} {g['score']:g}/{g['total']:g}"
                                                    for label, g in grades.items()))
    return 0

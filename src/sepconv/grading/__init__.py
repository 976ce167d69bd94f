"""Grading that a submission cannot fool or break: two phases, as trusted external graders do.

**Phase 1** (:mod:`.sandbox`) runs the submission's code cells in a sandbox (its own unprivileged user
where the grader is root, its own session and PID namespace, limits on CPU time, memory, processes and
file size, a private folder holding only the submission, a file system without the tests, solutions,
master notebooks and other submissions, everything it started killed at its end) and writes only plain
data for each answer: JSON numbers, strings, lists, tagged tuples, dicts and fractions, arrays as
``.npy``. A cell that ends the process or runs past its time limit is removed and the rest run again.

**Phase 2** (:mod:`.evaluate`) runs the hidden and public tests of the autograder zip (:mod:`.hidden`) in
a separate, clean Python process of the grader, on that data only. Scores come only from phase 2 and
are capped at each question's points; anything odd (an answer missing or not plain data, a cell
removed, a sandbox killed, tests worth more than their question) is reported by name in ``problems``.

``grade(submission, autograder)`` grades one notebook; ``grade_folder(folder, autograder)`` grades every
notebook of a folder, each to a score or a one-line reason, whatever the others do.

**Per-student variants.** A test may read ``student`` (:data:`.hidden.GRADER_VALUES`): the identifier the
grade is for, given by the grader to phase 2, never read from the submission: ``grade(..., student=...)``,
by default the submission file's stem; for a folder, a roster (:func:`read_roster`, a CSV of ``file,student``).
A per-student question draws its numbers from it (``sepconv.assignments.variant``) and its hidden tests
recompute them from ``student``, so answers worked out for someone else's variant score zero. The
notebook's own ``student`` (its first answer cell, which otter's local checks and Colab use) is recorded
too; if it is not the grader's, ``problems`` says so in one line.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import hidden, sandbox

__all__ = ["grade", "grade_folder", "read_roster", "table", "Grade", "Row", "GradingError", "code_cells"]


class GradingError(ValueError):
    """A submission or autograder that cannot be graded; the message is one line naming why."""


@dataclass
class Grade:
    """Points per question (``{question: (score, points)}``), the public tests' hints per question, the
    cells phase 1 removed and why, anything odd, by name, and the ``student`` graded for."""

    score: float
    total: float
    questions: dict
    feedback: dict = field(default_factory=dict)
    removed: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    sandbox: str = ""
    student: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


_CHECK = re.compile(r"grader\.(check|check_all|export)\([^\n]*\)")
_NOTEBOOK = re.compile(r"grader\s*=\s*otter\.Notebook\([^\n]*\)")


def _otter_cell(source: str) -> bool:
    """Whether a cell is one of otter's own: ``# Initialize Otter`` first, or, besides comments, only
    ``grader = otter.Notebook(...)`` (after an optional ``import otter``) or only ``grader.check(...)``
    lines. Line by line, with one-line patterns: a pattern over the whole cell with repeated optional
    whitespace backtracks exponentially (20 ``grader.check`` lines and a last line of code took hours)."""
    if source.startswith("# Initialize Otter"):
        return True
    lines = [line.strip() for line in source.splitlines()]
    code = [line for line in lines if line and not line.startswith("#")]
    if code and code[0] == "import otter":
        code = code[1:]
        return len(code) == 1 and _NOTEBOOK.fullmatch(code[0]) is not None
    if len(code) == 1 and _NOTEBOOK.fullmatch(code[0]):
        return True
    return bool(code) and all(_CHECK.fullmatch(line) for line in code)


def code_cells(path: str | Path) -> list[tuple[int, str]]:
    """``[(cell index, Python source)]`` of a notebook, whatever its kernel's name and with or without
    otter's metadata: IPython syntax (``!pip``, ``%magic``) turned into calls that do nothing in the
    sandbox, otter's own cells (``grader = otter.Notebook(...)``, ``grader.check(...)``) left out. Raises
    :class:`GradingError` on a file that is not a valid notebook."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise GradingError(f"not a valid notebook: {first[:160]}") from None
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        transform = TransformerManager().transform_cell
    except ImportError:  # pragma: no cover - IPython comes with nbclient
        def transform(source):
            return source
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip() or _otter_cell(cell.source):
            continue
        try:
            source = transform(cell.source)
        except Exception:
            source = cell.source
        cells.append((index, source))
    return cells


def _printable(text: str) -> str:
    """``text`` with every character that is not printable (newlines, carriage returns, terminal escapes,
    direction overrides) escaped: a submission writes much of a problem's text (a type name, a forged tag)
    and must not forge other rows of a table or rewrite the instructor's terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _phase2(files: Path, cases: list, timeout: float, student: str) -> dict:
    job = {"files": str(files), "cases": [asdict(c) for c in cases], "student": student}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEPCONV_SANDBOX")}
    try:
        run = subprocess.run([sys.executable, "-I", "-m", "sepconv.grading.evaluate"], input=json.dumps(job),
                             capture_output=True, text=True, timeout=timeout, env=env)
        return json.loads(run.stdout)
    except (subprocess.TimeoutExpired, ValueError) as error:
        raise GradingError(f"the tests did not finish ({type(error).__name__})") from None


def grade(submission: str | Path, autograder: str | Path, cell_timeout: float = 60, timeout: float = 1200,
          limit=None, *, slot: int = 0, memory_bytes: int = 4 << 30, sandbox_mode: str | None = None,
          student: str | None = None) -> Grade:
    """Grade one notebook with the tests of an autograder zip written by ``assign build`` (module
    docstring). ``cell_timeout`` seconds per cell (``limit(cell index)`` instead, if given), ``timeout``
    for the whole of phase 1; ``slot`` tells parallel graders apart (each has its own sandbox user);
    ``sandbox_mode`` one of ``sandbox.MODES`` instead of the strongest that works; ``student`` the
    identifier per-student tests draw their variants from (default: the submission file's stem)."""
    submission, autograder = Path(submission), Path(autograder)
    student = submission.stem if student is None else student
    if type(student) is not str or not student.strip():
        raise ValueError(f"student must be a non-empty string, got {student!r}")
    for path, what in ((submission, "submission"), (autograder, "autograder zip")):
        if not path.is_file():
            raise FileNotFoundError(f"no {what} {str(path)!r}")
    if autograder.suffix != ".zip":
        raise ValueError(f"the autograder is the .zip that `assign build` writes, not {autograder.name!r}")
    for value, name in ((cell_timeout, "cell_timeout"), (timeout, "timeout")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    try:
        points, cases = hidden.read(autograder)
    except hidden.TestsError as error:
        raise GradingError(str(error)) from None
    cells = code_cells(submission)
    with tempfile.TemporaryDirectory(prefix="sepconv-grade-") as work:
        work = Path(work)
        os.chmod(work, 0o700)
        phase1 = sandbox.run(cells, hidden.spec(cases, student), work, slot=slot, cell_limit=limit or (lambda i: cell_timeout),
                             timeout=timeout, memory_bytes=memory_bytes, sandbox_mode=sandbox_mode)
        evaluated = _phase2(phase1.files, cases, timeout=max(120.0, 10 * len(cases)), student=student)
    problems = [f"cell {i} removed: it {why}" for i, why in sorted(phase1.removed.items())] + phase1.problems
    problems += evaluated["problems"]
    by_label = {r["label"]: r for r in evaluated["results"]}
    questions, feedback = {}, {}
    for question, worth in points.items():
        mine = [c for c in cases if c.question == question]
        if sum(c.points for c in mine) > worth + 1e-9:
            problems.append(f"{question}: its tests add to {sum(c.points for c in mine):g} points, more than its "
                            f"{worth:g}: capped")
        earned = sum(c.points for c in mine if by_label.get(c.label, {}).get("passed") is True)
        questions[question] = (min(earned, worth), worth)
        hints = [f"{c.label}: {by_label[c.label]['message']}" for c in mine
                 if not c.hidden and not by_label.get(c.label, {}).get("passed", False)]
        failed_hidden = sum(1 for c in mine if c.hidden and not by_label.get(c.label, {}).get("passed", False))
        if failed_hidden:
            hints.append(f"{failed_hidden} hidden test{'s' if failed_hidden > 1 else ''} failed")
        if hints:
            feedback[question] = hints
    feedback = {q: [_printable(h) for h in hints] for q, hints in feedback.items()}
    return Grade(sum(s for s, _ in questions.values()), sum(p for _, p in questions.values()), questions, feedback,
                 dict(phase1.removed), [_printable(p) for p in problems], phase1.mode, student)


@dataclass(frozen=True)
class Row:
    """One submission of a folder: its score, or why it has none."""

    name: str
    score: float | None
    total: float | None
    reason: str = ""
    problems: tuple = ()


def read_roster(path: str | Path) -> dict:
    """``{file name: student}`` of a roster: a CSV file with the columns ``file`` (a submission's file name,
    ``ada.ipynb``, or its stem, ``ada``) and ``student`` (the identifier its variants are drawn from).
    Raises :class:`GradingError` with one line naming the first bad row (an empty field, a path instead
    of a file name, a file listed twice) or the missing columns."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no roster {str(path)!r}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, row) for row in reader]  # the file's line of each row (blank lines skipped)
            columns = set(reader.fieldnames or ())
    except (UnicodeDecodeError, csv.Error) as error:
        raise GradingError(f"roster {path.name}: not a CSV file ({_printable(str(error))[:80]})") from None
    if not rows or not {"file", "student"} <= columns:
        raise GradingError(f"roster {path.name}: needs a header line with the columns file,student and a row per "
                           f"submission")
    roster = {}
    for line, row in rows:
        name, student = (row.get("file") or "").strip(), (row.get("student") or "").strip()
        shown = _printable(",".join(str(v) for k, v in row.items() if k is not None and v is not None))[:80]
        if not name or not student:
            raise GradingError(f"roster {path.name} line {line} ({shown!r}): empty {'file' if not name else 'student'}")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise GradingError(f"roster {path.name} line {line} ({shown!r}): the file is a path, not a file name")
        name = name if name.endswith(".ipynb") else name + ".ipynb"
        if name in roster:
            raise GradingError(f"roster {path.name} line {line} ({shown!r}): {name} is listed twice")
        roster[name] = student
    return roster


def grade_folder(folder: str | Path, autograder: str | Path, *, jobs: int = 1, roster: str | Path | dict | None = None,
                 **options) -> list[Row]:
    """Grade every ``*.ipynb`` of ``folder`` (sorted by name): each gets a row with its score, or a
    one-line reason; nothing one submission does stops the others or changes their scores. ``jobs``
    submissions are graded at once, each in the sandbox of its own slot. ``roster`` (a CSV file for
    :func:`read_roster`, or its dict) names the student of each file; without one, each file's stem is
    its student. A notebook the roster does not list gets no score, with the reason."""
    folder, autograder = Path(folder), Path(autograder)
    if roster is not None and not isinstance(roster, dict):
        roster = read_roster(roster)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {str(folder)!r}")
    if not autograder.is_file():
        raise FileNotFoundError(f"no autograder zip {str(autograder)!r}")
    if autograder.suffix != ".zip":
        raise ValueError(f"the autograder is the .zip that `assign build` writes, not {autograder.name!r}")
    try:
        hidden.read(autograder)
    except hidden.TestsError as error:
        raise GradingError(str(error)) from None
    notebooks = sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and not p.is_symlink())
    slots = list(range(max(1, int(jobs))))

    def one(args):
        position, path = args
        if roster is not None and path.name not in roster:
            return Row(path.name, None, None, "not in the roster: no student to grade it for")
        try:
            student = roster[path.name] if roster is not None else None
            g = grade(path, autograder, slot=slots[position % len(slots)], student=student, **options)
            return Row(path.name, g.score, g.total, "", tuple(g.problems))
        except Exception as error:  # noqa: BLE001 - every failure becomes the row's reason
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return Row(path.name, None, None, _printable(first[:200]))

    if len(slots) == 1:
        return [one(item) for item in enumerate(notebooks)]
    with ThreadPoolExecutor(len(slots)) as pool:  # submission i runs in slot i mod jobs, one at a time per slot
        order = list(enumerate(notebooks))
        batches = [order[s::len(slots)] for s in slots]
        results = pool.map(lambda batch: [one(item) for item in batch], batches)
        rows = {row.name: row for batch in results for row in batch}
    return [rows[p.name] for p in notebooks]


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width table: name, score, and the reason or the problems."""
    width = max([len(r.name) for r in rows] + [10])
    lines = []
    for r in rows:
        score = f"{r.score:g}/{r.total:g}" if r.score is not None else "-"
        note = _printable(r.reason or "; ".join(r.problems))
        lines.append(f"{_printable(r.name):<{width}}  {score:>7}  {note}".rstrip())
    return "\n".join(lines)

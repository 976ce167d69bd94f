"""The tests of an autograder zip, read without running anything, and what phase 1 must record for them.

``otter assign`` writes each question's tests to ``tests/QUESTION.py`` in the zip (otter's "OK format": a
literal dict ``test = {"name", "points", "suites": [{"cases": [{"code", "hidden", "points"}]}]}`` whose
code is doctest-style). :func:`read` parses those files with ``ast.literal_eval`` (never ``exec``) into
:class:`Case` objects. A test may use, besides the answers, the modules of :data:`GIVENS` (imported by
the grader, never taken from a submission), the names of :data:`GRADER_VALUES` (values the grader
supplies: ``student``, the identifier a per-student variant is drawn from) and names it assigns itself
(by convention ``_name``); every other free name is an **answer**, which the sandbox records as plain data. A call of an answer (an answer
that is a function, ``cost_ratio(128, 3)``) is recorded by the sandbox as the value of that very
expression; phase 2 reads it back in its place (:func:`rewrite`). The sandbox thus learns the names of the
answers and the arguments the tests call them with, never the expected values.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: The names a test may use besides answers and its own: ``name -> "module"`` or ``"module:attribute"``.
GIVENS = {"np": "numpy", "jnp": "jax.numpy", "jax": "jax", "math": "math", "Fraction": "fractions:Fraction",
          "hashlib": "hashlib"}

#: Names a test may use whose values the grader supplies to phase 2 (never the submission's data):
#: ``student`` is the identifier the grade is for (``grade(..., student=...)``: the roster's name or the
#: submission file's stem). A per-student question's tests draw its numbers from it as
#: ``sepconv.assignments.variant`` does, written out in the test (``hashlib.sha256(f"{student}/q3".encode())``).
GRADER_VALUES = ("student",)


class TestsError(ValueError):
    """An autograder zip whose tests cannot be read."""


@dataclass(frozen=True)
class Case:
    """One test of one question: its examples (``(source, expected output)``), points, visibility, and
    the answers and answer calls it reads."""

    question: str
    number: int
    examples: tuple
    points: float
    hidden: bool
    answers: tuple
    calls: tuple

    @property
    def label(self) -> str:
        return f"{self.question} test {self.number + 1}"

    @property
    def uses_student(self) -> bool:
        """Whether the test reads ``student`` (a per-student variant)."""
        return any(isinstance(n, ast.Name) and n.id == "student" for source, _ in self.examples
                   for n in ast.walk(ast.parse(source)))

    @property
    def functions(self) -> set:
        """The answers this test calls (recorded as the values of its calls, not as values)."""
        return {name for name in self.answers if any(call.startswith(name + "(") for call in self.calls)}


def _free_names(source: str) -> tuple[set, set]:
    """``(answer names, answer names called)`` of a test's source."""
    tree = ast.parse(source)
    local, loaded, called = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else local).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(node.name)
        elif isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            local.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
    answers = loaded - local - set(GIVENS) - set(GRADER_VALUES) - set(dir(builtins))
    return answers, called & answers


class _Calls(ast.NodeTransformer):
    def __init__(self, functions):
        self.functions, self.found = functions, []

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in self.functions:
            key = ast.unparse(node)
            self.found.append(key)
            return ast.copy_location(ast.Subscript(ast.Name("__calls__", ast.Load()), ast.Constant(key), ast.Load()),
                                     node)
        return self.generic_visit(node)


def rewrite(source: str, functions) -> tuple[str, list]:
    """``source`` with every call of a name in ``functions`` replaced by ``__calls__["<the call>"]``,
    and the calls replaced."""
    calls = _Calls(set(functions))
    tree = ast.fix_missing_locations(calls.visit(ast.parse(source)))
    return ast.unparse(tree), calls.found


def _literal_test(text: str, name: str) -> dict:
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "test" for t in node.targets):
            return ast.literal_eval(node.value)
    raise TestsError(f"{name}: no 'test = {{...}}' in otter's format")


def read(autograder: str | Path) -> tuple[dict, list[Case]]:
    """``({question: points}, [Case, ...])`` of an autograder zip."""
    parser = doctest.DocTestParser()
    points, cases = {}, []
    try:
        archive = zipfile.ZipFile(autograder)
    except (OSError, zipfile.BadZipFile) as error:
        raise TestsError(f"{autograder}: not an autograder zip ({error})") from None
    with archive:
        names = sorted(n for n in archive.namelist() if n.startswith("tests/") and n.endswith(".py"))
        if not names:
            raise TestsError(f"{autograder}: no tests/*.py in the zip")
        for name in names:
            test = _literal_test(archive.read(name).decode(), name)
            question = test["name"]
            points[question] = float(test.get("points") or 0)
            raw = [case for suite in test["suites"] for case in suite["cases"]]
            given = sum(float(c["points"]) for c in raw if c.get("points") is not None)
            unset = [c for c in raw if c.get("points") is None]
            for number, case in enumerate(raw):
                value = case.get("points")
                value = float(value) if value is not None else max(points[question] - given, 0) / len(unset)
                examples = tuple((e.source, e.want) for e in parser.get_examples(case["code"]))
                answers, called = _free_names("\n".join(source for source, _ in examples))
                calls = []
                for source, _ in examples:
                    calls += rewrite(source, called)[1]
                cases.append(Case(question, number, examples, value, bool(case.get("hidden")), tuple(sorted(answers)),
                                  tuple(dict.fromkeys(calls))))
    return points, cases


def spec(cases: list[Case], student: str | None = None) -> dict:
    """What phase 1 records: every answer a test reads and every answer call a test makes; with per-student
    tests, also the notebook's own ``student`` (phase 2 compares it with the grader's), and the grader's
    ``student``, bound in the submission's namespace before the calls are evaluated (a call may use it)."""
    answers = {a for c in cases for a in set(c.answers) - c.functions}
    calls = list(dict.fromkeys(call for c in cases for call in c.calls))
    result = {"answers": sorted(answers), "calls": calls, "call_timeout": 10}
    if any(c.uses_student for c in cases):
        result["answers"] = sorted(answers | {"student"})
        if student is not None:
            result["student"] = student
    return result

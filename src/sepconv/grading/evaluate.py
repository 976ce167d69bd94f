"""Phase 2: the tests, in a clean process of the grader, on the plain data phase 1 wrote.

Run as ``python -I -m sepconv.grading.evaluate`` with a job on standard input (``{"files": folder,
"cases": [...], "student": name}``: the cases of :mod:`.hidden`, the identifier the grade is for); writes
one JSON line per test on standard output
(``{"label", "passed", "message"}``) and the problems found in the data. No code of the submission runs
here: answers are read from ``answers.json`` and ``calls.json`` with :func:`json.loads` and arrays with
``numpy.load(allow_pickle=False)``; an answer that is not plain data, or missing, is reported by name and
its tests fail. A test passes when its examples run without an exception and print what they expect.
"""

from __future__ import annotations

import importlib
import json
import sys
from fractions import Fraction
from pathlib import Path

from .hidden import GIVENS, GRADER_VALUES, Case, rewrite


class NotPlain(Exception):
    """A value phase 1 could not write as plain data; the message names its type."""


def decode(value, files: Path, depth: int = 0):
    """Plain data of ``_runner._plain`` back into Python values; raises :class:`NotPlain`, and only that:
    the files are the submission's to forge, and a tag whose contents make numpy or ``dict`` raise costs
    that answer only. An array with no elements is not an answer (``np.allclose`` of an empty array and
    any value broadcast against it holds)."""
    try:
        return _decode(value, files, depth)
    except NotPlain:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a forged tag makes raise
        raise NotPlain(f"malformed ({type(error).__name__})") from None


def _decode(value, files: Path, depth: int = 0):
    if depth > 21:
        raise NotPlain("nesting deeper than 20")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [decode(v, files, depth + 1) for v in value]
    if type(value) is not dict or len(value) not in (1, 2):
        raise NotPlain(type(value).__name__)
    (tag, *_), inner = value.keys(), next(iter(value.values()))
    if tag == "$unsupported":
        raise NotPlain(str(inner)[:60])
    if tag == "$error":
        raise NotPlain(f"call raised {str(inner)[:60]}")
    if tag == "$float" and inner in ("nan", "inf", "-inf"):
        return float(inner)
    if tag == "$fraction" and type(inner) is list and len(inner) == 2 and all(type(v) is int for v in inner) and inner[1]:
        return Fraction(inner[0], inner[1])
    if tag == "$tuple" and type(inner) is list:
        return tuple(decode(v, files, depth + 1) for v in inner)
    if tag == "$dict" and type(inner) is list:
        pairs = [decode(p, files, depth + 1) for p in inner]
        if not all(type(p) is list and len(p) == 2 and type(p[0]) in (str, int, float, bool, tuple) for p in pairs):
            raise NotPlain("dict with keys that are not plain")
        return {k: v for k, v in pairs}
    if tag == "$scalar" and type(inner) is str and len(value) == 2:
        import numpy as np

        dtype = np.dtype(inner)
        number = value["value"]
        if dtype.kind not in "biuf" or type(number) not in (bool, int, float, str):
            raise NotPlain(f"numpy scalar of {dtype}")
        if type(number) is str and number not in ("nan", "inf", "-inf"):
            raise NotPlain(f"numpy scalar of {dtype} from text")
        scalar = dtype.type(number)
        if not isinstance(scalar, np.generic):
            raise NotPlain(f"numpy scalar of {dtype}")
        return scalar
    if tag == "$array" and type(inner) is str and inner.endswith(".npy") and "/" not in inner:
        import numpy as np

        try:
            array = np.load(files / inner, allow_pickle=False)
        except Exception as error:
            raise NotPlain(f"unreadable array ({type(error).__name__})") from None
        if array.dtype.kind not in "biufc":
            raise NotPlain(f"array of {array.dtype}")
        if array.size == 0:
            raise NotPlain(f"empty array of shape {array.shape}")
        return array
    raise NotPlain(f"unknown tag {tag[:30]!r}")


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, RecursionError, UnicodeDecodeError):
        return {"$unreadable": True}
    return data if type(data) is dict else {"$unreadable": True}


_IMPORTED: dict = {}


def _given(name: str):
    """The value of a name of ``GIVENS``, imported once (the grader's module, never the submission's)."""
    if name not in _IMPORTED:
        module, _, attribute = GIVENS[name].partition(":")
        imported = importlib.import_module(module)
        _IMPORTED[name] = getattr(imported, attribute) if attribute else imported
    return _IMPORTED[name]


def _names(case: Case) -> set:
    import ast

    return {n.id for source, _ in case.examples for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def _student_problem(own, student: str, files: Path) -> list[str]:
    """One line when the notebook's own ``student`` (plain data, or absent) is not the grader's."""
    if own is None:
        return [f"the notebook sets no `student`: graded as {student[:60]!r}"]
    try:
        own = decode(own, files)
    except NotPlain as why:
        if str(why) == "ellipsis":
            return [f"the notebook leaves `student` as `...`: graded as {student[:60]!r}"]
        return [f"the notebook's `student` is not plain data ({why}): graded as {student[:60]!r}"]
    if own != student:
        shown = repr(own)[:62] if type(own) is str else f"a {type(own).__name__}"
        return [f"the notebook's `student` is {shown}, the grader's {student[:60]!r}: the per-student questions "
                f"are graded for {student[:60]!r}"]
    return []


def evaluate(files: Path, cases: list[Case], student: str | None = None) -> tuple[list[dict], list[str]]:
    """Run every case on the data in ``files``; ``([{"label", "passed", "message"}], problems)``. Tests
    that use ``student`` get the grader's ``student`` (an error if there is none); the notebook's own, if it
    is another, is named in ``problems``."""
    answers, calls = _load(files / "answers.json"), _load(files / "calls.json")
    problems = []
    for what, data in (("answers", answers), ("answer calls", calls)):
        if data.get("$unreadable"):
            problems.append(f"the sandbox's {what} file is not readable JSON: ignored")
            data.clear()
    needed = {name: None for c in cases for name in set(c.answers) - c.functions}
    missing, unanswered = [], []
    for name in needed:
        if name not in answers:
            missing.append(name)
            continue
        try:
            decode(answers[name], files)
        except NotPlain as why:
            if str(why) == "ellipsis":
                unanswered.append(name)
            else:
                problems.append(f"answer `{name}` is not plain data ({why})")
    if missing:
        problems.append("answers missing: " + ", ".join(missing))
    if any(c.uses_student for c in cases):
        if type(student) is not str or not student:
            raise ValueError(f"these tests draw per-student variants: grade them with a student, got {student!r}")
        problems += _student_problem(answers.get("student"), student, files)
    if unanswered:
        problems.append("answers left as `...`: " + ", ".join(unanswered))
    for call in dict.fromkeys(call for c in cases for call in c.calls):
        if call in calls:
            try:
                decode(calls[call], files)
            except NotPlain as why:
                problems.append(f"`{call}` gave no plain data ({why})")
    results = []
    for case in cases:
        namespace, absent = {}, []
        for name in set(case.answers) - case.functions:
            try:
                namespace[name] = decode(answers[name], files)
            except (KeyError, NotPlain):
                absent.append(f"answer `{name}` missing or not plain data")
        call_values = {}
        for call in case.calls:
            try:
                call_values[call] = decode(calls[call], files)
            except (KeyError, NotPlain):
                pass
        if absent:
            results.append({"label": case.label, "passed": False, "message": absent[0]})
            continue
        for name in _names(case) & set(GIVENS):
            namespace[name] = _given(name)
        if "student" in _names(case) and "student" in GRADER_VALUES:
            namespace["student"] = student
        namespace["__calls__"] = call_values
        functions = case.functions
        passed, message = True, ""
        try:
            for source, want in case.examples:
                code, _ = rewrite(source, functions)
                if want.strip():
                    shown = repr(eval(compile(code, case.label, "eval"), namespace))
                    if shown.strip() != want.strip():
                        raise AssertionError(f"printed {shown[:60]}")
                else:
                    exec(compile(code, case.label, "exec"), namespace)
        except KeyError as error:  # a call the sandbox did not record
            passed, message = False, f"no value for {error.args[0] if error.args else 'a call'}"
        except BaseException as error:
            passed, message = False, f"{type(error).__name__}: {error}".splitlines()[0][:200]
        results.append({"label": case.label, "passed": passed, "message": message})
    return results, problems


def main() -> None:
    from .hidden import Case

    job = json.loads(sys.stdin.read())
    cases = [Case(**{**c, "examples": tuple(tuple(e) for e in c["examples"]), "answers": tuple(c["answers"]),
                     "calls": tuple(c["calls"])}) for c in job["cases"]]
    results, problems = evaluate(Path(job["files"]), cases, job.get("student"))
    sys.stdout.write(json.dumps({"results": results, "problems": problems}))


if __name__ == "__main__":
    main()

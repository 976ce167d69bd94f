"""The parts of the two-phase grader, each on inputs worked out by hand (the attacks are in
test_grader_attacks.py)."""

import json
import zipfile

import numpy as np
import pytest

from sepconv.grading.evaluate import NotPlain, decode, evaluate
from sepconv.grading.hidden import Case, read, rewrite, spec


def _zip(path, tests):
    with zipfile.ZipFile(path, "w") as z:
        for name, test in tests.items():
            z.writestr(f"tests/{name}.py", "OK_FORMAT = True\n\ntest = " + repr(test) + "\n")
    return path


def _test(name, points, *cases):
    return {"name": name, "points": points, "suites": [{"cases": [
        {"code": code, "hidden": hidden, "locked": False, "points": p} for code, hidden, p in cases],
        "scored": True, "setup": "", "teardown": "", "type": "doctest"}]}


def test_answers_are_the_free_names_and_calls_are_recorded_as_written(tmp_path):
    path = _zip(tmp_path / "a.zip", {"q1": _test("q1", 3, (">>> assert isinstance(ratio, float) and abs(ratio) < 1\n", False, 0),
                                             (">>> _x = np.arange(4)\n>>> assert list(shuffle(_x[::-1], 2)) == [3, 1, 2, 0]\n", True, 1),
                                             (">>> assert f(2) == Fraction(1, 2)\n", True, None))})
    points, cases = read(path)
    assert points == {"q1": 3.0}
    assert [c.answers for c in cases] == [("ratio",), ("shuffle",), ("f",)]  # np, Fraction, _x, builtins: not answers
    assert [c.calls for c in cases] == [(), ("shuffle(_x[::-1], 2)",), ("f(2)",)]
    assert [c.points for c in cases] == [0.0, 1.0, 2.0]  # a test without points gets what its question has left
    assert spec(cases) == {"answers": ["ratio"], "calls": ["shuffle(_x[::-1], 2)", "f(2)"], "call_timeout": 10}
    code, found = rewrite("assert g(f(1)) + f(2) == 3", {"f"})
    assert code == "assert g(__calls__['f(1)']) + __calls__['f(2)'] == 3" and found == ["f(1)", "f(2)"]


def test_only_plain_data_is_decoded(tmp_path):
    np.save(tmp_path / "a0.npy", np.arange(3), allow_pickle=False)
    np.save(tmp_path / "a1.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert decode({"$dict": [["k", {"$tuple": [1, {"$fraction": [1, 3]}]}]]}, tmp_path) == {"k": (1, pytest.approx(1 / 3))}
    assert list(decode({"$array": "a0.npy"}, tmp_path)) == [0, 1, 2]
    assert type(decode({"$scalar": "<f4", "value": 0.5}, tmp_path)) is np.float32
    for forged, why in (({"$array": "a1.npy"}, "unreadable array"), ({"$array": "../a0.npy"}, "unknown tag"),
                        ({"$fraction": [1, 0]}, "unknown tag"), ({"$scalar": "|O", "value": 1}, "numpy scalar of object"),
                        ({"$unsupported": "Anything"}, "Anything"), ({"a": 1, "b": 2, "c": 3}, "dict"),
                        (json.loads("[" * 30 + "0" + "]" * 30), "nesting")):
        with pytest.raises(NotPlain, match=why):
            decode(forged, tmp_path)


def test_scores_count_only_tests_that_ran_on_plain_answers(tmp_path):
    (tmp_path / "answers.json").write_text(json.dumps({"x": 2, "y": {"$unsupported": "Anything"}}))
    (tmp_path / "calls.json").write_text(json.dumps({"f(3)": 9}))
    cases = [Case("q1", 0, (("assert x == 2\n", ""),), 1.0, True, ("x",), ()),
             Case("q1", 1, (("assert y == 1\n", ""),), 1.0, True, ("y",), ()),
             Case("q2", 0, (("assert f(3) == 9\n", ""),), 1.0, True, ("f",), ("f(3)",)),
             Case("q2", 1, (("x\n", "3\n"),), 1.0, False, ("x",), ())]
    results, problems = evaluate(tmp_path, cases)
    assert [r["passed"] for r in results] == [True, False, True, False]
    assert results[3]["message"] == "AssertionError: printed 2"
    assert problems == ["answer `y` is not plain data (Anything)"]


def test_tests_worth_more_than_their_question_are_capped_and_named(tmp_path, monkeypatch):
    from sepconv import grading
    from sepconv.grading import sandbox

    path = _zip(tmp_path / "a.zip", {"q1": _test("q1", 1, (">>> assert x == 2\n", True, 1), (">>> assert x > 0\n", True, 399))})
    submission = tmp_path / "s.ipynb"
    import nbformat

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 2")]), submission)
    monkeypatch.setattr(sandbox, "MAX_RUNS", 1)
    result = grading.grade(submission, path, cell_timeout=30)
    assert result.questions == {"q1": (1.0, 1.0)} and result.score == result.total == 1
    assert "q1: its tests add to 400 points, more than its 1: capped" in result.problems


# ----------------------------------------------------------------------------------------------------
# Per-student variants: the grader's `student`, never the submission's
# ----------------------------------------------------------------------------------------------------

#: A per-student question (its hidden tests draw the variant from the grader's `student` with the formula
#: written out, as the assignments' tests do), a call that reads `student`, and a question for everyone.
_DRAW = ">>> _d = hashlib.sha256(f'{student}/q1'.encode()).digest()\n>>> _c, _k = [8, 16, 24, 32][_d[0] % 4], [3, 5, 7][_d[1] % 3]\n"
_VARIANT_TESTS = {
    "q1": _test("q1", 3, (">>> assert isinstance(student, str) and student.strip() != ''\n", False, 0),
                (">>> assert isinstance(macs, int) and macs > 0\n", False, 0),
                (_DRAW + ">>> assert macs == _c * _k * _k\n", True, 2),
                (">>> assert echo(student) == student\n", True, 1)),
    "q2": _test("q2", 1, (">>> assert x == 2\n", True, 1))}


def _variant_notebook(path, student):
    import nbformat

    cells = [f"student = {student!r}",
             "from sepconv.assignments import variant\n"
             "_v = variant(student, 'q1', channels=[8, 16, 24, 32], kernel=[3, 5, 7])\n"
             "macs = _v['channels'] * _v['kernel'] ** 2",
             "def echo(name):\n    return name",
             "x = 2"]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    return path


def _by_hand(student):
    """The variant's numbers from the rule written on the instructors' page, with hashlib alone."""
    import hashlib

    digest = hashlib.sha256(f"{student}/q1".encode()).digest()
    return [8, 16, 24, 32][digest[0] % 4], [3, 5, 7][digest[1] % 3]


def test_variant_draws_each_option_from_its_byte_of_the_digest(capsys):
    from sepconv.assignments import variant

    for student in ("ada", "bob", "carol"):
        c, k = _by_hand(student)
        assert variant(student, "q1", channels=[8, 16, 24, 32], kernel=(3, 5, 7)) == {"channels": c, "kernel": k}
        assert f"q1 for {student!r}: channels = {c}, kernel = {k}" in capsys.readouterr().out
    assert _by_hand("ada") != _by_hand("bob")  # the two students of the tests below get different numbers
    for bad, match in ((("", "q1"), "student must be a non-empty string"), ((None, "q1"), "student"),
                       (("ada", ""), "question must be")):
        with pytest.raises(ValueError, match=match):
            variant(*bad, channels=[1])
    with pytest.raises(ValueError, match="option 'channels' must be a non-empty list"):
        variant("ada", "q1", channels=[])
    with pytest.raises(ValueError, match="at least one option"):
        variant("ada", "q1")


@pytest.fixture(scope="module")
def variant_zip(tmp_path_factory):
    return _zip(tmp_path_factory.mktemp("variants") / "v.zip", _VARIANT_TESTS)


def test_two_students_get_full_marks_each_for_their_own_variant(tmp_path, variant_zip):
    from sepconv import grading

    for student in ("ada", "bob"):
        result = grading.grade(_variant_notebook(tmp_path / f"{student}_work.ipynb", student), variant_zip,
                               cell_timeout=60, student=student)
        assert result.questions == {"q1": (3.0, 3.0), "q2": (1.0, 1.0)}, (student, result.feedback, result.problems)
        assert result.problems == [] and result.student == student


def test_answers_for_another_students_variant_score_zero_and_the_mismatch_is_named(tmp_path, variant_zip):
    from sepconv import grading

    result = grading.grade(_variant_notebook(tmp_path / "ada.ipynb", "ada"), variant_zip, cell_timeout=60,
                           student="bob")
    # q1's variant test fails (ada's numbers, bob's variant); the call reads the grader's `student`
    assert result.questions == {"q1": (1.0, 3.0), "q2": (1.0, 1.0)}, result.feedback
    assert result.problems == ["the notebook's `student` is 'ada', the grader's 'bob': the per-student questions are "
                               "graded for 'bob'"]


def test_without_a_student_the_file_stem_is_the_student(tmp_path, variant_zip):
    from sepconv import grading

    result = grading.grade(_variant_notebook(tmp_path / "ada.ipynb", "ada"), variant_zip, cell_timeout=60)
    assert result.student == "ada" and result.score == result.total == 4 and result.problems == []
    with pytest.raises(ValueError, match="student must be a non-empty string, got ''"):
        grading.grade(tmp_path / "ada.ipynb", variant_zip, student="")


def test_a_roster_names_the_student_of_each_file_and_a_mismatch_is_reported(tmp_path, variant_zip):
    from sepconv.__main__ import parser
    from sepconv.grading import grade_folder

    folder = tmp_path / "submissions"
    folder.mkdir()
    _variant_notebook(folder / "s1.ipynb", "ada")
    _variant_notebook(folder / "s2.ipynb", "ada")  # copied from s1: graded for bob
    _variant_notebook(folder / "s3.ipynb", "carol")  # not in the roster
    roster = tmp_path / "roster.csv"
    roster.write_text("file,student\ns1.ipynb,ada\ns2,bob\n")
    rows = grade_folder(folder, variant_zip, roster=roster, cell_timeout=60)
    assert [(r.name, r.score, r.reason) for r in rows] == [
        ("s1.ipynb", 4.0, ""), ("s2.ipynb", 2.0, ""), ("s3.ipynb", None, "not in the roster: no student to grade it for")]
    assert rows[1].problems == ("the notebook's `student` is 'ada', the grader's 'bob': the per-student questions are "
                                "graded for 'bob'",)
    args = parser().parse_args(["assign", "grade", str(folder / "s2.ipynb"), "--autograder", str(variant_zip),
                                "--roster", str(roster), "--json"])
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.run(args) == 0
    assert json.loads(out.getvalue())["score"] == 2.0 and json.loads(out.getvalue())["student"] == "bob"


@pytest.mark.parametrize("text, message", [
    ("file,student\ns1.ipynb,ada\ns2.ipynb,\n", "roster roster.csv line 3 ('s2.ipynb,'): empty student"),
    ("file,student\n,ada\n", "roster roster.csv line 2 (',ada'): empty file"),
    ("file,student\n../s1.ipynb,ada\n", "roster roster.csv line 2 ('../s1.ipynb,ada'): the file is a path, not a file name"),
    ("file,student\ns1.ipynb,ada\n\ns1,bob\n", "roster roster.csv line 4 ('s1,bob'): s1.ipynb is listed twice"),
    ("name,id\ns1.ipynb,ada\n", "roster roster.csv: needs a header line with the columns file,student"),
])
def test_a_bad_roster_row_is_one_line_naming_it(tmp_path, text, message):
    from sepconv.grading import GradingError, read_roster

    (tmp_path / "roster.csv").write_text(text)
    with pytest.raises(GradingError) as error:
        read_roster(tmp_path / "roster.csv")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)

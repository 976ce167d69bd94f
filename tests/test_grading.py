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

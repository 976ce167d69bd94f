"""The assignments on otter-grader: every one builds without leaking solutions and grades safely."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sepconv.assignments import AssignmentError, build, check, gradable, solution_leaks
from sepconv.grading.hidden import read as read_tests

ROOT = Path(__file__).resolve().parents[1]
MASTERS = sorted((ROOT / "book" / "assignments").glob("*.ipynb"))


def test_one_assignment_per_chapter_worth_10_to_20_points():
    covered = set()
    for master in MASTERS:
        nb = nbformat.read(master, as_version=4)
        goes_with = re.search(r"Goes with chapters? (\d+(?:(?:, | and )\d+)*)", nb.cells[1].source)
        assert goes_with, f"{master.name} does not say which chapter it goes with"
        covered |= {int(n) for n in re.findall(r"\d+", goes_with.group(1))}
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "raw")
        points = [float(p) for p in re.findall(r"^points: (\S+)$", text, flags=re.M)]
        questions = text.count("# BEGIN QUESTION")
        assert "manual: true" in text, f"{master.name} has no written question"
        # question points (tests carry their own points inside code cells, not raw cells)
        assert questions >= 4 and 10 <= sum(points) <= 20, (master.name, points)
    chapters = {int(p.name[:2]) for p in (ROOT / "chapters").glob("*.ipynb")}
    assert chapters <= covered, f"chapters without an assignment: {sorted(chapters - covered)}"


#: The assignment on which the grader's removal of cells is proven with real cells (the cheapest to grade):
#: what it does (remove a cell that ends the process or loops, run the rest again) depends on no
#: assignment's content. The attacks of tests/test_grader_attacks.py run against it too.
PROBED = "08_deployment"


def test_the_probe_is_proven_on_an_assignment_that_exists():
    assert PROBED in {m.stem for m in MASTERS}


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_assignment_grades_right(master, tmp_path):
    """Every test reads one answer that a solution defines; solutions full marks (on one assignment with
    a cell that exits the process and one that loops forever added, both removed, costing no answer its
    points); untouched handout 0 without solution text; suppressing errors and patching the library
    earns nothing."""
    probed = master.stem == PROBED
    grades = check(master, tmp_path, prove_probe=probed)
    solution = grades["solution"]
    assert solution["score"] == solution["total"] >= 10
    if probed:
        assert sorted(solution["removed"].values())[0].startswith("ended the process")
        assert sorted(solution["removed"].values())[1] == "ran longer than 2 s"
    else:
        assert solution["removed"] == {}
    assert grades["untouched student"]["score"] == 0
    assert grades["error-suppressing, library-patching"]["score"] == 0


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_every_question_has_a_public_test_and_every_test_one_answer(master, tmp_path):
    """Students get feedback on every autograded question; no test fails a right answer with a wrong
    neighbour (``gradable`` refuses a test that reads two answers)."""
    built = build(master, tmp_path / "dist")
    answers = gradable(built)
    _, cases = read_tests(built.autograder)
    public = {case.question for case in cases if not case.hidden}
    assert public == set(built.points) == set(answers)
    # the handout carries its public tests in the cell that starts otter, for Colab (tests/test_grader_colab.py)
    init = next(c.source for c in nbformat.read(built.student, as_version=4).cells if "otter.Notebook(" in c.source)
    assert all(f"'{question}': {{'name': '{question}'" in init for question in public)
    assert "'hidden': True" not in init


def _master(tmp_path, solution_cells, extra_cells=()):
    raw, code, md = nbformat.v4.new_raw_cell, nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    cells = [raw("# ASSIGNMENT CONFIG\nname: tiny\nexport_cell: false\ncheck_all_cell: false\ntests:\n  files: false"),
             *extra_cells, raw("# BEGIN QUESTION\nname: q1\npoints: 1"), md("What is 6 * 7?"),
             raw("# BEGIN SOLUTION"), *solution_cells, raw("# END SOLUTION"), raw("# BEGIN TESTS"),
             code('""" # BEGIN TEST CONFIG\nhidden: true\npoints: 1\n""" # END TEST CONFIG\nassert answer == 42'),
             raw("# END TESTS"), raw("# END QUESTION")]
    path = tmp_path / "tiny.ipynb"
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel}), path)
    return path


def test_a_master_without_a_kernel_is_refused_in_one_line(tmp_path):
    path = _master(tmp_path, [nbformat.v4.new_code_cell("answer = 42  # SOLUTION")])
    nb = nbformat.read(path, as_version=4)
    del nb.metadata["kernelspec"]
    nbformat.write(nb, path)
    with pytest.raises(AssignmentError, match=r"tiny.ipynb names no kernel \(metadata.kernelspec\)"):
        build(path, tmp_path / "dist")


@pytest.mark.parametrize("stray", ["### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION", "#begin solution",
                                   "answer = 42  # solution", "<!-- BEGIN SOLUTION -->"])
def test_solution_markers_outside_a_solution_block_are_refused(tmp_path, stray):
    path = _master(tmp_path, [nbformat.v4.new_code_cell("answer = 42  # SOLUTION")],
                   [nbformat.v4.new_code_cell(stray)])
    with pytest.raises(AssignmentError, match="solution marker outside a '# BEGIN SOLUTION' block"):
        build(path, tmp_path / "dist")


def test_a_solution_cell_without_markers_would_leak_and_is_refused(tmp_path):
    """Otter hands out a solution cell's unmarked lines unchanged: build stops on it."""
    path = _master(tmp_path, [nbformat.v4.new_code_cell("answer = 6 * 7")])
    with pytest.raises(AssignmentError, match="solution text in the student notebook .*'answer = 6 \\* 7'"):
        build(path, tmp_path / "dist")


def test_leak_detection_sees_marked_lines_and_prose():
    student = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = ...\nprint(answer)"),
                                              nbformat.v4.new_markdown_cell("Because the bottleneck is narrow.")])
    assert solution_leaks(student, [("answer = 6 * 7  # SOLUTION\nprint(answer)", False)]) == []
    assert solution_leaks(student, [("Because the bottleneck is narrow.", True)]) == ["Because the bottleneck is narrow."]
    student.cells.append(nbformat.v4.new_code_cell("# END SOLUTION"))
    assert solution_leaks(student, []) == ["# END SOLUTION"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sepconv", "assign", *args], capture_output=True, text=True,
                          timeout=300)


def test_command_line_errors_are_one_line(tmp_path):
    missing = _cli("build", str(tmp_path / "absent.ipynb"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "no master notebook" in missing.stderr
    (tmp_path / "notes.txt").write_text("not a notebook")
    bad = _cli("build", str(tmp_path / "notes.txt"))
    assert bad.returncode == 2 and "is not a notebook" in bad.stderr and bad.stderr.strip().count("\n") == 0
    wrong = _cli("grade", str(MASTERS[0]), "--autograder", str(MASTERS[0]))
    assert wrong.returncode == 2 and "the autograder is the .zip" in wrong.stderr
    timeout = _cli("grade", str(MASTERS[0]), "--autograder", str(MASTERS[0]), "--cell-timeout", "0")
    assert timeout.returncode == 2 and "--cell-timeout must be a positive, finite number of seconds, got 0" in timeout.stderr


def test_build_and_grade_from_the_command_line(tmp_path):
    built = _cli("build", str(MASTERS[0]), "--out", str(tmp_path / "dist"))
    assert built.returncode == 0, built.stderr
    assert "points: 12 autograded + 3 written" in built.stdout
    (zip_path,) = (tmp_path / "dist" / "autograder").glob("*.zip")
    # the solutions answer question 1's variant for their own `student`: the roster says whom this file is for
    roster = tmp_path / "roster.csv"
    roster.write_text(f"file,student\n{MASTERS[0].name},ada.lovelace\n")
    graded = _cli("grade", str(tmp_path / "dist" / "autograder" / MASTERS[0].name), "--autograder", str(zip_path),
                  "--roster", str(roster), "--json")
    assert graded.returncode == 0, graded.stderr
    result = json.loads(graded.stdout)
    assert result["score"] == result["total"] == 12 and result["removed"] == {} and result["problems"] == []
    # graded as the file's stem (no roster), question 1's answers are someone else's variant: they score nothing
    stem = json.loads(_cli("grade", str(tmp_path / "dist" / "autograder" / MASTERS[0].name), "--autograder",
                           str(zip_path), "--json").stdout)
    assert stem["student"] == MASTERS[0].stem and stem["questions"]["q1"] == [0.0, 3.0]
    assert stem["problems"] == [f"the notebook's `student` is 'ada.lovelace', the grader's '{MASTERS[0].stem}': the "
                                f"per-student questions are graded for '{MASTERS[0].stem}'"]


def test_the_gradescope_zip_still_grades_the_solutions_with_otter(tmp_path):
    """Gradescope runs otter on the zip (not the two-phase grader): the split tests and the cell that ships
    the public tests still give the solutions full marks there."""
    built = build(ROOT / "book" / "assignments" / f"{PROBED}.ipynb", tmp_path / "dist")
    work = tmp_path / "otter"
    work.mkdir()
    (work / "results").mkdir()
    target = work / built.solutions.name
    target.write_bytes(built.solutions.read_bytes())
    run = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(built.autograder), "-o", "results",
                          target.name], capture_output=True, text=True, cwd=work, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    tests = json.loads((work / "results" / "results.json").read_text())["tests"]
    scores = {t["name"]: (t["score"], t["max_score"]) for t in tests if t["name"] != "Public Tests"}
    assert scores == {q: (p, p) for q, p in built.points.items()}

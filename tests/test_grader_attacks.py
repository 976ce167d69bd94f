"""Attacks on the grader, as a class of students would try them (issue 30), against one real assignment.

Each attack is a tiny notebook (an attack cell, then wrong or no answers) graded by ``sepconv.grading``;
the honest baseline is the assignment's solutions. Every attack must score no more than the untouched
handout's 0, and a whole folder of honest, broken and malicious notebooks grades in one command to the
expected table, each row a score or a one-line reason, whatever its neighbours did.
"""

import json
import subprocess
import sys

import nbformat
import pytest

from sepconv.grading import GradingError, grade, grade_folder
from sepconv.grading.sandbox import _works, mode

from submissions import build_target, notebook, solution_sources

#: Without a PID namespace or a user of its own, a submission's kill(-1) reaches every process of the grader's
#: user, this test run included: the attacks run only where the sandbox contains them.
pytestmark = pytest.mark.skipif(mode() == "plain", reason="the plain sandbox (no root, no namespaces) does not "
                                                         "contain a submission's processes")

#: Wrong answers of the right types, the values the attacks try to make count.
WRONG = """\
forward = {"stem": 1, "dw": 1, "pw": 1, "head": 1}
forward_macs = 4
input_grad_macs = backward_ratio = weight_grad_macs = scale_tensor = 1
zeroed_tensor = zeroed_channel = 7
import numpy as np
w_folded, b_folded = np.zeros((3, 3, 1, 8)), np.zeros(8)
"""

ATTACKS = {
    # otter's and doctest's machinery patched from a cell, errors swallowed, the library replaced
    "patch_runners": """
        import doctest, builtins
        doctest.DocTestRunner.summarize = lambda self, verbose=None: doctest.TestResults(0, 0)
        doctest.DocTestRunner.run = lambda self, *a, **k: doctest.TestResults(0, 0)
        builtins.AssertionError = type("Never", (Exception,), {})
        get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
        try:
            import otter.test_files.abstract_test as abstract
            abstract.TestCase = None
        except Exception:
            pass
        """,
    # an object equal to everything, with isinstance, abs and float redefined
    "equal_to_everything": """
        import builtins
        class Anything(int):
            __eq__ = __le__ = __ge__ = __lt__ = __gt__ = lambda self, other: True
            __ne__ = lambda self, other: False
            __hash__ = int.__hash__
            def __abs__(self): return Anything()
            def __sub__(self, other): return Anything()
            __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __sub__
            def __getitem__(self, key): return Anything()
        builtins.isinstance = lambda *args: True
        builtins.abs = lambda x: 0
        builtins.float = lambda *x: 0.0
        forward = {"stem": Anything(), "dw": Anything(), "pw": Anything(), "head": Anything()}
        forward_macs = input_grad_macs = weight_grad_macs = backward_ratio = scale_tensor = Anything()
        zeroed_tensor = zeroed_channel = w_folded = b_folded = Anything()
        """,
    # int and float subclasses that compare as the right answer would
    "number_subclasses": """
        class Close(float):
            def __sub__(self, other): return 0.0
            def __eq__(self, other): return True
            __hash__ = float.__hash__
        forward = {"stem": Close(), "dw": Close(), "pw": Close(), "head": Close()}
        forward_macs = input_grad_macs = weight_grad_macs = backward_ratio = scale_tensor = Close(1.0)
        zeroed_tensor = zeroed_channel = Close(0)
        """,
    # look for the hidden tests, the autograder zip and the master notebook everywhere it could reach (./tests,
    # the parent processes' working folders, /tmp, the package's repository), rewrite them, copy what they say
    "find_the_tests": """
        import glob, os, re, zipfile
        seen = []
        places = ["tests", "..", "/tmp", "/root", "/work", "/home"]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                places.append(f"/proc/{pid}/cwd")
        import sepconv
        places.append(str(__import__("pathlib").Path(sepconv.__file__).resolve().parents[2]))
        def walk(place, depth=0):  # what is within four folders of a place, at most 3000 entries per place
            try:
                entries = os.listdir(place)[:3000]
            except OSError:
                return
            for entry in entries:
                path = os.path.join(place, entry)
                yield path
                if depth < 4 and os.path.isdir(path) and not os.path.islink(path) and entry not in ("proc", "sys", "usr"):
                    yield from walk(path, depth + 1)
        for place in places:
            for path in list(walk(place))[:3000]:
                if path.endswith((".py", ".ipynb", ".zip")) and os.path.isfile(path):
                    try:
                        text = open(path, "rb").read()
                        if path.endswith(".zip"):
                            with zipfile.ZipFile(path) as z:
                                text = b"".join(z.read(n) for n in z.namelist() if n.startswith("tests/"))
                        with open(path, "ab") as f:  # rewrite the tests we found
                            f.write(b"")
                    except Exception:
                        continue
                    if b"forward_macs ==" in text:
                        seen.append(path)
                        number = re.search(rb"forward_macs == (\\d+)", text)
                        if number:
                            forward_macs = int(number.group(1))
        """,
    # write otter's results file and fake sandbox output, then kill the grader and leave
    "fake_results_then_kill": """
        import json, os, signal
        json.dump({"tests": [{"name": "q1", "score": 400, "max_score": 3}]}, open("results.json", "w"))
        os.makedirs("out", exist_ok=True)
        json.dump({"forward_macs": {"$array": "../../../etc/passwd"}, "scale_tensor": {"$fraction": [1, 0]},
                   "zeroed_tensor": {"$dict": [[[1], 2]]}, "zeroed_channel": [[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]},
                  open("out/answers.json", "w"))
        for target in (os.getppid(), 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)
        """,
    # forge the sandbox's own output (paths out of its folder, bad fractions, keys and nesting), claim to
    # have finished, and leave before the runner writes anything
    "forged_output": """
        import json, os
        json.dump({"forward_macs": {"$array": "../../../etc/passwd"}, "scale_tensor": {"$fraction": [1, 0]},
                   "zeroed_tensor": {"$dict": [[[1], 2]]}, "zeroed_channel": {"$scalar": "|O", "value": 0},
                   "backward_ratio": {"$array": "a0.npy"}, "forward": "\\u0000" * 1000},
                  open("out/answers.json", "w"))
        open("out/a0.npy", "wb").write(b"\\x93NUMPY" + b"\\x00" * 100)
        open("out/progress", "a").write("done\\n")
        os._exit(0)
        """,
    # floods its error output and writes nonsense into the runner's progress file
    "flood_and_garble": """
        import sys
        sys.stderr.write("x" * 10_000_000)
        open("out/progress", "a").write("start\\nstart 99999999999999999999999\\nend\\n")
        """,
    # a fork bomb
    "fork_bomb": """
        import os
        while True:
            os.fork()
        """,
    # eats all the memory it may
    "memory_hog": """
        hog = bytearray(64 << 30)
        """,
    # starts a process that outlives it and tries to spoil the next submissions: kills whatever it can
    # and writes into every folder it can reach
    "background_saboteur": """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", '''
import glob, os, signal, time
os.setsid()
end = time.time() + 40
while time.time() < end:
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    for path in glob.glob("/tmp/**/*.json", recursive=True):
        try:
            open(path, "w").write("{}")
        except OSError:
            pass
    time.sleep(0.05)
'''], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        """,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_target(tmp_path_factory.mktemp("attacks") / "dist")


@pytest.fixture(scope="module")
def solution_answers(built):
    """The solutions' code cells, pasted into a fresh notebook (no otter metadata, another kernel)."""
    return solution_sources(built)


def test_each_attack_scores_nothing_and_is_named(built, tmp_path):
    folder = tmp_path / "attacks"
    folder.mkdir()
    for name, attack in ATTACKS.items():
        own_answers = name in ("equal_to_everything", "number_subclasses", "fake_results_then_kill")
        notebook(folder / f"{name}.ipynb", *([attack] if own_answers else [WRONG, attack]))
    rows = {row.name[:-6]: row for row in grade_folder(folder, built.autograder, jobs=2, cell_timeout=20, timeout=90,
                                                       memory_bytes=3 << 30)}
    assert set(rows) == set(ATTACKS)
    for name, row in rows.items():
        assert row.score == 0 and row.total == 12, (name, row)
    problems = {name: " ".join(row.problems) for name, row in rows.items()}
    print(json.dumps(problems, indent=1))
    # what could not be written as plain data is named (or the runner, broken by the patched built-ins,
    # ended: the cell is named)
    assert ("answer `forward_macs` is not plain data (Anything)" in problems["equal_to_everything"]
            or "cell 0 removed: it ended the process" in problems["equal_to_everything"])
    assert "answer `backward_ratio` is not plain data (Close)" in problems["number_subclasses"]
    assert "cell 0 removed: it ended the process" in problems["fake_results_then_kill"]
    for answer in ("forward_macs", "scale_tensor", "zeroed_tensor", "zeroed_channel", "backward_ratio"):
        assert f"answer `{answer}` is not plain data" in problems["forged_output"], answer


ISOLATING = [m for m in ("namespace", "userns") if _works(m)]


@pytest.mark.skipif(not ISOLATING, reason="no namespaces here: the sandbox shares the machine's file system")
@pytest.mark.parametrize("sandbox_mode", ISOLATING)
def test_the_sandbox_sees_no_test_solution_or_master(built, tmp_path, sandbox_mode):
    """The one attack that needs the isolated file system: with the tests findable it would score. It
    looks through /proc/*/cwd and /proc/*/root as well (the grader runs from the repository, whose
    book/assignments holds the master notebook)."""
    path = notebook(tmp_path / "find.ipynb", WRONG, ATTACKS["find_the_tests"].replace(
        'places.append(f"/proc/{pid}/cwd")', 'places += [f"/proc/{pid}/cwd", f"/proc/{pid}/root/work"]'))
    result = grade(path, built.autograder, cell_timeout=60, sandbox_mode=sandbox_mode)
    assert result.sandbox == sandbox_mode and result.score == 0


def test_a_mixed_folder_grades_to_the_expected_table_in_one_command(built, solution_answers, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    notebook(folder / "a_honest.ipynb", *solution_answers)
    notebook(folder / "b_saboteur.ipynb", ATTACKS["background_saboteur"], "import time\ntime.sleep(1)")
    notebook(folder / "d_honest_other_kernel.ipynb", *solution_answers, kernel="xpython", otter=False)
    notebook(folder / "c_crashes_everywhere.ipynb", *(["import os\nos._exit(3)"] * 6), *solution_answers)
    notebook(folder / "e_kills_the_grader.ipynb", ATTACKS["fake_results_then_kill"])
    half = [s for s in solution_answers if "w_folded" not in s and "zeroed_tensor" not in s]
    notebook(folder / "f_half_right.ipynb", *half, "while True:\n    pass")
    (folder / "g_not_json.ipynb").write_text("{ this is not a notebook")
    bad = json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])))
    bad["cells"][0]["source"] = 42
    (folder / "h_schema_invalid.ipynb").write_text(json.dumps(bad))
    notebook(folder / "i_fork_bomb.ipynb", ATTACKS["fork_bomb"], *solution_answers)
    command = [sys.executable, "-m", "sepconv", "assign", "grade", str(folder), "--autograder", str(built.autograder),
               "--jobs", "2", "--cell-timeout", "15", "--timeout", "120"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    print(run.stdout)
    table = [line.split(None, 2) + [""] * (3 - len(line.split(None, 2))) for line in run.stdout.strip().splitlines()]
    scores = {name: score for name, score, _ in table}
    notes = {name: note for name, _, note in table}
    assert scores == {"a_honest.ipynb": "12/12", "b_saboteur.ipynb": "0/12", "d_honest_other_kernel.ipynb": "12/12",
                      "c_crashes_everywhere.ipynb": "0/12", "e_kills_the_grader.ipynb": "0/12",
                      "f_half_right.ipynb": "6/12", "g_not_json.ipynb": "-", "h_schema_invalid.ipynb": "-",
                      "i_fork_bomb.ipynb": "12/12"}
    assert notes["a_honest.ipynb"] == notes["d_honest_other_kernel.ipynb"] == ""
    assert notes["c_crashes_everywhere.ipynb"].startswith("cell 0 removed: it ended the process (exit status")
    assert "gave up after 4 runs" in notes["c_crashes_everywhere.ipynb"]
    assert "ran longer than 15 s" in notes["f_half_right.ipynb"]
    assert notes["g_not_json.ipynb"].startswith("not a valid notebook:")
    assert notes["h_schema_invalid.ipynb"].startswith("not a valid notebook:")


def test_schema_invalid_and_bad_timeouts_are_one_line(built, tmp_path):
    path = tmp_path / "bad.ipynb"
    path.write_text('{"cells": 3}')
    with pytest.raises(GradingError, match="^not a valid notebook: "):
        grade(path, built.autograder)
    for value in ("inf", "nan", "-1"):
        run = subprocess.run([sys.executable, "-m", "sepconv", "assign", "grade", str(path), "--autograder",
                              str(built.autograder), "--cell-timeout", value], capture_output=True, text=True)
        assert run.returncode == 2 and run.stderr.strip().count("\n") == 0, run.stderr
        assert f"--cell-timeout must be a positive, finite number of seconds, got {value}" in run.stderr

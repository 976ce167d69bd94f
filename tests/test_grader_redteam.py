"""Red-team attacks on the two-phase grader beyond tests/test_grader_attacks.py (issue 30).

Each attack is a tiny notebook graded against the real 08 assignment (12 points). WRONG scores 0; an attack
must score no more than that, be named where it is odd, leave no process behind, and never stop a folder.
"""

import json
import os
import socket
import subprocess
import sys
import time
from functools import partial

import nbformat
import numpy as np
import pytest

from sepconv.grading import code_cells, grade, grade_folder, table
from sepconv.grading.evaluate import NotPlain, decode
from sepconv.grading.sandbox import _works, mode

import submissions

#: the red team's submissions carry no otter metadata (answers pasted into a fresh notebook)
notebook = partial(submissions.notebook, otter=False)

pytestmark = pytest.mark.skipif(mode() == "plain", reason="the plain sandbox does not contain a submission")

WRONG = """\
forward = {"stem": 1, "dw": 1, "pw": 1, "head": 1}
forward_macs = 4
input_grad_macs = backward_ratio = weight_grad_macs = scale_tensor = 1
zeroed_tensor = zeroed_channel = 7
import numpy as np
w_folded, b_folded = np.zeros((3, 3, 1, 8)), np.zeros(8)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return submissions.build_target(tmp_path_factory.mktemp("redteam") / "dist")


@pytest.fixture(scope="module")
def solutions(built):
    return submissions.solution_sources(built)


def test_empty_arrays_do_not_pass_allclose_tests(built, tmp_path):
    """np.allclose(np.zeros((0, 8)), expected_8) is True (an empty broadcast): the hidden b_folded test
    has no shape check of its own. An empty array answer is named, and scores nothing."""
    path = notebook(tmp_path / "empty.ipynb", WRONG, "b_folded = np.zeros((0, 8))\nw_folded = np.zeros((0, 3, 3, 1, 8))")
    result = grade(path, built.autograder, cell_timeout=30, timeout=60)
    assert result.score == 0, result
    assert any("answer `b_folded` is not plain data (empty array" in p for p in result.problems), result.problems


def test_decoding_never_crashes_phase_2(tmp_path):
    """Forged answer files whose tags are well formed but whose contents make numpy or dict() raise."""
    for bad in ({"$scalar": "<i8", "value": "1e3"}, {"$scalar": "not a dtype", "value": 1},
                {"$scalar": "<i8", "value": 10 ** 30}, {"$dict": [[{"$tuple": [[1]]}, 1]]},
                {"$scalar": "<f8", "value": [1, 2]}, {"$scalar": "<i8", "value": None}):
        with pytest.raises(NotPlain):
            decode(bad, tmp_path)


def test_forged_answers_cost_their_own_points_only(built, solutions, tmp_path):
    """Honest answers and one forged answer that made numpy raise in phase 2: the submission keeps a score
    (the forged answer named), rather than no score at all."""
    forge = """
        import json, os
        data = json.load(open("out/answers.json"))
        data["forward_macs"] = {"$scalar": "<i8", "value": "1e3"}
        data["zeroed_tensor"] = {"$dict": [[{"$tuple": [[1]]}, 1]]}
        json.dump(data, open("out/answers.json", "w"))
        open("out/progress", "a").write("end 99\\ndone\\n")
        os._exit(0)
        """
    path = notebook(tmp_path / "forge.ipynb", *solutions, forge)
    result = grade(path, built.autograder, cell_timeout=30, timeout=90)
    assert 0 < result.score < 12, result
    assert any("answer `forward_macs` is not plain data" in p for p in result.problems), result.problems
    assert any("answer `zeroed_tensor` is not plain data" in p for p in result.problems), result.problems


#: Writes a cell number the grader's ``isdigit`` accepts and ``int`` refuses, then fills its user's
#: process count and waits: a grader that raised here (it did) left it running, as the user the next
#: submission of the same slot gets, whose runner then could not start its threads (12/12 became 9/12).
UNICODE_DIGIT = """
    import os, time
    open("out/progress", "a").write("start \\u00b2\\n")
    time.sleep(0.5)
    for _ in range(600):
        try:
            if os.fork() == 0:
                try:
                    os.execv("/bin/sleep", ["sleep", "8.125"])
                finally:
                    os._exit(0)
        except OSError:
            break
    time.sleep(8)
    """


def test_a_garbled_progress_line_leaves_nothing_running(built, solutions, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    notebook(folder / "a_unicode_digit.ipynb", WRONG, UNICODE_DIGIT)
    notebook(folder / "b_honest.ipynb", *solutions)
    started = time.monotonic()
    rows = {row.name: row for row in grade_folder(folder, built.autograder, cell_timeout=20, timeout=60)}
    assert rows["b_honest.ipynb"].score == 12, rows
    assert rows["a_unicode_digit.ipynb"].score in (0, None), rows
    assert time.monotonic() - started < 50
    left = subprocess.run(["pgrep", "-f", "^sleep 8.125$"], capture_output=True, text=True).stdout
    assert not left.strip(), left


def test_problems_cannot_forge_rows_of_the_table(built, tmp_path):
    """A type name, an error text or a forged tag with a newline, a carriage return or a terminal escape:
    the table keeps one line per submission and no control characters."""
    evil = """
        import json, os
        Fake = type("x\\nz_victim.ipynb  0/12  \\x1b[2K\\r", (), {})
        forward_macs = Fake()
        """
    folder = tmp_path / "rows"
    folder.mkdir()
    notebook(folder / "a_evil.ipynb", WRONG, evil)
    bad = json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])))
    bad["cells"][0]["source"] = "\x1b[2J"
    bad["cells"][0]["bogus\nz_victim.ipynb 0/12"] = 1
    (folder / "b_invalid.ipynb").write_text(json.dumps(bad))
    rows = grade_folder(folder, built.autograder, cell_timeout=20, timeout=60)
    text = table(rows)
    print(text)
    assert len(text.splitlines()) == 2, text
    assert not any(ord(c) < 32 or ord(c) == 127 for c in text.replace("\n", "")), repr(text)
    assert "forward_macs" in text


@pytest.mark.parametrize("sandbox_mode", [m for m in ("namespace", "userns") if _works(m)])
def test_the_sandbox_reaches_no_network(built, tmp_path, sandbox_mode):
    """A server of the grader's machine on localhost (a Jupyter server, a database) must be out of reach:
    the submission would otherwise read through it what its file system hides, or send answers out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    attack = f"""
        import socket
        try:
            s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
            s.sendall(b"pwned")
            forward_macs = 1
        except OSError:
            forward_macs = 0
        """
    try:
        result = grade(notebook(tmp_path / "net.ipynb", WRONG, attack), built.autograder, cell_timeout=30, timeout=60,
                       sandbox_mode=sandbox_mode)
        try:
            connection, _ = listener.accept()
            connection.close()
            reached = True
        except (socket.timeout, OSError):
            reached = False
    finally:
        listener.close()
    assert result.score == 0
    assert not reached, "the sandbox connected to a server of the grader's machine"


def test_special_files_in_a_folder_do_not_stop_it(built, solutions, tmp_path):
    """A FIFO, a folder and a link named like notebooks: the batch completes, the honest one scores."""
    folder = tmp_path / "special"
    folder.mkdir()
    os.mkfifo(folder / "a_fifo.ipynb")
    (folder / "b_folder.ipynb").mkdir()
    (folder / "c_link.ipynb").symlink_to("/etc/passwd")
    notebook(folder / "d_honest.ipynb", *solutions)
    rows = {row.name: row for row in grade_folder(folder, built.autograder, cell_timeout=30, timeout=90)}
    assert rows["d_honest.ipynb"].score == 12
    assert rows["a_fifo.ipynb"].score is None and rows["b_folder.ipynb"].score is None
    assert "c_link.ipynb" not in rows


@pytest.mark.parametrize("swap", ["fifo", "dev_zero"])
def test_a_progress_file_swapped_for_a_fifo_or_device_does_not_hang_the_grader(built, tmp_path, swap):
    """The sandbox owns its ``out`` folder: its progress file turned into a FIFO (an ``open`` that blocks
    forever) or a link to /dev/zero (a read that never ends). The whole time limit still holds."""
    make = 'os.mkfifo("out/progress")' if swap == "fifo" else 'os.symlink("/dev/zero", "out/progress")'
    attack = f"""
        import os, time
        os.remove("out/progress")
        {make}
        time.sleep(60)
        """
    path = notebook(tmp_path / f"{swap}.ipynb", WRONG, attack)
    command = [sys.executable, "-c", "import sys; from sepconv.grading import grade; "
               "g = grade(sys.argv[1], sys.argv[2], cell_timeout=4, timeout=6); print(g.score)",
               str(path), str(built.autograder)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=45)
    assert run.returncode == 0 and run.stdout.split()[-1] == "0.0", run.stderr[-500:]


def test_the_output_folder_swapped_for_a_link_is_not_followed(built, tmp_path):
    """``out`` replaced by a link to a folder of the grader's machine that holds a progress file saying
    ``done`` and right answers (any readable folder with such files): the grader reads none of it."""
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "progress").write_text("start 0\nend 0\ncalls\ndone\n")
    (planted / "answers.json").write_text(json.dumps({"forward_macs": 278848, "zeroed_tensor": 2,
                                                      "zeroed_channel": 0}))
    os.chmod(tmp_path, 0o755)
    attack = f"""
        import os
        os.rename("out", "gone")
        os.symlink({str(planted)!r}, "out")
        os._exit(0)
        """
    result = grade(notebook(tmp_path / "link.ipynb", WRONG, attack), built.autograder, cell_timeout=20, timeout=40)
    assert result.score == 0, result


def test_a_planted_lock_folder_is_refused(tmp_path, monkeypatch):
    """The ``uid`` sandbox shares /tmp with the machine: a submission that made the folder of the users'
    lock files first, with a link in it, would have the grader (root) truncate the link's target."""
    import sepconv.grading.sandbox as sandbox

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    planted = tmp_path / "users"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    (planted / str(sandbox.UID_BASE)).symlink_to(victim)
    monkeypatch.setattr(sandbox, "USERS", planted)
    with pytest.raises(RuntimeError, match="not a folder of the grader's alone"):
        with sandbox._claim_uid(0):
            pass
    os.chmod(planted, 0o700)  # even then, the link is not followed
    with pytest.raises(OSError):
        with sandbox._claim_uid(0):
            pass
    assert victim.read_text() == "keep me"


def test_a_cell_of_many_checks_does_not_hang_the_grader(built, tmp_path):
    """The pattern that told otter's cells apart backtracked exponentially on repeated ``grader.check``
    lines with blank lines between them and code after (8 took 1.4 s, 10 over a minute; 30 would never end,
    in the grader's own process: a whole folder stopped). Such a cell is the student's code and runs."""
    cell = 'grader.check("q1")\n  \n' * 30 + WRONG
    path = notebook(tmp_path / "redos.ipynb", cell)
    started = time.monotonic()
    cells = code_cells(path)
    assert time.monotonic() - started < 5 and len(cells) == 1
    command = [sys.executable, "-c", "import sys; from sepconv.grading import grade; "
               "g = grade(sys.argv[1], sys.argv[2], cell_timeout=10, timeout=20); print(g.score)",
               str(path), str(built.autograder)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and float(run.stdout) == 0, (run.stdout, run.stderr[-300:])

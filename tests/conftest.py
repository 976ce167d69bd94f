import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _pin_worker_to_one_cpu():
    """Under pytest-xdist, keep each worker (and the kernels and processes it starts) on a CPU of its
    own. Before JAX starts: XLA then sizes its thread pool to that one CPU. Two workers whose thread
    pools each span both CPUs spend much of their time waiting for each other's spinning threads."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if len(cpus) >= count > 1:
        os.environ["SEPCONV_TEST_ALL_CPUS"] = ",".join(map(str, cpus))  # for the browser (test_browser)
        os.sched_setaffinity(0, {cpus[int(worker[2:]) % len(cpus)]})


_pin_worker_to_one_cpu()
sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings  # noqa: E402

settings.register_profile("sepconv", deadline=None, derandomize=True, max_examples=40)
settings.load_profile("sepconv")

import fcntl  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: A master notebook the grader's attack suites build (tests/test_grader_attacks.py), not a notebook to run.
collect_ignore = ["grader_target"]


@pytest.fixture(scope="session")
def site():
    """Build the website once per test run, with warnings as errors; return the HTML folder.

    Under pytest-xdist every worker asks for it; the first builds under a file lock and leaves a stamp
    with the run's id (``PYTEST_XDIST_TESTRUNUID``, the same in every worker), the others wait for the
    lock and reuse that build."""
    if not (ROOT / "book" / "_vendor" / "mathjax" / "tex-chtml.js").exists():
        pytest.fail("MathJax is not vendored: run `make vendor` (make book/test do it)")
    html = ROOT / "_build" / "html"
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    stamp = ROOT / "_build" / ".built-for-test-run"
    (ROOT / "_build").mkdir(exist_ok=True)
    with open(ROOT / "_build" / ".build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if run_id is None or not stamp.exists() or stamp.read_text() != run_id:
            stamp.unlink(missing_ok=True)
            jb = Path(sys.executable).with_name("jupyter-book")
            result = subprocess.run([str(jb), "build", str(ROOT), "--all", "--warningiserror", "--keep-going"],
                                    cwd=ROOT, capture_output=True, text=True, timeout=1200,
                                    env=dict(os.environ, JAX_PLATFORMS="cpu"))
            assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
            if run_id is not None:
                stamp.write_text(run_id)
    return html


#: The files that take longest, started first so that the two workers finish together (the Makefile
#: passes ``--no-loadscope-reorder``, which keeps this order; by default xdist starts the files with
#: the most tests first, and one long file left for the end keeps one worker busy alone).
SLOWEST_FIRST = ("tests/test_assignments.py", "tests/test_other_cpu.py", "chapters/09_deployment.ipynb",
                 "chapters/05_training.ipynb", "tests/test_models.py", "tests/test_deploy.py",
                 "tests/test_browser.py", "tests/test_keras_reference.py", "tests/test_fast_depthwise.py",
                 "tests/test_bench.py", "tests/test_training.py", "chapters/06_relatives.ipynb", "tests/test_cli.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: a file keeps its order


"""Every notebook opens with the one install cell, and what it decides to install is right.

The decision (``sepconv.colab.plan``) is checked on runtimes given as data: Colab's published runtime of
August 2026 (``tools/colab/pip-freeze.txt``: flax 0.11.2, below the floor), the project's own pinned
environment (``requirements.txt``: up to date), a GPU runtime, and one whose jax is below the floor. The
expected plans are read off the floors of ``pyproject.toml`` (parsed here, not through the code under test)
and those lists by hand. The install cell itself runs for real in a fresh environment that has everything
(up to date: it must change nothing); ``make colab`` runs it, and every chapter after it, in the emulated
Colab runtime (old flax: it must upgrade flax alone).
"""

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from sepconv import colab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import install_cell  # noqa: E402

NOTEBOOKS = (sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "book" / "index.ipynb"]
             + sorted((ROOT / "book" / "assignments").glob("*.ipynb")))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _first_code(path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def _pins(path):
    """name -> version of every ``name==version`` line."""
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-").replace(".", "-")] = m.group(2)
    return out


def _floors(*extras):
    reqs = list(PYPROJECT["dependencies"])
    for extra in extras:
        reqs += PYPROJECT["optional-dependencies"][extra]
    return reqs


COLAB = _pins(ROOT / "tools" / "colab" / "pip-freeze.txt")
PINNED = _pins(ROOT / "requirements.txt")


# --- the cell in every notebook ------------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_opens_with_the_canonical_install_cell(notebook):
    cell = _first_code(notebook)
    assert cell.source == install_cell.canonical(notebook), \
        f"{notebook.name}: run `python tools/install_cell.py --write`"
    assert cell.metadata.get("tags", [])[:1] == ["nbval-ignore-output"]


def test_the_cell_installs_from_the_repository_of_config_yml():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    source = f'"git+{repo["url"]}@{repo["branch"]}"'
    for notebook in NOTEBOOKS:
        assert source in _first_code(notebook).source, notebook.name
    assert install_cell.url_mismatches() == []


def test_chapter_9_installs_the_deploy_extra_the_handouts_the_course_extra_the_others_the_chapters_extra():
    masters = {p.name for p in (ROOT / "book" / "assignments").glob("*.ipynb")}
    assert len(masters) >= 8 and {n.name for n in NOTEBOOKS if n.parent.name == "assignments"} == masters
    for notebook in NOTEBOOKS:
        extras = json.loads(re.search(r"install\((\[.*\])\)", _first_code(notebook).source).group(1))
        if notebook.parent.name == "assignments":  # otter-grader, which starts the handout's checks
            assert extras == ["chapters", "course"], notebook.name
        else:
            assert extras == (["chapters", "deploy"] if notebook.stem == "09_deployment" else ["chapters"])


def test_no_handout_tells_the_student_to_pip_install_by_hand():
    for notebook in NOTEBOOKS:
        if notebook.parent.name == "assignments":
            text = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
            assert "!pip install" not in text, notebook.name  # it would replace Colab's jax and numpy


def test_first_cell_does_nothing_locally(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    for notebook in NOTEBOOKS:
        exec(compile(_first_code(notebook).source, str(notebook), "exec"), {})
    assert calls == []


def test_write_replaces_an_old_cell_and_moves_the_chapters_own_lines(tmp_path):
    old = ('import os, sys\nif "google.colab" in sys.modules:\n    import subprocess\n'
           '    subprocess.run([sys.executable, "-m", "pip", "install",\n                    "x"], check=True)\n'
           'os.environ.setdefault("KERAS_BACKEND", "jax")')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell(old),
                                         nbformat.v4.new_code_cell("import jax")])
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "'jax'"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a-course/its-fork\n  branch: spring\n")
    path = tmp_path / "chapters" / "05_x.ipynb"
    nbformat.write(nb, path)
    assert install_cell.write(path, tmp_path) and not install_cell.write(path, tmp_path)  # the second: no change
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "code"]
    assert '"git+https://github.com/a-course/its-fork@spring"' in cells[1].source and cells[1].outputs == []
    assert cells[2].source == 'import os\n\nos.environ.setdefault("KERAS_BACKEND", "jax")'
    assert cells[2].outputs[0]["data"]["text/plain"] == "'jax'" and cells[2].execution_count == 1
    assert cells[3].source == "import jax"


# --- the decision ----------------------------------------------------------------------------------------

def test_requirements_are_the_floors_of_pyproject():
    assert [str(r) for r in colab.requirements(["chapters", "deploy"])] == \
        [str(Requirement(r)) for r in _floors("chapters", "deploy")]
    with pytest.raises(ValueError, match="'chapter'"):
        colab.requirements(["chapter"])


def test_on_colab_of_august_2026_only_flax_is_upgraded_and_jax_numpy_are_held():
    assert (COLAB["jax"], COLAB["flax"], COLAB["numpy"]) == ("0.7.2", "0.11.2", "2.1.3")
    chosen = colab.plan(_floors("chapters"), COLAB)
    assert chosen.install == ["flax>=0.12"]
    assert chosen.hold == ["jax==0.7.2", "jaxlib==0.7.2", "numpy==2.1.3"]
    assert chosen.kept["jax"] == "0.7.2" and chosen.kept["scikit-learn"] == "1.6.1" and chosen.accelerator is None


def test_on_colab_the_deploy_extra_adds_the_onnx_packages():
    chosen = colab.plan(_floors("chapters", "deploy"), COLAB)
    assert chosen.install == ["flax>=0.12", "jax2onnx>=0.17", "onnx", "onnxruntime"]
    # jax2onnx 0.17 needs jax >= 0.8.1: with jax held pip finds nothing, and the fallback lets jax move
    assert chosen.relaxed().hold == ["numpy==2.1.3"] and chosen.relaxed().install == chosen.install


def test_an_up_to_date_environment_gets_nothing():
    chosen = colab.plan(_floors("chapters", "deploy", "course"), PINNED)
    assert chosen.install == []
    assert chosen.kept["flax"] == PINNED["flax"] and chosen.kept["jax"] == PINNED["jax"]


def test_a_gpu_runtime_keeps_its_plugin_and_moves_it_with_jax():
    gpu = {**COLAB, "jax-cuda12-plugin": "0.7.2", "jax-cuda12-pjrt": "0.7.2"}
    chosen = colab.plan(_floors("chapters"), gpu)
    assert chosen.accelerator == "cuda12" and chosen.install == ["flax>=0.12"]
    assert chosen.hold == ["jax==0.7.2", "jaxlib==0.7.2", "numpy==2.1.3", "jax-cuda12-pjrt==0.7.2",
                           "jax-cuda12-plugin==0.7.2"]
    assert chosen.relaxed().install == ["flax>=0.12", "jax[cuda12]"] and chosen.relaxed().hold == ["numpy==2.1.3"]
    old = colab.plan(_floors("chapters"), {**gpu, "jax": "0.6.2", "jaxlib": "0.6.2"})
    assert old.install == ["jax[cuda12]>=0.7.2", "flax>=0.12"] and old.hold == ["numpy==2.1.3"]


def test_a_missing_package_is_installed_and_a_tpu_is_recognised():
    tpu = {k: v for k, v in COLAB.items() if k != "scikit-learn"} | {"libtpu": "0.0.21.1"}
    chosen = colab.plan(_floors("chapters"), tpu)
    assert chosen.install == ["flax>=0.12", "scikit-learn>=1.4.2"] and chosen.accelerator == "tpu"
    assert "libtpu==0.0.21.1" in chosen.hold


def test_the_line_says_what_changed():
    before = {"jax": "0.7.2", "flax": "0.11.2", "numpy": "2.1.3"}
    after = {**before, "flax": "0.12.0", "sepconv": "0.1.0"}
    assert colab.describe(before, after, kept=["jax", "numpy"]) == \
        "sepconv 0.1.0 installed; upgraded flax 0.11.2 -> 0.12.0; kept the runtime's jax 0.7.2, numpy 2.1.3."
    moved = {**after, "jax": "0.8.1", "onnx": "1.20.1"}
    line = colab.describe(before, moved, kept=["jax", "numpy"], imported={"jax", "numpy"})
    assert line == ("sepconv 0.1.0 installed; upgraded flax 0.11.2 -> 0.12.0, jax 0.7.2 -> 0.8.1; added onnx 1.20.1; "
                    "kept the runtime's numpy 2.1.3; RESTART the session (Runtime > Restart session) and run "
                    "again: jax had been imported before this cell.")
    assert "\n" not in line
    course = {**after, "otter-grader": "7.0.0", "fica": "0.4.1", "click": "8.5.1"}
    assert colab.describe(before, course, kept=["jax"], asked=["flax", "otter_grader"]) == \
        ("sepconv 0.1.0 installed; upgraded flax 0.11.2 -> 0.12.0; added otter-grader 7.0.0, 2 packages they need; "
         "kept the runtime's jax 0.7.2.")
    # otter-grader 7 caps wrapt below 2: on Colab (wrapt 2.3.0) pip goes back to 1.x, which is not an upgrade
    capped = {**course, "wrapt": "1.17.3"}
    assert colab.describe({**before, "wrapt": "2.3.0"}, capped, kept=["jax"], asked=["flax", "otter_grader"]) == \
        ("sepconv 0.1.0 installed; upgraded flax 0.11.2 -> 0.12.0; downgraded wrapt 2.3.0 -> 1.17.3; added "
         "otter-grader 7.0.0, 2 packages they need; kept the runtime's jax 0.7.2.")


def test_the_command_line_refuses_a_bad_extra(capsys):
    assert colab.main(["no such"]) == 2 and "'no such'" in capsys.readouterr().err
    assert colab.main(["nope"]) == 1 and "no extra 'nope'" in capsys.readouterr().err


# --- the cell, run for real in an up-to-date environment -------------------------------------------------

def test_colab_cell_installs_the_package_and_changes_nothing_where_all_is_there(tmp_path):
    venv = tmp_path / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # everything else is borrowed from this (up-to-date) environment; a plain path in a .pth file does not
    # activate this environment's editable install of sepconv
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    stub = tmp_path / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("# stands in for Colab's module\n")
    runner = tmp_path / "run_cell.py"
    runner.write_text("import google.colab\n" + _first_code(NOTEBOOKS[0]).source + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SEPCONV_INSTALL=str(ROOT), PYTHONPATH=str(stub.parents[1]), PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([str(python), str(runner)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("sepconv 0.1.0 installed; upgraded nothing; kept the runtime's jax ")
    assert result.stdout.count("\n") == 1
    check = ("import json, sepconv; from sepconv.published import published_table; "
             "print(json.dumps([sepconv.__file__, len(published_table('mobilenet_v2_checkpoints')), "
             "sepconv.standard_conv_cost(14, 14, 512, 512).macs]))")
    out = subprocess.run([str(python), "-c", check], env={**env, "PYTHONPATH": ""}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    location, rows, macs = json.loads(out.stdout)
    assert str(venv) in location  # the copy installed by the cell, not the repository's source tree
    assert rows == 44 and macs == 3 * 3 * 512 * 512 * 14 * 14


# --- the emulated runtime's package list -----------------------------------------------------------------

import colab as colab_tool  # noqa: E402  (tools/colab.py)


def test_the_stored_colab_list_is_googles_of_august_2026_with_its_source():
    source = (ROOT / "tools" / "colab" / "SOURCE").read_text()
    assert "googlecolab/backend-info@a72407924822ea377410b69f0a290150bcb5c9c2" in source and "2026-08-19" in source
    assert colab_tool.colab_python_version() == "3.13"
    # the versions shared/reference/colab-packages.md quotes from that commit
    for name, version in {"jax": "0.7.2", "jaxlib": "0.7.2", "flax": "0.11.2", "numpy": "2.1.3", "scipy": "1.16.3",
                          "scikit-learn": "1.6.1", "matplotlib": "3.10.0", "optax": "0.2.8", "keras": "3.13.2",
                          "ipython": "7.34.0", "ipykernel": "6.17.1", "pip": "24.1.2"}.items():
        assert COLAB[name] == version, name
    touched = [l for l in (ROOT / "tools" / "colab" / "touched.txt").read_text().splitlines() if l and l[0] != "#"]
    assert all(colab_tool.pinned(n.lower().replace("_", "-")) for n in touched)


def test_refresh_refuses_what_is_not_a_colab_list(tmp_path):
    bad = tmp_path / "freeze.txt"
    bad.write_text("numpy==2.1.3\n")
    info = tmp_path / "os-info.txt"
    info.write_text("Ubuntu 22.04\nPython 3.14.1\n")
    with pytest.raises(SystemExit, match="no jax== line"):
        colab_tool.refresh(bad, info, "test")


def test_a_fork_is_written_into_every_file_that_names_the_repository(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a-course/its-fork\n  branch: main\n")
    (tmp_path / "book" / "assignments").mkdir(parents=True)
    (tmp_path / "book" / "assignments" / "requirements.txt").write_text(
        "sepconv[chapters,course] @ git+https://github.com/sepconv-book/sepconv\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        'Run `!pip install "sepconv[course] @ git+https://github.com/sepconv-book/sepconv"`.')])
    nbformat.write(nb, tmp_path / "book" / "assignments" / "01_x.ipynb")
    assert len(install_cell.url_mismatches(tmp_path)) == 2
    assert install_cell.write_urls(tmp_path) == ["book/assignments/requirements.txt", "book/assignments/01_x.ipynb"]
    assert install_cell.url_mismatches(tmp_path) == []
    assert "sepconv[course] @ git+https://github.com/a-course/its-fork@main" in \
        nbformat.read(tmp_path / "book" / "assignments" / "01_x.ipynb", as_version=4).cells[0].source


# --- the Colab-only sanitizing (tools/colab/nbval_sanitize.cfg) ------------------------------------------

from nbval.plugin import get_sanitize_patterns  # noqa: E402  (the parser nbval itself applies)

COLAB_SANITIZE = ROOT / "tools" / "colab" / "nbval_sanitize.cfg"


def _colab_sections():
    """(title, notebook, reason, regex, replace) of each section of the Colab-only file."""
    text = COLAB_SANITIZE.read_text()
    out = []
    for m in re.finditer(r"^\[(.+)\]\n((?:#.*\n)+)regex: (.*)\nreplace: (.*)$", text, re.M):
        comments = m.group(2)
        notebook = re.search(r"^# notebook: (\S+)$", comments, re.M)
        reason = re.search(r"^# reason: (.+(?:\n# (?!notebook:).+)*)", comments, re.M)
        out.append((m.group(1), notebook and notebook.group(1), reason and reason.group(1), m.group(3), m.group(4)))
    return out


def _printed(path):
    """Every printed text output of a notebook's stored outputs (what nbval compares and sanitizes)."""
    texts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
    return [t for t in texts if t]


def test_each_colab_only_pattern_names_its_notebook_and_reason_and_nbval_reads_them_all():
    sections = _colab_sections()
    assert sections and len(sections) == COLAB_SANITIZE.read_text().count("\n[")
    assert [(r, p) for *_, r, p in sections] == get_sanitize_patterns(COLAB_SANITIZE.read_text())
    for title, notebook, reason, regex, _ in sections:
        assert notebook and (ROOT / notebook).is_file(), title
        assert reason and len(reason) > 40, title  # a reason, in words
        re.compile(regex)


def test_each_colab_only_pattern_masks_a_figure_of_its_own_notebook_and_of_no_other():
    chapters = sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "book" / "index.ipynb"]
    printed = {str(p.relative_to(ROOT)): _printed(p) for p in chapters}
    for title, notebook, _, regex, replace in _colab_sections():
        hits = {name for name, texts in printed.items() if any(re.search(regex, t) for t in texts)}
        assert hits == {notebook}, title
        for text in printed[notebook]:  # what it masks is a number, replaced by a named placeholder
            masked = re.sub(regex, replace, text)
            assert masked == text or re.search(r"<\w+>", masked), title


def test_the_colab_only_patterns_are_added_for_the_colab_comparison_alone(tmp_path):
    normal = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
    colab_only = get_sanitize_patterns(COLAB_SANITIZE.read_text())
    assert not set(dict(normal)) & set(dict(colab_only))  # the normal nbval run masks none of them
    combined = get_sanitize_patterns(colab_tool.sanitize_config(tmp_path / "s.cfg").read_text())
    assert combined == normal + colab_only


def test_the_colab_only_patterns_mask_exactly_the_figures_colabs_jax_prints_otherwise():
    # outputs of Colab's jax 0.7.2 (make colab, before these patterns): the compiled figures differ, nothing else
    stored = "mobilenet_v1                      1.53 MiB         6.12 MiB      5.98 MiB\n"
    colab_run = "mobilenet_v1                      1.53 MiB         6.12 MiB      6.74 MiB\n"
    rows_stored = "     1             < 1e-4           6.02   29,202,432\n    16             < 1e-4           0.60   29,202,432\n"
    rows_colab = "     1             < 1e-4           9.63   29,202,432\n    16             < 1e-4           0.60   29,202,432\n"
    family = ("ShuffleNet v1 1x g=8     224    138.4M    2.40M      2.43M    3.4MiB    5.8MiB\n",
              "ShuffleNet v1 1x g=8     224    138.4M    2.40M      2.43M    3.4MiB    5.5MiB\n")
    patterns = get_sanitize_patterns(COLAB_SANITIZE.read_text())

    def clean(s):
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    assert clean(stored) == clean(colab_run) != stored
    assert clean(rows_stored) == clean(rows_colab) and "0.60" in clean(rows_stored)  # 16 slices: not masked
    assert clean(family[0]) == clean(family[1]) and "3.4MiB" in clean(family[0])  # the traced column stays
    changed = "mobilenet_v1                      1.53 MiB         6.13 MiB      5.98 MiB\n"  # a traced figure
    assert clean(changed) != clean(stored)

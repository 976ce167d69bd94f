"""Every claim computed and checked: the paired-rounds helper (sign test worked by hand from the binomial
formula) and the claims check of tests/claims.py over every chapter, the landing page and the source strings
of notebooks, data files and book pages. The rule is documented in tests/claims.py and book/how_to_use.md."""

import json
from pathlib import Path

import pytest

import claims
from sepconv.bench import paired_comparison, sign_test_p

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "book" / "index.ipynb"]

ALLOWLIST, DEBT_FILE = claims.ALLOWLIST, claims.DEBT_FILE
_key, _debt, _silenced = claims.key, claims.debt, claims.silenced


# --- the paired-rounds helper -------------------------------------------------------------------------

def test_sign_test_by_hand():
    # two-sided exact sign test: 2 * sum_{i <= min(k, n - k)} C(n, i) / 2^n, capped at 1
    assert sign_test_p(7, 7) == pytest.approx(2 / 128)                       # 0.015625
    assert sign_test_p(0, 7) == pytest.approx(2 / 128)
    assert sign_test_p(6, 7) == pytest.approx(2 * (1 + 7) / 128)             # 0.125
    assert sign_test_p(4, 7) == 1.0                                           # 2 * (1+7+21+35)/128 = 1
    assert sign_test_p(9, 9) == pytest.approx(2 / 512)
    assert sign_test_p(3, 9) == pytest.approx(2 * (1 + 9 + 36 + 84) / 512)   # 0.5078125
    assert sign_test_p(5, 5) == pytest.approx(2 / 32)                         # 0.0625: never below 0.05
    assert sign_test_p(1, 1) == 1.0


@pytest.mark.parametrize("wins, n", [(-1, 5), (6, 5), (0, 0)])
def test_sign_test_rejects_bad_counts(wins, n):
    with pytest.raises(ValueError, match=str(n if n < 1 else wins)):
        sign_test_p(wins, n)


def test_paired_comparison_words_a_clear_win():
    c = paired_comparison([1.0] * 7, [2.0, 1.5, 1.2, 1.1, 3.0, 1.01, 1.3], "ours", "keras")
    assert (c.wins_a, c.counted, c.verdict, c.faster) == (7, 7, "faster", "ours")
    assert c.p == pytest.approx(2 / 128)
    assert c.wording() == "ours is faster in 7 of 7 rounds (sign test p = 0.016)"
    assert c.median_ratio == pytest.approx(1.3)


def test_paired_comparison_words_a_loss_and_a_draw():
    slower = paired_comparison([2.0] * 9, [1.0] * 9, "a", "b")
    assert slower.verdict == "slower" and slower.faster == "b"
    assert slower.wording() == "b is faster in 9 of 9 rounds (sign test p = 0.0039)"
    draw = paired_comparison([1.0] * 7, [1.1, 0.9, 1.2, 0.8, 1.05, 0.95, 1.3], "ORT", "JAX")
    assert draw.wins_a == 4 and draw.p == 1.0 and draw.faster is None and draw.verdict == "indistinguishable"
    assert draw.wording() == "ORT and JAX cannot be told apart (ORT faster in 4 of 7 rounds, sign test p = 1.0)"
    six = paired_comparison([1.0] * 7, [2.0] * 6 + [0.5], "a", "b")
    assert six.p == pytest.approx(16 / 128) and six.faster is None     # 6 of 7 is not enough at 0.05
    many = paired_comparison([1.0] * 21, [2.0] * 21, "a", "b")
    assert many.p == pytest.approx(2 / 2 ** 21)                        # 9.5e-07
    assert many.wording() == "a is faster in 21 of 21 rounds (sign test p < 0.001)"


def test_paired_comparison_drops_ties_and_rejects_bad_input():
    c = paired_comparison([1.0, 1.0, 1.0], [1.0, 2.0, 2.0])
    assert (c.ties, c.counted, c.wins_a) == (1, 2, 2) and c.p == pytest.approx(2 / 4)
    for a, b in (([1.0], [1.0, 2.0]), ([], []), ([1.0, -1.0], [1.0, 1.0]), ([1.0, float("nan")], [1.0, 1.0])):
        with pytest.raises(ValueError):
            paired_comparison(a, b)


# --- the claims check -----------------------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_claim_is_glued(notebook):
    flags = [f for f in claims.check_notebook(notebook) if not _silenced(f)]
    assert not flags, "\n".join(map(str, flags))


def test_claims_debt_is_current():
    found = {f"{f.notebook}: {_key(f)}" for nb in NOTEBOOKS for f in claims.check_notebook(nb)}
    stale = _debt() - found
    assert not stale, "fixed: delete these lines from tests/claims_debt.txt\n" + "\n".join(sorted(stale))


def test_sources_name_files_the_repository_has():
    missing = {str(f.relative_to(ROOT)): claims.missing_files(f.read_text(errors="replace")) for f in claims.source_files()}
    assert not {f: m for f, m in missing.items() if m}


def _plant(tmp_path, markdown: str, glue_name: str | None = None) -> Path:
    """A copy of chapter 7 with one markdown cell appended (and one glued value, if named)."""
    source = ROOT / "chapters" / "07_latency.ipynb"
    nb = json.loads(source.read_text())
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": markdown})
    if glue_name:
        nb["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "", "outputs": [
            {"output_type": "display_data", "data": {"application/papermill.record/text/plain": "'3.47'"},
             "metadata": {"scrapbook": {"name": glue_name, "mime_prefix": "application/papermill.record/"}}}]})
    planted = tmp_path / "chapters" / source.name
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(json.dumps(nb))
    return planted


SOLUTION = "```{{exercise}}\n:label: planted\nTime both runtimes at batch 1.\n```\n\n```{{solution}} planted\n:class: dropdown\n{}\n```\n"


def _new_flags(path):
    """The flags of the planted cells only (those after chapter 7's own)."""
    original = len(json.loads((ROOT / "chapters" / path.name).read_text())["cells"])
    return [f for f in claims.check_notebook(path, root=path.parents[1]) if f.cell >= original]


def test_check_flags_a_planted_unglued_number(tmp_path):
    path = _plant(tmp_path, SOLUTION.format("ONNX Runtime takes 3.47 ms per image."))
    flags = _new_flags(path)
    print("\n".join(map(str, flags)))
    assert [(f.kind, f.text) for f in flags] == [("unglued number", "3.47")]
    glued = _plant(tmp_path, SOLUTION.format("ONNX Runtime takes {glue:text}`ort_ms` ms per image at batch 1."), "ort_ms")
    assert _new_flags(glued) == []       # the same sentence, glued: the batch is the question's given data


def test_check_reads_a_gated_solution_as_strictly_as_a_solution_block(tmp_path):
    """sphinx-exercise's solution-start / solution-end: the markdown between them, in later cells too, is
    solution text."""
    gated = ("```{{exercise}}\n:label: planted\nTime both runtimes at batch 1.\n```\n\n"
             "```{{solution-start}} planted\n:class: dropdown\n```\n\n{}")
    path = _plant(tmp_path, gated.format("ONNX Runtime takes 3.47 ms per image.\n\n```{solution-end}\n```\n"))
    assert [(f.kind, f.text) for f in _new_flags(path)] == [("unglued number", "3.47")]
    opened = _plant(tmp_path, gated.format(""))          # the solution goes on in the next cell
    nb = json.loads(opened.read_text())
    nb["cells"].append({"cell_type": "markdown", "metadata": {},
                        "source": "It is faster than JAX.\n\n```{solution-end}\n```\n\nJAX compiles it in 3 s."})
    opened.write_text(json.dumps(nb))
    flags = _new_flags(opened)
    assert [(f.kind, f.text) for f in flags] == [("unsupported comparison", "faster")]  # after the end: prose, where an integer is no claim


def test_check_flags_a_planted_unsupported_comparison(tmp_path):
    path = _plant(tmp_path, SOLUTION.format("ONNX Runtime is faster than JAX, and closer to the roofline."))
    flags = _new_flags(path)
    print("\n".join(map(str, flags)))
    assert [(f.kind, f.text) for f in flags] == [("unsupported comparison", "faster"), ("unsupported comparison", "closer")]
    prose = _plant(tmp_path, "On this machine our model runs slower than Keras's.")
    assert [(f.kind, f.text) for f in _new_flags(prose)] == [("unsupported comparison", "slower")]
    glued = _plant(tmp_path, SOLUTION.format("{glue:text}`ort_vs_jax`."), "ort_vs_jax")
    assert _new_flags(glued) == []


def test_check_flags_a_planted_prose_quantity_and_unknown_glue(tmp_path):
    path = _plant(tmp_path, "The pointwise layer reaches 2.25x the depthwise one's rate, 81% of its roofline "
                            "({glue:text}`not_glued_anywhere`).")
    assert sorted((f.kind, f.text) for f in _new_flags(path)) == [
        ("unglued number", "2.25x"), ("unglued number", "81%"), ("unknown glue", "not_glued_anywhere")]


def test_check_leaves_given_data_alone():
    ok = ("MobileNet v1's last pointwise layer ($7 \\times 7 \\times 1024 \\to 1024$) at batch 32, eq. (2) of "
          "the 2018 paper, Table 3, 3x3 and 224x224 inputs in float32, ResNet-50 and EfficientNet-B0.")
    assert claims.unglued_numbers(ok, strict=False) == []
    assert claims.unglued_numbers("The paper reports 70.6% {cite}`howard2017mobilenets`.", strict=True) == []
    assert claims.unglued_numbers("batch 32 and 64 channels", strict=True, given={"32"}) == ["64"]
    assert claims.unglued_numbers("$s \\approx 0.8$ here", strict=False) == ["0.8"]


def test_check_flags_a_missing_source_file(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "there.md").write_text("x")
    text = "quoted in shared/reference/published-tables.md; see book/there.md and keras/src/applications/mobilenet_v3.py"
    assert claims.missing_files(text, root=tmp_path) == ["shared/reference/published-tables.md"]

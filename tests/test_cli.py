import csv
import io
import json
import os
import subprocess
import sys

import pytest

from sepconv import validation
from sepconv.__main__ import main
from sepconv.models import model_cost


def _run(*args, env=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    return subprocess.run([sys.executable, "-m", "sepconv", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_count_json_matches_closed_form():
    result = _run("count", "mobilenet_v2", "--alpha", "0.75", "--resolution", "160", "--classes", "1001", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    closed = model_cost("mobilenet_v2", alpha=0.75, resolution=160, classes=1001)
    assert report["macs"] == closed.macs and report["params"] == closed.params_excluding_norm
    assert report["params_trainable"] == closed.params_trainable > report["params"]  # BatchNorm scale and shift
    assert report["complete"] is True and report["uncosted"] == {}
    # the report names only the options this model has
    assert set(report) >= {"alpha", "resolution", "classes"} and not {"width", "groups", "convention"} & set(report)


def test_count_defaults_are_the_models_own(capsys):
    assert main(["count", "xception", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["resolution"] == 299 and report["macs"] == model_cost("xception").macs
    assert round(report["macs"] / 1e9, 2) == 8.36


def test_count_shufflenet_width_and_squeezenet(capsys):
    assert main(["count", "squeezenet1_0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == report["params_trainable"] == 1_248_424  # no BatchNorm in SqueezeNet
    assert main(["count", "shufflenet_v2", "--width", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params_trainable"] == 1_366_792


@pytest.mark.parametrize("args, message", [
    (("count", "shufflenet_v2", "--width", "0.7"), "argument --width: must be one of 0.5, 1.0, 1.5, 2.0, got '0.7'"),
    (("count", "mobilenet_v1", "--alpha", "-1"), r"argument --alpha: must be a number in (0, 4], got '-1'"),
    (("count", "mobilenet_v2", "--alpha", "inf"), r"argument --alpha: must be a number in (0, 4], got 'inf'"),
    (("count", "mobilenet_v2", "--alpha", "1e308"), r"argument --alpha: must be a number in (0, 4], got '1e308'"),
    (("count", "mobilenet_v2", "--alpha", "abc"), r"argument --alpha: must be a number in (0, 4], got 'abc'"),
    (("count", "mobilenet_v2", "--resolution", "100000"),
     "argument --resolution: must be an integer in [32, 4096], got '100000'"),
    (("count", "resnet50"), "invalid choice: 'resnet50'"),
    (("count", "shufflenet_v2", "--alpha", "0.5"),
     "shufflenet_v2 takes no option --alpha; its options are --width, --convention, --resolution, --classes"),
    (("count", "mobilenet_v2", "--width", "2.0"), "mobilenet_v2 takes no option --width"),
    (("count", "mobilenet_v1", "--groups", "3"), "mobilenet_v1 takes no option --groups"),
    (("count", "squeezenet1_0", "--alpha", "0.5"), "squeezenet1_0 takes no option --alpha"),
    (("count", "xception", "--alpha=0.5"), "xception takes no option --alpha"),
    (("count", "mobilenet_v1", "--minimal"), "mobilenet_v1 takes no option --minimal"),
    (("count", "shufflenet_v1", "--groups", "5"), "argument --groups: must be one of 1, 2, 3, 4, 8, got '5'"),
    (("count", "mobilenet_v2", "--batch", "0"), "argument --batch: must be an integer in [1, 4096], got '0'"),
    (("validate", "--table", "nope"), "unknown published table 'nope'"),
])
def test_bad_command_lines_give_one_error_line(args, message, capsys):
    # in this process (an exception other than the parser's exit would fail the test); the test below
    # runs one of them as a real process
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == "", captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and message in lines[0], captured.err
    assert "_positive_float" not in captured.err


def test_a_bad_command_line_exits_with_one_line_and_no_traceback():
    result = _run("count", "mobilenet_v2", "--alpha", "inf")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "python -m sepconv count mobilenet_v2: error: argument --alpha: must be a number in (0, 4], got 'inf'"]


def test_each_model_lists_its_own_options_in_help():
    text = _run("count", "shufflenet_v2", "--help").stdout
    assert "--width" in text and "--convention" in text and "--alpha" not in text
    text = _run("count", "mobilenet_v3_large", "--help").stdout
    assert "--alpha" in text and "--minimal" in text and "--width" not in text


def test_per_layer_csv_and_json(capsys):
    assert main(["count", "mobilenet_v1", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    ops, totals = rows[:-1], rows[-1:]
    assert len(ops) == 28 and rows[1]["path"] == "features.1.conv_dw.conv" and rows[1]["groups"] == "32"
    assert sum(int(r["total_macs"]) for r in ops) == model_cost("mobilenet_v1").macs
    assert [(r["path"], r["role"], int(r["total_macs"]), r["complete"], r["uncosted"]) for r in totals] == [
        ("(total)", "all", model_cost("mobilenet_v1").macs, "true", "")]
    assert {r["complete"] for r in ops} == {"true"}
    assert main(["count", "mobilenet_v1", "--json", "--per-layer"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [row["path"] for row in layers][:3] == ["features.0.conv", "features.1.conv_dw.conv", "features.1.conv_pw.conv"]


def test_training_flag_counts_the_gradient(capsys):
    assert main(["count", "mobilenet_v1", "--training", "--batch", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    forward = 2 * model_cost("mobilenet_v1").macs
    first_layer = 2 * model_cost("mobilenet_v1").layers[0].macs
    # every layer's weight gradient costs its forward MACs; the input gradient skips the first layer (the image)
    assert report["training"] == {"forward": forward, "weight_grad": forward, "input_grad": forward - first_layer}
    assert report["macs"] == 3 * forward - first_layer


def test_validate_json_lists_records_and_passes(capsys):
    assert main(["validate", "--table", "mobilenet_v2_checkpoints", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 44
    assert {"table", "row", "quantity", "published", "computed", "rule", "ok"} <= set(records[0])
    assert all(r["ok"] and r["rule"] == "truncate" for r in records)


def test_validate_exits_nonzero_on_a_failing_record(monkeypatch, capsys):
    original = validation.COMPUTERS["mobilenet_v1_table3"]

    def wrong():
        values = original()
        values[("Convolution", "macs")] *= 2
        return values

    monkeypatch.setitem(validation.COMPUTERS, "mobilenet_v1_table3", wrong)
    assert main(["validate", "--table", "mobilenet_v1_table3"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  mobilenet_v1_table3" in out and "1 failed" in out


def test_bench_writes_to_the_users_folder_not_the_package(tmp_path):
    from sepconv import bench

    result = _run("bench", "--quick", "--only", "peaks,layers", env={"XDG_DATA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    (folder,) = (tmp_path / "sepconv" / "benchmarks").iterdir()
    assert {p.name for p in folder.iterdir()} == {"device.json", "peaks.json", "layers.json"}
    assert str(bench.SHIPPED_RESULTS) not in result.stdout


def test_bench_refuses_an_unknown_experiment():
    result = _run("bench", "--only", "peaks,latency")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "python -m sepconv bench: error: unknown experiment 'latency'; the experiments are "
        "peaks, layers, guidelines, models, successors, keras, training, runtimes"]


def test_bench_refuses_a_missing_tflite_folder(tmp_path):
    result = _run("bench", "--tflite", str(tmp_path / "absent"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"python -m sepconv bench: error: --tflite {tmp_path / 'absent'}: no such folder "
        "(write it with tools/keras_to_tflite.py)"]


def test_counting_imports_neither_the_course_nor_the_benchmark_tools():
    """``count`` starts fast: building the command line imports no nbformat (assignments) and no runtimes."""
    code = ("import sys; from sepconv.__main__ import parser; parser(); "
            "print(sorted(m for m in ('nbformat', 'otter', 'onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_training_csv_has_the_total_and_one_row_per_role(capsys):
    assert main(["count", "mobilenet_v1", "--training", "--resolution", "64", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    totals = {r["role"]: int(r["total_macs"]) for r in rows if r["path"] == "(total)"}
    forward = model_cost("mobilenet_v1", resolution=64).macs
    first = model_cost("mobilenet_v1", resolution=64).layers[0].macs
    assert totals == {"all": 3 * forward - first, "forward": forward, "input_grad": forward - first,
                      "weight_grad": forward}


def test_csv_of_an_incomplete_count_says_so():
    import jax.numpy as jnp

    from sepconv.counter import count

    result = count(lambda a, b: jnp.fft.fft(a @ b), jnp.ones((2, 3)), jnp.ones((3, 4)))
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert rows[0]["complete"] == "false" and rows[-1]["path"] == "(total)"
    assert rows[-1]["uncosted"] == "fft=1" and rows[-1]["total_macs"] == str(2 * 3 * 4)


def test_version(capsys):
    import tomllib
    from pathlib import Path

    version = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"sepconv {version}"


@pytest.mark.parametrize("args, message", [
    (("count", "mobilenet"), "invalid choice: 'mobilenet' (did you mean mobilenet_v2 or mobilenet_v1"),
    (("count", "mobilenetv1"), "(did you mean mobilenet_v1"),
    (("count", "xceptoin"), "(did you mean xception?)"),
    (("bench", "--only", ""), "--only '' names no experiment; the experiments are peaks"),
    (("bench", "--only", "peaks,"), "--only 'peaks,' names no experiment in one of its places"),
    (("bench", "--out", ""), "--out '' names no folder"),
])
def test_more_bad_command_lines_give_one_error_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err


def test_bench_out_on_a_file_or_below_one(tmp_path, capsys):
    a_file = tmp_path / "results.json"
    a_file.write_text("{}")
    for out, message in [(a_file, f"--out {a_file}: is a file, not a folder"),
                         (a_file / "sub" / "dir", f"--out {a_file / 'sub' / 'dir'}: {a_file} is a file")]:
        with pytest.raises(SystemExit) as exit_:
            main(["bench", "--out", str(out), "--only", "peaks"])
        captured = capsys.readouterr()
        assert exit_.value.code == 2 and captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1 and message in captured.err, captured.err
    assert a_file.read_text() == "{}"


def test_an_unknown_model_as_a_real_process_suggests_the_closest():
    result = _run("count", "mobilenet_v5")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("python -m sepconv count: error: argument MODEL: invalid choice: 'mobilenet_v5' "
                           "(did you mean mobilenet_v2 or mobilenet_v1")

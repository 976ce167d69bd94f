import json
import os
import subprocess
import sys

import pytest

from sepconv import validation
from sepconv.__main__ import main


def _run(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "sepconv", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_count_json_matches_closed_form():
    from sepconv.models import mobilenet_v2_layers

    result = _run("count", "mobilenet_v2", "--alpha", "0.75", "--resolution", "160", "--classes", "1001", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    layers = mobilenet_v2_layers(0.75, 160, 1001)
    assert report["macs"] == sum(l.macs for l in layers)
    assert report["params"] == sum(l.params for l in layers)
    assert report["params_trainable"] > report["params"]  # BatchNorm scale and shift
    assert report["complete"] is True and report["uncosted"] == {}


def test_count_shufflenet_width_and_squeezenet(capsys):
    assert main(["count", "squeezenet1_0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == report["params_trainable"] == 1_248_424  # no BatchNorm in SqueezeNet
    assert main(["count", "shufflenet_v2", "--width", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params_trainable"] == 1_366_792


def test_bad_arguments_give_clear_errors():
    result = _run("count", "shufflenet_v2", "--width", "0.7")
    assert result.returncode == 2 and "width must be one of [0.5, 1.0, 1.5, 2.0], got 0.7" in result.stderr
    result = _run("count", "mobilenet_v1", "--alpha", "-1")
    assert result.returncode == 2 and "must be a positive number, got -1" in result.stderr
    result = _run("count", "resnet50")
    assert result.returncode == 2 and "invalid choice: 'resnet50'" in result.stderr


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

"""The accelerator run (``python -m sepconv bench --device``): a dry run at tiny sizes on the CPU.
No test asserts a speed."""

import contextlib
import io
import json
import re

import pytest

from sepconv import accelerators as acc
from sepconv import bench
from sepconv.__main__ import main


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of the command at tiny sizes on the CPU, shared by this file's tests: (folder, stdout)."""
    out = tmp_path_factory.mktemp("device") / "cpu-dry-run"
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["bench", "--device", "cpu", "--quick", "--out", str(out)]) == 0
    return out, stdout.getvalue()


def test_device_dry_run_writes_every_experiment_with_its_device(dry_run):
    tmp_path, printed = dry_run
    assert f"results in {tmp_path}" in printed
    assert {p.stem for p in tmp_path.glob("*.json")} == {"device", *bench.DEVICE_EXPERIMENTS}
    info = json.loads((tmp_path / "device.json").read_text())
    assert info["platform"] == "cpu" and info["device_kind"] and info["jax"] and info["flax"]
    assert info["sizes"] == "tiny" and len(info["date"]) == 10 and info["date"][4] == "-"
    # the same layers at the same batch in float32 and bfloat16: the same MACs, half the bytes
    f32 = json.loads((tmp_path / "layers_batch.json").read_text())
    bf16 = json.loads((tmp_path / "layers_bf16.json").read_text())
    assert [(r["layer"], r["macs"]) for r in f32] == [(r["layer"], r["macs"]) for r in bf16]
    assert all(a["bytes"] == 2 * b["bytes"] and a["batch"] == b["batch"] == 2 for a, b in zip(f32, bf16))
    # a depthwise 3x3 on 8x8x16, batch 1, float32: 8*8*16*9 MACs; input, 3*3*16 weights and output moved once
    (dw,) = [r for r in json.loads((tmp_path / "layers.json").read_text()) if r["layer"] == "depthwise 3x3"]
    assert dw["macs"] == 9216 and dw["bytes"] == 4 * (1024 + 144 + 1024)
    training = json.loads((tmp_path / "training.json").read_text())
    assert training["macs"]["weight_grad"] == training["macs"]["forward"] and training["measured"]
    successors = json.loads((tmp_path / "successors.json").read_text())
    assert [r["stage"] for r in successors["fused"]] == ["8x8x8 -> 4x4x16"]
    assert all(t > 0 for r in json.loads((tmp_path / "models.json").read_text())
               for t in (r["median_s"], r["shifts_median_s"], r["inference_median_s"]))


def test_device_run_names_a_missing_device_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--device", "tpu", "--quick"])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("python -m sepconv bench: error: --device tpu: JAX finds no tpu device")


def test_device_run_refuses_an_experiment_it_does_not_run(tmp_path):
    with pytest.raises(ValueError, match="unknown device experiment 'keras'"):
        bench.device_run("cpu", tmp_path, tiny=True, only=("layers", "keras"))


def test_stored_devices_lists_accelerator_folders_only(tmp_path):
    for name in ("cpu-cpu", "gpu-nvidia-h100-80gb-hbm3", "tpu-tpu-v5-lite"):
        (tmp_path / name).mkdir()
    assert bench.stored_devices(tmp_path) == ["gpu-nvidia-h100-80gb-hbm3", "tpu-tpu-v5-lite"]
    assert bench.stored_devices(tmp_path / "absent") == []


def test_beside_pairs_the_rows_both_runs_have(dry_run):
    folder, _ = dry_run
    run = bench.load_results(folder.name, root=folder.parent)
    both = acc.beside(run, run)
    assert both["layers"] and all(r["speedup"] == 1.0 for r in both["layers"])
    assert [r["model"] for r in both["models"]] == ["mobilenet_v1"] and both["models"][0]["speedup"] == 1.0
    assert [r["stage"] for r in both["fused"]] == ["8x8x8 -> 4x4x16"]
    assert both["training"]["cpu"] == both["training"]["device"]
    assert both["peaks"]["cpu"]["ridge"] == pytest.approx(run["peaks"]["peak_flops"] / run["peaks"]["peak_bandwidth"])
    # the shipped CPU run and the tiny run share no layer shape and no network variant
    apart = acc.beside(bench.load_results("cpu-cpu"), run)
    assert apart["layers"] == [] and apart["models"] == [] and apart["fused"] == []
    assert set(apart["training"]) == {"cpu", "device"}
    text = acc.device_report(run, run)
    assert "depthwise 3x3" in text and "mobilenet_v1 0.25 @32" in text
    (cpu_ratio, dev_ratio), = re.findall(r"8x8x8 -> 4x4x16: CPU ([0-9.]+), device ([0-9.]+)", text)
    assert cpu_ratio == dev_ratio

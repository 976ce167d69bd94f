"""The accelerator run (``python -m sepconv bench --device``): a dry run at tiny sizes on the CPU.
No test asserts a speed."""

import json

import pytest

from sepconv import bench
from sepconv.__main__ import main


def test_device_dry_run_writes_every_experiment_with_its_device(tmp_path, capsys):
    assert main(["bench", "--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    assert f"results in {tmp_path}" in capsys.readouterr().out
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
    assert all(t > 0 for r in json.loads((tmp_path / "models.json").read_text()) for t in (r["median_s"], r["shifts_median_s"]))


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

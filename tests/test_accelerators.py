"""Vendors' peaks, rooflines and the recorded GPU evidence (sepconv.accelerators). Expected values are
hand derivations from the printed figures, or checks of the data against each other."""

import math
import re

import pytest

from sepconv import accelerators as acc
from sepconv.cost import depthwise_conv_cost, pointwise_conv_cost


def test_ridges_are_the_printed_peaks_over_the_printed_bandwidths():
    # H100 SXM: BF16 Tensor Core 1,979 TFLOPS with sparsity (dense: half), 3.35 TB/s
    assert acc.ridge("H100 SXM5", "tensor", "bf16") == pytest.approx(1979 / 2 / 3.35, rel=1e-3)
    # A100 80GB SXM: FP32 19.5 TFLOPS, 2,039 GB/s; T4: FP32 8.1 TFLOPS, 320 GB/s; TPU v5e: 197 TFLOPs, 819 GB/s
    assert acc.ridge("A100 SXM4 80GB", "vector", "fp32") == pytest.approx(19.5e3 / 2039)
    assert acc.ridge("T4", "vector", "fp32") == pytest.approx(8.1e3 / 320)
    assert acc.ridge("TPU v5e", "tensor", "bf16") == pytest.approx(197e3 / 819)
    # on every accelerator a matrix unit needs more reuse per byte than a vector unit
    for name in acc.accelerators():
        rows = [r for r in acc.rooflines() if r["accelerator"] == name]
        tensor = [r["ridge"] for r in rows if r["unit"] == "tensor"]
        vector = [r["ridge"] for r in rows if r["unit"] == "vector"]
        if tensor and vector:
            assert min(tensor) > max(vector)


def test_every_peak_names_its_source_and_the_unpublished_one_says_so():
    for p in acc.accelerator_specs():
        assert p.source and (p.tflops is None or p.tflops > 0)
    with pytest.raises(ValueError, match="TPU v5e vector bf16: no peak published"):
        acc.peak("TPU v5e", "vector", "bf16")
    with pytest.raises(ValueError, match="unknown accelerator 'H200'; known: H100 SXM5"):
        acc.bandwidth("H200")
    with pytest.raises(ValueError, match="no tensor fp8 peak for T4; it has: vector fp32, tensor fp16"):
        acc.peak("T4", "tensor", "fp8")


def test_attainable_is_the_lower_of_the_two_roofs():
    bw = 3.35e12
    assert acc.attainable(1.0, "H100 SXM5", "tensor", "bf16") == pytest.approx(bw)
    assert acc.attainable(1e4, "H100 SXM5", "tensor", "bf16") == pytest.approx(989.5e12)


def test_depthwise_intensity_is_capped_by_its_kernel_below_every_ridge():
    # 3x3 depthwise on 14x14x512, float32, batch 1: 2*903168 FLOP over 4*(2*100352 + 4608) bytes
    cost = depthwise_conv_cost(14, 14, 512, 3)
    assert acc.layer_intensity(cost, "fp32") == pytest.approx(2 * 903_168 / (4 * (2 * 100_352 + 4_608)))
    # at any batch and width it stays under k*k / bytes per value (9/4 in fp32, 9/2 in 16 bits) ...
    for size, c in ((112, 32), (56, 128), (7, 1024)):
        for batch in (1, 32, 4096):
            for precision, cap in (("fp32", 9 / 4), ("bf16", 9 / 2)):
                assert acc.layer_intensity(depthwise_conv_cost(size, size, c, 3), precision, batch) < cap
    # ... which is below the ridge of every published unit, vector units included: memory bound everywhere
    assert 9 / 2 < min(r["ridge"] for r in acc.rooflines())


def test_pointwise_intensity_grows_with_batch_towards_channels_over_bytes():
    cost = pointwise_conv_cost(14, 14, 512, 512)
    values = [acc.layer_intensity(cost, "bf16", batch) for batch in (1, 8, 64, 4096)]
    assert values == sorted(values) and values[-1] < 512 / 2 and values[-1] > 0.99 * 512 / 2


def test_layer_points_put_depthwise_on_vector_units():
    rows = acc.layer_points(((56, 128),))
    assert [(r["layer"], r["unit"]) for r in rows] == [
        ("depthwise 3x3", "vector"), ("pointwise 1x1", "tensor"), ("standard 3x3", "tensor")]
    assert [r["macs"] for r in rows] == [56 * 56 * 128 * 9, 56 * 56 * 128 * 128, 56 * 56 * 128 * 128 * 9]
    with pytest.raises(ValueError, match="unknown layer 'dilated 3x3'"):
        acc.layer_cost("dilated 3x3", 14, 8)
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        acc.layer_intensity(depthwise_conv_cost(7, 7, 8), "int4")


def test_timm_rows_carry_their_provenance_and_agree_with_their_file_names():
    rows = acc.timm_benchmarks()
    assert len(rows) >= 100
    for r in rows:
        assert re.fullmatch(r"[0-9a-f]{40}", r["commit"]) and re.fullmatch(r"\d{4}-\d\d-\d\d", r["date"])
        name = r["file"]
        assert name.startswith(f"benchmark-infer-{r['precision']}-{r['layout'].lower()}-pt{r['pytorch'].replace('.', '')}-")
        assert name.endswith("-dynamo.csv") == (r["mode"] == "compiled")
        assert r["samples_per_sec"] > 0 and r["gmacs"] > 0
    # timm counts a model the same way in every file: one GMACs and one parameter count per (model, size)
    for key in {(r["model"], r["img_size"]) for r in rows}:
        assert len({(r["gmacs"], r["params_m"]) for r in rows if (r["model"], r["img_size"]) == key}) == 1
    models = {r["model"] for r in rows}
    assert {"resnet50", "mobilenetv2_100", "mobilenetv3_large_100", "efficientnet_b0", "convnext_tiny",
            "mobilenetv4_conv_medium"} <= models
    assert len({r["gpu"] for r in rows}) >= 4


def _row(model, gpu, pytorch, layout, mode):
    (r,) = [r for r in acc.timm_benchmarks() if (r["model"], r["gpu"], r["pytorch"], r["layout"], r["mode"])
            == (model, gpu, pytorch, layout, mode)]
    return r


def test_timm_rows_as_the_files_print_them():
    # typed from results/<file> at the recorded commits of huggingface/pytorch-image-models:
    # (model, gpu, pytorch, layout, mode) -> (img_size, infer_samples_per_sec, infer_batch_size, param_count, infer_gmacs)
    # files benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv (5c33776), -nhwc-pt240-cu124-rtx4090.csv (ee5b1e8),
    # -nchw-pt291-cu130-5090-dynamo.csv and -nchw-pt291-cu130-5090.csv (90cae8c)
    printed = {
        ("resnet50", "RTX 4090", "2.4.0", "NCHW", "eager"): (224, 4217.6, 1024, 25.56, 4.11),
        ("efficientnet_b0", "RTX 4090", "2.4.0", "NCHW", "eager"): (224, 8926.12, 1024, 5.29, 0.4),
        ("mobilenetv2_100", "RTX 4090", "2.4.0", "NCHW", "eager"): (224, 10810.08, 1024, 3.5, 0.31),
        ("resnet50", "RTX 4090", "2.4.0", "NHWC", "eager"): (224, 5088.39, 512, 25.56, 4.11),
        ("convnext_tiny", "RTX 4090", "2.4.0", "NHWC", "eager"): (224, 4844.53, 512, 28.59, 4.47),
        ("mobilenetv4_conv_medium", "RTX 5090", "2.9.1", "NCHW", "compiled"): (224, 30932.86, 1024, 9.72, 0.84),
        ("resnet50", "RTX 5090", "2.9.1", "NCHW", "compiled"): (224, 12400.78, 1024, 25.56, 4.11),
        ("mobilenetv4_conv_medium", "RTX 5090", "2.9.1", "NCHW", "eager"): (224, 15152.93, 1024, 9.72, 0.84),
        ("resnet50", "RTX 5090", "2.9.1", "NCHW", "eager"): (224, 6356.02, 1024, 25.56, 4.11),
    }
    for key, values in printed.items():
        r = _row(*key)
        assert (r["img_size"], r["samples_per_sec"], r["batch_size"], r["params_m"], r["gmacs"]) == values, key


def test_achieved_tflops_is_two_flops_per_mac_times_throughput():
    # ResNet-50 on the RTX 4090 (PyTorch 2.4.0, NCHW, eager): 4.11 GMAC x 4217.6 images/s = 17,334 GMAC/s,
    # 34.67 TFLOP/s at two FLOP per multiply-accumulate
    assert acc.achieved_tflops(_row("resnet50", "RTX 4090", "2.4.0", "NCHW", "eager")) == pytest.approx(34.67, abs=0.01)
    # MobileNetV4-Conv-M compiled on the RTX 5090: 0.84 x 30,932.86 = 25,984 GMAC/s, 51.97 TFLOP/s
    assert acc.achieved_tflops(_row("mobilenetv4_conv_medium", "RTX 5090", "2.9.1", "NCHW", "compiled")) == pytest.approx(
        51.97, abs=0.01)


def test_unconfirmed_vendor_figures_are_marked_with_the_reason():
    # the two figures written from the whitepapers without a stored copy to read them from
    assert {(r["accelerator"], r["unit"], r["precision"]) for r in acc.unconfirmed()} == {
        ("H100 SXM5", "vector", "fp16"), ("RTX 4090", "memory", ""), ("RTX 4090", "vector", "fp32"),
        ("RTX 4090", "vector", "fp16"), ("RTX 4090", "tensor", "fp16")}
    assert all("not in the stored copies" in r["checked"] for r in acc.unconfirmed())
    assert all(p.checked for p in acc.accelerator_specs())
    (h100,) = [p for p in acc.accelerator_specs() if (p.accelerator, p.unit, p.precision) == ("H100 SXM5", "vector", "fp16")]
    assert not h100.confirmed and "120" in h100.checked  # the preliminary figure the chapter's conclusions must survive


def test_layout_and_compile_effects_pair_the_same_setting():
    base = {"gpu": "G", "pytorch": "2.4.0", "precision": "amp", "model": "m", "img_size": 224, "gmacs": 1.0}
    rows = [base | {"layout": "NCHW", "mode": "eager", "samples_per_sec": 100.0},
            base | {"layout": "NHWC", "mode": "eager", "samples_per_sec": 150.0},
            base | {"layout": "NCHW", "mode": "compiled", "samples_per_sec": 250.0},
            base | {"model": "n", "layout": "NHWC", "mode": "eager", "samples_per_sec": 9.0}]  # no NCHW peer
    assert acc.layout_effect(rows) == {("G", "2.4.0", "m"): 1.5}
    assert acc.compile_effect(rows) == {("G", "2.4.0", "m"): 2.5}
    assert acc.median_by_model({("A", "1", "m"): 1.0, ("B", "1", "m"): 3.0, ("A", "1", "n"): 2.0}) == {"m": 2.0, "n": 2.0}


def test_mobilenet_v4_table_as_printed():
    rows = {r["model"]: r for r in acc.mobilenet_v4_latency()}
    assert len(rows) == 25 and all(r["source"].startswith("arXiv:2404.10518") for r in rows.values())
    # the paper's text: MNv4-Conv-S 73.8% with 3.8M parameters, 0.2G MACs, 2.4 ms on Pixel 6 CPU;
    # MNv4-Hybrid-L 83.4% at 3.8 ms on Pixel 8 EdgeTPU
    s, hl = rows["MNv4-Conv-S"], rows["MNv4-Hybrid-L"]
    assert (s["top1"], s["params_m"], s["macs_g"], s["pixel6_cpu_ms"]) == (73.8, 3.8, 0.2, 2.4)
    assert (hl["top1"], hl["pixel8_edgetpu_ms"]) == (83.4, 3.8)
    # rows typed from Table 6 of arXiv:2404.10518v2 (top-1, params M, MACs G, then the seven devices' ms)
    cols = ("top1", "params_m", "macs_g") + tuple(c for c, _ in acc.MNV4_DEVICES)
    printed = {"MobileNet-V2": (73.4, 3.5, 0.3, 5.0, 0.7, 0.7, 3.9, 13.6, 4.1, 2.5),
               "MNv4-Conv-L": (82.9, 31, 5.9, 59.9, 2.4, 3.0, 20.8, 37.6, 43.0, 13.2),
               "ConvNext-S": (83.1, 50, 8.7, 314.9, 3.7, None, "failed", 45.2, 243.9, 18.5),
               "MIT-EfficientViT-B1-r224": (79.4, 9.1, 0.5, None, None, 2.4, None, None, 18.1, 5.0)}
    for model, values in printed.items():
        assert tuple(rows[model][c] for c in cols) == values, model
    assert all("2404.10518v2" in r["source"] and "Table 6" in r["source"] for r in rows.values())
    # "Failed" appears only on the Hexagon DSP, which runs no hybrid (attention) model
    failed = {(m, c) for m, r in rows.items() for c, _ in acc.MNV4_DEVICES if r[c] == "failed"}
    assert {c for _, c in failed} == {"pixel4_hexagon_ms"}
    assert {m for m, _ in failed} >= {"MNv4-Hybrid-M", "MNv4-Hybrid-L"}
    assert all(isinstance(r[c], float) for r in rows.values() if r["model"].startswith("MNv4-Conv")
               for c, _ in acc.MNV4_DEVICES)
    assert not math.isnan(sum(r["top1"] for r in rows.values()))


def test_network_ops_mark_depthwise_and_split_the_roofline():
    ops = acc.network_ops("mobilenet_v1", 224)
    # MobileNet v1: 13 depthwise layers (Table 1 of the paper), 3x3 kernels, one per channel
    dw = [op for op in ops if op["depthwise"]]
    # each output a dot product of 3*3 = 9 products; 9 weights per channel
    assert len(dw) == 13 and all(op["macs"] == 9 * op["outputs"] for op in dw)
    assert [op["weights"] // 9 for op in dw] == [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024]
    total = sum(op["macs"] for op in ops)
    split = acc.roofline_split(ops, "H100 SXM5", "fp16", batch=1)
    assert split["depthwise_macs"] == pytest.approx(sum(op["macs"] for op in dw) / total)
    # by hand: the same sum of max(compute, memory) over the operations
    # the file's inputs (133.8 is unconfirmed): this checks the formula, not the figures
    bw, tensor, vector = 3.35e12, 989.5e12, 133.8e12
    by_hand = sum(max(2 * op["macs"] / (vector if op["depthwise"] else tensor),
                      2 * (op["inputs"] + op["outputs"] + op["weights"]) / bw) for op in ops)
    assert split["seconds"] == pytest.approx(by_hand) and split["flops"] == pytest.approx(2 * total / by_hand)
    # depthwise layers take a larger share of the roofline time than of the MACs
    assert split["depthwise_time"] > split["depthwise_macs"]


"""Accelerators: vendors' peaks, rooflines per unit and precision, and recorded GPU evidence.

Three data files, each row with its source (``sepconv/data``):

- ``accelerator_specs.csv``: peak FLOP/s per *unit* (``tensor``: NVIDIA's Tensor Cores or a TPU's
  MXUs, which multiply small matrices; ``vector``: the CUDA cores or a TPU's vector unit, one
  multiply-add per lane) and precision, and the memory bandwidth, from the vendors' datasheets and
  whitepapers (H100 SXM5, A100 SXM4 80GB, T4, TPU v5e, RTX 4090). NVIDIA prints Tensor Core peaks
  "with sparsity"; the file holds the dense figure, half of it, and says so. Its ``checked`` column
  says how each figure was checked against stored copies; ``unconfirmed()`` lists those that were not
  (the H100's FP16 CUDA-core peak and the RTX 4090's figures, from the whitepapers, not yet read from a copy).
- ``timm_gpu_benchmarks.csv``: rows of timm's published inference benchmarks
  (huggingface/pytorch-image-models, ``results/benchmark-infer-*.csv``; Apache-2.0): images per second
  at the batch size timm chose, with timm's parameters and GMACs per image, each row with its file,
  commit and commit date.
- ``mobilenet_v4_latency.csv``: the classification table with on-device latencies of MobileNetV4
  (Qin et al., arXiv:2404.10518v2, 29 Sep 2024, the text with the ECCV 2024 abstract), as printed in its
  Table 6, every row checked against a stored text rendering. An empty cell is the paper's "-",
  ``failed`` its "Failed".

The roofline (Williams et al. 2009): a layer of intensity ``I`` FLOP per byte (``2 MACs / bytes
moved``) runs at most at ``min(P, I * B)`` on a unit of peak ``P`` with bandwidth ``B``; the *ridge*
``P / B`` is the intensity at which the two limits meet.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .cost import LayerCost, depthwise_conv_cost, pointwise_conv_cost, standard_conv_cost

__all__ = ["Peak", "BYTES", "accelerator_specs", "accelerators", "bandwidth", "peak", "ridge", "rooflines",
           "attainable", "BOOK_LAYERS", "layer_cost", "layer_intensity", "layer_points", "timm_benchmarks",
           "achieved_tflops", "unconfirmed", "layout_effect", "compile_effect", "mobilenet_v4_latency", "MNV4_DEVICES"]

_DATA = Path(__file__).parent / "data"

#: Bytes per stored value of each precision (tf32 is stored as float32).
BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class Peak:
    accelerator: str
    unit: str
    precision: str
    tflops: float | None  # None: the vendor publishes no figure
    source: str
    note: str
    checked: str  # how the figure was checked against stored copies; "UNCONFIRMED: ..." where it was not

    @property
    def confirmed(self) -> bool:
        return not self.checked.startswith("UNCONFIRMED")


def _read(name: str) -> list[dict]:
    with (_DATA / name).open(newline="") as f:
        return list(csv.DictReader(f))


@cache
def accelerator_specs() -> tuple[Peak, ...]:
    """Every compute peak of ``accelerator_specs.csv`` (memory rows are read by ``bandwidth``)."""
    return tuple(Peak(r["accelerator"], r["unit"], r["precision"], float(r["peak_tflops"]) if r["peak_tflops"] else None,
                      r["source"], r["note"], r["checked"]) for r in _read("accelerator_specs.csv") if r["unit"] != "memory")


def unconfirmed() -> list[dict]:
    """The rows of ``accelerator_specs.csv`` (peaks and bandwidths) not yet checked against a stored copy
    of their source: accelerator, unit, precision and the ``checked`` text saying why."""
    return [{k: r[k] for k in ("accelerator", "unit", "precision", "checked")}
            for r in _read("accelerator_specs.csv") if r["checked"].startswith("UNCONFIRMED")]


def accelerators() -> list[str]:
    """The accelerators of the specs file, in its order."""
    return list(dict.fromkeys(p.accelerator for p in accelerator_specs()))


def _known(accelerator: str) -> None:
    if accelerator not in accelerators():
        raise ValueError(f"unknown accelerator {accelerator!r}; known: {', '.join(accelerators())}")


def bandwidth(accelerator: str) -> float:
    """Memory bandwidth in bytes per second."""
    _known(accelerator)
    (row,) = [r for r in _read("accelerator_specs.csv") if r["accelerator"] == accelerator and r["unit"] == "memory"]
    return float(row["bandwidth_gbs"]) * 1e9


def peak(accelerator: str, unit: str, precision: str) -> float:
    """Peak FLOP/s of one unit at one precision; a clear error where the vendor publishes none."""
    _known(accelerator)
    rows = [p for p in accelerator_specs() if (p.accelerator, p.unit, p.precision) == (accelerator, unit, precision)]
    if not rows:
        have = ", ".join(f"{p.unit} {p.precision}" for p in accelerator_specs() if p.accelerator == accelerator)
        raise ValueError(f"no {unit} {precision} peak for {accelerator}; it has: {have}")
    if rows[0].tflops is None:
        raise ValueError(f"{accelerator} {unit} {precision}: {rows[0].note}")
    return rows[0].tflops * 1e12


def ridge(accelerator: str, unit: str, precision: str) -> float:
    """The ridge point ``peak / bandwidth`` in FLOP per byte."""
    return peak(accelerator, unit, precision) / bandwidth(accelerator)


def rooflines() -> list[dict]:
    """One row per published peak: accelerator, unit, precision, peak (FLOP/s), bandwidth (B/s), ridge."""
    return [{"accelerator": p.accelerator, "unit": p.unit, "precision": p.precision, "peak": p.tflops * 1e12,
             "bandwidth": bandwidth(p.accelerator), "ridge": p.tflops * 1e12 / bandwidth(p.accelerator)}
            for p in accelerator_specs() if p.tflops is not None]


def attainable(intensity: float, accelerator: str, unit: str, precision: str) -> float:
    """The roofline bound ``min(P, I * B)`` in FLOP/s."""
    return min(peak(accelerator, unit, precision), intensity * bandwidth(accelerator))


#: The layers of chapter 7 (``sepconv.benchmarks.layers.layer_benchmarks``): kind and, per MobileNet v1 stage, (size, channels).
BOOK_LAYERS = ("depthwise 3x3", "pointwise 1x1", "standard 3x3")


def layer_cost(kind: str, size: int, channels: int) -> LayerCost:
    """The closed-form cost (``sepconv.cost``) of one of ``BOOK_LAYERS`` at ``size x size x channels``,
    stride 1, ``channels`` in and out."""
    if kind == "depthwise 3x3":
        return depthwise_conv_cost(size, size, channels, 3)
    if kind == "pointwise 1x1":
        return pointwise_conv_cost(size, size, channels, channels)
    if kind == "standard 3x3":
        return standard_conv_cost(size, size, channels, channels, 3)
    raise ValueError(f"unknown layer {kind!r}; the layers are {', '.join(BOOK_LAYERS)}")


def layer_intensity(cost: LayerCost, precision: str = "fp32", batch: int = 1) -> float:
    """FLOP per byte when the input, the weights and the output each cross memory once:
    ``2 N MACs / (b (N in + params + N out))``, ``b`` bytes per value, ``N`` the batch."""
    if precision not in BYTES:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(BYTES)}")
    moved = BYTES[precision] * (batch * (cost.input_activations + cost.output_activations) + cost.params)
    return 2 * batch * cost.macs / moved


def layer_points(shapes, precision: str = "fp32", batch: int = 1) -> list[dict]:
    """Each of ``BOOK_LAYERS`` at each ``(size, channels)``: MACs, intensity, and the unit it can use
    (a depthwise layer sums ``k*k`` products per output, no matrix for a Tensor Core or MXU to multiply:
    it is left with the vector units)."""
    rows = []
    for size, channels in shapes:
        for kind in BOOK_LAYERS:
            cost = layer_cost(kind, size, channels)
            rows.append({"layer": kind, "size": size, "channels": channels, "macs": cost.macs,
                         "intensity": layer_intensity(cost, precision, batch),
                         "unit": "vector" if kind.startswith("depthwise") else "tensor"})
    return rows


# ---- timm's recorded GPU benchmarks ----

@cache
def timm_benchmarks() -> tuple[dict, ...]:
    """The rows of ``timm_gpu_benchmarks.csv`` with numbers as numbers."""
    rows = []
    for r in _read("timm_gpu_benchmarks.csv"):
        r = dict(r)
        for key in ("img_size", "batch_size"):
            r[key] = int(r[key])
        for key in ("samples_per_sec", "params_m", "gmacs", "macts_m"):
            r[key] = float(r[key])
        rows.append(r)
    return tuple(rows)


def achieved_tflops(row: dict) -> float:
    """TFLOP/s a benchmark row achieved: ``2 * GMACs per image * images per second / 1000``. timm's
    ``infer_gmacs`` counts multiply-accumulates (``benchmark.py``: deepspeed's or fvcore's MAC count / 1e9),
    so two FLOP per MAC."""
    return 2 * row["gmacs"] * row["samples_per_sec"] / 1000


def _setting(row: dict) -> tuple:
    return row["gpu"], row["pytorch"], row["precision"], row["model"], row["img_size"]


def layout_effect(rows=None) -> dict:
    """``{(gpu, pytorch, model): NHWC / NCHW throughput}`` for eager runs measured both ways."""
    rows = timm_benchmarks() if rows is None else rows
    by = {(_setting(r), r["layout"]): r for r in rows if r["mode"] == "eager"}
    return {(s[0], s[1], s[3]): by[s, "NHWC"]["samples_per_sec"] / r["samples_per_sec"]
            for (s, layout), r in by.items() if layout == "NCHW" and (s, "NHWC") in by}


def compile_effect(rows=None) -> dict:
    """``{(gpu, pytorch, model): compiled / eager throughput}`` for NCHW runs measured both ways."""
    rows = timm_benchmarks() if rows is None else rows
    by = {(_setting(r), r["mode"]): r for r in rows if r["layout"] == "NCHW"}
    return {(s[0], s[1], s[3]): by[s, "compiled"]["samples_per_sec"] / r["samples_per_sec"]
            for (s, mode), r in by.items() if mode == "eager" and (s, "compiled") in by}


def median_by_model(values: dict) -> dict:
    """Median over GPUs and versions of ``{(gpu, pytorch, model): value}``, per model."""
    models = dict.fromkeys(k[2] for k in values)
    return {m: statistics.median(v for k, v in values.items() if k[2] == m) for m in models}


# ---- MobileNetV4's device table ----

#: The latency columns of the MobileNetV4 table: (column, device as the paper heads it).
MNV4_DEVICES = (("pixel6_cpu_ms", "Pixel 6 CPU"), ("pixel8_edgetpu_ms", "Pixel 8 EdgeTPU"),
                ("iphone13_coreml_ms", "iPhone 13 CoreML (Neural Engine)"), ("pixel4_hexagon_ms", "Pixel 4 Hexagon DSP"),
                ("pixel7_gpu_ms", "Pixel 7 GPU"), ("s23_cpu_ms", "Samsung S23 CPU"), ("s23_gpu_ms", "Samsung S23 GPU"))


@cache
def mobilenet_v4_latency() -> tuple[dict, ...]:
    """The table as printed: numbers as floats, ``None`` for "-", ``"failed"`` where the paper says Failed."""
    rows = []
    for r in _read("mobilenet_v4_latency.csv"):
        row = {"model": r["model"], "source": r["source"]}
        for key in ("top1", "params_m", "macs_g") + tuple(c for c, _ in MNV4_DEVICES):
            row[key] = None if r[key] == "" else ("failed" if r[key] == "failed" else float(r[key]))
        rows.append(row)
    return tuple(rows)


# ---- networks on a roofline with two units ----

def network_ops(name: str, resolution: int) -> list[dict]:
    """The convolutions and matrix products of a model of the zoo at batch 1 (``sepconv.counter``):
    MACs, input, weight and output element counts, and whether the operation is depthwise (one group
    per input channel, more than one channel)."""
    import jax
    import jax.numpy as jnp

    from .counter import count
    from .models import abstract_model

    result = count(abstract_model(name), jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32))
    rows = []
    for op in result.ops:
        channels = op.input_shape[-1]
        depthwise = op.feature_group_count == channels > 1
        rows.append({"path": op.path, "macs": op.total_macs, "inputs": op.calls * math.prod(op.input_shape),
                     "weights": op.calls * math.prod(op.kernel_shape), "outputs": op.calls * math.prod(op.output_shape),
                     "depthwise": depthwise})
    return rows


def roofline_split(ops: list[dict], accelerator: str, precision: str = "fp16", batch: int = 1) -> dict:
    """A network on a two-unit roofline: depthwise operations on the vector units, the others on the
    matrix units, each taking ``max(2 N MACs / peak, bytes / bandwidth)`` (``N`` the batch; weights
    read once per batch). Returns the seconds, the achieved FLOP/s that implies, and the depthwise
    operations' share of the MACs and of the time. Element-wise work is left out (it only adds time)."""
    bw, size = bandwidth(accelerator), BYTES[precision]
    peaks = {True: peak(accelerator, "vector", precision), False: peak(accelerator, "tensor", precision)}
    times = [(op["depthwise"], max(2 * batch * op["macs"] / peaks[op["depthwise"]],
                                   size * (batch * (op["inputs"] + op["outputs"]) + op["weights"]) / bw)) for op in ops]
    seconds = sum(t for _, t in times)
    macs = sum(op["macs"] for op in ops) * batch
    return {"seconds": seconds, "flops": 2 * macs / seconds,
            "depthwise_macs": sum(op["macs"] for op in ops if op["depthwise"]) * batch / macs,
            "depthwise_time": sum(t for d, t in times if d) / seconds}


# ---- stored device results beside the CPU's ----

def beside(cpu: dict, device: dict) -> dict:
    """The experiments two stored runs (``sepconv.benchmarks.load_results``) share, side by side: per layer
    shape, per network variant and per successor stage the median seconds on each, ``speedup`` =
    CPU / device; the training step's measured and predicted cost in forward passes on each; and
    each run's measured peaks and ridge. Only rows present in both runs appear."""
    out = {"peaks": {}}
    for label, run in (("cpu", cpu), ("device", device)):
        p = run.get("peaks")
        if p:
            out["peaks"][label] = {"flops": p["peak_flops"], "bandwidth": p["peak_bandwidth"],
                                   "ridge": p["peak_flops"] / p["peak_bandwidth"]}
    key_layer = lambda r: (r["layer"], r["size"], r["channels"], r["batch"])  # noqa: E731
    dev_layers = {key_layer(r): r for r in device.get("layers", [])}
    out["layers"] = [{"layer": r["layer"], "size": r["size"], "channels": r["channels"], "cpu_s": r["median_s"],
                      "device_s": dev_layers[key_layer(r)]["median_s"],
                      "speedup": r["median_s"] / dev_layers[key_layer(r)]["median_s"],
                      "device_roofline_fraction": dev_layers[key_layer(r)]["achieved_flops"]
                      / dev_layers[key_layer(r)]["roofline_flops"]}
                     for r in cpu.get("layers", []) if key_layer(r) in dev_layers]
    key_model = lambda r: (r["model"], r["alpha"], r["resolution"])  # noqa: E731
    dev_models = {key_model(r): r for r in device.get("models", [])}
    out["models"] = [{"model": r["model"], "alpha": r["alpha"], "resolution": r["resolution"], "macs": r["macs"],
                      "cpu_s": r["median_s"], "device_s": dev_models[key_model(r)]["median_s"],
                      "device_shifts_s": dev_models[key_model(r)]["shifts_median_s"],
                      "speedup": r["median_s"] / dev_models[key_model(r)]["median_s"]}
                     for r in cpu.get("models", []) if key_model(r) in dev_models]
    dev_fused = {r["stage"]: r for r in device.get("successors", {}).get("fused", [])}
    out["fused"] = [{"stage": r["stage"],
                     "cpu_fused_over_mbconv": r["seconds"]["Fused-MBConv"] / r["seconds"]["MBConv"],
                     "device_fused_over_mbconv": dev_fused[r["stage"]]["seconds"]["Fused-MBConv"]
                     / dev_fused[r["stage"]]["seconds"]["MBConv"]}
                    for r in cpu.get("successors", {}).get("fused", []) if r["stage"] in dev_fused]
    out["training"] = {label: {"model": run["training"]["model"], "batch": run["training"]["batch"],
                               "measured": statistics.median(run["training"]["measured"]),
                               "predicted": run["training"]["predicted"]}
                       for label, run in (("cpu", cpu), ("device", device)) if "training" in run}
    return out


def device_report(cpu: dict, device: dict) -> str:
    """``beside(cpu, device)`` as text tables: what chapter 12 prints for each stored device."""
    both = beside(cpu, device)
    name = device.get("device", {}).get("device_kind", "device")
    lines = [f"{name} (jax {device.get('device', {}).get('jax', '?')}, {device.get('device', {}).get('date', 'no date')})"]
    for label, p in both["peaks"].items():
        lines.append(f"  {label:<7} measured peak {p['flops'] / 1e12:8.2f} TFLOP/s, {p['bandwidth'] / 1e9:8.1f} GB/s, "
                     f"ridge {p['ridge']:6.1f} FLOP/byte")
    if both["layers"]:
        lines.append(f"  {'layer (batch 1, float32)':<26}{'shape':>12}{'CPU us':>10}{'device us':>11}{'speedup':>9}"
                     f"{'of roofline':>13}")
        for r in both["layers"]:
            lines.append(f"  {r['layer']:<26}{r['size']:>5}x{r['size']}x{r['channels']:<4}{r['cpu_s'] * 1e6:>10.0f}"
                         f"{r['device_s'] * 1e6:>11.1f}{r['speedup']:>9.1f}{r['device_roofline_fraction']:>13.0%}")
    if both["models"]:
        lines.append(f"  {'network (batch 1)':<26}{'MMACs':>8}{'CPU ms':>9}{'device ms':>11}{'shifts ms':>11}{'speedup':>9}")
        for r in both["models"]:
            lines.append(f"  {r['model'] + ' ' + str(r['alpha']) + ' @' + str(r['resolution']):<26}{r['macs'] / 1e6:>8.0f}"
                         f"{r['cpu_s'] * 1e3:>9.2f}{r['device_s'] * 1e3:>11.3f}{r['device_shifts_s'] * 1e3:>11.3f}"
                         f"{r['speedup']:>9.1f}")
    for r in both["fused"]:
        lines.append(f"  Fused-MBConv / MBConv time, {r['stage']}: CPU {r['cpu_fused_over_mbconv']:.2f}, "
                     f"device {r['device_fused_over_mbconv']:.2f}")
    for label, t in both["training"].items():
        lines.append(f"  training step / forward, {label}: measured {t['measured']:.2f}, predicted from MACs "
                     f"{t['predicted']:.2f} ({t['model']}, batch {t['batch']})")
    return "\n".join(lines)

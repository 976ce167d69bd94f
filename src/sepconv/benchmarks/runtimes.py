"""One network, the runtimes people deploy with: latency side by side, in interleaved rounds.

The same MobileNet (224x224, float32, the same MACs) timed as

- ``JAX, as traced``: our Flax model jitted as written (BatchNorm separate, depthwise layers as
  XLA's grouped convolution);
- ``JAX, shifts``: the same with depthwise layers as shifted multiply-adds (chapter 7);
- ``JAX, inference``: BatchNorm folded, depthwise layers as shifted multiply-adds, 1x1 layers and the
  stem as matrix products (``transforms.fold_batchnorm`` + ``transforms.fast_inference``), a batch
  computed as many images at a time as ``transforms.streaming.cache_micro_batch`` picks from the
  network's largest activation and the CPU's cache (``transforms.micro_batched``), split over the cores
  where JAX has one CPU device per core (``inference_program``);
- ``ONNX Runtime, ours``: the folded model exported by ``jax2onnx``, run on ONNX Runtime's CPU
  provider (its graph optimizations on, as shipped), and ``ONNX Runtime, ours int8``: that graph
  quantized by ONNX Runtime's ``quantize_static`` (``transforms.onnx_export.quantize_onnx``; int8 weights per
  channel, all 8 bits, uint8 activations calibrated on eight random inputs, which sets the speed, not
  accuracy);
- for the networks torchvision has (``TORCHVISION_NETWORKS``: MobileNet v2, MobileNetV3-Large,
  EfficientNet-B0), torchvision's model: ``PyTorch eager`` (channels-last, inference mode),
  ``torch.compile`` (Inductor, the channels-last model) and ``ONNX Runtime, torchvision`` (exported by
  ``torch.onnx.export``).

- ``LiteRT (XNNPACK), Keras``: keras.applications' model of the same architecture converted to a LiteRT
  flat buffer by ``tools/keras_to_tflite.py`` (TensorFlow's converter, in an environment that has it;
  the book does not install TensorFlow) and run by ``ai-edge-litert`` with its default XNNPACK
  delegate; given as ``tflite=DIR`` (``bench --tflite DIR``), skipped otherwise.

Every runtime uses the machine's cores as it does by default. PyTorch and torchvision are not
dependencies of the book: install them to include their rows (they are skipped otherwise, and the
result says so). torchvision's wheels on PyPI are CUDA builds whose compiled operators (``nms`` and
the like, which no classification model uses) do not load beside a CPU-only PyTorch; ``_torchvision``
imports the pure-Python models without them.
"""

from __future__ import annotations

import io
import sys
import types
from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from .harness import SETTLE_S, after_another, interleaved, time_ratios

__all__ = ["LITERT", "RUNTIME_RATIOS", "RuntimeRow", "runtime_comparison", "inference_program", "batching_comparison",
           "one_cpu_device_per_core", "settle_comparison"]

#: The label of LiteRT/XNNPACK running keras.applications' network (``tools/keras_to_tflite.py``).
LITERT = "LiteRT (XNNPACK), Keras"

#: The comparisons the chapter reports, as (numerator, denominator) labels.
RUNTIME_RATIOS = (("JAX, inference", "torch.compile"), ("JAX, inference", "PyTorch eager"),
                  ("ONNX Runtime, ours", "ONNX Runtime, torchvision"), ("JAX, inference", "ONNX Runtime, ours"),
                  ("JAX, as traced", "JAX, inference"), ("ONNX Runtime, ours int8", "ONNX Runtime, ours"),
                  ("JAX, inference", LITERT), ("ONNX Runtime, ours", LITERT))


class RuntimeRow(TypedDict):
    """One row of ``runtimes.json``: a network at a batch and resolution timed in ``rounds`` rounds; per
    program the rounds (``times``), their median (``seconds``) and, for the JAX and ONNX programs, the
    largest difference from the model as traced (``errors``); per comparison of ``RUNTIME_RATIOS`` the
    rounds' ratios and their median."""

    model: str
    batch: int
    resolution: int
    rounds: int
    times: dict
    seconds: dict
    ratio: dict
    ratios: dict
    errors: dict
    micro_batch: int
    devices: int


def _torchvision():
    """``(torch, torchvision)`` or ``None`` when PyTorch is not installed (see the module docstring)."""
    try:
        import torch
    except ImportError:
        return None
    if "torchvision" not in sys.modules:
        try:
            import torchvision
        except RuntimeError:  # a CUDA build of torchvision beside a CPU-only torch
            for name in [n for n in sys.modules if n.startswith("torchvision")]:
                del sys.modules[name]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
            import torchvision
    return torch, sys.modules["torchvision"]


def inference_program(folded_fn, state, x, devices=None):
    """``(program, args, micro_batch, devices)``: our fastest inference program for the folded pure function
    ``folded_fn(state, x)`` (``fast_inference``) and the arguments to time it on. With more than one device
    (default: JAX's CPU devices; ``one_cpu_device_per_core``) and a batch they divide, the batch is split
    over them (``split_over_devices``), each computing its share ``cache_micro_batch`` images at a time
    (``micro_batched``); otherwise one device computes the batch that way. ``devices``: how many shared it."""
    from ..transforms.fast_inference import fast_inference
    from ..transforms.streaming import cache_micro_batch, micro_batched, split_over_devices

    fast = fast_inference(folded_fn)
    devices = jax.devices("cpu") if devices is None else list(devices)
    if len(devices) > 1 and x.shape[0] % len(devices) == 0:
        share = jax.ShapeDtypeStruct((x.shape[0] // len(devices), *x.shape[1:]), x.dtype)
        size = cache_micro_batch(fast, state, share)
        program, place = split_over_devices(micro_batched(fast, size), devices)
        return program, place(state, x), size, len(devices)
    size = cache_micro_batch(fast, state, x)
    return jax.jit(micro_batched(fast, size)), (state, x), size, 1


def one_cpu_device_per_core() -> int:
    """Give JAX one CPU device per core (``jax_num_cpu_devices``), so that ``inference_program`` can split a
    batch over the cores; JAX takes the setting only before it starts its CPU backend, so a process that
    has run anything on JAX keeps the devices it has. Returns the number of CPU devices JAX has. Programs
    on one device run as before: on the recording machine, MobileNet v2's inference program at batch 32 on
    one device took 4.60 ms per image in a process with two devices and 4.54 and 4.69 in two processes with
    one (one run each)."""
    import os

    try:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    except RuntimeError:  # the backend has started: its devices stay
        pass
    return len(jax.devices("cpu"))


def _jax_programs(name: str, batch: int, resolution: int = 224) -> dict:
    from ..interop import pure_module
    from ..transforms.batchnorm import fold_batchnorm
    from ..transforms.onnx_export import export_onnx, onnx_session, quantize_onnx
    from ..transforms.shifts import depthwise_by_shifts
    from ..layers import randomize_batchnorm
    from ..models import build_model

    model = randomize_batchnorm(build_model(name, resolution=resolution), seed=0)
    folded = fold_batchnorm(model)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, resolution, resolution, 3)), jnp.float32)
    fn, state = pure_module(model, flat=True)
    fast, fast_state = pure_module(folded, flat=True)
    inference, placed, micro_batch, devices = inference_program(fast, fast_state, x)
    programs = {"JAX, as traced": (jax.jit(fn), (state, x)),
                "JAX, shifts": (jax.jit(depthwise_by_shifts(fn)), (state, x)),
                "JAX, inference": (inference, placed)}
    proto = export_onnx(folded, x.shape, name)
    _, run = onnx_session(proto)
    programs["ONNX Runtime, ours"] = (run, (np.asarray(x),))
    reference = np.asarray(programs["JAX, as traced"][0](state, x))
    errors = {label: float(np.max(np.abs(np.asarray(f(*a)) - reference))) for label, (f, a) in programs.items()}
    calibration = np.random.default_rng(1).normal(size=(8 * batch, resolution, resolution, 3))
    _, run_int8 = onnx_session(quantize_onnx(proto, calibration, reduce_range=False))  # speed only: 8 bits
    programs["ONNX Runtime, ours int8"] = (run_int8, (np.asarray(x),))
    return programs, errors, reference, np.asarray(x), micro_batch, devices


def batching_comparison(networks=("mobilenet_v2", "mobilenet_v1"), batch: int = 32, rounds: int = 7,
                        repeats: int = 5, resolution: int = 224, log=print) -> list:
    """Whether batching helps our inference program: per network, ``inference_program`` at batch 1 and at
    ``batch`` timed in the same ``rounds`` interleaved rounds (median of ``repeats`` calls each). Each row:
    ``micro_batch``, ``devices``, ``per_image`` (seconds per image in each round, ``{"batch 1": [...], "batch B": [...]}``)
    and ``ratios`` (per round, batch B's time per image over batch 1's: below 1, batching helped)."""
    from ..interop import pure_module
    from .attribution import _network

    rows = []
    for name in networks:
        folded, x = _network(name, batch, resolution)
        fast, state = pure_module(folded, flat=True)
        single, single_args, _, _ = inference_program(fast, state, x[:1])
        batched, batched_args, micro_batch, devices = inference_program(fast, state, x)
        labels = ("batch 1", f"batch {batch}")
        times = interleaved({labels[0]: (single, single_args), labels[1]: (batched, batched_args)}, rounds, repeats)
        per_image = {labels[0]: times[labels[0]], labels[1]: [t / batch for t in times[labels[1]]]}
        ratios = [b / a for a, b in zip(*per_image.values())]
        rows.append({"model": name, "batch": batch, "resolution": resolution, "rounds": rounds,
                     "micro_batch": micro_batch, "devices": devices, "per_image": per_image, "ratios": ratios})
        log(f"{name}: batch {batch} ({devices} devices, {micro_batch} at a time) over batch 1 per image, median "
            f"{float(np.median(ratios)):.2f} (rounds {min(ratios):.2f} to {max(ratios):.2f})")
    return rows


#: The networks torchvision has under the registry's name (it has no MobileNet v1).
TORCHVISION_NETWORKS = ("mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0")


def _torch_programs(name: str, batch: int, x_nhwc: np.ndarray) -> dict:
    found = _torchvision()
    if found is None or name not in TORCHVISION_NETWORKS:
        return {}
    torch, torchvision = found
    from ..transforms.onnx_export import onnx_session

    import onnx

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"])
    _, run_onnx = onnx_session(onnx.load_from_string(buffer.getvalue()))
    last = model.to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(last)

    def eager(x):
        with torch.inference_mode():
            return last(x).numpy()

    def inductor(x):
        with torch.inference_mode():
            return compiled(x).numpy()

    return {"PyTorch eager": (eager, (x_last,)), "torch.compile": (inductor, (x_last,)),
            "ONNX Runtime, torchvision": (run_onnx, (x.numpy(),))}


def _litert_program(folder, name: str, batch: int, x_nhwc: np.ndarray) -> dict:
    import os

    path = os.path.join(str(folder), f"{name}_b{batch}.tflite")
    if folder is None or not os.path.exists(path):
        return {}
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(target)

    return {LITERT: (run, (np.ascontiguousarray(x_nhwc, np.float32),))}


def _litert_missing(folder) -> str | None:
    if folder is None:
        return "no converted models given (tools/keras_to_tflite.py, then bench --tflite DIR)"
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return "ai-edge-litert not installed"
    return None


def runtime_comparison(networks=("mobilenet_v2", "mobilenet_v1"), batches=(1, 32), rounds: int = 7,
                       repeats: int = 10, batched_repeats: int = 3, tflite=None, resolution: int = 224,
                       log=print) -> dict:
    """Per network and batch, every program of the module docstring timed in ``rounds`` interleaved
    rounds (median of ``repeats`` calls, ``batched_repeats`` above batch 1; a ``harness.SETTLE_S`` pause and
    as long of warm-up calls before each program, since a program timed right after another runtime ran
    more slowly: ``settle_comparison``): ``{"rows": [...], "skipped": why a row is missing, "batching":
    [...], "settle": ...}``. Each row: ``seconds`` (median over rounds),
    ``ratios`` per comparison of ``RUNTIME_RATIOS`` (one per round), ``errors``: each JAX and ONNX program's
    largest absolute difference from the model as traced (same weights and input), ``micro_batch``, the
    images ``JAX, inference`` computes at a time on each device, and ``devices``, how many devices share the
    batch (``inference_program``). ``batching``: ``batching_comparison`` at the largest
    batch, when batch 1 was timed too (empty otherwise); ``cache_bytes``: the last-level cache the
    micro-batches were chosen for (``None`` where Linux did not say); ``cpu_devices``: JAX's CPU devices;
    ``settle``: ``settle_comparison`` of the first network when batch 1 was timed (``None`` otherwise);
    ``load``: the machine's load averages before and after (other work beside the timings).
    Call ``one_cpu_device_per_core`` first (the ``bench`` command does) for our program to split a batch over
    the cores."""
    from ..transforms.onnx_export import missing_runtime
    from ..transforms.streaming import last_level_cache_bytes
    from .attribution import machine_load

    problem = missing_runtime()
    if problem:
        raise RuntimeError(problem)
    load_before = machine_load()
    skipped = {} if _torchvision() else {"PyTorch": "torch and torchvision not installed"}
    if _litert_missing(tflite):
        skipped["LiteRT"] = _litert_missing(tflite)
        tflite = None
    rows = []
    for name in networks:
        for batch in batches:
            programs, errors, _, x, micro_batch, devices = _jax_programs(name, batch, resolution)
            if resolution == 224:  # the converted and the torchvision models are fixed at 224 pixels
                programs.update(_torch_programs(name, batch, x))
                programs.update(_litert_program(tflite, name, batch, x))
            times = interleaved(programs, rounds, repeats if batch == 1 else batched_repeats, pause=SETTLE_S)
            ratios, medians = time_ratios(times, RUNTIME_RATIOS)
            row = {"model": name, "batch": batch, "resolution": resolution, "rounds": rounds, "times": times,
                   "seconds": {label: float(np.median(t)) for label, t in times.items()},
                   "ratio": medians, "ratios": ratios, "errors": errors, "micro_batch": micro_batch,
                   "devices": devices, "pause": SETTLE_S}
            rows.append(row)
            log(f"{name} batch {batch}: " + ", ".join(f"{k} {t * 1e3 / batch:.1f}" for k, t in row["seconds"].items())
                + " ms/image")
            for key, ratio in row["ratio"].items():
                log(f"    {key} = {ratio:.2f} (rounds {min(ratios[key]):.2f} to {max(ratios[key]):.2f})")
    larger = [b for b in batches if b > 1]
    batching = (batching_comparison(networks, max(larger), rounds, resolution=resolution, log=log)
                if 1 in batches and larger else [])
    settle = settle_comparison(networks[0], tflite, rounds, repeats, resolution) if 1 in batches else None
    return {"rows": rows, "skipped": skipped, "batching": batching, "settle": settle,
            "cache_bytes": last_level_cache_bytes(), "cpu_devices": len(jax.devices("cpu")),
            "load": {"before": load_before, "after": machine_load()}}


def settle_comparison(name: str = "mobilenet_v2", tflite=None, rounds: int = 7, repeats: int = 10,
                      resolution: int = 224) -> dict:
    """Why the table pauses between programs: at batch 1, our inference program and (given ``tflite``)
    LiteRT's, each timed right after ONNX Runtime ran our export and timed settled, after
    ``harness.SETTLE_S`` seconds and as long of warm-up calls (``harness.after_another``, ``rounds``
    rounds). ``{"model", "pause", "rounds", "times": {label: {"right after": [...], "settled": [...]}},
    "load"}``."""
    from .attribution import _network, machine_load
    from ..interop import pure_module
    from ..transforms.onnx_export import export_onnx, onnx_session

    load = machine_load()
    folded, x = _network(name, 1, resolution)
    fast, state = pure_module(folded, flat=True)
    program, args, _, _ = inference_program(fast, state, x)
    onnx_runtime = (onnx_session(export_onnx(folded, x.shape, name))[1], (np.asarray(x),))
    seconds = {"JAX, inference": (program, args)}
    if tflite is not None and resolution == 224:
        seconds.update(_litert_program(tflite, name, 1, np.asarray(x)))
    times = {label: after_another(onnx_runtime, second, rounds, repeats) for label, second in seconds.items()}
    return {"model": name, "pause": SETTLE_S, "rounds": rounds, "times": times,
            "load": {"before": load, "after": machine_load()}}

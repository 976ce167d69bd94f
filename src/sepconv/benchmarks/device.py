"""The experiments of chapters 7, 8 and 9 on an accelerator (``python -m sepconv bench --device gpu``)."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from .budget import DEVICE_FULL, DEVICE_TINY
from .guidelines import guideline_experiments
from .layers import layer_benchmarks
from .model_latency import model_latencies
from .results import device_info, results_dir, save_result
from .roofline import matmul_flops, measure_peaks
from .successors import successor_blocks
from .training_step import training_step

__all__ = ["DEVICE_EXPERIMENTS", "DEVICE_SIZES", "device_run", "platform_device"]

#: The experiments of ``device_run``: those of chapters 7 (layers, guidelines, models), 8 (successors) and 9
#: (training), plus the layers at a batch of 32 in float32 and in bfloat16 (where matrix units engage).
DEVICE_EXPERIMENTS = ("peaks", "layers", "layers_batch", "layers_bf16", "guidelines", "models", "successors", "training")

#: ``device_run``'s sizes by name (``budget.DEVICE_FULL`` and ``budget.DEVICE_TINY``).
DEVICE_SIZES = {"full": DEVICE_FULL, "tiny": DEVICE_TINY}


def platform_device(platform: str):
    """The first JAX device of ``platform``, or a one-line error naming what JAX has."""
    if platform not in ("gpu", "tpu", "cpu"):
        raise ValueError(f"--device {platform}: the devices are gpu, tpu and cpu")
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        devices = []
    if not devices:
        raise RuntimeError(f"--device {platform}: JAX finds no {platform} device (it runs on "
                           f"{jax.default_backend()}; JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r}; "
                           f"a GPU needs jax with its CUDA plugin)")
    return devices[0]


def device_run(platform: str = "gpu", out: Path | None = None, tiny: bool = False, log=print,
               only: tuple[str, ...] | None = None) -> Path:
    """The layer, network and training experiments of chapters 7, 8 and 9 on the first ``platform``
    device JAX has, at the sizes of ``DEVICE_FULL`` (``tiny``: ``DEVICE_TINY``, the seconds-long dry
    run), written as JSON into ``out`` (default: this device's folder under ``user_results_root()``),
    beside a ``device.json`` holding the device's name, the versions, the date and the sizes used."""
    unknown = sorted(set(only or ()) - set(DEVICE_EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown device experiment {unknown[0]!r}; they are {', '.join(DEVICE_EXPERIMENTS)}")
    wanted = set(only) if only else set(DEVICE_EXPERIMENTS)
    device = platform_device(platform)
    sizes = DEVICE_TINY if tiny else DEVICE_FULL
    with jax.default_device(device):
        info = device_info() | {"platform": device.platform, "device_kind": device.device_kind,
                                "date": datetime.date.today().isoformat(), "sizes": sizes.name,
                                "default_matmul_precision": str(jax.config.jax_default_matmul_precision)}
        out = Path(out) if out else results_dir(info)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()

        def save(name, value):
            path = save_result(out, name, value)
            log(f"wrote {path} ({time.perf_counter() - started:.0f} s)")

        repeats = sizes.repeats
        peaks = measure_peaks(size=sizes.matmul_size, megabytes=sizes.stream_megabytes, repeats=repeats)
        peaks["peak_flops_bf16"] = matmul_flops(sizes.matmul_size, jnp.bfloat16, repeats)
        save("device", info)
        if "peaks" in wanted:
            save("peaks", peaks)
        if "layers" in wanted:
            save("layers", layer_benchmarks(peaks, repeats=repeats, shapes=sizes.shapes))
        if "layers_batch" in wanted:
            save("layers_batch", layer_benchmarks(peaks, batch=sizes.batch, repeats=repeats, shapes=sizes.shapes))
        if "layers_bf16" in wanted:
            save("layers_bf16", layer_benchmarks(peaks, batch=sizes.batch, repeats=repeats, shapes=sizes.shapes,
                                                 dtype=jnp.bfloat16))
        if "guidelines" in wanted:
            save("guidelines", guideline_experiments(repeats=repeats, size=sizes.guideline_size, blocks=sizes.blocks))
        if "models" in wanted:
            save("models", model_latencies(peaks, repeats=repeats, variants=sizes.variants))
        if "successors" in wanted:
            save("successors", successor_blocks(peaks, rounds=sizes.rounds.rounds, repeats=sizes.rounds.repeats,
                                                stages=sizes.stages, depthwise_shapes=sizes.depthwise_shapes))
        if "training" in wanted:
            save("training", training_step(**sizes.training.arguments()))
    log(f"{device.device_kind}: {time.perf_counter() - started:.0f} s in all")
    return out

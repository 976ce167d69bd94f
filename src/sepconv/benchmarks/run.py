"""``python -m sepconv bench``: every experiment of the book's latency chapters, at one ``Budget``."""

from __future__ import annotations

from pathlib import Path

from .budget import Budget, budget
from .device import device_run
from .guidelines import guideline_experiments
from .keras import keras_comparison
from .layers import layer_benchmarks
from .model_latency import model_latencies
from .results import device_info, results_dir, save_result
from .roofline import measure_peaks
from .successors import successor_blocks
from .training_step import training_step

__all__ = ["EXPERIMENTS", "run_all"]

#: The experiments of ``run_all``, in the order they run (``peaks`` is measured whenever another needs it).
EXPERIMENTS = ("peaks", "layers", "guidelines", "models", "successors", "keras", "training", "runtimes")


def run_all(out: Path | None = None, quick: bool = False, with_keras: bool = True, with_runtimes: bool = True,
            tflite: Path | None = None, log=print, only: tuple[str, ...] | None = None,
            device: str | None = None, sizes: Budget | None = None) -> Path:
    """Run every experiment (or those named in ``only``, from ``EXPERIMENTS``), write JSON files into
    ``out`` (default: this device's folder under ``user_results_root()``; the shipped results are never
    overwritten), at the sizes of ``sizes`` (default ``QUICK`` when ``quick``, else ``FULL``). A run
    whose budget has ``models=False`` (the quick one) skips ``models`` unless ``only`` names it. With
    ``device`` (a JAX platform: ``gpu``, ``tpu`` or ``cpu``), run the accelerator experiments instead
    (``device_run``; ``quick``: its tiny sizes, the dry run the tests make)."""
    if device is not None:
        return device_run(device, out, tiny=quick, log=log, only=only)
    unknown = sorted(set(only or ()) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}; the experiments are {', '.join(EXPERIMENTS)}")
    sizes = sizes or budget(quick)
    wanted = set(only) if only else set(EXPERIMENTS) - (set() if sizes.models else {"models"})
    if not with_keras:
        wanted.discard("keras")
    if not with_runtimes:
        wanted.discard("runtimes")
    info = device_info()
    out = Path(out) if out else results_dir(info)
    out.mkdir(parents=True, exist_ok=True)
    repeats = sizes.repeats

    def save(name, value):
        log(f"wrote {save_result(out, name, value)}")

    save("device", info)
    peaks = measure_peaks(size=sizes.matmul_size, megabytes=sizes.stream_megabytes, repeats=repeats)
    if "peaks" in wanted:
        save("peaks", peaks)
    if "layers" in wanted:
        save("layers", layer_benchmarks(peaks, repeats=repeats))
    if "guidelines" in wanted:
        save("guidelines", guideline_experiments(repeats=repeats, blocks=sizes.guideline_blocks))
    if "models" in wanted:
        save("models", model_latencies(peaks))
    if "successors" in wanted:
        save("successors", successor_blocks(peaks, rounds=sizes.successors.rounds, repeats=sizes.successors.repeats))
    if "keras" in wanted:
        k = sizes.keras
        rows = keras_comparison(batches=sizes.keras_batches, rounds=k.rounds, repeats=k.repeats,
                                batched_repeats=k.batched_repeats)
        save("keras", rows)
        for r in rows:
            log(f"{r['model']} batch {r['batch']}: " + ", ".join(f"{k} {t * 1e3:.1f} ms" for k, t in r["seconds"].items()))
            for key, ratio in r["ratio"].items():
                log(f"    {key} = {ratio:.2f} (rounds {min(r['ratios'][key]):.2f} to {max(r['ratios'][key]):.2f})")
    if "training" in wanted:
        save("training", training_step(**sizes.training.arguments()))
    if "runtimes" in wanted:
        from ..transforms.onnx_export import missing_runtime
        from .runtimes import runtime_comparison

        if missing_runtime():
            log(f"runtimes skipped: {missing_runtime()}")
        else:
            r = sizes.runtimes
            save("runtimes", runtime_comparison(networks=sizes.runtime_networks, resolution=sizes.runtime_resolution,
                                                batches=sizes.runtime_batches, rounds=r.rounds, repeats=r.repeats,
                                                batched_repeats=r.batched_repeats, tflite=tflite, log=log))
    return out

"""The old home of the benchmarks: every name now lives in ``sepconv.benchmarks`` (one module per
experiment, the harness on its own) and ``sepconv.interop.keras``; this module re-exports them so that
``from sepconv.bench import ...`` keeps working."""

from .benchmarks.budget import DEPTHWISE_SHAPES, FUSED_STAGES, MOBILENET_SHAPES  # noqa: F401
from .benchmarks.compiled import fused_convolutions  # noqa: F401
from .benchmarks.device import DEVICE_EXPERIMENTS, DEVICE_SIZES, device_run  # noqa: F401
from .benchmarks.guidelines import guideline_experiments  # noqa: F401
from .benchmarks.harness import (Comparison, Timing, interleaved, paired_comparison, sign_test_p,  # noqa: F401
                                 time_call, time_ratios)
from .benchmarks.keras import KERAS_PROGRAMS, KERAS_RATIOS, keras_comparison  # noqa: F401
from .benchmarks.layers import SHIFTS_LAYER, layer_benchmarks  # noqa: F401
from .benchmarks.model_latency import model_latencies  # noqa: F401
from .benchmarks.results import (SHIPPED_RESULTS, device_info, load_results, results_dir,  # noqa: F401
                                 stored_devices, user_results_root)
from .benchmarks.roofline import measure_peaks, roofline_seconds  # noqa: F401
from .benchmarks.run import EXPERIMENTS, run_all  # noqa: F401
from .benchmarks.successors import successor_blocks  # noqa: F401
from .benchmarks.training_step import training_step  # noqa: F401
from .interop.keras import keras_application, keras_function  # noqa: F401

__all__ = ["Timing", "time_call", "device_info", "measure_peaks", "layer_benchmarks", "SHIFTS_LAYER",
           "guideline_experiments", "model_latencies", "keras_application", "keras_function", "keras_comparison",
           "KERAS_PROGRAMS", "KERAS_RATIOS", "fused_convolutions", "run_all", "interleaved", "roofline_seconds",
           "successor_blocks", "load_results", "results_dir", "SHIPPED_RESULTS", "user_results_root", "device_run",
           "DEVICE_EXPERIMENTS", "DEVICE_SIZES", "stored_devices", "sign_test_p", "Comparison", "paired_comparison",
           "training_step", "time_ratios", "EXPERIMENTS"]

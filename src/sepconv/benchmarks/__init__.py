"""Measured latency: the timing harness, the budgets, and one module per experiment.

- ``harness``: ``time_call``, ``interleaved`` rounds (with a ``pause`` between programs of different
  runtimes, ``SETTLE_S``), ``after_another``, ``time_ratios``, ``paired_comparison`` and ``sign_test_p``
  (the one way a timing claim is made);
- ``budget``: how long a run measures (``FULL``, ``QUICK``, ``DEVICE_FULL``, ``DEVICE_TINY``);
- ``allocator``: the process settings of glibc's allocator (``SETTINGS``: default, freed memory kept so
  large buffers are not paged in afresh on every call, huge pages) for a process about to start
  (``environment``); results record which one they ran under;
- ``results``: where results are written and read (``load_results``), the machine they name;
- ``roofline``: the machine's peaks and the roofline estimate of a program;
- ``compiled``: what XLA made of a program (``fused_convolutions``, ``entry_steps``);
- ``analysis``: what the chapters conclude from stored results (pure functions of the JSON);
- experiments: ``layers``, ``guidelines``, ``successors``, ``model_latency``, ``training_step``,
  ``keras`` (our models against keras.applications), ``runtimes`` (ONNX Runtime, PyTorch, LiteRT),
  ``device`` (an accelerator run), ``attribution`` (where one network's time goes, layer kind by
  layer kind, in ONNX Runtime, LiteRT and our fastest JAX program) with ``litert_operators`` (LiteRT's
  operators timed one at a time); ``run`` runs them all.

Imports flow one way: the experiments use the harness, never the reverse. Nothing here asserts a
speed: benchmarks report ratios against a peer measured in the same run, on the same machine,
interleaved.
"""

from .budget import (DEPTHWISE_SHAPES, DEVICE_FULL, DEVICE_TINY, FULL, FUSED_STAGES, MOBILENET_SHAPES, QUICK,  # noqa: F401
                     Budget, DeviceBudget, Rounds, TrainingSize)
from .compiled import entry_steps, fused_convolutions  # noqa: F401
from .harness import (Comparison, Timing, compare_ratios, interleaved, paired_comparison, sign_test_p,  # noqa: F401
                      time_call, time_ratios)
from .results import (SHIPPED_RESULTS, device_info, load_results, results_dir, stored_devices,  # noqa: F401
                      user_results_root)
from .roofline import measure_peaks, roofline_seconds  # noqa: F401

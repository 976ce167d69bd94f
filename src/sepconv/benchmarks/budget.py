"""How long the benchmarks measure: one typed setting per run, ``FULL`` (the book's recorded run) or
``QUICK`` (the seconds-long run the tests make), and ``DEVICE_FULL`` / ``DEVICE_TINY`` for the
accelerator run. Every size an experiment takes comes from here, never from a ``quick`` flag."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rounds", "TrainingSize", "Budget", "QUICK", "FULL", "budget", "DeviceBudget", "DEVICE_FULL",
           "DEVICE_TINY", "MOBILENET_SHAPES", "FUSED_STAGES", "DEPTHWISE_SHAPES"]

#: MobileNet v1 layer shapes at 224x224: (spatial size, channels) of the separable layers.
MOBILENET_SHAPES = ((112, 32), (56, 128), (28, 256), (14, 512), (7, 1024))

#: EfficientNetV2's question at equal output shapes: (label, input size, c_in, c_out, expansion, stride).
FUSED_STAGES = (("112x112x24 -> 56x56x48", 112, 24, 48, 4, 2), ("56x56x48 -> 28x28x64", 56, 48, 64, 4, 2),
                ("28x28x64 -> 14x14x128", 28, 64, 128, 4, 2), ("14x14x128 -> 14x14x128", 14, 128, 128, 4, 1))
#: ConvNeXt's question: depthwise kernels at ConvNeXt-T's first and third stage shapes.
DEPTHWISE_SHAPES = ((56, 96), (14, 384))


@dataclass(frozen=True)
class Rounds:
    """Interleaved rounds: ``rounds`` of them, each program's time the median of ``repeats`` calls
    (``batched_repeats`` for batches above 1, whose calls take seconds on a CPU)."""

    rounds: int
    repeats: int
    batched_repeats: int = 3


@dataclass(frozen=True)
class TrainingSize:
    """The training-step experiment: network, batch, image size and its interleaved rounds."""

    name: str
    batch: int
    resolution: int
    rounds: int
    repeats: int

    def arguments(self) -> dict:
        return {"name": self.name, "batch": self.batch, "resolution": self.resolution, "rounds": self.rounds,
                "repeats": self.repeats}


@dataclass(frozen=True)
class Budget:
    """Every size of ``run_all``. ``repeats``: calls per timing of the peaks, layers and guidelines;
    ``matmul_size`` and ``stream_megabytes``: the peaks' matrix and array; ``models``: whether the
    network latencies run unless asked for (the slowest experiment)."""

    name: str
    repeats: int
    matmul_size: int
    stream_megabytes: int
    guideline_blocks: int
    models: bool
    successors: Rounds
    keras: Rounds
    keras_batches: tuple
    training: TrainingSize
    runtimes: Rounds
    runtime_networks: tuple
    runtime_resolution: int
    runtime_batches: tuple


#: The book's recorded run (``python -m sepconv bench``).
FULL = Budget("full", repeats=20, matmul_size=2048, stream_megabytes=256, guideline_blocks=10, models=True,
              successors=Rounds(7, 10), keras=Rounds(9, 10, 3), keras_batches=(1, 32),
              training=TrainingSize("mobilenet_v2", 16, 224, 7, 3), runtimes=Rounds(7, 10, 3),
              runtime_networks=("mobilenet_v2", "mobilenet_v1", "mobilenet_v3_large", "efficientnet_b0"),
              runtime_resolution=224, runtime_batches=(1, 32))

#: The quick run (``bench --quick``, and the tests): every experiment but the network latencies, tiny.
QUICK = Budget("quick", repeats=5, matmul_size=512, stream_megabytes=16, guideline_blocks=2, models=False,
               successors=Rounds(2, 3), keras=Rounds(1, 2, 2), keras_batches=(1,),
               training=TrainingSize("mobilenet_v1", 2, 64, 1, 1), runtimes=Rounds(1, 2, 2),
               runtime_networks=("mobilenet_v1",), runtime_resolution=96, runtime_batches=(1,))


def budget(quick: bool) -> Budget:
    """``QUICK`` or ``FULL``."""
    return QUICK if quick else FULL


@dataclass(frozen=True)
class DeviceBudget:
    """The sizes of ``device_run``: ``matmul_size`` and ``stream_megabytes`` for the peaks, ``repeats``
    per timing, the layer ``shapes`` (also timed at ``batch``), the guidelines' map size and depth, the
    network ``variants`` (network, width, resolution), chapter 8's ``stages`` and ``depthwise_shapes``
    in ``rounds``, and the training step."""

    name: str
    matmul_size: int
    stream_megabytes: int
    repeats: int
    shapes: tuple
    batch: int
    guideline_size: int
    blocks: int
    variants: tuple
    stages: tuple
    depthwise_shapes: tuple
    rounds: Rounds
    training: TrainingSize


#: About 5 minutes on one GPU, mostly compilation.
DEVICE_FULL = DeviceBudget(
    "full", matmul_size=8192, stream_megabytes=1024, repeats=30, shapes=MOBILENET_SHAPES, batch=32,
    guideline_size=28, blocks=10,
    variants=tuple((n, a, r) for n, widths in (("mobilenet_v1", (0.25, 0.5, 1.0)), ("mobilenet_v2", (0.35, 0.5, 1.0)))
                   for a in widths for r in (128, 224)),
    stages=FUSED_STAGES, depthwise_shapes=DEPTHWISE_SHAPES, rounds=Rounds(7, 20),
    training=TrainingSize("mobilenet_v2", 16, 224, 5, 5))

#: The CPU dry run the tests make: seconds.
DEVICE_TINY = DeviceBudget(
    "tiny", matmul_size=64, stream_megabytes=1, repeats=1, shapes=((8, 16),), batch=2, guideline_size=4, blocks=1,
    variants=(("mobilenet_v1", 0.25, 32),), stages=(("8x8x8 -> 4x4x16", 8, 8, 16, 2, 2),),
    depthwise_shapes=((4, 8),), rounds=Rounds(1, 1), training=TrainingSize("mobilenet_v1", 2, 32, 1, 1))

"""Chapter 7's networks: batch-1 latency of MobileNet v1/v2 variants beside their MACs, bytes moved and
roofline estimate, each network timed as three programs: as traced, with depthwise layers by shifts, and as
our fastest inference program (chapter 9: BatchNorm folded, ``fast_inference``)."""

from __future__ import annotations

from typing import TypedDict

import jax
import jax.numpy as jnp

from ..transforms.batchnorm import fold_batchnorm
from ..transforms.fast_inference import fast_inference
from ..transforms.shifts import depthwise_by_shifts
from .harness import time_call
from .roofline import roofline_seconds, traffic_and_macs

__all__ = ["MODEL_VARIANTS", "ModelLatency", "model_latencies"]

#: The variants chapter 7 times: ``(network, width, resolution)``.
MODEL_VARIANTS = tuple([("mobilenet_v1", a, r) for a in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 224)]
                       + [("mobilenet_v2", a, r) for a in (0.35, 0.5, 0.75, 1.0, 1.4) for r in (128, 160, 224)])


class ModelLatency(TypedDict):
    """One row of ``models.json``: a network variant's cost, roofline estimate and batch-1 latency, as
    traced (``median_s``), with depthwise layers by shifts (``shifts_median_s``) and as our fastest
    inference program (``inference_median_s``; results recorded before it existed lack it)."""

    model: str
    alpha: float
    resolution: int
    macs: int
    bytes: int
    roofline_s: float
    median_s: float
    spread: float
    shifts_median_s: float
    shifts_spread: float
    inference_median_s: float
    inference_spread: float


def model_latencies(peaks: dict, repeats: int = 15, variants=None) -> list[ModelLatency]:
    """Batch-1 latency of MobileNet v1/v2 variants beside their MACs, bytes moved and a roofline estimate;
    ``shifts_median_s`` times the same model with ``depthwise_by_shifts``, ``inference_median_s`` its folded
    form through ``fast_inference`` (the same function at inference, to float rounding).

    The estimate sums, over every convolution and matmul, ``max(2 MACs / peak_flops, bytes / bandwidth)``.
    """
    from ..interop import pure_module
    from ..models import build_model

    if variants is None:
        variants = MODEL_VARIANTS
    rows = []
    for name, alpha, resolution in variants:
        model = build_model(name, alpha=alpha)
        fn, state = pure_module(model, flat=True)
        x = jnp.zeros((1, resolution, resolution, 3))
        t = time_call(jax.jit(fn), state, x, repeats=repeats)
        shifts = time_call(jax.jit(depthwise_by_shifts(fn)), state, x, repeats=repeats)
        folded, folded_state = pure_module(fold_batchnorm(model), flat=True)
        inference = time_call(jax.jit(fast_inference(folded)), folded_state, x, repeats=repeats)
        macs, moved, ops = traffic_and_macs(model, resolution)
        estimate = roofline_seconds(ops, peaks)
        rows.append(ModelLatency(model=name, alpha=alpha, resolution=resolution, macs=macs, bytes=moved,
                                 roofline_s=estimate, median_s=t.median_s, spread=t.spread,
                                 shifts_median_s=shifts.median_s, shifts_spread=shifts.spread,
                                 inference_median_s=inference.median_s, inference_spread=inference.spread))
    return rows

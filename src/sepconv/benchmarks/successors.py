"""Chapter 8's two measurements: MBConv against Fused-MBConv at equal output shapes, and depthwise
kernels of 3, 5 and 7 at ConvNeXt's shapes, each as traced and with shifted multiply-adds."""

from __future__ import annotations

from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from ..transforms.shifts import depthwise_by_shifts
from .budget import DEPTHWISE_SHAPES, FUSED_STAGES
from .harness import interleaved
from .roofline import op_traffic, roofline_seconds

__all__ = ["ShapeTiming", "SuccessorBlocks", "successor_blocks"]


class ShapeTiming(TypedDict, total=False):
    """The programs of one shape (``stage`` of ``FUSED_STAGES`` or depthwise ``shape``): per program its
    ``costs`` (MACs, bytes, roofline seconds), the rounds' ``times`` and their median ``seconds``."""

    stage: str
    shape: str
    costs: dict
    times: dict
    seconds: dict


class SuccessorBlocks(TypedDict):
    """``successors.json``: MBConv against Fused-MBConv per stage, and depthwise kernels per shape."""

    fused: list[ShapeTiming]
    depthwise_kernels: list[ShapeTiming]


def successor_blocks(peaks: dict, rounds: int = 7, repeats: int = 10, stages=FUSED_STAGES,
                     depthwise_shapes=DEPTHWISE_SHAPES) -> SuccessorBlocks:
    """The two measurements of chapter 8, interleaved per shape: MBConv (depthwise as XLA's grouped
    convolution and as shifted multiply-adds) against Fused-MBConv at equal output shapes (SiLU, no
    squeeze-excite, batch 1), and a depthwise layer with 3x3, 5x5 and 7x7 kernels both ways."""
    from flax import nnx

    from ..blocks import ConvSpec, MBConvSpec
    from ..counter import count
    from ..interop import pure_module

    def program(spec, size, channels, shifts=False):
        module = spec.build(nnx.Rngs(0))
        module.eval()
        fn, state = pure_module(module, flat=True)
        x = jnp.ones((1, size, size, channels), jnp.float32)
        ops = op_traffic(count(fn, state, x))
        jitted = jax.jit(depthwise_by_shifts(fn) if shifts else fn)
        return (jitted, (state, x)), ops

    fused_rows = []
    for label, size, c_in, c_out, t, stride in stages:
        specs = {"MBConv": (MBConvSpec(c_in, c_in * t, c_out, 3, stride, act="silu"), False),
                 "MBConv, shifts": (MBConvSpec(c_in, c_in * t, c_out, 3, stride, act="silu"), True),
                 "Fused-MBConv": (MBConvSpec(c_in, c_in * t, c_out, 3, stride, act="silu", fused=True), False)}
        programs, costs = {}, {}
        for name, (spec, shifts) in specs.items():
            programs[name], ops = program(spec, size, c_in, shifts)
            costs[name] = {"macs": sum(m for m, _ in ops), "bytes": sum(b for _, b in ops),
                           "roofline_s": roofline_seconds(ops, peaks)}
        times = interleaved(programs, rounds, repeats)
        fused_rows.append({"stage": label, "costs": costs, "times": times,
                           "seconds": {k: float(np.median(v)) for k, v in times.items()}})
    kernel_rows = []
    for size, channels in depthwise_shapes:
        programs, costs = {}, {}
        for k in (3, 5, 7):
            spec = ConvSpec(channels, channels, k, groups=channels, act=None, norm=None)
            for shifts in (False, True):
                name = f"{k}x{k}{', shifts' if shifts else ''}"
                programs[name], ops = program(spec, size, channels, shifts)
                costs[name] = {"macs": sum(m for m, _ in ops), "bytes": sum(b for _, b in ops),
                               "roofline_s": roofline_seconds(ops, peaks)}
        times = interleaved(programs, rounds, repeats)
        kernel_rows.append({"shape": f"{size}x{size}x{channels}", "costs": costs, "times": times,
                            "seconds": {k: float(np.median(v)) for k, v in times.items()}})
    return {"fused": fused_rows, "depthwise_kernels": kernel_rows}

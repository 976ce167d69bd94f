"""The machine's two ceilings and the roofline estimate of a program.

``measure_peaks`` measures achievable compute ``P`` (a large float32 matrix product) and memory
bandwidth ``B`` (``y = x + 1`` over a large array). A program whose operations do ``m_i`` MACs
and move ``b_i`` bytes takes at least ``sum_i max(2 m_i / P, b_i / B)`` (``roofline_seconds``;
Williams, Waterman and Patterson 2009), each operation's input, weights and output moved once
(``op_traffic``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .harness import time_call

__all__ = ["measure_peaks", "matmul_flops", "op_traffic", "roofline_seconds", "traffic_and_macs"]


def matmul_flops(size: int, dtype, repeats: int) -> float:
    """FLOP/s of one ``size x size`` matrix product in ``dtype``: ``2 size^3 / median time``."""
    a = jnp.ones((size, size), dtype)
    return 2 * size ** 3 / time_call(jax.jit(lambda a: a @ a), a, repeats=repeats).median_s


def measure_peaks(size: int = 2048, megabytes: int = 256, repeats: int = 20) -> dict:
    """Achievable compute (a large float32 matmul) and memory bandwidth (``y = x + 1`` over a large array)."""
    flops = matmul_flops(size, jnp.float32, repeats)
    x = jnp.ones((megabytes * 2 ** 20 // 4,), jnp.float32)
    add = jax.jit(lambda x: x + 1.0)
    t2 = time_call(add, x, repeats=repeats)
    bandwidth = 2 * x.nbytes / t2.median_s  # read once, write once
    return {"peak_flops": flops, "peak_bandwidth": bandwidth, "matmul_size": size, "stream_bytes": int(x.nbytes)}


def op_traffic(result) -> list[tuple[int, int]]:
    """``(MACs, bytes)`` per costed operation of a counter result: input, weights and output moved once, float32."""
    return [(op.total_macs, 4 * op.calls * (math.prod(op.input_shape) + math.prod(op.kernel_shape)
                                            + math.prod(op.output_shape))) for op in result.ops]


def roofline_seconds(ops: list[tuple[int, int]], peaks: dict) -> float:
    """The roofline estimate of a program: ``sum max(2 MACs / P, bytes / B)`` over its operations."""
    return sum(max(2 * m / peaks["peak_flops"], b / peaks["peak_bandwidth"]) for m, b in ops)


def traffic_and_macs(model, resolution: int) -> tuple[int, int, list]:
    """``(MACs, bytes, op_traffic)`` of ``model`` on one ``resolution x resolution`` RGB image."""
    from ..counter import count

    result = count(model, jnp.zeros((1, resolution, resolution, 3)))
    ops = op_traffic(result)
    return result.macs, sum(b for _, b in ops), ops

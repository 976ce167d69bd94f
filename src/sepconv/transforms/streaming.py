"""Streaming: the same function computed a slice at a time, so that less of it is in memory at once.

``micro_batched(fn, size)`` computes a batch ``size`` images at a time, and ``cache_micro_batch`` picks
that size from the function's shapes and the CPU's cache; ``split_over_devices(fn, devices)`` gives each
device a share of the batch; ``streamed_inverted_residual`` computes an inverted residual block in slices
of its expanded channels (MobileNetV2 sec. 5.2).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from ..blocks import InvertedResidual, activation
from ..counting.dependence import dependents
from ..counting.values import nbytes, sub_jaxprs
from .batchnorm import batchnorm_affine

__all__ = ["micro_batched", "streamed_inverted_residual", "cache_micro_batch", "largest_activation_bytes",
           "last_level_cache_bytes", "CACHE_SHARE", "split_over_devices"]

#: The share of the last-level cache that one micro-batch's largest value may fill in ``cache_micro_batch``
#: (the rest holds what the same step reads beside it: a layer's input, its weights).
CACHE_SHARE = 0.5


def micro_batched(fn, size: int):
    """``fn(state, x)`` computed ``size`` images at a time in a ``lax.map`` loop, the results
    concatenated: the same numbers, with a working set of ``size`` images' activations, which on a
    CPU stays in cache where a whole batch's does not. ``x``'s batch must be a multiple of ``size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")

    def batched(state, x):
        if x.shape[0] % size:
            raise ValueError(f"a batch of {x.shape[0]} is not a multiple of the micro-batch {size}")
        if x.shape[0] == size:
            return fn(state, x)
        out = jax.lax.map(lambda chunk: fn(state, chunk), x.reshape(x.shape[0] // size, size, *x.shape[1:]))
        return jax.tree.map(lambda y: y.reshape(x.shape[0], *y.shape[2:]), out)

    return batched


def split_over_devices(fn, devices):
    """``(program, place)``: ``fn(state, x)`` jitted with ``x``'s batch split evenly over ``devices`` (one
    ``shard_map`` over a 1-D mesh, each device computing ``fn`` on its share) and ``state`` the same on every
    device: data parallelism, the same numbers image by image. ``place(state, x)`` puts the arguments where the
    program reads them (a call on arguments placed elsewhere copies them first). On a CPU given one JAX
    device per core (``jax_num_cpu_devices``), each core runs its share alone instead of every step being
    split between the cores."""
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from ..compat import shard_map

    mesh = Mesh(np.asarray(devices), ("batch",))
    whole, split = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("batch"))
    program = jax.jit(shard_map(fn, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec("batch")),
                                out_specs=PartitionSpec("batch")))

    def place(state, x):
        if x.shape[0] % len(devices):
            raise ValueError(f"a batch of {x.shape[0]} does not split evenly over {len(devices)} devices")
        return jax.device_put(state, whole), jax.device_put(x, split)

    return program, place


def largest_activation_bytes(fn, state, x) -> int:
    """The bytes of the largest value ``fn(state, x)`` computes from ``x``: the largest output of any
    equation of its jaxpr, calls' bodies included, that depends on ``x`` (``counting.dependence``), such as
    a shifted depthwise layer's padded input or an expanded tensor. Weights, however large, do not count:
    they do not grow with the batch."""
    closed = jax.make_jaxpr(fn)(state, x)
    data = dependents(closed.jaxpr, set(closed.jaxpr.invars[-1:]))

    def largest(jaxpr) -> int:
        return max([0, *(nbytes(v.aval) for eqn in jaxpr.eqns for v in eqn.outvars if v in data),
                    *(largest(sub) for eqn in jaxpr.eqns for sub in sub_jaxprs(eqn))])

    return largest(closed.jaxpr)


def last_level_cache_bytes(cpu: Path = Path("/sys/devices/system/cpu/cpu0")) -> int | None:
    """The size of the CPU's last-level (highest level) cache as Linux describes it under ``cpu``
    (``cache/index*/level`` and ``size``, as ``32768K``), or ``None`` where it does not."""
    caches = []
    for index in Path(cpu, "cache").glob("index*"):
        try:
            level, size = (index / "level").read_text().strip(), (index / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        scale = units.get(size[-1:].upper(), 1)
        digits = size[:-1] if size[-1:].upper() in units else size
        if level.isdigit() and digits.isdigit():
            caches.append((int(level), int(digits) * scale))
    return max(caches)[1] if caches else None


def cache_micro_batch(fn, state, x, cache_bytes: int | None = None) -> int:
    """The micro-batch for ``micro_batched(fn, size)`` on ``x``: the largest divisor ``m`` of ``x``'s batch
    whose largest activation (``largest_activation_bytes`` of ``fn`` on one image, times ``m``) fills at most
    ``CACHE_SHARE`` of ``cache_bytes`` (default: ``last_level_cache_bytes()``; without one, the whole batch);
    at least 1. ``x`` is one array (or its ``jax.ShapeDtypeStruct``: only shapes are read), images along its
    first axis. On the recording machine (32 MiB) it gives
    MobileNet v2 and EfficientNet-B0 under ``fast_inference``, whose largest activation is the padded input
    of a stride-2 depthwise layer, 113x113x96 (4.9 MB), 2 images, and MobileNet v1 and MobileNetV3-Large
    (113x113x64, 3.3 MB) 4. Measured there at batch 32 (5 interleaved rounds), 8 images at a time were
    slower than 2 and 4 for all four networks, 4 faster than 2 for v1 and V3-Large, 2 faster than 4 for v2."""
    cache_bytes = last_level_cache_bytes() if cache_bytes is None else cache_bytes
    batch = x.shape[0]
    if cache_bytes is None:
        return batch
    one = largest_activation_bytes(fn, state, jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype))
    fitting = [m for m in range(1, batch + 1) if batch % m == 0 and m * one <= CACHE_SHARE * cache_bytes]
    return max(fitting, default=1)


def streamed_inverted_residual(block: InvertedResidual, splits: int):
    """A function computing ``block`` (eval mode) in ``splits`` slices of its expanded channels (sec. 5.2).

    ``y = BN(sum_i P_i relu6(BN(DW_i relu6(BN(E_i x)))))`` (+ x): BatchNorm, ReLU6 and the depthwise
    convolution act on each channel alone, so slice ``i`` of the expansion can be expanded, filtered and
    projected on its own, and the projections summed. The slices run as a ``lax.scan``: one loop body,
    so the compiled program holds one slice of the expanded tensor at a time. (Written as a Python
    loop, the slices are unrolled into one program that XLA is free to schedule at once.)
    """
    if block.conv_pw is None:
        raise ValueError("a block without expansion (t = 1) has nothing to stream")
    expanded = block.conv_dw.conv.kernel.shape[-1]
    if not 1 <= splits <= expanded or expanded % splits:
        raise ValueError(f"splits must divide the {expanded} expanded channels, got {splits}")
    k = expanded // splits
    stride = block.conv_dw.conv.strides
    stride = stride if isinstance(stride, int) else stride[0]
    kernel = block.conv_dw.conv.kernel.shape[0]
    dn = ("NHWC", "HWIO", "NHWC")
    act_e, act_d = activation(block.conv_pw.act), activation(block.conv_dw.act)
    s_e, b_e = batchnorm_affine(block.conv_pw.bn)
    s_d, b_d = batchnorm_affine(block.conv_dw.bn)
    s_p, b_p = batchnorm_affine(block.conv_pwl.bn)
    w_e, w_d, w_p = (block.conv_pw.conv.kernel[...], block.conv_dw.conv.kernel[...], block.conv_pwl.conv.kernel[...])
    # slice i takes expanded channels i*k ... (i+1)*k - 1 of every weight
    slices = (w_e.reshape(1, 1, -1, splits, k).transpose(3, 0, 1, 2, 4), s_e.reshape(splits, k), b_e.reshape(splits, k),
              w_d.reshape(kernel, kernel, 1, splits, k).transpose(3, 0, 1, 2, 4), s_d.reshape(splits, k),
              b_d.reshape(splits, k), w_p.reshape(1, 1, splits, k, -1).transpose(2, 0, 1, 3, 4))
    padding = block.conv_dw.conv.padding

    def forward(x):
        out = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
        total = jnp.zeros((x.shape[0], *out, w_p.shape[-1]), x.dtype)

        def one_slice(total, weights):
            we, se, be, wd, sd, bd, wp = weights
            e = act_e(jax.lax.conv_general_dilated(x, we, (1, 1), "SAME", dimension_numbers=dn) * se + be)
            d = act_d(jax.lax.conv_general_dilated(e, wd, (stride, stride), padding, dimension_numbers=dn,
                                                   feature_group_count=k) * sd + bd)
            return total + jax.lax.conv_general_dilated(d, wp, (1, 1), "SAME", dimension_numbers=dn), None

        total, _ = jax.lax.scan(one_slice, total, slices)
        y = total * s_p + b_p
        return x + y if block.has_skip else y

    return forward

"""A convolution's windows in the channels-last layout ``(N, *spatial, C)``: the padding, the output size and
the input values each tap of the kernel meets, for the rewrites that compute a convolution tap by tap
(``shifts``: depthwise layers; ``fast_inference``: a stem by broadcast multiply-adds or im2col).

For a kernel of ``K_i`` taps along spatial axis ``i`` with stride ``s_i``, dilation ``d_i`` and padding
``(lo_i, hi_i)``, the output has ``floor((n_i + lo_i + hi_i - (K_i - 1) d_i - 1) / s_i) + 1`` positions, and tap
``o`` meets the padded input at ``o_i d_i + s_i j_i`` for output position ``j``.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
from jax import lax

__all__ = ["pad_spatial", "output_size", "window_slice", "kernel_offsets"]


def pad_spatial(x, padding):
    """``x`` padded with zeros on its spatial axes (negative padding crops)."""
    return lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *[(lo, hi, 0) for lo, hi in padding], (0, 0, 0)])


def output_size(x, kernel, strides, padding, dilation) -> tuple[list, list]:
    """``(padded, out_size)``: the spatial sizes of ``x`` once padded and of the output (module docstring);
    a ``ValueError`` naming the sizes where the kernel does not fit."""
    padded = [x.shape[1 + i] + lo + hi for i, (lo, hi) in enumerate(padding)]
    out_size = [(padded[i] - (kernel[i] - 1) * dilation[i] - 1) // strides[i] + 1 for i in range(len(kernel))]
    if min(out_size) < 1:
        raise ValueError(f"kernel {list(kernel)} with dilation {tuple(dilation)} does not fit the padded input "
                         f"{tuple([x.shape[0], *padded, x.shape[-1]])}")
    return padded, out_size


def kernel_offsets(kernel):
    """Every tap of a kernel of spatial shape ``kernel``, as an index tuple, in row-major order."""
    return itertools.product(*(range(k) for k in kernel))


def window_slice(xp, offset, out_size, strides, dilation):
    """The input values tap ``offset`` of the kernel meets at every output position: a strided slice of the
    padded input ``xp``."""
    start = [0] + [o * d for o, d in zip(offset, dilation)] + [0]
    limit = [xp.shape[0]] + [st + (n - 1) * s + 1 for st, n, s in zip(start[1:], out_size, strides)] + [xp.shape[-1]]
    return lax.slice(xp, start, limit, [1, *strides, 1])

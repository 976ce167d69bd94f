"""Plotting helpers used by the chapters (matplotlib, deterministic output)."""

from __future__ import annotations

from typing import Sequence

import matplotlib

from .cost import separable_ratio

__all__ = ["plot_separable_ratio"]


def plot_separable_ratio(ax: "matplotlib.axes.Axes", channels: Sequence[int],
                         kernels: Sequence[int] = (3, 5, 7)) -> "matplotlib.axes.Axes":
    """Plot ``1/N + 1/K^2`` against the number of output channels ``N``, one line per kernel size ``K``."""
    for k in kernels:
        ax.plot(channels, [float(separable_ratio(n, k)) for n in channels], marker="o", markersize=3,
                label=f"$D_K = {k}$ (floor $1/{k * k}$)")
        ax.axhline(1 / (k * k), color=ax.lines[-1].get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("output channels $N$")
    ax.set_ylabel("separable / standard MACs")
    ax.set_title("Cost ratio $1/N + 1/D_K^2$")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return ax

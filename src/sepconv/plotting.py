"""Plotting helpers used by the chapters (matplotlib, deterministic output)."""

from __future__ import annotations

from typing import Sequence

import matplotlib

from .cost import separable_ratio

__all__ = ["use_book_style", "plot_separable_ratio", "plot_cost_curves", "plot_accuracy_vs_macs"]

#: Sizes that stay legible when a figure is scaled to the page's width (about 750 pixels).
BOOK_STYLE = {"figure.dpi": 100, "figure.figsize": (7.0, 4.2), "font.size": 12, "axes.titlesize": 12,
              "axes.labelsize": 12, "legend.fontsize": 10, "xtick.labelsize": 11, "ytick.labelsize": 11}


def use_book_style() -> None:
    """Set matplotlib's sizes for the book: figures at most about 800 pixels wide, 10-12 point text."""
    matplotlib.rcParams.update(BOOK_STYLE)


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


def plot_cost_curves(axes, xs: Sequence[float], macs: Sequence[int], params: Sequence[int], xlabel: str,
                     marks: Sequence[float] = ()) -> None:
    """Two panels: MACs (millions) and parameters (millions) against ``xs``; ``marks`` are the tabled points."""
    ax_macs, ax_params = axes
    for ax, values, label in ((ax_macs, macs, "MACs (millions)"), (ax_params, params, "parameters (millions)")):
        ax.plot(xs, [v / 1e6 for v in values], marker=".", markersize=4)
        for m in marks:
            ax.axvline(m, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)


def plot_accuracy_vs_macs(ax, points: Sequence[dict], label_key: str = "label") -> None:
    """Published top-1 accuracy against MACs on a log axis; each point dict has ``macs``, ``top1``, ``group`` and a label."""
    groups = {}
    for p in points:
        groups.setdefault(p["group"], []).append(p)
    for group, ps in groups.items():
        ps = sorted(ps, key=lambda p: p["macs"])
        ax.plot([p["macs"] / 1e6 for p in ps], [p["top1"] for p in ps], marker="o", linestyle="-" if len(ps) > 1 else "",
                label=group)
        for p in ps:
            ax.annotate(p[label_key], (p["macs"] / 1e6, p["top1"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("MACs (millions, log scale; computed)")
    ax.set_ylabel("ImageNet top-1 (%) (published)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()

"""Diagrams of chapter 10 (MobileNetV4), drawn with the helpers of ``sepconv.diagrams``."""

from __future__ import annotations

from .diagrams import COLORS, FONT, _figure, _flow, _skip

__all__ = ["uib_forms"]


def uib_forms(c: int = 64, t: int = 4):
    """The Universal Inverted Bottleneck's four forms side by side: ExtraDW, IB, ConvNeXt-like, FFN."""
    wide = t * c
    fig, ax = _figure(13.0, 5.6, f"Four columns, one per form of the Universal Inverted Bottleneck with {c} channels "
                                 f"expanded {t} times. ExtraDW: depthwise, 1x1 expansion to {wide}, depthwise, 1x1 "
                                 f"projection to {c}. IB: 1x1 expansion, depthwise, 1x1 projection. ConvNeXt-like: "
                                 f"depthwise, 1x1 expansion, 1x1 projection. FFN: 1x1 expansion, 1x1 projection. "
                                 f"Every form adds its input to its output.")
    ax.set_xlim(0, 16.4)
    ax.set_ylim(-6.2, 1.2)
    start = ("k1xk1 depthwise", 2.4, COLORS["dw"])
    mid = ("k2xk2 depthwise", 2.4, COLORS["dw"])
    expand = (f"1x1 -> {wide}", 3.0, COLORS["pw"])
    project = (f"1x1 -> {c}", 1.6, COLORS["linear"], "//")
    skipped = ("(no depthwise)", 2.4, "white")
    forms = {"ExtraDW": (start, mid), "IB (MobileNetV2)": (skipped, mid), "ConvNeXt-like": (start, skipped),
             "FFN": (skipped, skipped)}
    for i, (title, (first, second)) in enumerate(forms.items()):
        x = 2.0 + 4.1 * i
        steps = [(f"input, {c}", 1.6, COLORS["input"]), first, expand, second, project, (f"output, {c}", 1.6,
                                                                                        COLORS["out"])]
        centres = _flow(ax, x, steps, gap=1.1)
        _skip(ax, centres[0], centres[-1], x + 1.75)
        ax.text(x, 0.75, title, ha="center", fontsize=FONT + 1, weight="bold")
    return fig

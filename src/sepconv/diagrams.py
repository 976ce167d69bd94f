"""Explanatory diagrams of the book, drawn with matplotlib from the same numbers the text uses.

Every function returns a ``matplotlib.figure.Figure`` (and sets its ``alt`` text on
``figure.alt``, which the chapters pass to the page). Two drawing helpers do most of the work:
``_cuboid`` draws a tensor as an oblique box (height x width x channels), ``_flow`` a block as a
column of operations with arrows, box widths proportional to channel counts.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Polygon, Rectangle

__all__ = ["conv_filters", "separable_factorization", "gemm_view", "residual_vs_inverted", "fire_module",
           "channel_shuffle_diagram", "shufflenet_units", "squeeze_excitation", "roofline_diagram", "mbconv_blocks",
           "convnext_block", "quantization_grids"]

FONT = 12
COLORS = {"input": "#9ecae1", "dw": "#fdae6b", "pw": "#a1d99b", "std": "#bcbddc", "out": "#c7e9c0", "norm": "#eeeeee",
          "linear": "#fee391", "se": "#fcbba1", "pool": "#d9d9d9", "group": ["#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc"]}


def _figure(width: float, height: float, alt: str):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_axis_off()
    fig.alt = alt
    return fig, ax


def _cuboid(ax, x, y, w, h, d, color, label=None, below=None, edge="#333333", alpha=1.0):
    """A box of width ``w`` (tensor width), height ``h`` and depth ``d`` (channels) drawn obliquely at (x, y)."""
    dx, dy = 0.5 * d, 0.35 * d
    front = Rectangle((x, y), w, h, facecolor=color, edgecolor=edge, alpha=alpha, lw=1)
    top = Polygon([(x, y + h), (x + dx, y + h + dy), (x + w + dx, y + h + dy), (x + w, y + h)], closed=True,
                  facecolor=color, edgecolor=edge, alpha=alpha * 0.8, lw=1)
    side = Polygon([(x + w, y), (x + w + dx, y + dy), (x + w + dx, y + h + dy), (x + w, y + h)], closed=True,
                   facecolor=color, edgecolor=edge, alpha=alpha * 0.6, lw=1)
    for patch in (front, top, side):
        ax.add_patch(patch)
    if label:
        ax.text(x + w / 2 + dx / 2, y + h + dy + 0.15, label, ha="center", va="bottom", fontsize=FONT)
    if below:
        ax.text(x + w / 2, y - 0.15, below, ha="center", va="top", fontsize=FONT - 1)


def _arrow(ax, start, end, text=None, color="#333333", style="-|>", offset=(0, 0.12)):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=color, lw=1.4,
                                 shrinkA=2, shrinkB=2))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, ha="center",
                va="bottom", fontsize=FONT - 1)


def _box(ax, cx, cy, width, label, color, height=0.55, hatch=None):
    ax.add_patch(Rectangle((cx - width / 2, cy - height / 2), width, height, facecolor=color, edgecolor="#333333",
                           lw=1, hatch=hatch))
    ax.text(cx, cy, label, ha="center", va="center", fontsize=FONT)


def _flow(ax, cx, steps, top=0.0, gap=0.95, scale=1.0):
    """Draw ``steps`` (label, width, color[, hatch]) downwards from ``top``; return ``(x, y, half width)`` of
    each box. A box is never narrower than its label."""
    centres = []
    for i, step in enumerate(steps):
        label, width, color = step[:3]
        hatch = step[3] if len(step) > 3 else None
        cy = top - i * gap
        width = max(width * scale, 0.14 * len(label) + 0.3)
        _box(ax, cx, cy, width, label, color, hatch=hatch)
        if centres:
            _arrow(ax, (cx, centres[-1][1] - 0.28), (cx, cy + 0.28))
        centres.append((cx, cy, width / 2))
    return centres


def _skip(ax, start, end, x, text="+"):
    """A residual connection from box ``start`` to box ``end`` (``_flow``'s tuples) along the vertical line ``x``."""
    ax.add_patch(FancyArrowPatch((start[0] + start[2], start[1]), (x, start[1]), arrowstyle="-", lw=1.3,
                                 color="#d62728"))
    ax.add_patch(FancyArrowPatch((x, start[1]), (x, end[1]), arrowstyle="-", lw=1.3, color="#d62728"))
    ax.add_patch(FancyArrowPatch((x, end[1]), (end[0] + end[2], end[1]), arrowstyle="-|>",
                                 mutation_scale=14, lw=1.3, color="#d62728"))
    ax.text(x, (start[1] + end[1]) / 2, text, color="#d62728", fontsize=FONT + 2, ha="center", va="center",
            bbox=dict(facecolor="white", edgecolor="none", pad=1))


def conv_filters(m: int = 4, n: int = 3, k: int = 3):
    """Standard, depthwise and pointwise convolution: what each filter sees."""
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    fig.alt = (f"Three panels. Standard convolution: each of {n} filters is {k}x{k}x{m} and sees every input channel. "
               f"Depthwise: {m} filters of {k}x{k}x1, each sees one channel. Pointwise: {n} filters of 1x1x{m}.")
    titles = ("standard: N filters of $D_K \\times D_K \\times M$", "depthwise: M filters of $D_K \\times D_K \\times 1$",
              "pointwise: N filters of $1 \\times 1 \\times M$")
    for ax, title in zip(axes, titles):
        ax.set_axis_off()
        ax.set_xlim(-0.5, 9)
        ax.set_ylim(-1.6, 6.2)
        ax.set_title(title, fontsize=FONT)
        for c in range(m):  # the input, one slice per channel
            _cuboid(ax, 0.3 * c, 0.25 * c, 2.6, 2.6, 0.3, COLORS["group"][c % 4])
        ax.text(1.6, -0.45, f"input, $M = {m}$ channels", ha="center", va="top", fontsize=FONT - 1)
    # standard: each filter spans all channels
    for j in range(n):
        x = 5.4 + 0.0 * j
        y = 3.7 - 1.6 * j
        for c in range(m):
            _cuboid(axes[0], x + 0.2 * c, y + 0.15 * c, 0.9, 0.9, 0.2, COLORS["group"][c % 4])
        axes[0].text(x + 2.0, y + 0.5, f"filter {j + 1}", fontsize=FONT - 1, va="center")
    # depthwise: one thin filter per channel
    for c in range(m):
        x, y = 5.2, 4.2 - 1.25 * c
        _cuboid(axes[1], x, y, 0.9, 0.9, 0.2, COLORS["group"][c % 4])
        axes[1].text(x + 1.3, y + 0.45, f"channel {c + 1} only", fontsize=FONT - 1, va="center")
    # pointwise: 1x1 columns through all channels
    for j in range(n):
        x, y = 5.6, 3.9 - 1.5 * j
        for c in range(m):
            _cuboid(axes[2], x + 0.2 * c, y + 0.15 * c, 0.35, 0.35, 0.2, COLORS["group"][c % 4])
        axes[2].text(x + 1.5, y + 0.3, f"filter {j + 1}", fontsize=FONT - 1, va="center")
    fig.tight_layout()
    return fig


def separable_factorization(d_f: int = 14, m: int = 512, n: int = 512, k: int = 3):
    """The pipeline input -> depthwise -> pointwise beside one standard convolution, with the MACs of each."""
    from .cost import depthwise_conv_cost, pointwise_conv_cost, standard_conv_cost

    std = standard_conv_cost(d_f, d_f, m, n, k).macs
    dw = depthwise_conv_cost(d_f, d_f, m, k).macs
    pw = pointwise_conv_cost(d_f, d_f, m, n).macs
    fig, ax = _figure(8.5, 3.6, f"A {d_f}x{d_f}x{m} input becomes {d_f}x{d_f}x{n} either by one standard {k}x{k} "
                               f"convolution ({std:,} MACs) or by a depthwise {k}x{k} convolution ({dw:,} MACs) "
                               f"followed by a pointwise 1x1 convolution ({pw:,} MACs).")
    ax.set_xlim(0, 15)
    ax.set_ylim(-0.6, 7.2)
    _cuboid(ax, 0.3, 2.0, 2.2, 2.2, 2.0, COLORS["input"], below=f"${d_f}\\times{d_f}\\times{m}$")
    _cuboid(ax, 6.0, 0.2, 2.2, 2.2, 2.0, COLORS["dw"], below=f"${d_f}\\times{d_f}\\times{m}$")
    _cuboid(ax, 11.8, 2.0, 2.2, 2.2, 2.0, COLORS["out"], below=f"${d_f}\\times{d_f}\\times{n}$")
    _arrow(ax, (3.6, 4.9), (11.6, 4.9), f"standard {k}x{k}: {std / 1e6:.1f}M MACs", offset=(0, 0.15))
    _arrow(ax, (3.6, 2.4), (5.8, 1.6))
    ax.text(4.4, 0.9, f"depthwise {k}x{k}\n{dw / 1e6:.2f}M MACs", ha="center", va="top", fontsize=FONT - 1)
    _arrow(ax, (9.3, 1.6), (11.6, 2.4))
    ax.text(10.6, 0.9, f"pointwise 1x1\n{pw / 1e6:.1f}M MACs", ha="center", va="top", fontsize=FONT - 1)
    ax.text(7.5, 6.6, f"ratio $1/N + 1/D_K^2$ = {(dw + pw) / std:.4f}", ha="center", fontsize=FONT + 1)
    return fig


def gemm_view(k: int = 3, c: int = 4):
    """im2col: a KxK convolution as one matrix product whose left matrix repeats each input value K^2 times."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8), gridspec_kw=dict(width_ratios=[1, 1.4, 1.2]))
    fig.alt = (f"Left: a {k}x{k} convolution reads a {k}x{k}x{c} patch per output pixel. Middle: im2col copies every "
               f"patch into one row of a matrix with {k * k * c} columns, so each input value appears up to {k * k} "
               f"times; multiplied by a {k * k * c} x N weight matrix it gives all outputs. Right: a 1x1 convolution "
               f"needs no copy (rows = pixels, columns = channels), while a depthwise convolution is C separate "
               f"products of one column each, not one large matrix product.")
    for ax in axes:
        ax.set_axis_off()
    a, b, r = axes
    a.set_xlim(-0.2, 6)
    a.set_ylim(-0.6, 6)
    for i in range(6):
        for j in range(6):
            a.add_patch(Rectangle((j * 0.8, 4.6 - i * 0.8), 0.8, 0.8, facecolor="white", edgecolor="#999999", lw=0.6))
    for i, j, color in ((1, 1, COLORS["dw"]), (1, 2, COLORS["pw"])):
        a.add_patch(Rectangle(((j - 1) * 0.8, 4.6 - (i + 1) * 0.8), 2.4, 2.4, facecolor=color, alpha=0.55,
                              edgecolor="#333333", lw=1.2))
    a.set_title(f"{k}x{k} windows\noverlap", fontsize=FONT)
    b.set_xlim(0, 10)
    b.set_ylim(-1.0, 6)
    b.add_patch(Rectangle((0.3, 0.6), 5.4, 4.6, facecolor="white", edgecolor="#333333"))
    for row, color in ((0, COLORS["dw"]), (1, COLORS["pw"])):
        b.add_patch(Rectangle((0.3, 4.6 - row * 0.5), 5.4, 0.5, facecolor=color, alpha=0.6, edgecolor="#333333"))
    b.text(3.0, 0.45, f"rows: output pixels\ncolumns: {k * k} x {c} taps", ha="center", va="top", fontsize=FONT - 1)
    b.text(6.2, 2.9, "x", fontsize=FONT + 4, va="center")
    b.add_patch(Rectangle((6.8, 0.6), 2.2, 4.6, facecolor=COLORS["std"], edgecolor="#333333"))
    b.text(7.9, 0.45, "weights", ha="center", va="top", fontsize=FONT - 1)
    b.set_title(f"im2col: one matrix product,\ninputs copied up to {k * k} times", fontsize=FONT)
    r.set_xlim(0, 6)
    r.set_ylim(-0.6, 6)
    r.add_patch(Rectangle((0.2, 3.2), 2.2, 2.0, facecolor=COLORS["input"], edgecolor="#333333"))
    r.text(2.75, 4.2, "x", fontsize=FONT + 2, va="center")
    r.add_patch(Rectangle((3.1, 3.2), 1.6, 2.0, facecolor=COLORS["pw"], edgecolor="#333333"))
    r.text(2.5, 2.7, "1x1: pixels x channels, no copy", ha="center", fontsize=FONT - 1)
    for i in range(c):
        r.add_patch(Rectangle((0.3 + i * 1.3, 0.6), 0.35, 1.5, facecolor=COLORS["group"][i % 4], edgecolor="#333333"))
        r.add_patch(Rectangle((0.7 + i * 1.3, 1.2), 0.35, 0.35, facecolor=COLORS["dw"], edgecolor="#333333"))
    r.text(2.7, 0.1, "depthwise: C tiny products, one per channel", ha="center", fontsize=FONT - 1)
    r.set_title("1x1 vs\ndepthwise", fontsize=FONT)
    fig.tight_layout()
    return fig


def residual_vs_inverted(wide: int = 144, thin: int = 24):
    """A ResNet bottleneck (wide -> thin -> wide) beside MobileNetV2's inverted residual (thin -> wide -> thin)."""
    fig, ax = _figure(8.5, 4.6, f"Left, a residual bottleneck: {wide} channels are squeezed to {thin} by a 1x1 "
                               f"convolution, filtered by a 3x3 convolution and expanded back to {wide}; the shortcut "
                               f"joins the wide tensors. Right, an inverted residual: {thin} channels are expanded to "
                               f"{wide}, filtered depthwise, and projected back to {thin} by a linear 1x1 convolution "
                               f"(no ReLU); the shortcut joins the thin tensors.")
    ax.set_xlim(0, 12)
    ax.set_ylim(-4.5, 1.2)
    s = 2.8 / wide
    left = _flow(ax, 3.0, [(f"input, {wide} ch", wide * s, COLORS["input"]), (f"1x1, ReLU -> {thin}", thin * s * 3, COLORS["pw"]),
                           (f"3x3, ReLU, {thin}", thin * s * 3, COLORS["std"]), (f"1x1 -> {wide}", wide * s, COLORS["pw"]),
                           (f"output, {wide} ch", wide * s, COLORS["out"])])
    _skip(ax, left[0], left[-1], 5.0)
    right = _flow(ax, 8.6, [(f"input, {thin} ch", thin * s * 3, COLORS["input"]), (f"1x1, ReLU6 -> {wide}", wide * s, COLORS["pw"]),
                            (f"3x3 depthwise, ReLU6", wide * s, COLORS["dw"]),
                            (f"1x1 linear -> {thin}", thin * s * 3, COLORS["linear"], "//"),
                            (f"output, {thin} ch", thin * s * 3, COLORS["out"])])
    _skip(ax, right[0], right[-1], 10.6)
    ax.text(3.0, 0.85, "residual (ResNet)", ha="center", fontsize=FONT + 1, weight="bold")
    ax.text(8.6, 0.85, "inverted residual (MobileNetV2)", ha="center", fontsize=FONT + 1, weight="bold")
    ax.text(8.6, -4.35, "hatched: linear bottleneck, no non-linearity", ha="center", fontsize=FONT - 1)
    return fig


def fire_module(squeeze: int = 16, e1: int = 64, e3: int = 64):
    """SqueezeNet's fire module: a 1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated."""
    fig, ax = _figure(7, 3.8, f"Fire module: the input is squeezed to {squeeze} channels by a 1x1 convolution, then "
                              f"expanded in parallel by {e1} 1x1 and {e3} 3x3 filters whose outputs are concatenated "
                              f"to {e1 + e3} channels.")
    ax.set_xlim(0, 8)
    ax.set_ylim(-3.6, 0.8)
    top = _flow(ax, 4, [("input", 3.0, COLORS["input"]), (f"squeeze 1x1 -> {squeeze}, ReLU", 3.0, COLORS["pw"])])
    _box(ax, 2.2, -2.0, 2.8, f"expand 1x1 -> {e1}", COLORS["pw"])
    _box(ax, 5.8, -2.0, 2.8, f"expand 3x3 -> {e3}", COLORS["std"])
    _arrow(ax, (4, top[-1][1] - 0.28), (2.2, -1.72))
    _arrow(ax, (4, top[-1][1] - 0.28), (5.8, -1.72))
    _box(ax, 4, -3.2, 3.4, f"concatenate: {e1 + e3} channels", COLORS["out"])
    _arrow(ax, (2.2, -2.28), (3.4, -2.92))
    _arrow(ax, (5.8, -2.28), (4.6, -2.92))
    return fig


def channel_shuffle_diagram(groups: int = 3, per_group: int = 4):
    """Channel shuffle: after a grouped layer, interleave the groups so each next group sees all of them."""
    c = groups * per_group
    fig, ax = _figure(8, 2.4, f"{c} channels in {groups} groups of {per_group}, coloured by group, are reshaped to "
                               f"({groups}, {per_group}), transposed and flattened: afterwards every run of {groups} "
                               f"consecutive channels holds one channel of each group.")
    ax.set_xlim(-1.6, c + 0.5)
    ax.set_ylim(-0.4, 2.6)
    order = [g * per_group + i for i in range(per_group) for g in range(groups)]
    for row, (y, channels, label) in enumerate(((1.6, list(range(c)), "before"), (0.0, order, "after shuffle"))):
        ax.text(-0.3, y + 0.35, label, ha="right", va="center", fontsize=FONT)
        for pos, ch in enumerate(channels):
            ax.add_patch(Rectangle((pos, y), 0.9, 0.7, facecolor=COLORS["group"][ch // per_group], edgecolor="#333333"))
            ax.text(pos + 0.45, y + 0.35, str(ch), ha="center", va="center", fontsize=FONT - 1)
    for pos, ch in enumerate(order):
        _arrow(ax, (ch + 0.45, 1.58), (pos + 0.45, 0.72), color="#777777")
    return fig


def shufflenet_units():
    """ShuffleNet v1's unit (grouped 1x1, shuffle, depthwise, grouped 1x1), ShuffleNet v2's stride-1 split unit,
    and its stride-2 unit, where torchvision's convention and the authors' code give the branches different widths."""
    fig, ax = _figure(12.5, 5.6, "Left, a ShuffleNet v1 unit: grouped 1x1 convolution with ReLU, channel shuffle, 3x3 "
                                 "depthwise convolution, grouped 1x1 convolution, added to the input. Middle, a "
                                 "ShuffleNet v2 stride-1 unit: the channels are split in two, one half passes "
                                 "unchanged, the other goes through 1x1, 3x3 depthwise and 1x1 convolutions, the halves "
                                 "are concatenated and shuffled. Right, a ShuffleNet v2 stride-2 unit: both branches see "
                                 "the whole input of c_in channels; the left one is a 3x3 depthwise convolution with "
                                 "stride 2 and a 1x1 convolution, the right one 1x1, 3x3 depthwise with stride 2 and "
                                 "1x1; under torchvision's convention each branch outputs c_out/2 channels, in the "
                                 "authors' code the left branch keeps c_in channels and the right one outputs "
                                 "c_out - c_in. The two agree where c_out = 2 c_in.")
    ax.set_xlim(0, 18)
    ax.set_ylim(-6.2, 1.2)
    left = _flow(ax, 2.6, [("input", 2.6, COLORS["input"]), ("1x1 GConv, ReLU", 2.6, COLORS["pw"]),
                           ("channel shuffle", 2.6, COLORS["pool"]), ("3x3 DWConv", 2.6, COLORS["dw"]),
                           ("1x1 GConv", 2.6, COLORS["pw"]), ("add, ReLU", 2.6, COLORS["out"])])
    _skip(ax, left[0], left[-1], 4.5)
    ax.text(2.6, 0.85, "ShuffleNet v1 (stride 1)", ha="center", fontsize=FONT + 1, weight="bold")
    ax.text(8.0, 0.85, "ShuffleNet v2 (stride 1)", ha="center", fontsize=FONT + 1, weight="bold")
    _box(ax, 8.0, 0.0, 3.0, "channel split", COLORS["input"])
    branch = _flow(ax, 9.0, [("1x1 Conv, ReLU", 2.5, COLORS["pw"]), ("3x3 DWConv", 2.0, COLORS["dw"]),
                             ("1x1 Conv, ReLU", 2.5, COLORS["pw"])], top=-1.1)
    _arrow(ax, (8.8, -0.28), (9.0, -0.82))
    ax.add_patch(FancyArrowPatch((6.8, -0.28), (6.8, -4.0), arrowstyle="-|>", mutation_scale=14, lw=1.4, color="#333333"))
    ax.text(6.65, -2.1, "identity", rotation=90, ha="right", va="center", fontsize=FONT - 1)
    _box(ax, 8.0, -4.25, 3.0, "concat", COLORS["out"])
    _arrow(ax, (9.0, branch[-1][1] - 0.28), (8.6, -3.98))
    _box(ax, 8.0, -5.0, 3.0, "channel shuffle", COLORS["pool"])
    _arrow(ax, (8.0, -4.53), (8.0, -4.72))
    # stride 2: both branches see the whole input; the conventions differ in the branches' widths
    ax.text(14.6, 0.85, "ShuffleNet v2 (stride 2)", ha="center", fontsize=FONT + 1, weight="bold")
    _box(ax, 14.6, 0.0, 3.0, "input, c_in", COLORS["input"])
    lhs = _flow(ax, 12.9, [("3x3 DWConv, s2", 2.5, COLORS["dw"]), ("1x1 Conv, ReLU", 2.5, COLORS["pw"])], top=-1.1)
    rhs = _flow(ax, 16.3, [("1x1 Conv, ReLU", 2.5, COLORS["pw"]), ("3x3 DWConv, s2", 2.5, COLORS["dw"]),
                           ("1x1 Conv, ReLU", 2.5, COLORS["pw"])], top=-1.1)
    _arrow(ax, (14.0, -0.28), (12.9, -0.82))
    _arrow(ax, (15.2, -0.28), (16.3, -0.82))
    ax.text(12.9, lhs[-1][1] - 0.45, "out: c_out/2 (torchvision)\nc_in (authors)", ha="center", va="top",
            fontsize=FONT - 2, color="#08519c")
    ax.text(16.3, rhs[-1][1] - 0.35, "out: c_out/2 (torchvision)\nc_out - c_in (authors)", ha="center", va="top",
            fontsize=FONT - 2, color="#08519c")
    _box(ax, 14.6, -4.6, 3.0, "concat: c_out", COLORS["out"])
    _arrow(ax, (12.9, lhs[-1][1] - 1.15), (14.1, -4.32))
    _arrow(ax, (16.3, rhs[-1][1] - 1.05), (15.1, -4.32))
    _box(ax, 14.6, -5.35, 3.0, "channel shuffle", COLORS["pool"])
    _arrow(ax, (14.6, -4.88), (14.6, -5.07))
    return fig


def squeeze_excitation(channels: int = 72, squeeze: int = 24):
    """Squeeze-and-excitation: pool to a vector, two FC layers, a gate that rescales every channel."""
    fig, ax = _figure(8.5, 2.8, f"Squeeze-and-excitation: an H x W x {channels} tensor is averaged to a {channels}-vector, "
                              f"reduced to {squeeze} by a fully connected layer with ReLU, expanded back to {channels} "
                              f"with a (hard) sigmoid, and each channel of the tensor is multiplied by its gate value.")
    ax.set_xlim(0, 13)
    ax.set_ylim(-1.4, 2.4)
    _cuboid(ax, 0.2, 0.0, 1.6, 1.6, 1.2, COLORS["input"], below=f"H x W x {channels}")
    steps = [(3.8, "avg pool", COLORS["pool"]), (5.9, f"FC {squeeze}, ReLU", COLORS["se"]),
             (8.1, f"FC {channels}, gate", COLORS["se"])]
    prev = 2.5
    for x, label, color in steps:
        _box(ax, x, 0.8, 1.9, label, color)
        _arrow(ax, (prev, 0.8), (x - 0.95, 0.8))
        prev = x + 0.95
    _box(ax, 11.2, 0.8, 2.0, "x scale", COLORS["out"])
    _arrow(ax, (prev, 0.8), (10.2, 0.8))
    ax.add_patch(FancyArrowPatch((1.0, 2.0), (11.2, 2.0), connectionstyle="arc3,rad=-0.0", arrowstyle="-", lw=1.2,
                                 color="#d62728"))
    _arrow(ax, (11.2, 2.0), (11.2, 1.1), color="#d62728")
    return fig


def roofline_diagram(peak: float = 300e9, bandwidth: float = 10e9):
    """The roofline: attainable FLOP/s = min(peak, intensity x bandwidth), and where layer kinds sit on it."""
    import numpy as np

    ridge = peak / bandwidth
    fig, ax = plt.subplots(figsize=(7, 4.2))
    fig.alt = (f"Log-log plot of attainable GFLOP/s against arithmetic intensity: a slope of {bandwidth / 1e9:.0f} "
               f"GB/s until the ridge point at {ridge:.0f} FLOP/byte, then flat at {peak / 1e9:.0f} GFLOP/s. "
               "Depthwise 3x3 layers sit near 2 FLOP/byte, far left (memory bound); pointwise layers near C/4; "
               "standard 3x3 convolutions far right (compute bound).")
    intensity = np.logspace(-1, 3, 200)
    ax.plot(intensity, np.minimum(peak, intensity * bandwidth) / 1e9, "k-", lw=2)
    ax.axvline(ridge, color="grey", ls=":")
    ax.text(ridge * 1.1, peak / 1e9 * 0.35, f"ridge point\nP/B = {ridge:.0f} FLOP/byte", fontsize=FONT - 1)
    for x, label, color in ((2.2, "depthwise 3x3\n(~K²/4)", COLORS["dw"]), (32, "pointwise, C=128\n(~C/4)", COLORS["pw"]),
                            (240, "standard 3x3", COLORS["std"])):
        y = min(peak, x * bandwidth) / 1e9
        ax.plot([x], [y], "o", ms=10, color=color, markeredgecolor="#333333")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(8, -30), fontsize=FONT - 1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)", fontsize=FONT)
    ax.set_ylabel("attainable GFLOP/s", fontsize=FONT)
    ax.set_title("memory bound | compute bound", fontsize=FONT)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def mbconv_blocks():
    """MBConv (expand, depthwise, SE, project) beside Fused-MBConv (one KxK convolution, project)."""
    fig, ax = _figure(8.5, 4.8, "Left, MBConv: 1x1 expansion with SiLU, kxk depthwise with SiLU, squeeze-and-excitation, "
                               "linear 1x1 projection, plus the input. Right, Fused-MBConv: one kxk regular convolution "
                               "does the expansion and the spatial filtering, then the linear 1x1 projection, plus the "
                               "input.")
    ax.set_xlim(0, 12)
    ax.set_ylim(-5.5, 1.2)
    left = _flow(ax, 3.0, [("input, c", 1.2, COLORS["input"]), ("1x1 expand -> 6c, SiLU", 3.2, COLORS["pw"]),
                           ("kxk depthwise, SiLU", 3.2, COLORS["dw"]), ("squeeze-excite", 3.2, COLORS["se"]),
                           ("1x1 project -> c (linear)", 1.9, COLORS["linear"], "//"), ("output, c", 1.2, COLORS["out"])])
    _skip(ax, left[0], left[-1], 5.2)
    right = _flow(ax, 8.6, [("input, c", 1.2, COLORS["input"]), ("kxk conv -> 4c, SiLU", 3.2, COLORS["std"]),
                            ("1x1 project -> c (linear)", 1.9, COLORS["linear"], "//"), ("output, c", 1.2, COLORS["out"])],
                  gap=1.55)
    _skip(ax, right[0], right[-1], 10.8)
    ax.text(3.0, 0.85, "MBConv (EfficientNet)", ha="center", fontsize=FONT + 1, weight="bold")
    ax.text(8.6, 0.85, "Fused-MBConv (EfficientNetV2)", ha="center", fontsize=FONT + 1, weight="bold")
    return fig


def convnext_block(dim: int = 96):
    """A ConvNeXt block: 7x7 depthwise, LayerNorm, 1x1 expand x4, GELU, 1x1 project, layer scale, plus the input."""
    fig, ax = _figure(5.5, 5.0, f"ConvNeXt block with {dim} channels: 7x7 depthwise convolution, LayerNorm, 1x1 "
                              f"expansion to {4 * dim} channels, GELU, 1x1 projection back to {dim}, layer scale, "
                              f"added to the input.")
    ax.set_xlim(0, 7)
    ax.set_ylim(-6.4, 1.0)
    centres = _flow(ax, 3.0, [(f"input, {dim}", 1.6, COLORS["input"]), ("7x7 depthwise", 1.6, COLORS["dw"]),
                              ("LayerNorm", 1.6, COLORS["norm"]), (f"1x1 -> {4 * dim}, GELU", 3.6, COLORS["pw"]),
                              (f"1x1 -> {dim}", 1.6, COLORS["pw"]), ("layer scale", 1.6, COLORS["norm"]),
                              (f"output, {dim}", 1.6, COLORS["out"])], gap=0.97)
    _skip(ax, centres[0], centres[-1], 5.6)
    return fig


def quantization_grids(bits: int = 4, sizes=(1.0, 0.5, 0.25), seed: int = 3):
    """The weights of three depthwise channels (9 weights each, largest magnitudes ``sizes``) on a
    symmetric grid of ``bits`` bits: one scale for the tensor (left) or one per channel (right)."""
    import numpy as np

    levels = 2 ** (bits - 1) - 1
    rng = np.random.default_rng(seed)
    channels = []
    for size in sizes:
        w = rng.uniform(-1, 1, 9)
        channels.append(w / np.abs(w).max() * size)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    used = {}
    for ax, per in zip(axes, ("tensor", "channel")):
        for row, w in enumerate(channels):
            scale = (max(sizes) if per == "tensor" else np.abs(w).max()) / levels
            grid = np.arange(-levels, levels + 1) * scale
            q = np.clip(np.round(w / scale), -levels, levels) * scale
            used[per, row] = int(np.sum(np.abs(grid) <= np.abs(w).max() + 1e-12))
            y = len(channels) - 1 - row
            ax.plot([-1.05, 1.05], [y, y], color="#bbbbbb", lw=1)
            ax.plot(grid, [y] * len(grid), "|", color="#555555", ms=12)
            ax.plot(w, [y + 0.18] * len(w), "o", mfc="none", mec=COLORS["dw"], ms=6)
            ax.plot(q, [y - 0.18] * len(q), "o", color="#d95f0e", ms=6)
            ax.text(1.1, y, f"{used[per, row]} levels\nspan it", va="center", fontsize=FONT - 1)
        ax.set_title(f"one scale per {per}", fontsize=FONT)
        ax.set_xlim(-1.1, 1.45)
        ax.set_xlabel("weight value", fontsize=FONT)
        ax.set_yticks(range(len(channels)))
        ax.set_yticklabels([f"channel, max {s:g}" for s in reversed(sizes)], fontsize=FONT - 1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    fig.suptitle(f"{bits}-bit weights of a depthwise layer: open circles the weights, filled the rounded values",
                 fontsize=FONT - 1)
    fig.alt = (f"Two panels of number lines, one line per channel of a depthwise layer with 9 weights each, the "
               f"channels' largest weights {', '.join(f'{s:g}' for s in sizes)}. Tick marks are the {2 * levels + 1} "
               f"levels of a {bits}-bit grid. With one scale for the tensor only {used['tensor', len(sizes) - 1]} levels "
               f"span the smallest channel's range; with one scale per channel every channel spans all "
               f"{used['channel', len(sizes) - 1]}.")
    fig.tight_layout()
    return fig


def reparameterized_block(branches: int = 2):
    """A MobileOne block at train time (``branches`` 3x3 conv + BN branches, a 1x1 conv + BN branch and a
    BatchNorm identity branch, summed, then ReLU) beside the one 3x3 convolution it is deployed as."""
    fig, ax = _figure(10.0, 4.6, f"Left, the train-time block: the input feeds {branches} branches of a 3x3 "
                                f"convolution with BatchNorm, one branch of a 1x1 convolution with BatchNorm and an "
                                f"identity branch with BatchNorm; their outputs are added and pass a ReLU. Right, "
                                f"the deploy-time block: one 3x3 convolution with a bias, then the ReLU.")
    ax.set_xlim(0, 14)
    ax.set_ylim(-4.4, 1.2)
    ax.text(4.6, 0.85, "train time", ha="center", fontsize=FONT + 1, weight="bold")
    ax.text(11.7, 0.85, "deploy time", ha="center", fontsize=FONT + 1, weight="bold")
    _box(ax, 4.6, 0.0, 1.4, "input", COLORS["input"])
    labels = [("3x3 conv\n+ BN", COLORS["dw"])] * branches + [("1x1 conv\n+ BN", COLORS["pw"]),
                                                              ("BN\n(identity)", COLORS["norm"])]
    xs = [4.6 + 2.1 * (i - (len(labels) - 1) / 2) for i in range(len(labels))]
    for x, (label, color) in zip(xs, labels):
        _arrow(ax, (4.6, -0.28), (x, -1.15))
        _box(ax, x, -1.6, 1.7, label, color, height=0.85)
        _arrow(ax, (x, -2.05), (4.6, -2.75))
    _box(ax, 4.6, -3.05, 0.6, "+", "#ffffff")
    _arrow(ax, (4.6, -3.35), (4.6, -3.7))
    _box(ax, 4.6, -4.0, 1.4, "ReLU", COLORS["out"])
    _flow(ax, 11.7, [("input", 1.4, COLORS["input"]), ("3x3 conv + bias", 2.4, COLORS["std"]),
                     ("ReLU", 1.4, COLORS["out"])], gap=2.0)
    _arrow(ax, (8.4, -1.6), (10.2, -1.6), text="fold", color="#d62728")
    return fig


__all__ += ["reparameterized_block"]


def repvit_block(dim: int = 96):
    """A RepViT block at train time (token mixer: 3x3 depthwise + BN, 1x1 depthwise and the identity, summed,
    then BN; squeeze-excite; the residual channel mixer) beside its deploy form (one 3x3 depthwise convolution)."""
    fig, ax = _figure(10.0, 5.4, f"Left, a RepViT block at train time with {dim} channels: a 3x3 depthwise "
                                f"convolution with BatchNorm, a 1x1 depthwise convolution and the identity are "
                                f"added and pass a BatchNorm; then squeeze-and-excitation, then a channel mixer "
                                f"(1x1 to {2 * dim} channels, GELU, 1x1 back to {dim}) added to its input. Right, "
                                f"the deploy form: the token mixer is one 3x3 depthwise convolution with a bias, "
                                f"the rest is unchanged.")
    ax.set_xlim(0, 14)
    ax.set_ylim(-7.0, 1.2)
    ax.text(4.4, 0.85, "train time", ha="center", fontsize=FONT + 1, weight="bold")
    ax.text(11.6, 0.85, "deploy time", ha="center", fontsize=FONT + 1, weight="bold")
    _box(ax, 4.4, 0.0, 1.6, f"input, {dim}", COLORS["input"])
    labels = [("3x3 dw + BN", COLORS["dw"]), ("1x1 dw", COLORS["pw"]), ("identity", COLORS["norm"])]
    for x, (label, color) in zip((2.2, 4.4, 6.6), labels):
        _arrow(ax, (4.4, -0.28), (x, -0.95))
        _box(ax, x, -1.25, 1.9, label, color)
        _arrow(ax, (x, -1.55), (4.4, -2.05))
    rest = _flow(ax, 4.4, [("+, then BN", 1.9, COLORS["norm"]), ("squeeze-excite", 1.9, COLORS["se"]),
                           (f"1x1 -> {2 * dim}, GELU", 2.6, COLORS["pw"]), (f"1x1 -> {dim}", 1.9, COLORS["pw"]),
                           (f"output, {dim}", 1.6, COLORS["out"])], top=-2.3, gap=1.0)
    _skip(ax, rest[1], rest[-1], 6.8)
    right = _flow(ax, 11.6, [(f"input, {dim}", 1.6, COLORS["input"]), ("3x3 dw + bias", 1.9, COLORS["std"]),
                             ("squeeze-excite", 1.9, COLORS["se"]), (f"1x1 -> {2 * dim}, GELU", 2.6, COLORS["pw"]),
                             (f"1x1 -> {dim}", 1.9, COLORS["pw"]), (f"output, {dim}", 1.6, COLORS["out"])],
                  top=0.0, gap=1.3)
    _skip(ax, right[2], right[-1], 13.5)
    _arrow(ax, (7.8, -1.25), (10.2, -1.25), text="fold", color="#d62728")
    return fig


__all__ += ["repvit_block"]


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


__all__ += ["uib_forms"]

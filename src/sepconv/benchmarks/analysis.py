"""What the latency and deployment chapters conclude from stored results: pure functions of the JSON
``load_results`` returns, so that a chapter cell only narrates.

Every timing comparison goes through the one paired-rounds helper (``harness.paired_comparison`` or,
for stored ratios, ``harness.compare_ratios``); rank agreement is Spearman's rho (``scipy.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .harness import Comparison, compare_ratios, paired_comparison
from .layers import SHIFTS_LAYER

__all__ = ["depthwise_shares", "shift_speedups", "GUIDELINE_TITLES", "guideline_label", "compare_variants",
           "guideline_rows", "GuidelineVerdicts", "guideline_verdicts", "rank_correlations", "closeness",
           "LATENCIES", "measured_latencies",
           "ratio_comparisons", "latency_fit", "short_labels", "program_name", "glue_name", "runtime_table",
           "layer_pairs"]


def _by_shape(layers: list[dict], kind: str) -> dict:
    return {(r["size"], r["channels"]): r for r in layers if r["layer"] == kind}


def depthwise_shares(layers: list[dict]) -> dict:
    """Chapter 7's reading of ``layers.json``: the depthwise layers' highest ``intensity``, the best
    fraction of its roofline the grouped depthwise convolution reaches (``best_grouped``), and the
    depthwise layer's mean share of a separable pair (depthwise + pointwise at one shape) in MACs
    (``share_macs``) and in time (``share_time``; ``share_time_shifts`` with shifted multiply-adds)."""
    dw, pw, shifts = (_by_shape(layers, kind) for kind in ("depthwise 3x3", "pointwise 1x1", SHIFTS_LAYER))
    pairs = [(dw[key], pw[key]) for key in dw]
    return {"intensity": max(d["intensity"] for d in dw.values()),
            "best_grouped": max(d["achieved_flops"] / d["roofline_flops"] for d in dw.values()),
            "share_time": float(np.mean([d["median_s"] / (d["median_s"] + p["median_s"]) for d, p in pairs])),
            "share_macs": float(np.mean([d["macs"] / (d["macs"] + p["macs"]) for d, p in pairs])),
            "share_time_shifts": float(np.mean([shifts[key]["median_s"] / (shifts[key]["median_s"] + pw[key]["median_s"])
                                                for key in dw]))}


def shift_speedups(layers: list[dict]) -> list[dict]:
    """Per depthwise shape of ``layers.json``: the grouped convolution's and the shifted multiply-adds'
    times, ``speedup`` (grouped time / shifts time) and each one's fraction of its roofline."""
    grouped, shifts = _by_shape(layers, "depthwise 3x3"), _by_shape(layers, SHIFTS_LAYER)
    return [{"size": size, "channels": c, "grouped_s": g["median_s"], "shifts_s": shifts[size, c]["median_s"],
             "speedup": g["median_s"] / shifts[size, c]["median_s"],
             "grouped_roofline": g["achieved_flops"] / g["roofline_flops"],
             "shifts_roofline": shifts[size, c]["achieved_flops"] / shifts[size, c]["roofline_flops"]}
            for (size, c), g in grouped.items()]


#: ShuffleNet v2's four guidelines (sec. 2), as chapter 7 titles its tables.
GUIDELINE_TITLES = {"G1": "equal channel widths minimize memory access cost (same MACs)",
                    "G2": "group convolutions raise memory access cost (same MACs)",
                    "G3": "network fragmentation reduces parallelism",
                    "G4": "element-wise operations are not free (ResNet bottleneck)"}


def guideline_label(key: str, row: dict) -> str:
    """A variant's name in the tables and sentences of chapter 7 (``key``: ``"G1"`` ... ``"G4"``)."""
    if key == "G1":
        return f"c1:c2 = {row['ratio']}"
    if key == "G2":
        return f"g = {row['groups']}" + (" as two dense convolutions" if row["control"] else "")
    if key == "G3":
        return row["structure"]
    return f"ReLU {'yes' if row['relu'] else 'no'}, shortcut {'yes' if row['shortcut'] else 'no'}"


def compare_variants(key: str, a: dict, b: dict) -> Comparison:
    """Variant ``a`` against ``b`` of one guideline experiment, round by round (``paired_comparison``)."""
    return paired_comparison(a["times"], b["times"], guideline_label(key, a), guideline_label(key, b))


def guideline_rows(guidelines: dict) -> list[str]:
    """Chapter 7's table of ``guidelines.json``: per guideline its title, then per variant its MACs,
    memory accesses, time relative to the first row, and the rounds the first row won."""
    lines = []
    for key, title in GUIDELINE_TITLES.items():
        base = guidelines[key][0]
        lines.append(f"{key}  {title}")
        for r in guidelines[key]:
            extra = f"MACs {r['macs'] / 1e6:6.1f}M  " if "macs" in r else ""
            extra += f"memory accesses {r['memory_accesses'] / 1e6:5.2f}M values  " if "memory_accesses" in r else ""
            wins = (f"first row faster in {compare_variants(key, base, r).wins_a} of {len(r['times'])} rounds"
                    if r is not base else "")
            lines.append(f"   {guideline_label(key, r):<36} {extra}time x{r['median_s'] / base['median_s']:.2f}  {wins}")
    return lines


@dataclass(frozen=True)
class GuidelineVerdicts:
    """Per guideline: whether its recommended variant is faster (sign test) than every other
    (``fastest``), whether each step of the order it predicts is (``ordered``); the wording of the
    steps the rounds do not bear out (``broken``) and the number of predicted steps (``steps``)."""

    fastest: dict
    ordered: dict
    broken: list
    steps: int


def _predicted_orders(g: dict) -> tuple[dict, dict]:
    """The variant each guideline recommends, and the orders (fastest first) it predicts."""
    g4 = {(r["relu"], r["shortcut"]): r for r in g["G4"]}
    recommended = {"G1": g["G1"][0], "G2": g["G2"][0], "G3": g["G3"][0], "G4": g4[False, False]}
    grouped = [r for r in g["G2"] if not r["control"]]
    series = [r for r in g["G3"] if r["structure"] == "1-fragment" or "series" in r["structure"]]
    parallel = [r for r in g["G3"] if r["structure"] == "1-fragment" or "parallel" in r["structure"]]
    orders = {"G1": [g["G1"]], "G2": [grouped], "G3": [series, parallel],
              "G4": [[g4[False, False], g4[True, False], g4[True, True]],
                     [g4[False, False], g4[False, True], g4[True, True]]]}
    return recommended, orders


def guideline_verdicts(g: dict) -> GuidelineVerdicts:
    """ShuffleNet v2's guidelines tested on ``guidelines.json`` at the strength of the rounds: each
    recommended variant against every other (the control of G2 left out), each predicted step."""
    recommended, orders = _predicted_orders(g)
    fastest, ordered, broken = {}, {}, []
    for key, best in recommended.items():
        others = [r for r in g[key] if r is not best and not r.get("control")]
        fastest[key] = all(compare_variants(key, best, r).faster == guideline_label(key, best) for r in others)
        steps = [(a, b) for chain in orders[key] for a, b in zip(chain, chain[1:])]
        ordered[key] = all(compare_variants(key, a, b).faster == guideline_label(key, a) for a, b in steps)
        broken += [f"{key}: {compare_variants(key, a, b).wording()}" for a, b in steps
                   if compare_variants(key, a, b).faster != guideline_label(key, a)]
    steps = sum(len(chain) - 1 for chains in orders.values() for chain in chains)
    return GuidelineVerdicts(fastest, ordered, broken, steps)


#: The measured latencies of ``models.json``: how the depthwise layers ran, and the key of each row's time.
LATENCIES = {"grouped conv": "median_s", "shifts": "shifts_median_s", "inference": "inference_median_s"}


def measured_latencies(models: list[dict]) -> dict:
    """``{name: key}`` of ``LATENCIES`` for the latencies every row of ``models`` has (rows recorded before
    the inference program was timed lack it)."""
    return {name: key for name, key in LATENCIES.items() if all(key in r for r in models)}


def rank_correlations(models: list[dict]) -> dict:
    """Spearman's rho between each predictor of ``models.json`` (``"MACs alone"``, ``"roofline
    estimate"``) and each measured latency (``measured_latencies``: ``"grouped conv"``, ``"shifts"``,
    ``"inference"``), keyed by the pair."""
    from scipy.stats import spearmanr

    predictors = {"MACs alone": [r["macs"] for r in models], "roofline estimate": [r["roofline_s"] for r in models]}
    measured = {m: np.array([r[key] for r in models]) for m, key in measured_latencies(models).items()}
    return {(p, m): spearmanr(x, t).statistic for p, x in predictors.items() for m, t in measured.items()}


def closeness(gap: float) -> str:
    """A difference of two rank correlations in words: above 0.05 ``"far better than"``, above 0.02
    ``"better than"``, below -0.05 ``"far worse than"``, below -0.02 ``"worse than"``, else ``"about as
    well as"``."""
    if abs(gap) <= 0.02:
        return "about as well as"
    return ("far " if abs(gap) > 0.05 else "") + ("better than" if gap > 0 else "worse than")


def ratio_comparisons(rows: list[dict], name=lambda label: label) -> dict:
    """Every stored ratio ``"a / b"`` of ``rows`` (``keras.json`` or ``runtimes.json``'s rows) as a
    ``Comparison`` of the denominator ``b`` against the numerator ``a`` (a ratio above 1 in a round: ``b``
    was faster), keyed ``(model, batch, "a / b")``; ``name`` turns a label into the one the wording uses.
    Where the rows keep the rounds' times, the comparison is made from them (``paired_comparison``)."""
    comparisons = {}
    for r in rows:
        for key, ratios in r["ratios"].items():
            numerator, denominator = key.split(" / ")
            if "times" in r:
                comparison = paired_comparison(r["times"][denominator], r["times"][numerator], name(denominator),
                                               name(numerator))
            else:
                comparison = compare_ratios(ratios, name(denominator), name(numerator))
            comparisons[r["model"], r["batch"], key] = comparison
    return comparisons


def latency_fit(models: list[dict], layer_counts: dict) -> dict:
    """Chapter 7's exercise: latency fitted as ``a * roofline estimate + b * layers`` by least squares,
    per measured latency (``measured_latencies``): ``(a, b)`` and Spearman's rho of the fit
    against the measurement. ``layer_counts`` maps ``(model, alpha)`` to the number of costed layers."""
    from scipy.stats import spearmanr

    design = np.array([[r["roofline_s"], layer_counts[r["model"], r["alpha"]]] for r in models])
    out = {}
    for m, key in measured_latencies(models).items():
        t = np.array([r[key] for r in models])
        (a, b), *_ = np.linalg.lstsq(design, t, rcond=None)
        out[m] = {"a": a, "b": b, "rho": spearmanr(design @ np.array([a, b]), t).statistic}
    return out


def short_labels(rows: list[dict]) -> dict:
    """Every program label of ``runtimes.json``'s rows, in order of appearance, with ``"ONNX Runtime"``
    written ``"ORT"`` and the ``", Keras"`` of LiteRT's label dropped: the table's column names."""
    labels = dict.fromkeys(label for r in rows for label in r["seconds"])
    return {label: label.replace("ONNX Runtime", "ORT").replace(", Keras", "") for label in labels}


def program_name(short: str) -> str:
    """``'ORT, ours'`` -> ``'ORT (ours)'``: a program's name in the sentences of chapter 9."""
    runtime, _, variant = short.partition(", ")
    return f"{runtime} ({variant})" if variant else runtime


def glue_name(short: str) -> str:
    """``'JAX, inference'`` -> ``'inference'``, ``'torch.compile'`` -> ``'torchcompile'``: a program in a glue key."""
    return (short.replace("JAX, ", "").replace(" ", "_").replace(",", "").replace(".", "")
            .replace("(", "").replace(")", ""))


def runtime_table(rows: list[dict], columns: int = 5) -> list[str]:
    """Milliseconds per image of every program of ``runtimes.json``'s rows, per network and batch, the
    first ``columns`` programs in one table and the rest in a second (``-`` where a row lacks one)."""
    short = short_labels(rows)
    labels = list(short)
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        lines.append(f"{model}, ms per image " + "".join(f"{short[label]:>17}" for label in labels[:columns]))
        for r in rows:
            if r["model"] == model:
                lines.append(f"{'  batch ' + str(r['batch']):<26}" + "".join(
                    f"{1e3 * r['seconds'][label] / r['batch']:>17.1f}" for label in labels[:columns]))
        lines.append(f"{'':<26}" + "".join(f"{short[label]:>17}" for label in labels[columns:]))
        for r in rows:
            if r["model"] == model:
                lines.append(f"{'  batch ' + str(r['batch']):<26}" + "".join(
                    f"{1e3 * r['seconds'][label] / r['batch']:>17.1f}" if label in r["seconds"] else f"{'-':>17}"
                    for label in labels[columns:]))
        lines.append("")
    return lines


def layer_pairs(result: dict, large_s: float = 30e-6) -> dict:
    """Chapter 9's reading of ``litert_layers.json`` (``litert_operators.layer_comparison``): ``layers``
    (how many), ``max_error`` (the largest difference of the two outputs over the largest output),
    ``litert_faster`` and ``jax_faster`` (layers each side wins by the sign test, ``paired_comparison``),
    ``ratios`` per layer (median over the rounds of ours over LiteRT's time), and for the layers LiteRT takes
    at least ``large_s`` on (median), ``large``: ``{kind: (layers, lowest ratio, highest ratio)}``; the
    fastest layer on each side (``floor_jax_s``, ``floor_litert_s``, medians) and the sums of the medians
    (``sum_jax_s``, ``sum_litert_s``)."""
    rows = []
    for layer in result["layers"]:
        jax_t, lite_t = (np.asarray(layer["times"][side]) for side in ("JAX", "LiteRT"))
        winner = paired_comparison(list(jax_t), list(lite_t), "JAX", "LiteRT").faster
        rows.append((layer["kind"], float(np.median(jax_t / lite_t)), float(np.median(jax_t)),
                     float(np.median(lite_t)), winner, layer["error"]))
    large: dict = {}
    for kind, ratio, _, lite_s, _, _ in rows:
        if lite_s >= large_s:
            count, low, high = large.get(kind, (0, np.inf, 0.0))
            large[kind] = (count + 1, min(low, ratio), max(high, ratio))
    return {"layers": len(rows), "max_error": max(r[5] for r in rows), "ratios": [r[1] for r in rows],
            "litert_faster": sum(r[4] == "LiteRT" for r in rows), "jax_faster": sum(r[4] == "JAX" for r in rows),
            "large": large, "floor_jax_s": min(r[2] for r in rows), "floor_litert_s": min(r[3] for r in rows),
            "sum_jax_s": sum(r[2] for r in rows), "sum_litert_s": sum(r[3] for r in rows)}

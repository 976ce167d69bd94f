"""Compute every published table the package knows, and check it.

Each entry of ``COMPUTERS`` maps a table name to a function returning
``{(row, quantity): computed integer}``; ``validate()`` runs them all through
``published.check_table``. Closed forms come from the specs; the
torchvision comparison counts the Flax models themselves with ``sepconv.count``,
from shapes.
"""

from __future__ import annotations

from typing import Callable

from . import cost
from .kinds import LayerKind
from .published import Record, check_table, checkpoint_row, table_names

__all__ = ["COMPUTERS", "validate", "mobilenet_v1_table3", "v1_cost", "layer_type"]


def _rows(named: dict) -> dict:
    """``{(row, "macs"): .., (row, "params"): ..}`` from ``{row: NetworkCost or list of LayerCost}``."""
    out = {}
    for row, layers in named.items():
        layers = layers if isinstance(layers, cost.NetworkCost) else cost.NetworkCost(tuple(layers))
        out[(row, "macs")], out[(row, "params")] = layers.macs, layers.params_excluding_norm
    return out


def mobilenet_v1_table3() -> dict:
    """MobileNet Table 3: one ``14 x 14 x 512 -> 512`` layer with a 3x3 kernel, cumulatively modified.

    The resolution multiplier 0.714 is 160/224: the 224-pixel network's 14x14
    map becomes 10x10 (160 / 16).
    """
    size, channels, kernel = 14, 512, 3
    thin = int(channels * 0.75)
    small = 160 // 16
    return _rows({
        "Convolution": [cost.standard_conv_cost(size, size, channels, channels, kernel)],
        "Depthwise Separable Conv": cost.depthwise_separable_cost(size, size, channels, channels, kernel),
        "alpha = 0.75": cost.depthwise_separable_cost(size, size, thin, thin, kernel),
        "rho = 0.714": cost.depthwise_separable_cost(small, small, thin, thin, kernel),
    })


def v1_cost(alpha: float = 1.0, resolution: int = 224, classes: int = 1000, spec=None) -> cost.NetworkCost:
    """Closed-form cost of a MobileNet v1 (the paper's Table 1 unless ``spec`` is given)."""
    from .models.mobilenet_v1 import MOBILENET_V1, resolve_mobilenet_v1

    return resolve_mobilenet_v1(MOBILENET_V1 if spec is None else spec, alpha, resolution, classes).cost()


#: MobileNet Table 2's layer types by ``LayerKind``: "Conv DW 3x3" (``dw``), "Conv 1x1" (``pw``),
#: "Conv 3x3" (``conv``), "Fully Connected" (``fc``); ``norm`` holds no weights of the table.
TABLE2_TYPES = {LayerKind.DEPTHWISE: "dw", LayerKind.POINTWISE: "pw", LayerKind.FULL: "conv",
                LayerKind.GROUPED: "conv", LayerKind.LINEAR: "fc", LayerKind.NORM: "norm"}


def layer_type(layer) -> str:
    """``conv``, ``dw``, ``pw``, ``fc`` or ``norm``: a MobileNet v1 layer's type in Table 2's words,
    from its ``LayerKind`` (``TABLE2_TYPES``)."""
    return TABLE2_TYPES[layer.layer_kind]


def mobilenet_v1_type_shares(alpha: float = 1.0, resolution: int = 224, classes: int = 1000,
                             fc_bias: bool = False) -> dict:
    """Exact shares of MACs and parameters per layer type (Table 2), as ``Fraction``s.

    ``fc_bias=False`` counts the FC weights only, the convention that reproduces Table 2.
    """
    from fractions import Fraction

    macs, params = {}, {}
    for layer in v1_cost(alpha, resolution, classes).layers:
        kind = layer_type(layer)
        if kind == "norm":
            continue
        macs[kind] = macs.get(kind, 0) + layer.macs
        params[kind] = params.get(kind, 0) + layer.params - (classes if kind == "fc" and not fc_bias else 0)
    total_macs, total_params = sum(macs.values()), sum(params.values())
    return {kind: (Fraction(macs[kind], total_macs), Fraction(params[kind], total_params)) for kind in macs}


def mobilenet_v1_table2() -> dict:
    shares = mobilenet_v1_type_shares()
    out = {}
    for row, kind in (("Conv 1x1", "pw"), ("Conv DW 3x3", "dw"), ("Conv 3x3", "conv"), ("Fully Connected", "fc")):
        out[(row, "macs_share")], out[(row, "params_share")] = shares[kind]
    return out


def mobilenet_v1_shallow_spec():
    """Table 5's shallow MobileNet: Table 1 without the five 14x14 separable 512 -> 512 layers."""
    from .models.mobilenet_v1 import MOBILENET_V1

    repeated = [i for i, op in enumerate(MOBILENET_V1) if op.depth == 512 and op.stride == 1]
    if len(repeated) != 5:
        raise AssertionError(f"expected five 512 -> 512 stride-1 layers in Table 1, found {len(repeated)}")
    return tuple(op for i, op in enumerate(MOBILENET_V1) if i not in repeated)


def mobilenet_v1_table5(shallow_alpha: float = 1.0) -> dict:
    return _rows({"0.75 MobileNet": v1_cost(0.75),
                  "Shallow MobileNet": v1_cost(shallow_alpha, spec=mobilenet_v1_shallow_spec())})


def mobilenet_v1_table10() -> dict:
    """Table 10: MobileNet for Stanford Dogs, 120 classes."""
    return _rows({f"{a} MobileNet-{r}": v1_cost(float(a), r, 120)
                  for a, r in (("1.0", 224), ("0.75", 224), ("1.0", 192), ("0.75", 192))})


def mobilenet_v1_table8() -> dict:
    return _rows({"1.0 MobileNet-224": v1_cost()})


def mobilenet_v1_planet(final_layer: int = 10_000_000) -> dict:
    """Sec. 4.5: the MobileNet body plus a final layer of ``final_layer`` weights (the text's '10 million')."""
    body = v1_cost().select(prefix="features")
    return {("body", "params"): body.params_excluding_norm, ("PlaNet MobileNet", "params"): body.params_excluding_norm + final_layer,
            ("PlaNet MobileNet", "macs"): body.macs + final_layer}


def mobilenet_v1_table12() -> dict:
    """Table 12 (face attributes): the MobileNet body without a classifier."""
    return _rows({f"{a} MobileNet-{r}": v1_cost(float(a), r).select(prefix="features")
                  for a in ("1.0", "0.5", "0.25") for r in (224, 128)})


def mobilenet_v1_checkpoints() -> dict:
    """TF-slim's v1 checkpoints: 1001 classes; parameters are every trainable variable (BatchNorm's included)."""
    from .published import published_table

    out = {}
    for value in published_table("mobilenet_v1_checkpoints"):
        row = checkpoint_row(value.row)
        network = v1_cost(row.alpha, row.resolution, 1001)
        out[(value.row, "macs")], out[(value.row, "params")] = network.macs, network.params_trainable
    return out


def mobilenet_v1_table4() -> dict:
    from .models.mobilenet_v1 import MOBILENET_V1, full_conv_twin

    return _rows({"Conv MobileNet": v1_cost(spec=full_conv_twin(MOBILENET_V1)), "MobileNet": v1_cost()})


def mobilenet_v1_table6_7() -> dict:
    rows = {f"{a} MobileNet-224": v1_cost(float(a)) for a in ("1.0", "0.75", "0.5", "0.25")}
    rows.update({f"1.0 MobileNet-{r}": v1_cost(1.0, r) for r in (192, 160, 128)})
    return _rows(rows)


def mobilenet_v2_checkpoints() -> dict:
    from .models import model_cost
    from .published import published_table

    rows = {}
    for value in published_table("mobilenet_v2_checkpoints"):
        row = checkpoint_row(value.row)
        rows[value.row] = model_cost(row.model, alpha=row.alpha, resolution=row.resolution, classes=1001)
    return _rows(rows)


def mobilenet_v3_checkpoints(classes: int = 1001) -> dict:
    """The networks keras.applications builds for TF-slim's V3 checkpoints: Keras width rule, 1001 classes."""
    from .models import count_model
    from .published import published_table

    out = {}
    for row in dict.fromkeys(value.row for value in published_table("mobilenet_v3_checkpoints")):
        name = checkpoint_row(row)
        result = count_model(name.model, alpha=name.alpha, resolution=name.resolution, minimal=name.minimalistic,
                             convention="keras", classes=classes)
        out[(row, "macs")], out[(row, "params")] = result.macs, result.params_excluding_norm
    return out


def mobilenet_v2_table3() -> dict:
    """Bytes of the widest materialized tensor (2 bytes per value) at 224x224, from the resolved blocks."""
    from .memory import materialized_by_resolution
    from .models import resolve_model

    def peak(name: str, fuse_stem: bool) -> int:
        widest = materialized_by_resolution(resolve_model(name), fuse_stem=fuse_stem)
        return max(2 * h * w * c for (h, w), c in widest.items())

    return {("MobileNetV1", "peak_memory"): peak("mobilenet_v1", False),
            ("MobileNetV2", "peak_memory"): peak("mobilenet_v2", True)}


def mobilenet_v2_table4() -> dict:
    from .models import model_cost

    out = _rows({"MobileNetV1": v1_cost(), "MobileNetV2": model_cost("mobilenet_v2"),
                 "MobileNetV2 (1.4)": model_cost("mobilenet_v2", alpha=1.4)})
    del out[("MobileNetV1", "params")]
    return out


def shufflenet_v1_table1() -> dict:
    """MACs of ShuffleNet v1 1x without its FC layer (the convention that reproduces Table 1)."""
    from .models import model_cost

    out = {}
    for g in (1, 2, 3, 4, 8):
        network = model_cost("shufflenet_v1", groups=g)
        out[(f"ShuffleNet 1x (g = {g})", "macs_without_fc")] = network.macs - network.select(prefix="head").macs
    return out


def mobilenet_v1_table9() -> dict:
    """Table 9: smaller MobileNet compared with popular models (SqueezeNet 1.0 at its native 227 pixels)."""
    from .models import model_cost

    out = _rows({"0.50 MobileNet-160": v1_cost(0.5, 160)})
    squeezenet = model_cost("squeezenet1_0", resolution=227)
    out[("Squeezenet", "macs")] = squeezenet.macs
    out[("Squeezenet", "params")] = squeezenet.params_excluding_norm
    return out


def shufflenet_v2_table5(convention: str = "megvii") -> dict:
    """Table 5, counted for the authors' network (``convention="megvii"``)."""
    from .models import model_cost

    return _rows({f"ShuffleNet v2 {label}": model_cost("shufflenet_v2", width=width, convention=convention)
                  for label, width in (("0.5x", 0.5), ("1x", 1.0), ("1.5x", 1.5), ("2x", 2.0))})


def mobilenet_v3_table3() -> dict:
    """MobileNetV3 paper Table 3: TF-slim's (Keras's) networks, 1001 classes."""
    from .models import model_cost

    rows = {f"V3-{size.capitalize()} {a}": model_cost(f"mobilenet_v3_{size}", alpha=float(a), convention="keras",
                                                     classes=1001)
            for size in ("large", "small") for a in ("1.0", "0.75")}
    rows.update({f"V2 {a}": model_cost("mobilenet_v2", alpha=float(a), classes=1001) for a in ("1.0", "0.35")})
    return _rows(rows)


def efficientnet_table2() -> dict:
    """EfficientNet paper Table 2: trainable parameters and MACs at each model's own resolution."""
    from .models import model_cost

    out = {}
    for i in range(8):
        network = model_cost(f"efficientnet_b{i}")
        out[(f"EfficientNet-B{i}", "params")], out[(f"EfficientNet-B{i}", "macs")] = network.params_trainable, network.macs
    return out


def convnext_tiny() -> dict:
    from .models import model_cost

    network = model_cost("convnext_tiny")
    return {(row, q): v for row in ("ConvNeXt-T (paper)", "ConvNeXt-T (repository README)")
            for q, v in (("params", network.params_trainable), ("macs", network.macs))}


def efficientnet_v2_readme() -> dict:
    from .models import model_cost

    network = model_cost("efficientnet_v2_s")
    return {("EffNetV2-S", "params"): network.params_trainable, ("EffNetV2-S", "macs"): network.macs}


TORCHVISION_MODELS = {
    "mobilenet_v2": dict(name="mobilenet_v2"),
    "mobilenet_v3_large": dict(name="mobilenet_v3_large"),
    "mobilenet_v3_small": dict(name="mobilenet_v3_small"),
    "shufflenet_v2_x0_5": dict(name="shufflenet_v2", width=0.5),
    "shufflenet_v2_x1_0": dict(name="shufflenet_v2", width=1.0),
    "shufflenet_v2_x1_5": dict(name="shufflenet_v2", width=1.5),
    "shufflenet_v2_x2_0": dict(name="shufflenet_v2", width=2.0),
    "squeezenet1_0": dict(name="squeezenet1_0"),
    "squeezenet1_1": dict(name="squeezenet1_1"),
    **{f"efficientnet_b{i}": dict(name=f"efficientnet_b{i}") for i in range(8)},
    "efficientnet_b2": dict(name="efficientnet_b2", resolution=288),  # torchvision's crop for B2
    "efficientnet_v2_s": dict(name="efficientnet_v2_s"),
    "convnext_tiny": dict(name="convnext_tiny"),
}


def torchvision_reference() -> dict:
    """The Flax models against torchvision's recorded metadata: the closed form of each resolved spec,
    which the test suite proves equal, layer by layer, to the counter's trace of the Flax module for
    every entry of ``TORCHVISION_MODELS`` (tests/test_models.py)."""
    from .models import model_cost

    out = {}
    for row, kwargs in TORCHVISION_MODELS.items():
        options = dict(kwargs)
        network = model_cost(options.pop("name"), **options)
        out[(row, "macs")] = network.macs
        out[(row, "params_trainable")] = network.params_trainable
    return out


MOBILENET_V4_ROWS = {"MNv4-Conv-S": "conv_small", "MNv4-Conv-M": "conv_medium", "MNv4-Hybrid-M": "hybrid_medium",
                     "MNv4-Conv-L": "conv_large", "MNv4-Hybrid-L": "hybrid_large"}


def mobilenet_v4_table5() -> dict:
    """MobileNetV4 paper Table 5: each model at its own resolution; weights without BatchNorm (``params``)."""
    from .models import model_cost

    return _rows({row: model_cost(f"mobilenet_v4_{variant}") for row, variant in MOBILENET_V4_ROWS.items()})


def timm_mobilenet_v4() -> dict:
    from .models import model_cost

    return {(f"mobilenetv4_{variant}", "params_trainable"): model_cost(f"mobilenet_v4_{variant}").params_trainable
            for variant in MOBILENET_V4_ROWS.values()}


def torchvision_mnasnet() -> dict:
    from .models import model_cost

    out = {}
    for alpha in (0.5, 0.75, 1.0, 1.3):
        network = model_cost("mnasnet", alpha=alpha)
        row = "mnasnet" + str(alpha).replace(".", "_")
        out[(row, "params_trainable")], out[(row, "macs")] = network.params_trainable, network.macs
    return out


COMPUTERS: dict[str, Callable[[], dict]] = {
    "mobilenet_v1_table2": mobilenet_v1_table2,
    "mobilenet_v1_table3": mobilenet_v1_table3,
    "mobilenet_v1_table5": mobilenet_v1_table5,
    "mobilenet_v1_table8": mobilenet_v1_table8,
    "mobilenet_v1_table9": mobilenet_v1_table9,
    "mobilenet_v1_table10": mobilenet_v1_table10,
    "mobilenet_v1_planet": mobilenet_v1_planet,
    "mobilenet_v1_table12": mobilenet_v1_table12,
    "mobilenet_v1_checkpoints": mobilenet_v1_checkpoints,
    "mobilenet_v3_table3": mobilenet_v3_table3,
    "efficientnet_table2": efficientnet_table2,
    "convnext_tiny": convnext_tiny,
    "efficientnet_v2_readme": efficientnet_v2_readme,
    "shufflenet_v1_table1": shufflenet_v1_table1,
    "shufflenet_v2_table5": shufflenet_v2_table5,
    "mobilenet_v1_table4": mobilenet_v1_table4,
    "mobilenet_v1_table6_7": mobilenet_v1_table6_7,
    "mobilenet_v2_checkpoints": mobilenet_v2_checkpoints,
    "mobilenet_v2_table3": mobilenet_v2_table3,
    "mobilenet_v2_table4": mobilenet_v2_table4,
    "mobilenet_v3_checkpoints": mobilenet_v3_checkpoints,
    "torchvision_reference": torchvision_reference,
    "mobilenet_v4_table5": mobilenet_v4_table5,
    "timm_mobilenet_v4": timm_mobilenet_v4,
    "torchvision_mnasnet": torchvision_mnasnet,
}


def validate(names: list[str] | None = None) -> list[Record]:
    """Records for the named published tables (all of them by default)."""
    names = table_names() if names is None else names
    missing = [n for n in names if n not in COMPUTERS]
    if missing:
        raise ValueError(f"no computation registered for published tables {missing}")
    records = []
    for name in names:
        records.extend(check_table(name, COMPUTERS[name]()))
    return records


# ----------------------------------------------------------------------------------------------------
# Reparameterized networks (chapter 11): MobileOne and RepViT, both forms
# ----------------------------------------------------------------------------------------------------

def mobileone_paper() -> dict:
    """MobileOne's table counts the deploy form (one convolution per block)."""
    from .models import model_cost

    out = {}
    for v in ("s0", "s1", "s2", "s3", "s4"):
        network = model_cost(f"mobileone_{v}", form="deploy")
        out[(f"MobileOne-{v.upper()}", "params")] = network.params_excluding_norm
        out[(f"MobileOne-{v.upper()}", "macs")] = network.macs
    return out


def repvit_readme() -> dict:
    from .models import model_cost

    out = {}
    for v in ("m0_9", "m1_0", "m1_1"):
        row = f"RepViT-{v[0].upper()}{v[1:].replace('_', '.')}"
        network = model_cost(f"repvit_{v}", form="deploy")
        out[(row, "params")], out[(row, "macs")] = network.params_excluding_norm, network.macs
    out[("RepViT-M0.9 (train form)", "params")] = model_cost("repvit_m0_9", form="train").params_trainable
    return out


def timm_reparam_counts() -> dict:
    """timm counts every parameter, BatchNorm's scale and shift included (``params_trainable``)."""
    from .models import model_cost

    out = {}
    for name in ("mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4",
                 "repvit_m0_9", "repvit_m1_0", "repvit_m1_1"):
        for form in ("train", "deploy"):
            network = model_cost(name, form=form)
            row = f"{name} {form}"
            out[(row, "params")] = network.params_trainable
            out[(row, "params_batchnorm")] = network.params_trainable - network.params_excluding_norm
            out[(row, "macs")] = network.macs
    return out


COMPUTERS.update({"mobileone_paper": mobileone_paper, "repvit_readme": repvit_readme,
                  "timm_reparam_counts": timm_reparam_counts})

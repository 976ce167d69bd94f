"""MobileNetV4 and MnasNet (sepconv.models.mobilenet_v4, .mnasnet) against their references."""

from collections import Counter

import jax
import pytest
from flax import nnx

from sepconv.blocks import MobileMQASpec, UIBSpec
from sepconv.models import abstract_model, model_cost, resolve_model
from sepconv.models.mobilenet_v4 import MOBILENET_V4, resolve_mobilenet_v4
from sepconv.validation import validate

VARIANTS = ("conv_small", "conv_medium", "conv_large", "hybrid_medium", "hybrid_large")


def test_parameters_equal_timms_exactly_and_the_paper_table_in_binary_units():
    records = validate(["timm_mobilenet_v4", "mobilenet_v4_table5"])
    assert all(r.ok for r in records)
    assert sum(r.matches for r in records if r.table == "timm_mobilenet_v4") == 5
    known = [(r.row, r.quantity) for r in records if not r.agrees]
    assert known == [("MNv4-Conv-S", "params")]


def test_mnasnet_equals_torchvision():
    records = validate(["torchvision_mnasnet"])
    assert len(records) == 8 and all(r.ok and r.matches for r in records)
    with pytest.raises(ValueError, match="alpha must be one of 0.5, 0.75, 1.0, 1.3, got 0.6"):
        model_cost("mnasnet", alpha=0.6)


def _forms(variant):
    net = resolve_model(f"mobilenet_v4_{variant}")
    return Counter(b.form if hasattr(b, "form") else type(b).__name__ for b in net.blocks
                   if isinstance(b, (UIBSpec, MobileMQASpec)))


def test_block_forms_as_the_reference_arch_strings_list_them():
    # counted from timm's arch definitions: a0 = no start depthwise, k0 = no middle depthwise
    assert _forms("conv_small") == {"ExtraDW": 3, "IB": 8, "ConvNeXt": 1}
    assert _forms("conv_medium") == {"FusedIB": 1, "ExtraDW": 13, "ConvNeXt": 4, "FFN": 4}
    assert _forms("hybrid_medium") == {"FusedIB": 1, "ExtraDW": 13, "ConvNeXt": 5, "FFN": 4, "MobileMQASpec": 8}
    assert _forms("hybrid_large")["MobileMQASpec"] == 8


def test_layer_scale_sits_on_every_uib_and_mqa_block_of_the_hybrids():
    spec = MOBILENET_V4["hybrid_medium"]
    with_scale = resolve_mobilenet_v4(spec, 256)
    without = resolve_mobilenet_v4(dict(spec, layer_scale=None), 256)
    scaled = [b for b in with_scale.blocks if isinstance(b, MobileMQASpec) or (isinstance(b, UIBSpec) and not b.fused)]
    added = with_scale.cost().params_excluding_norm - without.cost().params_excluding_norm
    assert added == sum(b.c_out for b in scaled)


def test_mqa_blocks_run_at_the_last_two_stages_with_downsampled_keys_in_the_first():
    net = resolve_model("mobilenet_v4_hybrid_medium")  # 256 px
    sizes = {(size, b.kv_stride) for b, (size, _) in zip(net.blocks, net.sizes()) if isinstance(b, MobileMQASpec)}
    assert sizes == {(16, 2), (8, 1)}


@pytest.mark.parametrize("variant", ["hybrid_medium", "conv_small"])
def test_abstract_models_are_what_nnx_eval_shape_gives(variant):
    resolved = resolve_model(f"mobilenet_v4_{variant}", resolution=64)
    ours = jax.tree.map(lambda v: (v.shape, v.dtype), nnx.state(resolved.abstract()))
    reference = jax.tree.map(lambda v: (v.shape, v.dtype), nnx.state(nnx.eval_shape(lambda: resolved.module(nnx.Rngs(0)))))
    assert ours == reference


def test_uib_diagram_has_alt_text():
    import matplotlib

    matplotlib.use("Agg")
    from sepconv.diagrams import uib_forms

    fig = uib_forms()
    assert "ExtraDW" in fig.alt and "FFN" in fig.alt

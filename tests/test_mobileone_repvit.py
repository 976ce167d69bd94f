"""MobileOne and RepViT in both forms: widths, the reparameterized network, and the published counts.

The closed form equals the counted module for both forms (tests/test_models.py, OPTIONS)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sepconv import blocks, reparam
from sepconv.counter import count
from sepconv.layers import randomize_batchnorm
from sepconv.models import build_model, count_model, model_cost, resolve_model
from sepconv.models.mobileone import mobileone_width
from sepconv.models.repvit import repvit_se_channels
from sepconv.validation import validate
from draws import normal


def test_mobileone_widths_follow_table_15():
    """Stage widths int(c * alpha): S0 (0.75, 1, 1, 2) -> stem min(64, 48) = 48, then 48, 128, 256, 1024."""
    def widths(name):
        return sorted({b.c_out for b in resolve_model(name).blocks}, key=[b.c_out for b in resolve_model(name).blocks].index)
    assert widths("mobileone_s0") == [48, 128, 256, 1024]
    assert widths("mobileone_s1") == [64, 96, 192, 512, 1280]
    assert widths("mobileone_s4") == [64, 192, 448, 896, 2048]
    assert mobileone_width(64, 0.75) == 48 and mobileone_width(256, 3.5) == 896


def test_mobileone_branches_and_squeeze_excite():
    s0 = resolve_model("mobileone_s0")
    reps = [b for b in s0.blocks if isinstance(b, blocks.RepConvSpec)]
    assert len(reps) == 1 + 2 * (2 + 8 + 10 + 1)  # the stem, then a depthwise and a pointwise block per row
    assert reps[0].branches == 1 and all(b.branches == 4 for b in reps[1:])  # S0: k = 4 (the stem has one)
    s4 = resolve_model("mobileone_s4")
    with_se = [i for i, b in enumerate(s4.blocks) if b.se is not None]
    assert len(with_se) == 2 * (5 + 1) and with_se == list(range(len(s4.blocks) - 12, len(s4.blocks)))
    # identity branches: stride 1 and equal channels only, never in a deploy-form block
    assert sum(b.has_identity for b in reps) == sum(b.stride == 1 and b.c_in == b.c_out for b in reps) > 0
    assert all(b.form == "deploy" for b in resolve_model("mobileone_s0", form="deploy").blocks)


def test_repvit_squeeze_excite_rule_and_alternation():
    assert [repvit_se_channels(c) for c in (48, 56, 96, 112, 224, 384, 448)] == [16, 16, 24, 32, 56, 96, 112]
    spec = resolve_model("repvit_m0_9")
    stage = [b for b in spec.blocks if isinstance(b, blocks.RepViTBlockSpec) and b.dim == 192]
    assert len(stage) == 14 and [b.se is not None for b in stage] == [True, False] * 7


def test_the_deploy_form_costs_less_and_the_paper_counts_it():
    for name in ("mobileone_s0", "mobileone_s1", "repvit_m0_9"):
        train, deploy = model_cost(name), model_cost(name, form="deploy")
        assert deploy.macs < train.macs and deploy.params_trainable < train.params_trainable
    records = validate(["mobileone_paper", "repvit_readme", "timm_reparam_counts"])
    assert all(r.ok for r in records) and len(records) == 8 + 7 + 48


def _randomized(model, seed):
    randomize_batchnorm(model, seed)
    rng = np.random.default_rng(seed)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, (nnx.Conv, nnx.Linear)) and node.bias is not None:
            node.bias[...] = jnp.asarray(0.1 * rng.standard_normal(node.bias.shape), jnp.float32)
    return model


@pytest.mark.parametrize("name", ["mobileone_s0", "repvit_m0_9"])
def test_the_reparameterized_network_is_the_same_function_with_the_deploy_forms_cost(name):
    """Run op by op, not compiled: compiling the train form costs far more than running it at this size.
    (At 32 pixels a random RepViT's logits already differ by 4e-4 of their size between the compiled and
    the op-by-op train form: rounding amplified, so the comparison is made at 64.)"""
    model = _randomized(build_model(name, resolution=64, classes=10), 1)
    model.eval()
    deployed = reparam.reparameterize(model)
    deployed.eval()
    x = normal(0, (2, 64, 64, 3))
    outputs = [np.asarray(m(jnp.asarray(x))) for m in (model, deployed)]
    assert outputs[0].shape == (2, 10) and np.max(np.abs(outputs[0])) > 0
    assert np.max(np.abs(outputs[0] - outputs[1])) <= 1e-4 * np.max(np.abs(outputs[0]))
    ours, theirs = count(deployed, jax.ShapeDtypeStruct(x.shape, jnp.float32)), count_model(
        name, batch=2, form="deploy", resolution=64, classes=10)
    assert (ours.macs, ours.params_trainable) == (theirs.macs, theirs.params_trainable)
    assert not any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(deployed))

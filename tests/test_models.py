import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from sepconv import blocks
from sepconv.compat import variable_value
from sepconv.counter import count
from sepconv.models import (MODEL_NAMES, abstract_model, build_model, count_model, make_divisible, model_cost,
                            model_entry, resolve_model, v1_depth)
from sepconv.models.mobilenet_v1 import MOBILENET_V1, MOBILENET_V1_AS_PRINTED, resolve_mobilenet_v1
from sepconv.models.mobilenet_v2 import bottleneck_macs, head_channels, resolve_mobilenet_v2
from sepconv.models.network import materialize
from draws import normal


def test_make_divisible_rule():
    assert make_divisible(32 * 1.0) == 32
    assert make_divisible(32 * 0.35) == 16     # 11.2 -> 8 would lose more than 10%, so 16
    assert make_divisible(16 * 0.35) == 8      # 5.6 -> the minimum, 8
    assert make_divisible(24 * 0.75) == 24     # 18 -> nearest multiple of 8 (halves up) is 24
    assert make_divisible(96 * 0.75) == 72
    assert make_divisible(1280 * 1.4) == 1792
    assert head_channels(1280, 0.5) == 1280 and head_channels(1280, 1.4) == 1792
    with pytest.raises(ValueError, match="channel count must be positive, got 0"):
        make_divisible(0)


@given(st.floats(0.05, 3.0), st.integers(1, 2000))
def test_make_divisible_properties(alpha, channels):
    value = channels * alpha
    new = make_divisible(value)
    assert new % 8 == 0 and new >= 8
    assert new >= 0.9 * value


def test_v1_depth_rule():
    assert v1_depth(32, 0.25) == 8 and v1_depth(1024, 0.75) == 768 and v1_depth(16, 0.25) == 8
    assert v1_depth(100, 0.333) == 33  # int() truncates
    with pytest.raises(ValueError, match="width multiplier must be a positive number, got -1"):
        v1_depth(32, -1)


def _per_layer(result) -> dict:
    out = {}
    for op in result.ops:
        out[op.path] = out.get(op.path, 0) + op.total_macs
    return out


# MobileNet Table 1 (Howard et al. 2017) as printed: (type, stride, kernel, input channels, output channels, input
# size). The last depthwise row is printed with stride 2 and runs at 7x7 with stride 1 (MOBILENET_V1_AS_PRINTED).
TABLE_1 = [("conv", 2, 3, 3, 32, 224), ("dw", 1, 3, 32, 32, 112), ("pw", 1, 1, 32, 64, 112),
           ("dw", 2, 3, 64, 64, 112), ("pw", 1, 1, 64, 128, 56), ("dw", 1, 3, 128, 128, 56),
           ("pw", 1, 1, 128, 128, 56), ("dw", 2, 3, 128, 128, 56), ("pw", 1, 1, 128, 256, 28),
           ("dw", 1, 3, 256, 256, 28), ("pw", 1, 1, 256, 256, 28),
           ("dw", 2, 3, 256, 256, 28), ("pw", 1, 1, 256, 512, 14),
           *[row for _ in range(5) for row in (("dw", 1, 3, 512, 512, 14), ("pw", 1, 1, 512, 512, 14))],
           ("dw", 2, 3, 512, 512, 14), ("pw", 1, 1, 512, 1024, 7), ("dw", 1, 3, 1024, 1024, 7),
           ("pw", 1, 1, 1024, 1024, 7), ("fc", 1, 1, 1024, 1000, 1)]


def test_mobilenet_v1_per_layer_macs_and_weights_are_table_1_by_hand():
    """Each row of Table 1 by hand: ``out^2 k^2 (c_in / groups) c_out`` MACs (SAME padding: out = in / stride),
    ``k^2 (c_in / groups) c_out`` weights, the FC's 1000 biases; the counter and the closed form both give them."""
    macs, weights = [], []
    for kind, stride, k, c_in, c_out, size in TABLE_1:
        per_group = 1 if kind == "dw" else c_in
        out = size // stride
        macs.append(out * out * k * k * per_group * c_out)
        weights.append(k * k * per_group * c_out + (c_out if kind == "fc" else 0))
    counted = count_model("mobilenet_v1")
    closed = model_cost("mobilenet_v1")
    assert [op.total_macs for op in counted.ops] == [layer.macs for layer in closed.costed()] == macs
    assert [layer.params for layer in closed.costed()] == weights
    assert counted.macs == sum(macs) and counted.params_excluding_norm == sum(weights)
    assert (round(sum(macs) / 1e6), round(sum(weights) / 1e6, 1)) == (569, 4.2)  # Table 1's totals, as printed
    assert [op.kind for op in counted.ops] == [{"conv": "full", "dw": "depthwise", "pw": "pointwise",
                                                "fc": "linear"}[row[0]] for row in TABLE_1]


OPTIONS = {
    "mobilenet_v1": [{}, {"alpha": 0.6, "resolution": 200}, {"alpha": 1.3, "resolution": 97}],
    "mobilenet_v2": [{}, {"alpha": 0.35, "resolution": 96}, {"alpha": 1.4, "classes": 1001}],
    "mobilenet_v3_large": [{}, {"alpha": 0.75, "convention": "keras"}, {"minimal": True, "resolution": 100}],
    "mobilenet_v3_small": [{}, {"alpha": 0.5}, {"alpha": 1.25, "convention": "keras", "minimal": True}],
    "shufflenet_v1": [{"groups": g} for g in (1, 2, 3, 4, 8)],
    "shufflenet_v2": [{"width": w} for w in (0.5, 1.0, 1.5, 2.0)] + [{"width": 1.0, "convention": "megvii"}],
    "squeezenet1_0": [{}, {"resolution": 227}],
    "squeezenet1_1": [{}, {"resolution": 99}],
    "xception": [{}, {"resolution": 224}],
    **{f"efficientnet_b{i}": [{}] for i in range(8)},
    "efficientnet_b0": [{}, {"resolution": 100, "classes": 10}],
    "efficientnet_b2": [{}, {"resolution": 288}],  # torchvision's crop, in the torchvision reference table
    "efficientnet_v2_s": [{}, {"resolution": 224}],
    "convnext_tiny": [{}, {"resolution": 97}],
    "mnasnet": [{"alpha": a} for a in (0.5, 0.75, 1.0, 1.3)] + [{"resolution": 97}],
    **{f"mobilenet_v4_{v}": [{}, {"resolution": 97}]
       for v in ("conv_small", "conv_medium", "conv_large", "hybrid_medium", "hybrid_large")},
    **{f"mobileone_s{i}": [{}, {"form": "deploy"}] for i in range(5)},
    "mobileone_s0": [{}, {"form": "deploy"}, {"resolution": 97, "classes": 10}],
    **{f"repvit_{v}": [{}, {"form": "deploy"}] for v in ("m0_9", "m1_0", "m1_1")},
}


def test_every_registered_model_has_test_options():
    assert set(OPTIONS) == set(MODEL_NAMES)


def test_the_torchvision_table_is_checked_on_networks_the_counter_agrees_with():
    """validation.torchvision_reference reads the closed form; each of its networks is one the test below
    traces, so the counter's MACs and parameters are the numbers checked against torchvision's."""
    from sepconv.validation import TORCHVISION_MODELS

    for row, kwargs in TORCHVISION_MODELS.items():
        options = {k: v for k, v in kwargs.items() if k != "name"}
        assert options in OPTIONS[kwargs["name"]], (row, options)


@pytest.mark.parametrize("name, options", [(n, o) for n, opts in OPTIONS.items() for o in opts],
                         ids=lambda v: str(v))
def test_closed_form_equals_the_counted_module_layer_by_layer(name, options):
    """Two readers of one resolved spec: the closed form and the traced Flax module agree on every layer."""
    closed = model_cost(name, **options)
    counted = count_model(name, **options)
    assert counted.complete
    assert _per_layer(counted) == {layer.name: layer.macs for layer in closed.costed()}
    assert counted.macs == closed.macs
    assert counted.params_excluding_norm == closed.params_excluding_norm
    assert counted.params_trainable == closed.params_trainable


@settings(max_examples=6)
@given(st.sampled_from([0.35, 0.5, 0.6, 1.0, 1.4]), st.sampled_from([32, 64, 96, 100]))
def test_closed_form_equals_counted_model_at_any_width_and_resolution(alpha, resolution):
    for name in ("mobilenet_v1", "mobilenet_v2"):
        closed = model_cost(name, alpha=alpha, resolution=resolution, classes=10)
        counted = count_model(name, alpha=alpha, resolution=resolution, classes=10)
        assert (counted.macs, counted.params_excluding_norm) == (closed.macs, closed.params_excluding_norm)


def test_v2_bottleneck_formula_matches_the_blocks():
    """Paper sec. 3.3, h*w*d'*t*(d'+k^2+d''), against every block's closed-form cost, strides 1 and 2."""
    resolved = resolve_mobilenet_v2()
    network = resolved.cost()
    strides = set()
    checked = 0
    for i, (block, (size, _)) in enumerate(zip(resolved.blocks, resolved.sizes())):
        if isinstance(block, blocks.MBConvSpec):
            t = block.expanded // block.c_in
            macs = network.select(prefix=f"features.{i}").macs
            assert macs == bottleneck_macs(size, size, block.c_in, t, block.c_out, 3, block.stride)
            strides.add(block.stride)
            checked += 1
    assert checked == 17 and strides == {1, 2}
    assert bottleneck_macs(56, 56, 24, 6, 24) == 56 * 56 * 24 * 6 * (24 + 9 + 24)


def test_v1_as_printed_changes_only_the_last_layers():
    printed = resolve_mobilenet_v1(MOBILENET_V1_AS_PRINTED)
    used = resolve_mobilenet_v1(MOBILENET_V1)
    assert printed.sizes()[-1] == (7, 4) and used.sizes()[-1] == (7, 7)
    assert printed.cost().params_excluding_norm == used.cost().params_excluding_norm


def test_residuals_only_where_shapes_allow():
    resolved = resolve_model("mobilenet_v2")
    mbconv = [b for b in resolved.blocks if isinstance(b, blocks.MBConvSpec)]
    # Table 2: 17 blocks; the first block of every row (and the t=1 row) has no skip: 10 skips
    assert len(mbconv) == 17 and sum(b.has_skip for b in mbconv) == 10
    model = build_model("mobilenet_v2")
    assert [m.has_skip for m in model.features if isinstance(m, blocks.InvertedResidual)] == \
        [b.has_skip for b in mbconv]
    # one rule decides the expansion layer, for the closed form and the module alike
    assert [m.conv_pw is not None for m in model.features if isinstance(m, blocks.InvertedResidual)] == \
        [b.has_expansion for b in mbconv] == [False] + [True] * 16


#: B1-B7 are B0's code with other numbers (checked layer by layer above); running them adds minutes, not coverage.
RUNNABLE = [n for n in MODEL_NAMES if not n.startswith("efficientnet_b") or n == "efficientnet_b0"]
#: Likewise MobileOne S1-S4 and RepViT M1.0/M1.1 (S0 and M0.9 also run, reparameterized, in test_mobileone_repvit).
RUNNABLE = [n for n in RUNNABLE if n not in ("mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4",
                                             "repvit_m1_0", "repvit_m1_1")]


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_model_runs_at_its_minimum_resolution_and_is_fully_costed(name):
    low = model_entry(name).option("resolution").low
    model = build_model(name, classes=7)
    x = jnp.zeros((2, low, low, 3))
    assert nnx.jit(lambda m, x: m(x))(model, x).shape == (2, 7)
    result = count(model, x)
    assert result.complete and result.macs > 0 and result.params_trainable > 0
    assert result.macs == 2 * model_cost(name, classes=7, resolution=low).macs


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_abstract_models_hold_shapes_and_no_arrays(name):
    model = abstract_model(name)
    leaves = jax.tree_util.tree_leaves(nnx.state(model))
    assert leaves and all(isinstance(v, jax.ShapeDtypeStruct) for v in leaves)
    built = build_model(name)
    # compared leaf by leaf with their paths: flax 0.12.0's variables compare by identity
    assert jax.tree_util.tree_leaves_with_path(jax.tree.map(lambda v: (v.shape, v.dtype), nnx.state(model))) == \
        jax.tree_util.tree_leaves_with_path(jax.tree.map(lambda v: (v.shape, v.dtype), nnx.state(built)))


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_large", "efficientnet_v2_s", "shufflenet_v1",
                                  "shufflenet_v2", "squeezenet1_0", "xception", "convnext_tiny"])
def test_abstract_models_are_what_nnx_eval_shape_gives(name):
    """``abstract`` builds shapes its own faster way (repeated layers copied, kernels zeros, one split and
    one merge): the graph, every shape and the eval mode are those of ``nnx.eval_shape`` of the module, and
    no copy shares a variable with another (the graph would say so, and the state would have fewer leaves)."""
    spec = resolve_model(name)
    ours = spec.abstract()
    theirs = nnx.eval_shape(lambda: spec.module(nnx.Rngs(0)))
    theirs.eval()
    assert nnx.graphdef(ours) == nnx.graphdef(theirs)
    assert jax.tree.leaves(nnx.state(ours)) == jax.tree.leaves(nnx.state(theirs))


def test_materialize_follows_flax_initializers_and_the_seed():
    a, b, c = build_model("mobilenet_v2", seed=0), build_model("mobilenet_v2", seed=0), build_model("mobilenet_v2", seed=1)
    kernel = np.asarray(a.features[5].conv_pw.conv.kernel[...])  # 1x1, 32 -> 192: fan-in 32
    assert np.array_equal(kernel, np.asarray(b.features[5].conv_pw.conv.kernel[...]))
    assert not np.array_equal(kernel, np.asarray(c.features[5].conv_pw.conv.kernel[...]))
    assert abs(kernel.std() * np.sqrt(32) - 1) < 0.05 and np.abs(kernel).max() * np.sqrt(32) <= 2 / 0.8796 + 1e-6
    bn = a.features[5].conv_pw.bn
    assert np.all(bn.scale[...] == 1) and np.all(bn.bias[...] == 0) and np.all(bn.var[...] == 1)
    assert np.all(a.head.fc.bias[...] == 0)
    # Flax's own initialization of the same block gives the same statistics (the block alone: Flax's
    # eager initialization of the whole network is the slow path materialize replaces)
    flax_init = resolve_model("mobilenet_v2").blocks[5].build(nnx.Rngs(0))
    flax_kernel = np.asarray(flax_init.conv_pw.conv.kernel[...])
    assert abs(flax_kernel.std() / kernel.std() - 1) < 0.05


def test_a_drawn_kernel_depends_only_on_the_seed_and_its_place():
    # each kernel has its own generator (seed, path): a model with another classifier has the same
    # features, kernel for kernel, and every value is a real array, none left abstract
    a, b = build_model("mobilenet_v2", seed=0), build_model("mobilenet_v2", seed=0, classes=10)
    kernels = [{path: np.asarray(variable_value(v)) for path, v in nnx.to_flat_state(nnx.state(m, nnx.Param))
                if path[-1] == "kernel"} for m in (a, b)]
    assert kernels[0].keys() == kernels[1].keys()
    features = [path for path in kernels[0] if path[0] == "features"]
    assert len(features) == 52 and all(np.array_equal(kernels[0][p], kernels[1][p]) for p in features)
    assert kernels[0][("head", "fc", "kernel")].shape == (1280, 1000) and kernels[1][("head", "fc", "kernel")].shape == (1280, 10)
    # two kernels of one shape are not the same draw
    by_shape = {}
    for path in features:
        by_shape.setdefault(kernels[0][path].shape, []).append(path)
    first, second = next(paths for paths in by_shape.values() if len(paths) > 1)[:2]
    assert not np.array_equal(kernels[0][first], kernels[0][second])
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(nnx.state(a)))


def test_materialize_refuses_variables_it_has_no_rule_for():
    class Odd(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.zeros(3))

    with pytest.raises(ValueError, match="no initialization rule for Param w"):
        materialize(nnx.eval_shape(Odd))


@pytest.mark.parametrize("call, message", [
    (lambda: build_model("resnet50"), "unknown model 'resnet50'"),
    (lambda: build_model("shufflenet_v2", width=0.7), r"width must be one of 0.5, 1.0, 1.5, 2.0, got 0.7"),
    (lambda: build_model("squeezenet1_0", classes=0), r"classes must be an integer in \[1, 100000\], got 0"),
    (lambda: model_cost("mobilenet_v1", resolution=16), r"resolution must be an integer in \[32, 4096\], got 16"),
    (lambda: model_cost("xception", resolution=64), r"resolution must be an integer in \[71, 4096\], got 64"),
    (lambda: model_cost("mobilenet_v2", alpha=0.0), r"alpha must be a number in \(0, 4\], got 0.0"),
    (lambda: model_cost("mobilenet_v2", alpha=float("inf")), r"alpha must be a number in \(0, 4\], got inf"),
    (lambda: model_cost("mobilenet_v2", alpha=True), r"alpha must be a number in \(0, 4\], got True"),
    (lambda: build_model("mobilenet_v3_small", convention="slim"),
     r"convention must be one of torchvision, keras, got 'slim'"),
    (lambda: build_model("mobilenet_v1", minimal=True), "mobilenet_v1 takes no option 'minimal'; its options are"),
    (lambda: model_cost("shufflenet_v2", alpha=0.5), "shufflenet_v2 takes no option 'alpha'"),
    (lambda: model_cost("xception", groups=3), "xception takes no option 'groups'"),
    (lambda: count_model("mobilenet_v2", batch=0), "batch must be a positive integer, got 0"),
])
def test_bad_model_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_registry_checks_each_entry_against_its_function():
    from sepconv.models.registry import Option, register_model

    with pytest.raises(TypeError, match="differ from the declared options"):
        @register_model("broken", Option("alpha", float, 1.0, "width"), summary="x")
        def broken(alpha=0.5, resolution=224, classes=1000):
            raise AssertionError


def test_shufflenet_v1_units_and_errors():
    from sepconv.models.shufflenet_v1 import SHUFFLENET_V1_CHANNELS

    model = build_model("shufflenet_v1", groups=8, classes=5)
    units = [m for m in model.features if isinstance(m, blocks.ShuffleV1Unit)]
    assert len(units) == 16
    assert units[0].conv_pw.conv.feature_group_count == 1  # stage 2's first pointwise layer is not grouped
    assert all(u.conv_pw.conv.feature_group_count == 8 for u in units[1:])
    assert units[-1].conv_pwl.conv.kernel.shape[-1] == SHUFFLENET_V1_CHANNELS[8][2]
    with pytest.raises(ValueError, match="groups must be one of 1, 2, 3, 4, 8, got 5"):
        build_model("shufflenet_v1", groups=5)


def test_shufflenet_v2_conventions_differ_only_in_the_stride_2_units():
    torch, megvii = resolve_model("shufflenet_v2"), resolve_model("shufflenet_v2", convention="megvii")
    differing = [(a, b) for a, b in zip(torch.blocks, megvii.blocks)
                 if a.layer_costs(28, "x") != b.layer_costs(28, "x")]
    # only where c_out != 2 c_in: the first unit of stage 2 (24 -> 116); later stages double their input
    assert [(a.stride, a.c_in, a.c_out) for a, _ in differing] == [(2, 24, 116)]
    for a, b in differing:
        (_, left_torch), (_, left_megvii) = a.branches()[0][1], b.branches()[0][1]
        assert (left_torch.c_out, left_megvii.c_out) == (a.c_out // 2, a.c_in)  # the authors keep all c_in channels
        assert b.branches()[1][-1][1].c_out == a.c_out - a.c_in  # and their main branch makes the rest
    # the authors' final FC layer has no bias
    assert torch.cost().select(prefix="head").params_excluding_norm == 1024 * 1000 + 1000
    assert megvii.cost().select(prefix="head").params_excluding_norm == 1024 * 1000


def test_xception_flows():
    resolved = resolve_model("xception")
    down = [(i, b) for i, b in enumerate(resolved.blocks) if isinstance(b, blocks.XceptionBlockSpec)]
    assert len(down) == 12 and sum(not b.down for _, b in down) == 8
    sizes = resolved.sizes()
    assert [sizes[i][1] for i, _ in down[:3]] == [74, 37, 19]  # Xception Fig. 5 (Keras reference sizes)
    model = build_model("xception", classes=3)
    x = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32)
    for i, block in enumerate(model.features):
        x = jax.eval_shape(block, x)
        assert x.shape[1] == sizes[i][1]


def test_v3_minimalistic_and_width_conventions():
    from sepconv.models.mobilenet_v3 import MOBILENET_V3_LARGE, minimalistic, v3_widths

    plain = minimalistic(MOBILENET_V3_LARGE)
    assert {(b.kernel, b.se, b.activation) for b in plain["blocks"]} == {(3, False, "RE")}
    assert plain["activation"] == "RE" and MOBILENET_V3_LARGE["activation"] == "HS"
    assert v3_widths(MOBILENET_V3_LARGE, 1.0, "keras") == v3_widths(MOBILENET_V3_LARGE, 1.0, "torchvision")
    keras_blocks, _, keras_head = v3_widths(MOBILENET_V3_LARGE, 0.75, "keras")
    torch_blocks, _, torch_head = v3_widths(MOBILENET_V3_LARGE, 0.75, "torchvision")
    # Table 1 row 7 (40 -> 240 -> 80): Keras expands the scaled input 32 by 6 = 192; torchvision rounds 240 * 0.75 = 180 up to 184
    assert keras_blocks[6] == (32, 192, 64) and torch_blocks[6] == (32, 184, 64)
    assert (keras_head, torch_head) == (1280, 960)


def test_ceil_mode_pooling_sizes():
    for n, expected in [(109, 54), (111, 55), (55, 27), (56, 28), (3, 1)]:
        pool = blocks.PoolSpec("max", 3, 2, ceil=True)
        x = normal(0, (1, n, n, 2))
        y = pool.build(None)(x)
        assert y.shape[1] == expected == pool.layer_costs(n, "p")[1]
        assert float(y[0, 0, 0, 0]) == float(jnp.max(x[0, :3, :3, 0]))


def test_network_table_reads_like_the_paper():
    lines = resolve_model("mobilenet_v2").table().splitlines()
    assert len(lines) == 1 + 19 + 1
    assert lines[1].split()[:3] == ["224^2", "x", "3"] and "conv 3x3, s2" in lines[1]
    assert "MBConv 3x3, no expansion, relu6, s1" in lines[2] and "MBConv 3x3, exp 144, relu6, s2" in lines[5]

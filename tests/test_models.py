import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from sepconv import cost
from sepconv.counter import count
from sepconv.models import MODEL_NAMES, build_model, make_divisible, mobilenet_v1_layers, mobilenet_v2_layers, v1_depth
from sepconv.models.mobilenet_v1 import MOBILENET_V1, MOBILENET_V1_AS_PRINTED, MobileNetV1
from sepconv.models.mobilenet_v2 import MobileNetV2, bottleneck_macs, head_channels
from sepconv.models.shufflenet_v2 import channel_shuffle
from sepconv.models.squeezenet import ceil_max_pool


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


@settings(max_examples=6)
@given(st.sampled_from([0.35, 0.5, 0.6, 1.0, 1.4]), st.sampled_from([32, 64, 96, 100]))
@pytest.mark.parametrize("model_cls, layers_fn", [(MobileNetV1, mobilenet_v1_layers), (MobileNetV2, mobilenet_v2_layers)],
                         ids=["v1", "v2"])
def test_closed_form_equals_counted_model(model_cls, layers_fn, alpha, resolution):
    model = model_cls(alpha, 10, rngs=nnx.Rngs(0))
    model.eval()
    counted = count(model, jnp.zeros((1, resolution, resolution, 3)))
    layers = layers_fn(alpha, resolution, 10)
    assert counted.macs == sum(layer.macs for layer in layers)
    assert counted.params_excluding_norm == sum(layer.params for layer in layers)
    assert counted.complete


def test_v2_bottleneck_formula_matches_layers():
    """Paper sec. 3.3, h*w*d'*t*(d'+k^2+d''), against the spec's layers, strides 1 and 2."""
    layers = mobilenet_v2_layers(1.0, 224, None)
    blocks = {}
    for layer in layers:
        if layer.name.startswith("block"):
            blocks.setdefault(layer.name.split("_")[0], []).append(layer)
    assert len(blocks) == 17
    strides = set()
    for parts in blocks.values():
        dw, project = parts[-2], parts[-1]
        expanded = dw.output_shape[2]
        size = int(round((dw.input_activations // expanded) ** 0.5))
        d_in = parts[0].input_activations // (size * size)
        stride = size // dw.output_shape[0]
        t = expanded // d_in
        assert sum(p.macs for p in parts) == bottleneck_macs(size, size, d_in, t, project.output_shape[2], 3, stride)
        strides.add(stride)
    assert strides == {1, 2}
    assert bottleneck_macs(56, 56, 24, 6, 24) == 56 * 56 * 24 * 6 * (24 + 9 + 24)


def test_v1_as_printed_changes_only_the_last_layers():
    printed = mobilenet_v1_layers(1.0, 224, 1000, spec=MOBILENET_V1_AS_PRINTED)
    used = mobilenet_v1_layers(1.0, 224, 1000, spec=MOBILENET_V1)
    assert printed[-2].output_shape == (4, 4, 1024) and used[-2].output_shape == (7, 7, 1024)
    assert sum(l.params for l in printed) == sum(l.params for l in used)


def test_residuals_only_where_shapes_allow():
    model = MobileNetV2(1.0, 10, rngs=nnx.Rngs(0))
    skips = [b.has_skip for b in model.features if hasattr(b, "has_skip")]
    # Table 2: 17 blocks; the first block of every row (and the t=1 row) has no skip: 10 skips
    assert len(skips) == 17 and sum(skips) == 10


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_runs_and_is_fully_costed(name):
    model = build_model(name, classes=7)
    x = jnp.zeros((2, 64, 64, 3))
    assert nnx.jit(lambda m, x: m(x))(model, x).shape == (2, 7)
    result = count(model, x)
    assert result.complete and result.macs > 0 and result.params > 0


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


def test_channel_shuffle_interleaves():
    x = jnp.arange(6.0).reshape(1, 1, 1, 6)
    assert channel_shuffle(x, 2).ravel().tolist() == [0, 3, 1, 4, 2, 5]
    with pytest.raises(ValueError, match="5 channels cannot be shuffled in 2 groups"):
        channel_shuffle(jnp.zeros((1, 1, 1, 5)), 2)


@pytest.mark.parametrize("n, expected", [(109, 54), (111, 55), (55, 27), (56, 28), (3, 1)])
def test_ceil_mode_pooling_sizes(n, expected):
    x = jax.random.normal(jax.random.key(0), (1, n, n, 2))
    y = ceil_max_pool(x)
    assert y.shape[1] == expected
    assert float(y[0, 0, 0, 0]) == float(jnp.max(x[0, :3, :3, 0]))


@pytest.mark.parametrize("call, message", [
    (lambda: build_model("resnet50"), "unknown model 'resnet50'"),
    (lambda: build_model("shufflenet_v2", width=0.7), r"width must be one of \[0.5, 1.0, 1.5, 2.0\], got 0.7"),
    (lambda: build_model("squeezenet1_0", classes=0), "classes must be a positive integer, got 0"),
    (lambda: mobilenet_v1_layers(1.0, 16), "resolution must be an integer of at least 32 pixels, got 16"),
    (lambda: mobilenet_v2_layers(0.0), "width multiplier|channel count must be positive"),
    (lambda: build_model("mobilenet_v3_small", convention="slim"),
     r"convention must be one of \['torchvision', 'keras'\], got 'slim'"),
    (lambda: build_model("mobilenet_v1", minimal=True), "apply only to MobileNet v3, not to 'mobilenet_v1'"),
])
def test_bad_model_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_shufflenet_v1_units_and_errors():
    from sepconv.models.shufflenet_v1 import SHUFFLENET_V1_CHANNELS

    model = build_model("shufflenet_v1", groups=8, classes=5)
    units = list(model.units)
    assert len(units) == 16
    assert units[0].conv_pw.conv.feature_group_count == 1  # stage 2's first pointwise layer is not grouped
    assert all(u.conv_pw.conv.feature_group_count == 8 for u in units[1:])
    assert units[-1].conv_pwl.conv.kernel.shape[-1] == SHUFFLENET_V1_CHANNELS[8][2]
    with pytest.raises(ValueError, match=r"groups must be one of \[1, 2, 3, 4, 8\], got 5"):
        build_model("shufflenet_v1", groups=5)


def test_xception_flows():
    model = build_model("xception", classes=3)
    assert len(model.entry) == 3 and len(model.middle) == 8
    shapes = []
    x = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32)
    x = jax.eval_shape(lambda v: model.conv2(model.conv1(v)), x)
    for block in model.entry:
        x = jax.eval_shape(block, x)
        shapes.append(x.shape[1:])
    assert shapes == [(74, 74, 128), (37, 37, 256), (19, 19, 728)]  # Xception Fig. 5 (Keras reference sizes)

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bruteforce import naive_conv
from sepconv import cost

conv_cases = st.fixed_dictionaries({
    "h": st.integers(1, 7), "w": st.integers(1, 7), "groups": st.integers(1, 3),
    "cpg": st.integers(1, 3), "opg": st.integers(1, 3), "kh": st.integers(1, 3), "kw": st.integers(1, 3),
    "sh": st.integers(1, 3), "sw": st.integers(1, 2), "dh": st.integers(1, 2), "dw": st.integers(1, 2),
    "padding": st.sampled_from(["SAME", "VALID", 1, (0, 2)]),
})


def _fits(c):
    if c["padding"] == "VALID":
        return c["h"] >= c["dh"] * (c["kh"] - 1) + 1 and c["w"] >= c["dw"] * (c["kw"] - 1) + 1
    return True


@given(conv_cases)
def test_closed_form_matches_bruteforce_and_xla_output(c):
    if not _fits(c):
        with pytest.raises(ValueError, match="spans"):
            cost.conv2d_cost(c["h"], c["w"], c["cpg"] * c["groups"], c["opg"] * c["groups"],
                             (c["kh"], c["kw"]), (c["sh"], c["sw"]), c["padding"], (c["dh"], c["dw"]),
                             groups=c["groups"])
        return
    c_in, c_out = c["cpg"] * c["groups"], c["opg"] * c["groups"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((c["h"], c["w"], c_in))
    w = rng.standard_normal((c["kh"], c["kw"], c["cpg"], c_out))
    y, macs, real_macs = naive_conv(x, w, (c["sh"], c["sw"]), c["padding"], (c["dh"], c["dw"]), c["groups"])
    layer = cost.conv2d_cost(c["h"], c["w"], c_in, c_out, (c["kh"], c["kw"]), (c["sh"], c["sw"]),
                             c["padding"], (c["dh"], c["dw"]), groups=c["groups"], bias=True)
    assert layer.macs == macs
    assert layer.output_shape == y.shape
    assert layer.params == w.size + c_out
    assert layer.input_activations == x.size and layer.output_activations == y.size
    taps_h = cost.valid_taps(c["h"], c["kh"], c["sh"], c["padding"], c["dh"])
    taps_w = cost.valid_taps(c["w"], c["kw"], c["sw"], c["padding"], c["dw"])
    assert taps_h * taps_w * c["cpg"] * c_out == real_macs
    # the naive convolution is a real convolution: it agrees with XLA's
    pad = c["padding"]
    if not isinstance(pad, str):
        lo, hi = (pad, pad) if isinstance(pad, int) else pad
        pad = [(lo, hi), (lo, hi)]
    ref = jax.lax.conv_general_dilated(
        jnp.asarray(x[None], jnp.float32), jnp.asarray(w, jnp.float32), (c["sh"], c["sw"]), pad,
        rhs_dilation=(c["dh"], c["dw"]), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=c["groups"], precision="highest")
    np.testing.assert_allclose(np.asarray(ref[0]), y, rtol=1e-4, atol=1e-4)


@given(st.integers(1, 2048), st.integers(1, 11), st.integers(1, 64), st.integers(1, 20))
def test_separable_ratio_is_exact(n, k, m, d):
    dw, pw = cost.depthwise_separable_cost(d, d, m, n, kernel=k)
    std = cost.standard_conv_cost(d, d, m, n, kernel=k)
    assert Fraction(dw.macs + pw.macs, std.macs) == cost.separable_ratio(n, k) == Fraction(1, n) + Fraction(1, k * k)
    assert Fraction(dw.params + pw.params, std.params) == cost.separable_ratio(n, k)


@given(st.integers(1, 300), st.integers(1, 4), st.integers(1, 7), st.integers(1, 3))
def test_same_padding_output_is_ceil(size, stride, kernel, dilation):
    assert cost.conv_output_size(size, kernel, stride, "SAME", dilation) == -(-size // stride)


def test_textbook_values():
    # MobileNet eq. 2-4 for D_F=14, M=N=512, D_K=3, written out by hand.
    assert cost.standard_conv_cost(14, 14, 512, 512, 3).macs == 3 * 3 * 512 * 512 * 14 * 14
    assert cost.depthwise_conv_cost(14, 14, 512, 3).macs == 3 * 3 * 512 * 14 * 14
    assert cost.pointwise_conv_cost(14, 14, 512, 512).macs == 512 * 512 * 14 * 14
    assert cost.grouped_conv_cost(14, 14, 512, 512, groups=4).macs == 3 * 3 * 128 * 512 * 14 * 14
    fc = cost.dense_cost(1024, 1000)
    assert (fc.macs, fc.params) == (1024 * 1000, 1024 * 1000 + 1000)
    # stride 2: 224 -> 112 output, first MobileNet layer 3x3x3x32
    first = cost.standard_conv_cost(224, 224, 3, 32, 3, stride=2)
    assert first.output_shape == (112, 112, 32) and first.macs == 112 * 112 * 32 * 27


def test_total_cost_sums():
    layers = cost.depthwise_separable_cost(14, 14, 512, 512)
    total = cost.total_cost(layers)
    assert total.macs == sum(layer.macs for layer in layers)
    assert total.output_shape == (14, 14, 512)
    with pytest.raises(ValueError, match="empty"):
        cost.total_cost([])


@pytest.mark.parametrize("call, message", [
    (lambda: cost.conv2d_cost(8, 8, 6, 8, groups=4), "in_channels=6 is not divisible by groups=4"),
    (lambda: cost.conv2d_cost(8, 8, 8, 6, groups=4), "out_channels=6 is not divisible by groups=4"),
    (lambda: cost.conv2d_cost(8, 8, 8, 8, stride=0), "stride must be a positive integer, got 0"),
    (lambda: cost.conv2d_cost(-1, 8, 8, 8), "height must be a positive integer, got -1"),
    (lambda: cost.conv2d_cost(8, 8, 8, 8, kernel=(3, 3, 3)), "kernel must be an int or a pair"),
    (lambda: cost.conv2d_cost(8, 8, 8, 8, padding="FULL"), "padding must be 'SAME', 'VALID'"),
    (lambda: cost.conv2d_cost(8, 8, 8, 8, padding=-1), "padding must be a non-negative integer, got -1"),
    (lambda: cost.conv2d_cost(2, 8, 8, 8, kernel=5, padding="VALID"), "spans 5 pixels"),
    (lambda: cost.conv2d_cost(8.5, 8, 8, 8), "height must be a positive integer, got 8.5"),
    (lambda: cost.conv2d_cost(8, 8, True, 8), "in_channels must be a positive integer, got True"),
    (lambda: cost.dense_cost(0, 10), "in_features must be a positive integer, got 0"),
    (lambda: cost.separable_ratio(0, 3), "out_channels must be a positive integer, got 0"),
    (lambda: cost.depthwise_conv_cost(8, 8, 8, dilation=0), "dilation must be a positive integer, got 0"),
])
def test_bad_input_names_the_bad_value(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_numpy_integers_are_accepted():
    assert cost.standard_conv_cost(np.int64(14), 14, 512, 512).macs == 462_422_016


def _touched(h, w, c1, c2, g):
    """Brute force: the distinct input, weight and output values the loop nest of a 1x1 group
    convolution reads or writes, each counted once (no cache)."""
    touched = set()
    for p in range(h * w):
        for o in range(c2):
            group = o // (c2 // g)
            for i in range(group * (c1 // g), (group + 1) * (c1 // g)):
                touched |= {("x", p, i), ("w", i, o), ("y", p, o)}
    return len(touched)


@settings(max_examples=25)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 2]))
def test_memory_access_cost_is_the_values_a_1x1_convolution_touches(h, w, c1, c2, g):
    assert cost.memory_access_cost_1x1(h, w, g * c1, g * c2, g) == _touched(h, w, g * c1, g * c2, g)


@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 512), st.integers(1, 512))
def test_shufflenet_mac_bound_holds_and_is_tight_for_equal_widths(h, w, c1, c2):
    """ShuffleNet v2 G1: MAC >= 2 sqrt(hwB) + B/hw, with equality at c1 = c2, where both are
    ``2 h w c + c^2`` (by hand: sqrt(hw * hw c^2) = hw c and hw c^2 / hw = c^2)."""
    b = h * w * c1 * c2
    mac = cost.memory_access_cost_1x1(h, w, c1, c2)
    assert mac >= cost.memory_access_lower_bound(h, w, b) * (1 - 1e-12)
    assert cost.memory_access_cost_1x1(h, w, c1, c1) == 2 * h * w * c1 + c1 * c1
    assert cost.memory_access_lower_bound(h, w, h * w * c1 * c1) == pytest.approx(2 * h * w * c1 + c1 * c1, rel=1e-12)


def test_group_conv_mac_grows_with_groups_at_fixed_flops():
    """ShuffleNet v2 G2: at fixed B = h w c1 c2 / g, MAC increases with g."""
    macs = []
    for g in (1, 2, 4, 8):
        c = {1: 128, 2: 180, 4: 256, 8: 360}[g]  # c^2 / g about constant
        macs.append(cost.memory_access_cost_1x1(28, 28, c, c, groups=g))
    assert macs == sorted(macs)
    with pytest.raises(ValueError, match="not divisible by groups=3"):
        cost.memory_access_cost_1x1(8, 8, 16, 16, groups=3)


@settings(max_examples=60)
@given(st.integers(1, 9), st.integers(1, 5), st.integers(1, 4), st.integers(-3, 3), st.integers(1, 3),
       st.integers(1, 3))
def test_scatter_tap_count_is_the_brute_force_count(size, kernel, stride, lo, dilation, input_dilation):
    """Pairs (input value i, tap k) whose output position (i * input_dilation + lo - k * dilation) / stride
    is an integer, enumerated one by one."""
    brute = sum((i * input_dilation + lo - k * dilation) % stride == 0 for i in range(size) for k in range(kernel))
    assert cost.scatter_tap_count(size, kernel, stride, lo, dilation, input_dilation) == brute

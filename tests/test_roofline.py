"""The roofline estimate and the costs the experiments record (``sepconv.benchmarks.roofline``, ``layers``,
``guidelines``), derived by hand. No test asserts a speed."""

import jax
import jax.numpy as jnp
import pytest

from sepconv.benchmarks.guidelines import guideline_experiments
from sepconv.benchmarks.layers import LAYERS, layer_cost
from sepconv.benchmarks.roofline import op_traffic, roofline_seconds
from sepconv.counter import count


def test_roofline_by_hand():
    peaks = {"peak_flops": 100.0, "peak_bandwidth": 100.0}
    # 100 MACs over 800 bytes: max(200/100, 800/100) = 8 s, memory bound; 1000 MACs over 100 bytes: 20 s
    assert roofline_seconds([(100, 800), (1000, 100)], peaks) == pytest.approx(28.0)


def test_op_traffic_of_one_convolution_by_hand():
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    result = count(conv, jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)))
    # 8*8 outputs x 4 channels x 36 taps; input 256 + weights 144 + output 256 values, 4 bytes each
    assert op_traffic(result) == [(8 * 8 * 4 * 36, 4 * (256 + 144 + 256))]


@pytest.mark.parametrize("name, macs, params", [
    ("standard 3x3", 8 * 8 * 16 * 16 * 9, 9 * 16 * 16),
    ("depthwise 3x3", 8 * 8 * 16 * 9, 9 * 16),
    ("pointwise 1x1", 8 * 8 * 16 * 16, 16 * 16),
])
def test_layer_costs_by_hand(name, macs, params):
    (_, kernel, depthwise), = [layer for layer in LAYERS if layer[0] == name]
    cost = layer_cost(8, 16, kernel, depthwise)
    assert (cost.macs, cost.params, cost.input_activations, cost.output_activations) == (macs, params, 1024, 1024)


def test_guideline_costs_by_hand():
    g = guideline_experiments(repeats=1, size=4, blocks=1)
    # G1, ratio 1:1: c1 = c2 = 128; two 1x1 layers of 4*4*128*128 MACs; each moves 4*4*(128+128) + 128*128 values
    assert (g["G1"][0]["c1"], g["G1"][0]["macs"], g["G1"][0]["memory_accesses"]) == (
        128, 2 * 16 * 128 * 128, 2 * (16 * 256 + 128 * 128))
    # G2, g = 2: c = round(128 * sqrt(2) / 2) * 2 = 182; 4*4*182*91 MACs; 4*4*2*182 + 182*91 values
    two = g["G2"][1]
    assert (two["groups"], two["channels"], two["macs"], two["memory_accesses"]) == (
        2, 182, 16 * 182 * 91, 16 * 2 * 182 + 182 * 91)
    # G3: one fragment of 128 -> 128, or two in series of round(128 / sqrt 2) = 91 channels
    assert [r["macs"] for r in g["G3"][:2]] == [16 * 128 * 128, 2 * 16 * 91 * 91]

"""The chapter-sized hardware-aware search (sepconv.search): reward, lookup-table prediction and the space."""

import itertools
import math

import pytest

from sepconv import search as S


def test_mnasnet_reward_by_hand():
    # soft constraint: twice the target latency multiplies the reward by 2^-0.07
    assert S.mnasnet_reward(0.75, 2.0, 1.0) == pytest.approx(0.75 * 2 ** -0.07)
    assert 2 ** -0.07 == pytest.approx(0.9526, abs=1e-4)
    # hard constraint: no reward for being faster, 1/x above the target
    assert S.mnasnet_reward(0.75, 0.5, 1.0, alpha=0.0, beta=-1.0) == 0.75
    assert S.mnasnet_reward(0.75, 3.0, 1.0, alpha=0.0, beta=-1.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="latency must be a positive number, got 0"):
        S.mnasnet_reward(0.75, 0, 1.0)


def test_space_shapes_and_network():
    # 128 px: the stem halves to 64, then strides 2, 2, 2, 1, 2
    assert S.stage_inputs() == [(64, 16), (32, 24), (16, 40), (8, 80), (8, 112)]
    net = S.network(((3, 6),) * 5)
    assert net.sizes()[-1] == (4, 4)
    # the expansion of stage 2's block is 6 x its 40 input channels
    assert net.blocks[3].expanded == 240 and net.blocks[3].kernel == 3
    with pytest.raises(ValueError, match=r"choices must be 5 \(kernel, expansion\) pairs"):
        S.network(((3, 4),) * 5)


def test_roofline_table_by_hand_and_prediction_sums_entries():
    # a device with 1 FLOP/s and 1 byte/s: every layer is bound by its bytes or its 2 MACs, whichever is larger
    peaks = {"peak_flops": 2.0, "peak_bandwidth": 1.0}  # 1 MAC per second, 1 byte per second
    table = S.roofline_table(peaks)
    # the stem: 3x3 stride 2, 3 -> 16 on 128x128: 64*64*16*27 MACs; bytes 4*(128*128*3 + 432 + 64*64*16)
    macs, moved = 64 * 64 * 16 * 27, 4 * (128 * 128 * 3 + 3 * 3 * 3 * 16 + 64 * 64 * 16)
    assert table["stem"] == pytest.approx(max(macs, moved))
    choices = ((5, 3), (3, 6), (7, 3), (3, 3), (7, 6))
    assert S.predict(table, choices) == pytest.approx(
        table["stem"] + table["head"] + sum(table[(i, c)] for i, c in enumerate(choices)))
    # with 1 MAC/s and infinite bandwidth the prediction is the network's MACs
    compute_only = S.roofline_table({"peak_flops": 2.0, "peak_bandwidth": math.inf})
    assert S.predict(compute_only, choices) == pytest.approx(_macs_by_hand(choices))


def _macs_by_hand(choices):
    """The space's MACs written out independently of sepconv's cost code: the stem (3x3 stride 2, 3 -> 16 on
    128 px), each inverted residual (MobileNetV2 sec. 3.3: expansion at the input size, depthwise and
    projection at the output size), the 1x1 head 160 -> 640 on 4x4 and the 640 -> 10 classifier."""
    total = 64 * 64 * 16 * 27
    shapes = [(64, 16, 24, 2), (32, 24, 40, 2), (16, 40, 80, 2), (8, 80, 112, 1), (8, 112, 160, 2)]
    for (s_in, c_in, c_out, stride), (k, e) in zip(shapes, choices):
        s_out, wide = -(-s_in // stride), c_in * e
        total += s_in * s_in * c_in * wide + s_out * s_out * wide * (k * k + c_out)
    return total + 4 * 4 * 160 * 640 + 640 * 10


def test_every_network_costs_what_the_hand_formula_gives():
    # MobileNetV2's choice (k3 e6), term by term: stem, five blocks (expansion + depthwise and projection), head, fc
    blocks = [64 * 64 * 16 * 96 + 32 * 32 * 96 * (9 + 24), 32 * 32 * 24 * 144 + 16 * 16 * 144 * (9 + 40),
              16 * 16 * 40 * 240 + 8 * 8 * 240 * (9 + 80), 8 * 8 * 80 * 480 + 8 * 8 * 480 * (9 + 112),
              8 * 8 * 112 * 672 + 4 * 4 * 672 * (9 + 160)]
    assert blocks == [9_535_488, 5_345_280, 3_824_640, 6_174_720, 6_633_984]
    assert _macs_by_hand(((3, 6),) * 5) == 1_769_472 + sum(blocks) + 1_638_400 + 6_400 == 34_928_384
    for choices in [((7, 3), (5, 6), (3, 3), (7, 6), (5, 3)), ((3, 3),) * 5, ((7, 6),) * 5]:
        assert S.network(choices).cost().macs == _macs_by_hand(choices)


@pytest.mark.parametrize("alpha, beta", [(0.0, -1.0), (-0.07, -0.07)])
def test_search_finds_the_brute_force_best(alpha, beta):
    """On a compute-only device (latency = MACs) the search's winner is the one a separate enumeration with the
    hand formula, log10(MACs) as the proxy and MnasNet's reward written out, finds."""
    table = S.roofline_table({"peak_flops": 2.0, "peak_bandwidth": math.inf})  # 1 MAC per second
    target = float(_macs_by_hand(((3, 6),) * 5))
    results = S.search(table, target, alpha=alpha, beta=beta)
    assert len(results) == 6 ** 5
    assert [r.reward for r in results] == sorted((r.reward for r in results), reverse=True)

    def reward(choices):
        m = _macs_by_hand(choices)
        return math.log10(m) * (m / target) ** (alpha if m <= target else beta)

    space = list(itertools.product(S.CHOICES, repeat=5))
    best = max(reward(c) for c in space)
    expected = min(c for c in space if reward(c) == pytest.approx(best, rel=1e-12))
    assert results[0].choices == expected
    assert results[0].reward == pytest.approx(best, rel=1e-12)
    if alpha == 0.0:
        assert _macs_by_hand(expected) <= target

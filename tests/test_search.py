"""The chapter-sized hardware-aware search (sepconv.search): reward, lookup-table prediction and the space."""

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
    assert S.predict(compute_only, choices) == pytest.approx(S.network(choices).cost().macs)


def test_search_scores_every_network_and_respects_a_hard_target():
    table = S.roofline_table({"peak_flops": 2.0, "peak_bandwidth": math.inf})  # latency = MACs
    target = S.predict(table, ((3, 6),) * 5)
    results = S.search(table, target, alpha=0.0, beta=-1.0)
    assert len(results) == 6 ** 5
    assert [r.reward for r in results] == sorted((r.reward for r in results), reverse=True)
    best = results[0]
    # with latency = MACs and accuracy = log10(MACs), the hard constraint fills the target exactly or below
    assert best.latency <= target
    assert best.accuracy_proxy == pytest.approx(S.capacity_proxy(best.choices))
    assert best.accuracy_proxy == max(r.accuracy_proxy for r in results if r.latency <= target)

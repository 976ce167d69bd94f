"""A convolution's windows (channels last): sizes and the slices each tap meets, checked by hand."""

import numpy as np
import pytest

from sepconv.transforms.windows import kernel_offsets, output_size, pad_spatial, window_slice


def test_output_size_by_hand():
    x = np.zeros((2, 7, 10, 3), np.float32)
    # axis 0: 7 + 1 + 1 = 9 padded, a 3-tap kernel at dilation 2 spans 5, stride 2: (9 - 5) // 2 + 1 = 3
    # axis 1: 10 + 0 + 2 = 12 padded, a 2-tap kernel at dilation 1 spans 2, stride 3: (12 - 2) // 3 + 1 = 4
    assert output_size(x, (3, 2), (2, 3), ((1, 1), (0, 2)), (2, 1)) == ([9, 12], [3, 4])


def test_a_kernel_that_does_not_fit_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"kernel \[5\] with dilation \(2,\) does not fit the padded input \(1, 6, 1\)"):
        output_size(np.zeros((1, 4, 1)), (5,), (1,), ((1, 1),), (2,))


def test_each_tap_meets_the_input_values_of_the_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    kernel, strides, padding, dilation = (3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2)
    _, out = output_size(x, kernel, strides, padding, dilation)
    xp = np.asarray(pad_spatial(x, padding))
    assert xp.shape == (2, 7, 8, 3) and np.all(xp[:, 0] == 0) and np.all(xp[:, 1:, 2:7] == x)
    offsets = list(kernel_offsets(kernel))
    assert offsets == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    for a, b in offsets:
        got = np.asarray(window_slice(xp, (a, b), out, strides, dilation))
        expected = np.array([[[xp[n, a * dilation[0] + strides[0] * i, b * dilation[1] + strides[1] * j]
                               for j in range(out[1])] for i in range(out[0])] for n in range(2)])
        np.testing.assert_array_equal(got, expected)


def test_negative_padding_crops():
    x = np.arange(5, dtype=np.float32).reshape(1, 5, 1)
    np.testing.assert_array_equal(np.asarray(pad_spatial(x, ((-1, 2),)))[0, :, 0], [1, 2, 3, 4, 0, 0])

"""Per-image channel sums (``sepconv.transforms.reductions.per_image_sums``), by hand and against NumPy."""

import jax.numpy as jnp
import numpy as np

from draws import normal
from sepconv.transforms.reductions import per_image_sums


def test_per_image_sums_by_hand():
    # two images of two positions, two channels: a[n, p, c] = 10 n + 2 p + c
    a = np.arange(2)[:, None, None] * 10 + np.arange(2)[None, :, None] * 2 + np.arange(2)[None, None, :]
    (sums,) = per_image_sums([jnp.asarray(a, jnp.float32)])
    # image 0: channel 0 is 0 + 2 = 2, channel 1 is 1 + 3 = 4; image 1: 10 + 12 = 22 and 11 + 13 = 24
    np.testing.assert_array_equal(sums, [[2.0, 4.0], [22.0, 24.0]])


def test_several_arrays_of_one_shape_and_any_rank_in_their_type():
    x, y = normal(0, (3, 4, 5, 6), (3, 4, 5, 6))
    sx, sy = per_image_sums([jnp.asarray(x), jnp.asarray(y) * 2])
    np.testing.assert_allclose(sx, x.sum((1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sy, 2 * y.sum((1, 2)), rtol=1e-5, atol=1e-5)
    (s3,) = per_image_sums([jnp.asarray(x[:, 0])])  # one spatial axis
    np.testing.assert_allclose(s3, x[:, 0].sum(1), rtol=1e-5, atol=1e-5)
    (half,) = per_image_sums([jnp.asarray(x, jnp.float16)])
    assert half.dtype == jnp.float16 and half.shape == (3, 6)

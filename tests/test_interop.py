"""sepconv.interop: an NNX module as a pure function of its state (the Keras adapter is tested in
test_keras_reference.py)."""

import jax
import numpy as np
import pytest
from flax import nnx

from draws import normal
from sepconv.blocks import SeparableSpec
from sepconv.interop import pure_module


@pytest.mark.parametrize("flat", [False, True])
def test_pure_module_is_the_module_as_a_function_of_its_state(flat):
    model = SeparableSpec(4, 6, stride=2).build(nnx.Rngs(0))
    model.eval()  # BatchNorm with its running statistics, which are part of the state
    x = normal(1, (2, 9, 9, 4))
    fn, state = pure_module(model, flat=flat)
    if flat:  # a plain list of the arrays: the kernels and BatchNorm's scale, bias, mean and variance
        assert isinstance(state, list) and sorted(v.size for v in state) == sorted(
            [3 * 3 * 4, 4 * 6] + [4] * 4 + [6] * 4)
    np.testing.assert_allclose(jax.jit(fn)(state, x), model(x), rtol=1e-5, atol=1e-6)
    doubled = jax.tree.map(lambda v: 2 * v, state)  # the state is an input, not a constant
    assert not np.allclose(fn(doubled, x), model(x))

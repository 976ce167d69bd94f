import numpy as np
import pytest

from sepconv.counter import count
from sepconv.layers import randomize_batchnorm
import math

from sepconv.interop import pure_module
from sepconv.memory import block_output_shapes, compiled_memory, materialized_by_resolution
from sepconv.transforms.streaming import streamed_inverted_residual
from sepconv.models import build_model, resolve_model
from draws import normal


@pytest.fixture(scope="module")
def v2():
    return build_model("mobilenet_v2")


@pytest.mark.parametrize("index, size", [(2, 112), (3, 56), (5, 28)])
@pytest.mark.parametrize("splits", [1, 3, 8])
def test_streamed_block_equals_block_and_saves_memory(v2, index, size, splits):
    block = randomize_batchnorm(v2.features[index], seed=index)
    x = normal(1, (2, size, size, block.conv_pw.conv.kernel.shape[2]))
    streamed = streamed_inverted_residual(block, splits)
    np.testing.assert_allclose(np.asarray(streamed(x)), np.asarray(block(x)), rtol=1e-4, atol=1e-4)
    full, split = count(block, x), count(streamed, x)
    assert split.macs == full.macs  # the scan's body, times its length
    fn, state = pure_module(block)
    whole, sliced = compiled_memory(fn, state, x)["temp"], compiled_memory(streamed, x)["temp"]
    if splits == 1:
        assert sliced <= whole * 1.01
    else:  # the compiled program itself holds less: about one slice of the expanded tensor
        assert sliced < whole / (0.8 * splits) + 4 * math.prod(block(x).shape)


def test_streaming_needs_an_expansion_and_valid_splits(v2):
    with pytest.raises(ValueError, match="t = 1"):
        streamed_inverted_residual(v2.features[1], 2)
    with pytest.raises(ValueError, match="splits must divide the 96 expanded channels, got 0"):
        streamed_inverted_residual(v2.features[2], 0)
    with pytest.raises(ValueError, match="splits must divide the 96 expanded channels, got 5"):
        streamed_inverted_residual(v2.features[2], 5)


def test_materialized_tensors_follow_the_architecture():
    v2 = resolve_model("mobilenet_v2")
    shapes = block_output_shapes(v2)
    assert shapes[0] == ("ConvSpec", (112, 112, 32)) and shapes[-1] == ("pooled", (1, 1, 1280))
    assert len(shapes) == 1 + 17 + 1 + 1
    assert materialized_by_resolution(v2, fuse_stem=True)[(112, 112)] == 16
    assert materialized_by_resolution(v2)[(112, 112)] == 32
    v1 = materialized_by_resolution(resolve_model("mobilenet_v1"))
    assert v1 == {(112, 112): 64, (56, 56): 128, (28, 28): 256, (14, 14): 512, (7, 7): 1024, (1, 1): 1024}

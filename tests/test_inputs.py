"""Bad input to the model registry and the counter's API: one ValueError naming the value; numpy
scalar types and Fractions accepted wherever the value itself is valid."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.counter import count, count_training
from sepconv.models import abstract_model, build_model, count_model, model_cost
from sepconv.models.network import materialize


@pytest.mark.parametrize("seed", [-1, 2**70, 1.5, None, True, "0", np.float64(0.5)])
def test_bad_seeds_are_refused_naming_the_seed(seed):
    with pytest.raises(ValueError) as error:
        build_model("mobilenet_v1", seed=seed, resolution=32)
    assert str(error.value) == f"seed must be an integer in [0, 4294967295], got {seed!r}"
    with pytest.raises(ValueError, match="^seed must be"):
        materialize(abstract_model("mobilenet_v1", resolution=32), seed)


@pytest.mark.parametrize("seed", [np.int64(3), np.uint32(3), 3.0])
def test_integer_seeds_of_any_type(seed):
    a = build_model("squeezenet1_1", seed=seed, resolution=32)
    b = build_model("squeezenet1_1", seed=3, resolution=32)
    x = jnp.ones((1, 32, 32, 3))
    np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize("alpha", [np.float32(0.5), np.float64(0.5), Fraction(1, 2), 0.5])
def test_alpha_of_any_real_type(alpha):
    assert model_cost("mobilenet_v1", alpha=alpha).macs == model_cost("mobilenet_v1", alpha=0.5).macs


def test_integer_options_and_batch_of_numpy_types():
    assert model_cost("mobilenet_v1", resolution=np.int64(160)).macs == model_cost("mobilenet_v1", resolution=160).macs
    at_160 = model_cost("mobilenet_v1", resolution=160).macs
    assert model_cost("mobilenet_v1", resolution=Fraction(320, 2)).macs == at_160
    assert model_cost("shufflenet_v1", groups=np.int32(3)).macs == model_cost("shufflenet_v1", groups=3).macs
    one = count_model("squeezenet1_1", resolution=64).macs
    assert count_model("squeezenet1_1", batch=np.int64(3), resolution=64).macs == 3 * one


@pytest.mark.parametrize("options, message", [
    ({"alpha": Fraction(1, 3) * 0 - 1}, "alpha must be a number in (0, 4], got Fraction(-1, 1)"),
    ({"alpha": np.float32("nan")}, "alpha must be a number in (0, 4], got"),
    ({"resolution": np.float64(160.5)}, "resolution must be an integer in [32, 4096], got"),
    ({"resolution": np.bool_(True)}, "resolution must be an integer in [32, 4096], got"),
])
def test_invalid_values_of_numpy_types_are_refused_naming_them(options, message):
    with pytest.raises(ValueError) as error:
        model_cost("mobilenet_v1", **options)
    assert str(error.value).startswith(message)


def test_batch_is_checked():
    for batch in (0, -2, 1.5, None, np.float64(2.5)):
        with pytest.raises(ValueError, match=r"^batch must be a positive integer, got"):
            count_model("mobilenet_v1", batch=batch)


def test_an_unknown_model_name_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown model 'mobilenet'; did you mean mobilenet_v2 or mobilenet_v1"):
        model_cost("mobilenet")


@pytest.mark.parametrize("shape", [(1, 32, 32, 4), (1, 32, 32, 1), (32, 32, 3)])
def test_a_model_given_other_than_rgb_images_says_so(shape):
    model = abstract_model("mobilenet_v1", resolution=32)
    with pytest.raises(ValueError) as error:
        count(model, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert str(error.value) == f"mobilenet_v1 takes images of shape (batch, height, width, 3), got shape {shape}"


def test_count_training_checks_its_input_and_labels():
    model = abstract_model("squeezenet1_1", resolution=32)
    with pytest.raises(ValueError, match=r"^x must be an array or a jax.ShapeDtypeStruct .* got list \[\[1.0\]\]"):
        count_training(model, [[1.0]])
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    with pytest.raises(ValueError, match=r"^labels must be integer class indices of shape \(2,\) .* got float32"):
        count_training(model, x, jnp.zeros(2, jnp.float32))
    with pytest.raises(ValueError, match=r"^labels must be an array .* got list"):
        count_training(model, x, [0, 1])
    assert count_training(model, x, jnp.zeros(2, jnp.int32)).complete

"""Our models are the networks of keras.applications (JAX backend): same trainable parameters, and the
same MACs when our counter traces the Keras model itself."""

import os

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import numpy as np

from sepconv.interop.keras import keras_application, keras_function
from sepconv.counter import count
from sepconv.models import abstract_model

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")


def _ours(model):
    trainable = sum(int(v.size) for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))
    stats = sum(int(v.size) for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.BatchStat)))
    return trainable, stats


def _keras_trainable(ref):
    return sum(int(jnp.size(v.value)) for v in ref.trainable_variables)


def _keras_macs(ref, resolution):
    fn, trainable, non_trainable = keras_function(ref)
    x = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
    result = count(lambda x: fn(trainable, non_trainable, x), x)
    assert result.complete, result.uncosted
    return result.macs


@pytest.mark.parametrize("name, builder, resolution", [
    ("mobilenet_v1", "MobileNet", 224), ("mobilenet_v2", "MobileNetV2", 224), ("xception", "Xception", 299)])
def test_keras_applications_are_the_same_networks(name, builder, resolution):
    ref = keras_application(getattr(keras.applications, builder), input_shape=(resolution, resolution, 3))
    model = abstract_model(name)
    trainable, stats = _ours(model)
    assert trainable == _keras_trainable(ref)
    assert trainable + stats == ref.count_params()
    x = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
    assert count(model, x).macs == _keras_macs(ref, resolution)


# Each width and the minimalistic variant once, on both sizes.
@pytest.mark.parametrize("size, alpha, minimal", [("large", 1.0, False), ("large", 0.75, False),
                                                  ("small", 1.25, False), ("small", 1.0, True)])
def test_keras_mobilenet_v3_is_the_keras_convention(size, alpha, minimal):
    """At alpha != 1 torchvision's width rule builds a different network than Keras's."""
    builder = getattr(keras.applications, f"MobileNetV3{size.capitalize()}")
    ref = keras_application(builder, alpha=alpha, minimalistic=minimal, classes=1001, input_shape=(224, 224, 3))
    ours = abstract_model(f"mobilenet_v3_{size}", alpha=alpha, minimal=minimal, classes=1001, convention="keras")
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    assert _ours(ours)[0] == _keras_trainable(ref)
    assert count(ours, x).macs == _keras_macs(ref, 224)
    torchvision_rule = abstract_model(f"mobilenet_v3_{size}", alpha=alpha, minimal=minimal, classes=1001)
    assert (_ours(torchvision_rule)[0] == _keras_trainable(ref)) == (alpha == 1.0)


def test_keras_application_draws_from_the_distributions_of_keras_initializers():
    """Host-drawn weights (no JAX program per shape) have the distributions of Keras's own draws: Glorot
    uniform (bounds sqrt(6 / (fan_in + fan_out))), He normal truncated at 2 std, a plain normal. Quantiles
    agree to a tenth of a standard deviation (about 4 standard errors at these sizes)."""
    def small(weights=None):
        assert weights is None
        return keras.Sequential([keras.Input((16, 16, 32)),
                                 keras.layers.Conv2D(64, 3, kernel_initializer="glorot_uniform"),
                                 keras.layers.Conv2D(64, 3, kernel_initializer="he_normal"),
                                 keras.layers.Dense(256, kernel_initializer=keras.initializers.RandomNormal(0.5, 2.0))])

    def kernels(model):
        return [np.asarray(v.value) for v in model.weights if v.path.endswith("kernel")]

    ours, again = kernels(keras_application(small, seed=3)), kernels(keras_application(small, seed=3))
    keras.utils.set_random_seed(0)
    theirs = kernels(small())
    assert len(ours) == len(theirs) == 3
    assert all(np.array_equal(a, b) for a, b in zip(ours, again))
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    for o, t in zip(ours, theirs):
        assert o.shape == t.shape and o.dtype == t.dtype
        np.testing.assert_allclose(np.quantile(o, levels), np.quantile(t, levels), atol=0.1 * t.std())
        assert abs(o.std() / t.std() - 1) < 0.03
    glorot, he = np.sqrt(6 / (9 * 32 + 9 * 64)), np.sqrt(2 / (9 * 64))
    assert 0.99 * glorot < np.abs(ours[0]).max() <= glorot
    assert 0.99 * 2 * he / 0.87962566 < np.abs(ours[1]).max() <= 2 * he / 0.87962566 + 1e-6

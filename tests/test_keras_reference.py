"""Our models are the networks of keras.applications (JAX backend): same trainable parameters, and the
same MACs when our counter traces the Keras model itself."""

import os

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from sepconv.bench import keras_function
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
    ref = getattr(keras.applications, builder)(weights=None, input_shape=(resolution, resolution, 3))
    model = abstract_model(name)
    trainable, stats = _ours(model)
    assert trainable == _keras_trainable(ref)
    assert trainable + stats == ref.count_params()
    x = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
    assert count(model, x).macs == _keras_macs(ref, resolution)


# Each width and the minimalistic variant once, on both sizes (a Keras model takes 5-10 s to build:
# Keras initializes its weights eagerly).
@pytest.mark.parametrize("size, alpha, minimal", [("large", 1.0, False), ("large", 0.75, False),
                                                  ("small", 1.25, False), ("small", 1.0, True)])
def test_keras_mobilenet_v3_is_the_keras_convention(size, alpha, minimal):
    """At alpha != 1 torchvision's width rule builds a different network than Keras's."""
    builder = getattr(keras.applications, f"MobileNetV3{size.capitalize()}")
    ref = builder(weights=None, alpha=alpha, minimalistic=minimal, classes=1001, input_shape=(224, 224, 3))
    ours = abstract_model(f"mobilenet_v3_{size}", alpha=alpha, minimal=minimal, classes=1001, convention="keras")
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    assert _ours(ours)[0] == _keras_trainable(ref)
    assert count(ours, x).macs == _keras_macs(ref, 224)
    torchvision_rule = abstract_model(f"mobilenet_v3_{size}", alpha=alpha, minimal=minimal, classes=1001)
    assert (_ours(torchvision_rule)[0] == _keras_trainable(ref)) == (alpha == 1.0)

"""``transforms.streaming``'s choice of a micro-batch: the largest activation, the cache, the divisor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.interop import pure_module
from sepconv.models import build_model
from sepconv.transforms import streaming
from sepconv.transforms.batchnorm import fold_batchnorm
from sepconv.transforms.fast_inference import fast_inference
from sepconv.transforms.streaming import (CACHE_SHARE, cache_micro_batch, largest_activation_bytes,
                                          last_level_cache_bytes, micro_batched)


def test_largest_activation_counts_values_of_the_input_not_weights():
    """A 1000x10 weight (40,000 bytes) is no activation; the input doubled side by side (2 x 4 x 1000
    float32 = 32,000 bytes, computed inside a nested ``jit``) is the largest one; the product (160 bytes)
    and the input itself (16,000) are smaller."""
    w, x = jnp.ones((1000, 10)), jnp.ones((1, 4, 1000))

    def fn(w, x):
        wide = jax.jit(lambda x: jnp.concatenate([x, x], axis=1))(x)
        return wide @ w + jnp.tile(w, (2, 1)).sum()  # the tiled weight (80,000 bytes) depends on no input

    assert largest_activation_bytes(fn, w, x) == 2 * 4 * 1000 * 4


@pytest.mark.parametrize("name, channels", [("mobilenet_v2", 96), ("mobilenet_v1", 64)])
def test_largest_activation_of_a_network_is_its_padded_stride_2_input(name, channels):
    """Under ``fast_inference`` at 224 px, the largest activation is the padded input of the first stride-2
    depthwise layer: 112x112 padded by one row and column (TensorFlow's SAME for stride 2) and ``channels``
    deep (v2: the 16 channels of block 2 expanded 6 times; v1: layer 2's 64)."""
    fn, state = pure_module(fold_batchnorm(build_model(name)), flat=True)
    assert largest_activation_bytes(fast_inference(fn), state, jnp.ones((1, 224, 224, 3))) == 113 * 113 * channels * 4


def write_cache(folder, index, level, size):
    (folder / "cache" / f"index{index}").mkdir(parents=True)
    (folder / "cache" / f"index{index}" / "level").write_text(f"{level}\n")
    (folder / "cache" / f"index{index}" / "size").write_text(f"{size}\n")


def test_last_level_cache_is_read_from_linux_cpu_folder(tmp_path):
    for i, (level, size) in enumerate([(1, "48K"), (1, "32K"), (2, "1024K"), (3, "32768K")]):
        write_cache(tmp_path, i, level, size)
    assert last_level_cache_bytes(tmp_path) == 32 * 2**20
    write_cache(tmp_path, 4, 4, "1M")
    assert last_level_cache_bytes(tmp_path) == 2**20  # the highest level, not the largest size
    assert last_level_cache_bytes(tmp_path / "missing") is None
    broken = tmp_path / "broken"
    write_cache(broken, 0, 2, "lots")
    assert last_level_cache_bytes(broken) is None


def test_micro_batch_is_the_largest_divisor_that_fits(monkeypatch):
    """One image's largest activation: 1000 float32 side by side with themselves, 8,000 bytes. With a 64,000-byte cache, half
    of it (``CACHE_SHARE``) holds 4 images: a batch of 12 runs 4 at a time, 6 runs 3 (its largest divisor
    up to 4), 7 runs 1; a cache smaller than one image still gives 1; no cache known, the whole batch."""
    assert CACHE_SHARE == 0.5

    def fn(state, x):
        return jnp.concatenate([x, x], axis=-1) + state

    for batch, size in ((12, 4), (6, 3), (7, 1), (1, 1)):
        assert cache_micro_batch(fn, 0.0, jnp.ones((batch, 1000)), cache_bytes=64_000) == size
    assert cache_micro_batch(fn, 0.0, jnp.ones((12, 1000)), cache_bytes=100) == 1
    assert cache_micro_batch(fn, 0.0, jax.ShapeDtypeStruct((12, 1000), jnp.float32), cache_bytes=64_000) == 4
    monkeypatch.setattr(streaming, "last_level_cache_bytes", lambda: None)
    assert cache_micro_batch(fn, 0.0, jnp.ones((12, 1000))) == 12


def test_the_chosen_micro_batch_computes_the_same():
    fn, state = pure_module(fold_batchnorm(build_model("mobilenet_v1", resolution=32)), flat=True)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 32, 32, 3)), jnp.float32)
    size = cache_micro_batch(fast_inference(fn), state, x, cache_bytes=2 * 2 * largest_activation_bytes(
        fast_inference(fn), state, x[:1]))
    assert size == 2
    np.testing.assert_allclose(jax.jit(micro_batched(fast_inference(fn), size))(state, x), fn(state, x),
                               rtol=1e-4, atol=1e-4)


SPLIT_CHILD = """
import jax
jax.config.update("jax_num_cpu_devices", 2)
import jax.numpy as jnp, numpy as np
from sepconv.benchmarks.runtimes import inference_program
from sepconv.interop import pure_module
from sepconv.models import build_model
from sepconv.transforms.batchnorm import fold_batchnorm
from sepconv.transforms.streaming import split_over_devices

devices = jax.devices("cpu")
assert len(devices) == 2
# the batch split: each device computes its images, the same numbers as one device
program, place = split_over_devices(lambda s, x: x * s + x.sum(axis=1, keepdims=True), devices)
x = jnp.arange(12.0).reshape(4, 3)
state, xs = place(jnp.float32(2.0), x)
assert len(xs.sharding.device_set) == 2
out = program(state, xs)
np.testing.assert_array_equal(np.asarray(out), np.asarray(x * 2 + x.sum(axis=1, keepdims=True)))
assert len(out.sharding.device_set) == 2
try:
    place(state, jnp.ones((3, 3)))
    raise SystemExit("an uneven batch was accepted")
except ValueError as error:
    assert str(error) == "a batch of 3 does not split evenly over 2 devices"
# our inference program splits a batch the devices divide, and keeps one device otherwise
fn, st = pure_module(fold_batchnorm(build_model("mobilenet_v1", resolution=32)), flat=True)
images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 32, 32, 3)), jnp.float32)
split, args, size, shared = inference_program(fn, st, images)
single, single_args, _, one = inference_program(fn, st, images, devices=devices[:1])
assert (shared, one) == (2, 1) and size >= 1
np.testing.assert_allclose(np.asarray(split(*args)), np.asarray(single(*single_args)), rtol=1e-6, atol=1e-6)
assert inference_program(fn, st, images[:3])[3] == 1
print("ok")
"""


def test_a_batch_split_over_two_cpu_devices_computes_the_same():
    """In a process given two CPU devices (``jax_num_cpu_devices``, set before JAX starts): the batch split
    over both computes what one device does, an uneven batch is refused in one line, and our inference
    program splits a batch of 4 (MobileNet v1, 32 px) and keeps one device for a batch of 3."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SPLIT_CHILD], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"


def test_one_cpu_device_per_core_before_jax_starts_and_the_devices_kept_after():
    """In a fresh process JAX gets one CPU device per core; in this one, where JAX has run, the call keeps
    the devices it has and says how many."""
    import os
    import subprocess
    import sys

    from sepconv.benchmarks.runtimes import one_cpu_device_per_core

    child = "from sepconv.benchmarks.runtimes import one_cpu_device_per_core as f; print(f())"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == os.cpu_count()
    jnp.ones(1).block_until_ready()  # JAX has started here
    assert one_cpu_device_per_core() == len(jax.devices("cpu"))

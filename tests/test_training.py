import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.counter import count
from sepconv.training import accuracy, fit, full_conv_twin, load_digits, tiny_mobilenet, TINY_MOBILENET


def test_digits_are_split_deterministically():
    a, b = load_digits(16, seed=0), load_digits(16, seed=0)
    assert a.x_train.shape == (1348, 16, 16, 3) and a.x_test.shape == (449, 16, 16, 3)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert set(np.unique(a.y_train)) == set(range(10))
    with pytest.raises(ValueError, match="size must be at least the original 8 pixels, got 4"):
        load_digits(4)
    with pytest.raises(ValueError, match="test_fraction must be between 0 and 1, got 1.5"):
        load_digits(16, test_fraction=1.5)


def test_twin_differs_only_in_the_separable_layers():
    twin = full_conv_twin(TINY_MOBILENET)
    assert [(op.kernel, op.stride, op.depth) for op in twin] == [(op.kernel, op.stride, op.depth) for op in TINY_MOBILENET]
    sep, full = tiny_mobilenet(1.0, True), tiny_mobilenet(1.0, False)
    x = jnp.zeros((1, 16, 16, 3))
    assert count(full, x).macs > 5 * count(sep, x).macs


def test_training_learns_and_is_deterministic():
    data = load_digits(8)  # the original 8 x 8 pixels: a quarter of the work of 16 x 16
    runs = []
    for _ in range(2):
        model = tiny_mobilenet(0.5, seed=0)
        losses = fit(model, data, epochs=2, seed=0)
        runs.append((losses, accuracy(model, data.x_test, data.y_test)))
    assert runs[0] == runs[1]
    losses, acc = runs[0]
    assert losses[1] < losses[0] and acc > 0.5  # far above chance (0.1) after two epochs


def test_shifted_training_step_computes_the_gradient_of_the_traced_model():
    """fit's step (depthwise as shifted multiply-adds) equals nnx's own step on the same model."""
    import optax
    from flax import nnx

    from sepconv.training import _shifted_step, train_step

    data = load_digits(16)
    x, y = data.x_train[:32], data.y_train[:32]
    a, b = tiny_mobilenet(0.5, seed=3), tiny_mobilenet(0.5, seed=3)
    a.train()
    optimizer = nnx.Optimizer(a, optax.adam(1e-2), wrt=nnx.Param)
    reference = [float(train_step(a, optimizer, x, y)) for _ in range(3)]
    graphdef, params, rest = nnx.split(b, nnx.Param, ...)
    opt, step = _shifted_step(graphdef, 1e-2)
    state = opt.init(params)
    shifted = []
    for _ in range(3):
        params, rest, state, value = step(params, rest, state, x, y)
        shifted.append(float(value))
    np.testing.assert_allclose(shifted, reference, rtol=2e-3)


def test_data_parallel_step_matches_single_device():
    """Forced host devices must be set before JAX starts, so this runs in a fresh process."""
    script = textwrap.dedent("""
        import jax, optax
        from flax import nnx
        from sepconv.training import data_parallel, load_digits, tiny_mobilenet, train_step
        assert len(jax.devices()) == 8, jax.devices()
        d = load_digits(16)
        x, y = d.x_train[:64], d.y_train[:64]
        def steps(parallel):
            m = tiny_mobilenet(0.5, seed=0); m.train()
            opt = nnx.Optimizer(m, optax.adam(2e-3), wrt=nnx.Param)
            xs, ys = x, y
            if parallel:
                _, sharding = data_parallel(m, opt)
                xs, ys = jax.device_put(x, sharding), jax.device_put(y, sharding)
                assert len(xs.sharding.device_set) == 8
            return [float(train_step(m, opt, xs, ys)) for _ in range(3)]
        a, b = steps(False), steps(True)
        print(a, b)
        assert max(abs(p - q) for p, q in zip(a, b)) < 1e-3
        print("OK")
    """)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]

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


# --------------------------------------------------------------------------------------------------
# Seeds trained together, the ablation network, the paired difference
# --------------------------------------------------------------------------------------------------

def _small_strokes():
    from sepconv.datasets import colored_strokes

    return colored_strokes(128, 64, size=8, noise=0.1, seed=3)


def test_a_model_trained_in_a_batch_of_models_trains_as_alone():
    """fit_together's vmapped step is each model's own: model 1 of a pair follows the same losses as
    model 1 trained alone, and as ``fit`` (the one-model loop, nnx's step) trains it, batch order included."""
    from sepconv.training import fit_together

    data = _small_strokes()
    pair = fit_together([tiny_mobilenet(0.25, seed=s, classes=8) for s in (0, 1)], data, (0, 1), epochs=2, batch=32)
    alone = fit_together([tiny_mobilenet(0.25, seed=1, classes=8)], data, (1,), epochs=2, batch=32)
    reference = tiny_mobilenet(0.25, seed=1, classes=8)
    losses = fit(reference, data, epochs=2, batch=32, seed=1)
    np.testing.assert_allclose(pair.losses[1], alone.losses[0], rtol=1e-4)
    np.testing.assert_allclose(alone.losses[0], losses, rtol=1e-3)
    assert pair.accuracy.shape == (2,) and pair.losses.shape == (2, 2) and pair.seeds.tolist() == [0, 1]
    # the returned models hold the trained weights: their accuracy is the one reported
    assert abs(accuracy(pair.models[1], data.x_test, data.y_test) - pair.accuracy[1]) <= 1 / 64


def test_fit_together_names_its_bad_inputs():
    from sepconv.training import fit_together

    data = _small_strokes()
    with pytest.raises(ValueError, match="need one seed per model, got 1 seeds for 2 models"):
        fit_together([tiny_mobilenet(0.25, classes=8)] * 2, data, (0,))
    with pytest.raises(ValueError, match="one architecture"):
        fit_together([tiny_mobilenet(0.25, classes=8), tiny_mobilenet(0.5, classes=8)], data, (0, 1))
    with pytest.raises(ValueError, match="batch between 1 and 128, got epochs=1, batch=500"):
        fit_together([tiny_mobilenet(0.25, classes=8)], data, (0,), epochs=1, batch=500)


def test_a_snapshot_is_the_shorter_run():
    """A run's snapshot after epoch 1 is a one-epoch run of the same seeds (the batches of an epoch do
    not depend on how many follow): the same accuracy and losses, without training again."""
    from sepconv.training import fit_together

    data = _small_strokes()
    longer = fit_together([tiny_mobilenet(0.25, seed=s, classes=8) for s in (0, 1)], data, (0, 1), epochs=2,
                          batch=32, snapshots=(1,))
    short = fit_together([tiny_mobilenet(0.25, seed=s, classes=8) for s in (0, 1)], data, (0, 1), epochs=1, batch=32)
    np.testing.assert_array_equal(longer.after(1).accuracy, short.accuracy)
    np.testing.assert_allclose(longer.after(1).losses, short.losses, rtol=1e-6)
    assert sorted(longer.snapshots) == [1, 2] and longer.losses.shape == (2, 2)
    with pytest.raises(ValueError, match="snapshots must be epochs from 1 to 1, got \\[2\\]"):
        fit_together([tiny_mobilenet(0.25, classes=8)], data, (0,), epochs=2, snapshots=(2,))
    with pytest.raises(ValueError, match="no snapshot after 3 epochs"):
        longer.after(3)


def test_bottleneck_net_switches_are_the_figure_6_variants():
    """The switches against a forward pass written out from the paper's definitions with the model's own
    layers: the projection linear or ReLU6, the input added to the projection (between bottlenecks), or
    each stride-1 block's expansion added to the next one's (between expansions)."""
    from sepconv.blocks import relu6
    from sepconv.training import ABLATIONS, bottleneck_net

    model = bottleneck_net(seed=2, classes=8, stem=8, width=16, t=2, repeats=3, head=32)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype(np.float32))

    def written_out(relu, between_bottlenecks, between_expansions):
        h = model.stem(x)
        e, d, p = model.down
        h = p(d(e(h)))
        h = relu6(h) if relu else h
        previous = None
        for e, d, p in model.blocks:
            expanded = e(h)
            if between_expansions and previous is not None:
                expanded = expanded + previous
            previous = expanded
            out = p(d(expanded))
            out = relu6(out) if relu else out
            h = out + h if between_bottlenecks else out
        return model.classifier(model.head(h))

    for name, switches in ABLATIONS.items():
        np.testing.assert_allclose(model(x, *switches), written_out(*map(bool, switches)), rtol=1e-5, atol=1e-5,
                                   err_msg=name)
    # the variants differ: a switch is not ignored
    outputs = [np.asarray(model(x, *s)) for s in ABLATIONS.values()]
    assert all(np.abs(a - b).max() > 1e-3 for i, a in enumerate(outputs) for b in outputs[i + 1:])
    # MACs by hand (t = 2): stem 12^2*27*8; down 12^2*8*16 + 6^2*9*16 + 6^2*16*16;
    # three blocks of 6^2*(16*32 + 9*32 + 32*16); head 6^2*16*32; classifier 32*8
    expected = (144 * 27 * 8 + 144 * 8 * 16 + 36 * 9 * 16 + 36 * 16 * 16 + 3 * 36 * (16 * 32 + 9 * 32 + 32 * 16)
                + 36 * 16 * 32 + 32 * 8)
    assert count(model, jnp.zeros((1, 12, 12, 3))).macs == expected


def test_paired_difference_by_hand():
    """a - b = (1, 2, 3): mean 2, standard deviation 1, t(0.975, 2 d.o.f.) = 4.303 (the t table), so the
    95% interval is 2 -+ 4.303 / sqrt(3) = (-0.484, 4.484); a ahead in 3 of 3, sign test p = 2 / 2^3."""
    from sepconv.training import paired_difference

    d = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert d.mean == pytest.approx(2.0)
    assert d.low == pytest.approx(2 - 4.3027 / 3 ** 0.5, abs=1e-3) and d.high == pytest.approx(2 + 4.3027 / 3 ** 0.5, abs=1e-3)
    assert (d.n, d.a_wins, d.b_wins, d.sign_p) == (3, 3, 0, pytest.approx(0.25))
    assert not d.resolved and d.words("a", "b", scale=1, unit="").startswith("a and b cannot be told apart: a minus b = +2.0")
    tight = paired_difference([0.50, 0.51, 0.52, 0.50, 0.51], [0.80, 0.80, 0.81, 0.79, 0.80])
    assert tight.resolved and tight.words("sep", "full").startswith("sep is behind full by 29.2 points (95% CI")
    assert "sep ahead in 0 of 5 seeds, sign test p = 0.062" in tight.words("sep", "full")
    with pytest.raises(ValueError, match=r"got shapes \(2,\) and \(3,\)"):
        paired_difference([1, 2], [1, 2, 3])

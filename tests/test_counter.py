import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from bruteforce import naive_conv
from draws import normal
from sepconv import cost
from sepconv.counter import count, count_macs
from sepconv.blocks import SeparableSpec


@given(st.fixed_dictionaries({
    "batch": st.integers(1, 3), "h": st.integers(3, 8), "w": st.integers(3, 8),
    "groups": st.integers(1, 3), "cpg": st.integers(1, 3), "opg": st.integers(1, 3),
    "k": st.integers(1, 3), "stride": st.integers(1, 3), "dilation": st.integers(1, 2),
    "padding": st.sampled_from(["SAME", "VALID"]),
}))
def test_counter_matches_closed_form_and_bruteforce(c):
    c_in, c_out = c["cpg"] * c["groups"], c["opg"] * c["groups"]
    conv = nnx.Conv(c_in, c_out, (c["k"], c["k"]), strides=c["stride"], padding=c["padding"],
                    kernel_dilation=c["dilation"], feature_group_count=c["groups"], use_bias=True,
                    rngs=nnx.Rngs(0))
    x = jnp.ones((c["batch"], c["h"], c["w"], c_in))
    counted = count(conv, x)
    closed = cost.conv2d_cost(c["h"], c["w"], c_in, c_out, c["k"], c["stride"], c["padding"],
                              c["dilation"], groups=c["groups"], bias=True)
    _, brute, brute_real = naive_conv(np.ones((c["h"], c["w"], c_in)), np.asarray(conv.kernel[...]),
                                      (c["stride"],) * 2, c["padding"], (c["dilation"],) * 2, c["groups"])
    assert counted.macs == c["batch"] * closed.macs == c["batch"] * brute
    assert counted.macs_excluding_padding == c["batch"] * brute_real
    assert counted.params_trainable == counted.params_excluding_norm == closed.params
    assert counted.complete


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 0), (1, 1))])
@pytest.mark.parametrize("groups", [1, 4])
def test_xla_flops_are_twice_the_macs_on_real_input(padding, groups):
    """XLA's cost model skips taps on zero padding: flops = 2 * macs_excluding_padding."""
    x = jnp.ones((2, 9, 7, 8))
    w = jnp.ones((3, 3, 8 // groups, 12))

    def f(x):
        return jax.lax.conv_general_dilated(x, w, (2, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=groups)

    counted = count(f, x)
    xla = jax.jit(f).lower(x).compile().cost_analysis()
    xla = xla[0] if isinstance(xla, (list, tuple)) else xla
    assert xla["flops"] == 2 * counted.macs_excluding_padding
    if padding == "VALID":
        assert xla["flops"] == counted.flops
    else:
        assert xla["flops"] < counted.flops


def test_dot_general_and_batched_matmul():
    a, b = jnp.ones((5, 3, 4)), jnp.ones((5, 4, 6))
    assert count_macs(lambda a, b: a @ b, a, b) == 5 * 3 * 6 * 4
    assert count_macs(lambda a, b: jnp.einsum("bij,bjk->bik", a, b), a, b) == 5 * 3 * 6 * 4
    fc = nnx.Linear(1024, 1000, rngs=nnx.Rngs(0))
    r = count(fc, jnp.ones((1, 1024)))
    assert (r.macs, r.params_trainable) == (1024 * 1000, 1024 * 1000 + 1000)


def test_jit_and_scan_are_followed():
    w = jnp.ones((4, 4))

    @jax.jit
    def inner(x):
        return x @ w

    def looped(x):
        return jax.lax.scan(lambda c, _: (inner(c), None), x, None, length=7)[0]

    assert count_macs(inner, jnp.ones((2, 4))) == 2 * 4 * 4
    assert count_macs(looped, jnp.ones((2, 4))) == 7 * 2 * 4 * 4


def test_unknown_primitives_are_reported_not_skipped():
    def f(x):
        y = jax.lax.while_loop(lambda v: v[0, 0] < 10, lambda v: v @ jnp.ones((3, 3)), x)
        return y @ jnp.ones((3, 2))

    r = count(f, jnp.ones((3, 3)))
    assert r.uncosted == {"while": 1}
    assert not r.complete
    assert r.macs == 3 * 2 * 3  # what it could cost is still counted
    with pytest.raises(ValueError, match=r"cannot cost primitives \['while'\]"):
        count_macs(f, jnp.ones((3, 3)))
    assert r.to_dict()["uncosted"] == {"while": 1}


def test_model_parameters_and_batchnorm_convention():
    block = SeparableSpec(8, 16, stride=2).build(nnx.Rngs(0))
    block.eval()
    r = count(block, jnp.ones((3, 10, 10, 8)))
    dw, pw = cost.depthwise_separable_cost(10, 10, 8, 16, stride=2)
    assert r.macs == 3 * (dw.macs + pw.macs)
    assert r.params_excluding_norm == dw.params + pw.params
    assert r.params_trainable == dw.params + pw.params + 2 * (8 + 16)
    assert r.activations == 3 * (dw.output_activations + pw.output_activations)


def test_peak_activation_memory_of_a_chain():
    """Three 1x1 convs in a chain: at most one input and one output are live at a time."""
    ws = [jnp.ones((1, 1, c_in, c_out)) for c_in, c_out in [(4, 64), (64, 8), (8, 4)]]

    def f(x):
        for w in ws:
            x = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return x

    x = jnp.ones((1, 10, 10, 4))
    r = count(f, x)
    # the largest pair is the 4-channel input with the 64-channel output, or 64 with 8
    assert r.peak_activation_bytes == 4 * 100 * (64 + 8)


def test_count_rejects_non_callables():
    with pytest.raises(TypeError, match="callable"):
        count(42)

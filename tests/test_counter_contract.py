"""The counting contract on programs written without the counter in mind: hand counts, XLA's cost
analysis where it is exact (no padding taps), and programs run on several devices in a subprocess."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from sepconv import cost
from sepconv.counter import count, count_macs, count_training

DN = ("NHWC", "HWIO", "NHWC")


def _xla_flops(fn, *args):
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return int(analysis["flops"])


# --- transposed convolutions: inserted zeros are not multiplied -------------------------------------

@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_transposed_convolution_costs_input_pixels_times_taps_times_outputs_per_group(stride, groups):
    n, h, w, c_in, c_out, k = 2, 5, 4, 4, 6, 3
    x = jnp.ones((n, h, w, c_in))
    kernel = jnp.ones((k, k, c_in // groups, c_out))

    def up(x):  # a transposed convolution written as XLA sees it: input dilation, "full" padding
        return lax.conv_general_dilated(x, kernel, (1, 1), [(k - 1, k - 1)] * 2, lhs_dilation=(stride, stride),
                                        dimension_numbers=DN, feature_group_count=groups)

    hand = n * h * w * c_in * k * k * c_out // groups
    assert count_macs(up, x) == hand
    assert _xla_flops(up, x) == 2 * hand  # every product lands on the output: XLA counts the same


def test_without_input_dilation_a_padded_convolution_counts_its_padding_taps():
    """Stride 1 inserts no zeros: the program is an ordinary convolution, counted as the papers count one."""
    x, kernel = jnp.ones((1, 5, 4, 4)), jnp.ones((3, 3, 4, 6))

    def padded(x):
        return lax.conv_general_dilated(x, kernel, (1, 1), [(2, 2)] * 2, dimension_numbers=DN)

    assert count_macs(padded, x) == cost.conv2d_cost(5, 4, 4, 6, 3, padding=((2, 2), (2, 2))).macs == 7 * 6 * 6 * 4 * 9


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_flax_and_lax_conv_transpose(padding):
    x = jnp.ones((1, 7, 7, 8))
    layer = nnx.ConvTranspose(8, 16, (4, 4), strides=(2, 2), padding=padding, use_bias=False, rngs=nnx.Rngs(0))
    hand = 7 * 7 * 8 * 4 * 4 * 16
    assert count(layer, x).macs == hand
    kernel = jnp.ones((4, 4, 8, 16))
    assert count_macs(lambda x: lax.conv_transpose(x, kernel, (2, 2), padding, dimension_numbers=DN), x) == hand
    if padding == "VALID":
        assert _xla_flops(layer, x) == 2 * hand


def test_gradient_of_a_strided_convolution_costs_one_forward_pass_per_gradient():
    x, w = jnp.ones((2, 16, 16, 3)), jnp.ones((3, 3, 3, 8))

    def loss(w, x):
        return jnp.sum(lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=DN))

    forward = 2 * cost.conv2d_cost(16, 16, 3, 8, 3, 2, "VALID").macs
    # the loss is linear, so its forward pass is dead code: the weight and the input gradient remain
    grads = jax.grad(loss, argnums=(0, 1))
    assert count_macs(grads, w, x) == 2 * forward
    assert _xla_flops(grads, w, x) == 2 * count_macs(grads, w, x)
    assert count_macs(jax.grad(loss), w, x) == forward  # the weight gradient alone
    value_and_grads = jax.value_and_grad(loss, argnums=(0, 1))
    result = count(value_and_grads, w, x)
    assert result.macs == 3 * forward
    # XLA also counts the loss's sum: one addition per element but one, which the counter reports apart
    assert result.elementwise_adds == 2 * 7 * 7 * 8 - 1
    assert _xla_flops(value_and_grads, w, x) == 2 * result.macs + result.elementwise_adds


# --- several devices: the whole program is counted ---------------------------------------------------

def test_shard_map_and_pmap_count_every_device():
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, PartitionSpec as P
        from sepconv.counter import count
        assert len(jax.devices()) == 4
        a, b = jnp.ones((8, 5)), jnp.ones((5, 3))
        mesh = Mesh(np.array(jax.devices()), ("d",))
        sharded = jax.shard_map(lambda a, b: a @ b, mesh=mesh, in_specs=(P("d"), P()), out_specs=P("d"))
        pmapped = jax.pmap(lambda a, b: a @ b, in_axes=(0, None))
        plain = count(lambda a, b: a @ b, a, b).macs
        print(plain, count(sharded, a, b).macs, count(pmapped, a.reshape(4, 2, 5), b).macs,
              count(sharded, a, b).complete, count(pmapped, a.reshape(4, 2, 5), b).complete)
    """)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["120", "120", "120", "True", "True"]


# --- random numbers, branches and loops -----------------------------------------------------------------

def test_functions_taking_prng_keys_and_dropout_in_training_mode():
    def noisy(key, x):
        mask = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, x.shape)
        return (x * mask) @ jnp.ones((4, 2))

    result = count(noisy, jax.random.key(0), jnp.ones((3, 4)))
    assert result.complete and result.macs == 3 * 4 * 2
    assert count(noisy, jax.random.PRNGKey(0), jnp.ones((3, 4))).macs == 24  # raw uint32 keys too

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(4, 2, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.fc(self.drop(x))

    net = Net(nnx.Rngs(0))
    net.train()
    result = count(net, jnp.ones((3, 4)))
    assert result.complete and result.macs == 24


def test_branches_and_loops():
    w = jnp.ones((4, 4))

    def no_macs_in_branches(p, x):
        return lax.cond(p, lambda v: v * 2.0, lambda v: v + 1.0, x) @ w

    def equal_branches(p, x):
        return lax.cond(p, lambda v: v @ w, lambda v: (v + 1.0) @ w, x)

    def unequal_branches(p, x):
        return lax.cond(p, lambda v: v @ w, lambda v: v, x)

    def loop_without_macs(x):
        return lax.while_loop(lambda v: v.sum() < 100.0, lambda v: v * 2.0, x) @ w

    x, p = jnp.ones((3, 4)), jnp.array(True)
    assert count(no_macs_in_branches, p, x).complete and count_macs(no_macs_in_branches, p, x) == 48
    assert count_macs(equal_branches, p, x) == 48
    assert count(unequal_branches, p, x).uncosted == {"cond": 1}
    assert count(loop_without_macs, x).complete and count_macs(loop_without_macs, x) == 48


# --- what is not a MAC is still visible ----------------------------------------------------------------

def test_a_contraction_written_by_hand_shows_as_elementwise_work():
    a, b = jnp.ones((5, 7)), jnp.ones((7, 3))

    def by_hand(a, b):
        return (a[:, :, None] * b[None]).sum(1)

    result = count(by_hand, a, b)
    assert result.complete and result.macs == 0  # no contraction primitive: the papers' MACs are zero
    assert result.elementwise_muls == 5 * 7 * 3 and result.elementwise_adds == 5 * 6 * 3
    assert count(lambda a, b: a @ b, a, b).elementwise_muls == 0


# --- arguments that are not arrays ---------------------------------------------------------------------

def test_static_arguments_and_shapes_without_data():
    def repeated(x, times, mode="matmul"):
        for _ in range(times):
            x = x @ jnp.ones((4, 4)) if mode == "matmul" else x * 2.0
        return x

    x = jnp.ones((2, 4))
    assert count_macs(repeated, x, 3) == 3 * 2 * 4 * 4
    assert count_macs(repeated, x, 3, mode="scale") == 0
    shape = jax.ShapeDtypeStruct((1000, 4), jnp.float32)  # no data: nothing allocated
    assert count_macs(repeated, shape, 2) == 2 * 1000 * 4 * 4


# --- layers and roles ----------------------------------------------------------------------------------

class Small(nnx.Module):
    def __init__(self, rngs):
        self.stem = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
        self.blocks = nnx.List([nnx.Conv(8, 8, (3, 3), feature_group_count=8, rngs=rngs),
                                nnx.Conv(8, 16, (1, 1), rngs=rngs)])
        self.fc = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.stem(x))
        for block in self.blocks:
            x = jax.nn.relu(block(x))
        return self.fc(x.mean(axis=(1, 2)))


def test_per_layer_results_carry_module_paths():
    model = Small(nnx.Rngs(0))
    result = count(model, jnp.ones((2, 12, 12, 3)))
    assert [(row["path"], row["macs"]) for row in result.layers()] == [
        ("stem", 2 * 6 * 6 * 8 * 3 * 9), ("blocks.0", 2 * 6 * 6 * 8 * 9), ("blocks.1", 2 * 6 * 6 * 16 * 8),
        ("fc", 2 * 16 * 10)]
    assert "blocks.0" in result.to_csv() and result.to_dict()["ops"][1]["path"] == "blocks.0"
    # the tracing hook is gone afterwards
    assert nnx.Conv.__call__.__qualname__ == "Conv.__call__"


def test_training_roles_per_layer():
    from jax._src.interpreters.partial_eval import DynamicJaxprTracer

    origin_message = DynamicJaxprTracer.__dict__["_origin_msg"]
    model = Small(nnx.Rngs(0))
    result = count_training(model, jax.ShapeDtypeStruct((2, 12, 12, 3), jnp.float32))
    assert DynamicJaxprTracer.__dict__["_origin_msg"] is origin_message  # tracing errors keep their wording
    by_layer = {(row["path"], row["role"]): row["macs"] for row in result.layers()}
    forward = {path: macs for (path, role), macs in by_layer.items() if role == "forward"}
    for path, macs in forward.items():
        assert by_layer[(path, "weight_grad")] == macs  # one product per weight per tap per output position
        if path != "stem":
            assert by_layer[(path, "input_grad")] == macs  # the transposed convolution of the layer
    assert ("stem", "input_grad") not in by_layer  # nobody needs the gradient of the image
    assert result.complete
    inference = count(model, jax.ShapeDtypeStruct((2, 12, 12, 3), jnp.float32))
    assert result.peak_activation_bytes > inference.peak_activation_bytes  # activations kept for the backward pass


def test_operations_say_what_kind_of_layer_they_are():
    from sepconv.models import abstract_model

    result = count(abstract_model("mobilenet_v2"), jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
    kinds = [op.kind for op in result.ops]
    # MobileNet v2 (Table 2): a full 3x3 stem, 17 depthwise layers, 16 expansions + 17 projections + the
    # last 1x1 = 34 pointwise layers, one classifier
    assert kinds[0] == "full" and kinds[-1] == "linear"
    assert kinds.count("depthwise") == 17 and kinds.count("pointwise") == 34 and len(kinds) == 53
    shuffle = count(abstract_model("shufflenet_v1"), jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
    assert "grouped" in {op.kind for op in shuffle.ops}


# --- gradients of convolutions cost their forward layer (contract rule 6) ---------------------------------

@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_weight_gradient_of_a_transposed_convolution_costs_its_forward_macs(padding):
    n, h, w, c_in, c_out, k, s = 2, 5, 5, 4, 6, 3, 2
    x, kernel = jnp.ones((n, h, w, c_in)), jnp.ones((k, k, c_in, c_out))

    def loss(kernel, x):
        return jnp.sum(lax.conv_transpose(x, kernel, (s, s), padding, dimension_numbers=DN))

    forward = n * h * w * c_in * k * k * c_out  # each input value meets each tap and output channel once
    assert count_macs(jax.grad(loss), kernel, x) == forward
    assert count_macs(jax.grad(loss, argnums=(0, 1)), kernel, x) == 2 * forward
    if padding == "VALID":  # nothing cropped: every product lands on the output, as XLA counts them
        assert _xla_flops(jax.grad(loss, argnums=(0, 1)), kernel, x) == 2 * 2 * forward


def test_nnx_conv_transpose_in_a_training_step_has_weight_and_input_gradients_of_its_forward_cost():
    class Up(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
            self.up = nnx.ConvTranspose(8, 8, (3, 3), strides=(2, 2), rngs=rngs)
            self.fc = nnx.Linear(8, 10, rngs=rngs)

        def __call__(self, x):
            return self.fc(self.up(self.conv(x)).mean(axis=(1, 2)))

    result = count_training(Up(nnx.Rngs(0)), jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32))
    rows = {(r["path"], r["role"]): r["macs"] for r in result.layers()}
    up = 2 * 8 * 8 * 8 * 9 * 8  # input pixels x taps x output channels
    conv, fc = 2 * 8 * 8 * 8 * 3 * 9, 2 * 8 * 10
    assert rows == {("conv", "forward"): conv, ("up", "forward"): up, ("fc", "forward"): fc,
                    ("fc", "weight_grad"): fc, ("fc", "input_grad"): fc, ("up", "weight_grad"): up,
                    ("up", "input_grad"): up, ("conv", "weight_grad"): conv}


def test_input_gradient_of_a_valid_convolution_costs_the_forward_not_the_padded_program():
    n, h, c_in, c_out, k = 2, 6, 4, 8, 3
    x, kernel = jnp.ones((n, h, h, c_in)), jnp.ones((k, k, c_in, c_out))

    def loss(x, kernel):
        return jnp.sum(lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=DN))

    forward = n * 4 * 4 * c_out * c_in * k * k
    assert count_macs(jax.grad(loss), x, kernel) == forward  # not n * 6 * 6 * c_in * c_out * 9 (fully padded)
    assert count_macs(jax.grad(loss, argnums=(0, 1)), x, kernel) == 2 * forward
    # outside a gradient the same fully padded program is an ordinary convolution, padding taps counted
    ct = jnp.ones((n, 4, 4, c_out))
    padded = count_macs(lambda ct: lax.conv_general_dilated(ct, jnp.ones((k, k, c_out, c_in)), (1, 1),
                                                            [(2, 2), (2, 2)], dimension_numbers=DN), ct)
    assert padded == n * 6 * 6 * c_in * c_out * k * k


def test_every_gradient_of_xception_costs_its_forward_layer():
    from sepconv.models import abstract_model

    x = jax.ShapeDtypeStruct((1, 71, 71, 3), jnp.float32)
    result = count_training(abstract_model("xception", resolution=71), x)
    rows = {(r["path"], r["role"]): r["macs"] for r in result.layers()}
    forward = {path: macs for (path, role), macs in rows.items() if role == "forward"}
    assert result.complete and len(forward) > 70
    for (path, role), macs in rows.items():
        assert macs == forward[path], (path, role)
    assert ("features.1.conv", "input_grad") in rows  # its VALID 3x3 conv: the case


# --- roles inside remat, scan and cond ----------------------------------------------------------------

def _squares(y, labels):
    return jnp.mean(y ** 2)


def test_training_roles_and_paths_inside_remat():
    class Block(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(8, 8, use_bias=False, rngs=rngs)
            self.l2 = nnx.Linear(8, 8, use_bias=False, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.block = Block(rngs)

        def __call__(self, x):
            return nnx.remat(lambda block, x: block(x))(self.block, x)

    result = count_training(Net(nnx.Rngs(0)), jnp.ones((2, 8)), loss=_squares)
    one = 2 * 8 * 8
    # forward: both layers, and l1 once more (remat recomputes tanh(l1(x)) for l2's weight gradient);
    # weight gradients of both; the input gradient of l2 only (nobody needs the input's)
    assert result.macs_by_role() == {"forward": 3 * one, "weight_grad": 2 * one, "input_grad": one}
    rows = {(r["path"], r["role"]): r["macs"] for r in result.layers()}
    assert rows == {("block.l1", "forward"): 2 * one, ("block.l2", "forward"): one, ("block.l2", "weight_grad"): one,
                    ("block.l2", "input_grad"): one, ("block.l1", "weight_grad"): one}


def test_training_roles_inside_scan_over_stacked_layers():
    class Stack(nnx.Module):
        def __init__(self, rngs):
            self.w = nnx.Param(jnp.ones((3, 8, 8)) * 0.1)

        def __call__(self, x):
            return lax.scan(lambda h, w: (jnp.tanh(h @ w), None), x, self.w[...])[0]

    result = count_training(Stack(nnx.Rngs(0)), jnp.ones((2, 8)), loss=_squares)
    one = 2 * 8 * 8
    # a scan's transposed body runs the carry's cotangent through every step, the first included
    assert result.macs_by_role() == {"forward": 3 * one, "weight_grad": 3 * one, "input_grad": 3 * one}
    assert result.complete


def test_training_roles_inside_cond():
    class Branchy(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(8, 8, use_bias=False, rngs=rngs)
            self.b = nnx.Linear(8, 8, use_bias=False, rngs=rngs)
            self.out = nnx.Linear(8, 4, use_bias=False, rngs=rngs)

        def __call__(self, x):
            return self.out(lax.cond(x.sum() > 0, self.a, self.b, x))

    result = count_training(Branchy(nnx.Rngs(0)), jnp.ones((2, 8)), loss=_squares)
    branch, out = 2 * 8 * 8, 2 * 8 * 4
    assert result.macs_by_role() == {"forward": branch + out, "weight_grad": branch + out, "input_grad": out}


# --- shapes that compute nothing, and long convolutions ---------------------------------------------------

def test_a_convolution_with_an_empty_output_costs_nothing():
    assert count_macs(lambda x: lax.conv_general_dilated(x, jnp.ones((3, 3, 2, 4)), (1, 1), "VALID",
                                                         dimension_numbers=DN), jnp.ones((1, 2, 2, 2))) == 0
    one_d = lambda x: lax.conv_general_dilated(x, jnp.ones((3, 2, 4)), (1,), "VALID",  # noqa: E731
                                                  dimension_numbers=("NWC", "WIO", "NWC"))
    assert count(one_d, jnp.ones((1, 2, 2))).complete and count_macs(one_d, jnp.ones((1, 2, 2))) == 0
    # (jnp.convolve swaps its arguments when the second is longer, as NumPy's does: 3 outputs of 3 taps)
    assert count_macs(lambda a: jnp.convolve(a, jnp.ones(5), mode="valid"), jnp.ones(3)) == 3 * 3
    x = jax.ShapeDtypeStruct((1, 1, 1, 3), jnp.float32)
    from sepconv.models import abstract_model

    result = count(abstract_model("mobilenet_v1"), x)  # a 1x1 image: SAME convolutions stay 1x1
    assert result.complete and result.ops[0].macs == 3 * 32 * 9 and result.ops[-1].macs == 1024 * 1000


@pytest.mark.parametrize("mode, out", [("full", 30000 + 2001 - 1), ("valid", 30000 - 2001 + 1)])
def test_a_long_one_dimensional_convolution(mode, out):
    a, v = jax.ShapeDtypeStruct((30000,), jnp.float32), jax.ShapeDtypeStruct((2001,), jnp.float32)
    result = count(lambda a, v: jnp.convolve(a, v, mode=mode), a, v)
    assert result.macs == out * 2001  # every tap of every output, padding taps included
    # on real input: each of the 30000 x 2001 pairs once in full mode; all of them in valid mode
    assert result.macs_excluding_padding == (30000 * 2001 if mode == "full" else out * 2001)


def test_tap_count_is_the_brute_force_count():
    from sepconv.cost import tap_count

    rng = np.random.default_rng(0)
    for _ in range(300):
        size, kernel, stride, dil, ldil = (int(v) for v in rng.integers(1, 6, 5))
        lo, hi = (int(v) for v in rng.integers(-3, 6, 2))
        dilated = (size - 1) * ldil + 1
        out = (dilated + lo + hi - dil * (kernel - 1) - 1) // stride + 1
        brute = sum(1 for o in range(max(out, 0)) for k in range(kernel)
                    if 0 <= o * stride + k * dil - lo < dilated and (o * stride + k * dil - lo) % ldil == 0)
        assert tap_count(size, kernel, stride, lo, hi, dil, ldil) == brute


# --- input dilation with a stride (rule 7) ------------------------------------------------------------------

def test_input_dilation_with_stride_counts_the_products_on_real_input():
    x, kernel = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))
    d_in, s, pad = 2, 3, 2

    def fn(x):
        return lax.conv_general_dilated(x, kernel, (s, s), [(pad, pad)] * 2, lhs_dilation=(d_in, d_in),
                                        dimension_numbers=DN)

    # brute force, one dimension: output o, tap k reads dilated position o*s + k - pad; real if a multiple of d_in
    dilated = (5 - 1) * d_in + 1
    out = (dilated + 2 * pad - 3) // s + 1
    pairs = sum(1 for o in range(out) for k in range(3)
                if 0 <= o * s + k - pad < dilated and (o * s + k - pad) % d_in == 0)
    hand = pairs ** 2 * 2 * 4  # two spatial dimensions, input channels x output channels
    assert count_macs(fn, x) == hand
    assert _xla_flops(fn, x) == 2 * hand  # the padding crops nothing here: XLA's count is the same
    assert pairs ** 2 < 5 * 5 * 9  # fewer than every input value with every tap (the stride-1 rule)


# --- outer products and complex numbers (rules 8 and 9) --------------------------------------------------

def test_outer_products():
    a, b = jnp.ones(5), jnp.ones(7)
    einsum = count(lambda a, b: jnp.einsum("i,j->ij", a, b), a, b)
    outer = count(jnp.outer, a, b)
    assert (einsum.macs, einsum.elementwise_muls) == (35, 0)
    assert (outer.macs, outer.elementwise_muls) == (0, 35)

    class Layer(nnx.Module):  # applied to one unbatched vector: its weight gradient is an outer product
        def __init__(self, rngs):
            self.fc = nnx.Linear(5, 7, use_bias=False, rngs=rngs)

        def __call__(self, x):
            return self.fc(x)

    result = count_training(Layer(nnx.Rngs(0)), jnp.ones(5), loss=_squares, labels=jnp.zeros(5, jnp.int32))
    assert result.macs_by_role() == {"forward": 35, "weight_grad": 35}


def test_a_complex_mac_is_four_real_ones():
    a, b = jnp.ones((3, 4), jnp.complex64), jnp.ones((4, 5), jnp.complex64)
    assert count_macs(jnp.matmul, a, b) == 4 * 3 * 4 * 5
    assert count_macs(jnp.matmul, a.real, b) == 2 * 3 * 4 * 5
    x, k = jnp.ones((1, 6, 6, 2), jnp.complex64), jnp.ones((3, 3, 2, 4), jnp.complex64)
    conv = count_macs(lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DN), x, k)
    assert conv == 4 * 6 * 6 * 4 * 2 * 9


# --- no-MAC primitives the contract lists ----------------------------------------------------------------

def test_primitives_without_macs_keep_a_count_complete():
    w = jnp.ones((4, 3))

    def program(x, edges):
        y = x @ w
        i = jnp.searchsorted(edges, y.ravel())
        z = jnp.interp(y, edges, edges)
        h, _ = jnp.histogram(y, bins=4)
        c = jnp.conj(y.astype(jnp.complex64)).real
        d = jax.scipy.special.digamma(jnp.abs(y) + 1.0)
        m = jnp.zeros(3).at[0].max(1.0).at[1].multiply(2.0).at[2].min(3.0)
        jax.debug.print("y = {}", y.sum())
        return i.sum() + z.sum() + h.sum() + c.sum() + d.sum() + m.sum()

    result = count(program, jnp.ones((2, 4)), jnp.linspace(0.0, 1.0, 5))
    assert result.complete, result.uncosted
    assert result.macs == 2 * 4 * 3


def test_collectives_inside_shard_map_cost_nothing():
    from jax.sharding import Mesh, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:1]), ("d",))

    def local(a, b):
        return jax.lax.psum(a @ b, "d") + jax.lax.pmean(a @ b, "d")

    fn = jax.shard_map(local, mesh=mesh, in_specs=(P("d"), P()), out_specs=P())
    result = count(fn, jnp.ones((4, 5)), jnp.ones((5, 3)))
    assert result.complete, result.uncosted
    assert result.macs == 2 * 4 * 5 * 3


# --- rules for calls belong to a call, not to a name ----------------------------------------------------

def test_a_users_function_named_like_the_rewrite_is_counted_by_its_body():
    import sepconv.fast_depthwise  # noqa: F401  (registers its rules)

    def depthwise_by_shifts_mine(a, b):
        return a @ b

    fn = jax.jit(depthwise_by_shifts_mine)
    result = count(lambda a, b: fn(a, b) * 2.0, jnp.ones((3, 4)), jnp.ones((4, 5)))
    assert result.complete and result.macs == 3 * 4 * 5


def test_registering_a_rule_twice_is_an_error():
    from sepconv.counter import register_call_rule, register_cost_rule

    traced = jax.jit(lambda a: a * 2.0).trace(jnp.ones(3))
    register_call_rule(traced.jaxpr, lambda eqn: None)
    with pytest.raises(ValueError, match="registered already"):
        register_call_rule(traced.jaxpr, lambda eqn: None)
    with pytest.raises(ValueError, match="registered already"):
        register_cost_rule("dot_general", lambda eqn: None)


def test_gradients_of_a_kernel_larger_than_its_feature_map_cost_the_forward():
    """A 3x3 SAME convolution on a 2x2 map (the last layers of a network at a small resolution): its
    forward counts 9 taps per output, padding included; in a training step both gradients count the same."""
    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Conv(4, 8, (3, 3), rngs=rngs)
            self.b = nnx.Conv(8, 8, (3, 3), strides=2, rngs=rngs)
            self.fc = nnx.Linear(8, 10, rngs=rngs)

        def __call__(self, x):
            return self.fc(jnp.tanh(self.b(jnp.tanh(self.a(x)))).mean(axis=(1, 2)))

    result = count_training(Tiny(nnx.Rngs(0)), jax.ShapeDtypeStruct((2, 2, 2, 4), jnp.float32))
    rows = {(r["path"], r["role"]): r["macs"] for r in result.layers()}
    a, b = 2 * 4 * 8 * 4 * 9, 2 * 1 * 8 * 8 * 9  # output positions x C_out x C_in x taps
    assert {k: v for k, v in rows.items() if k[0] != "fc"} == {
        ("a", "forward"): a, ("b", "forward"): b, ("b", "weight_grad"): b, ("b", "input_grad"): b,
        ("a", "weight_grad"): a}

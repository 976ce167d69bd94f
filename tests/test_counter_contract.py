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

"""JAX programs written outside the project, the way their authors write them, each with its count
derived by hand from the contract (book/counting_contract.md): convolutions in several layouts,
grouped, dilated, transposed and batch-grouped ones, einsum and attention, vmap, scan, fori_loop,
while, cond and switch, remat, custom_vjp, grad, jacfwd and jacrev, integer and bfloat16 matrix
products, FFT and linear algebra (uncosted, as the contract says), Flax linen, Equinox, shard_map.
Shapes are small and nothing is executed: counting traces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sepconv.counter import count


def conv(x, w, stride=1, padding="SAME", dn=("NHWC", "HWIO", "NHWC"), **kw):
    n = len(dn[0]) - 2
    return lax.conv_general_dilated(x, w, (stride,) * n, padding, dimension_numbers=dn, **kw)


W44 = jnp.ones((4, 4))


def _scan_tanh(h, ws):
    return lax.scan(lambda h, w: (jnp.tanh(h @ w), None), h, ws)[0]


@jax.custom_vjp
def _linear(x, w):
    return x @ w


_linear.defvjp(lambda x, w: (x @ w, (x, w)), lambda res, g: (g @ res[1].T, res[0].T @ g))


def _attention(q, k, v):
    scores = jnp.einsum("bhtd,bhsd->bhts", q, k) / jnp.sqrt(q.shape[-1])
    return jnp.einsum("bhts,bhsd->bhtd", jax.nn.softmax(scores, axis=-1), v)


S = jax.ShapeDtypeStruct
f32 = jnp.float32

# name: (function, arguments, MACs derived by hand)
EXACT = {
    # --- convolutions: out positions x out channels x in channels per group x taps
    "NHWC 3x3 SAME": (lambda x, w: conv(x, w), (S((2, 8, 8, 3), f32), S((3, 3, 3, 4), f32)), 2 * 64 * 4 * 3 * 9),
    "NCHW/OIHW 3x3 SAME": (lambda x, w: conv(x, w, dn=("NCHW", "OIHW", "NCHW")),
                           (S((2, 3, 8, 8), f32), S((4, 3, 3, 3), f32)), 2 * 64 * 4 * 3 * 9),
    "CHWN layout": (lambda x, w: conv(x, w, dn=("CHWN", "HWIO", "CHWN")),
                    (S((3, 6, 6, 2), f32), S((3, 3, 3, 4), f32)), 2 * 36 * 4 * 3 * 9),
    "stride 2 SAME on 9x9": (lambda x, w: conv(x, w, 2), (S((1, 9, 9, 3), f32), S((3, 3, 3, 5), f32)),
                             25 * 5 * 3 * 9),
    "grouped, 2 groups, VALID": (lambda x, w: conv(x, w, padding="VALID", feature_group_count=2),
                                 (S((1, 6, 6, 4), f32), S((3, 3, 2, 6), f32)), 16 * 6 * 2 * 9),
    "depthwise": (lambda x, w: conv(x, w, feature_group_count=4), (S((1, 8, 8, 4), f32), S((3, 3, 1, 4), f32)),
                  64 * 4 * 1 * 9),
    "dilated 2": (lambda x, w: conv(x, w, rhs_dilation=(2, 2)), (S((1, 7, 7, 2), f32), S((3, 3, 2, 2), f32)),
                  49 * 2 * 2 * 9),
    "1-D VALID": (lambda x, w: conv(x, w, padding="VALID", dn=("NWC", "WIO", "NWC")),
                  (S((2, 10, 3), f32), S((4, 3, 5), f32)), 2 * 7 * 5 * 3 * 4),
    "3-D VALID": (lambda x, w: conv(x, w, padding="VALID", dn=("NDHWC", "DHWIO", "NDHWC")),
                  (S((1, 4, 4, 4, 2), f32), S((2, 2, 2, 2, 3), f32)), 27 * 3 * 2 * 8),
    "batch groups": (lambda x, w: conv(x, w, padding="VALID", batch_group_count=2),
                     (S((4, 5, 5, 2), f32), S((3, 3, 2, 4), f32)), 2 * 9 * 4 * 2 * 9),
    # a transposed convolution: input pixels x taps x output channels (the inserted zeros are free)
    "conv_transpose stride 2": (lambda x, k: lax.conv_transpose(x, k, (2, 2), "VALID",
                                                                dimension_numbers=("NHWC", "HWIO", "NHWC")),
                                (S((1, 3, 3, 2), f32), S((3, 3, 2, 4), f32)), 9 * 2 * 9 * 4),
    "jnp.convolve full": (lambda a, v: jnp.convolve(a, v), (S((10,), f32), S((3,), f32)), 12 * 3),
    "scipy convolve2d valid": (lambda a, v: jax.scipy.signal.convolve2d(a, v, mode="valid"),
                               (S((6, 6), f32), S((3, 3), f32)), 16 * 9),
    # --- matrix products: out elements x contracted size
    "matmul broadcast batch": (jnp.matmul, (S((2, 1, 3, 4), f32), S((5, 4, 6), f32)), 2 * 5 * 3 * 6 * 4),
    "tensordot 2 axes": (lambda a, b: jnp.tensordot(a, b, 2), (S((3, 4, 5), f32), S((4, 5, 6), f32)), 3 * 6 * 20),
    "dot of vectors": (jnp.dot, (S((7,), f32), S((7,), f32)), 7),
    "dot_general batch dims": (lambda a, b: lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,)))),
                               (S((2, 3, 4), f32), S((2, 4, 5), f32)), 2 * 3 * 5 * 4),
    "einsum batched outer": (lambda a, b: jnp.einsum("bi,bj->bij", a, b), (S((2, 3), f32), S((2, 4), f32)), 24),
    "one-hot embedding": (lambda i, e: jax.nn.one_hot(i, 10) @ e, (S((4,), jnp.int32), S((10, 3), f32)), 4 * 10 * 3),
    "attention by einsum": (_attention, (S((2, 4, 8, 16), f32),) * 3, 2 * (2 * 4 * 8 * 8 * 16)),
    "jax.nn.dot_product_attention": (lambda q, k, v: jax.nn.dot_product_attention(q, k, v),
                                     (S((2, 8, 4, 16), f32),) * 3, 2 * (2 * 4 * 8 * 8 * 16)),
    "int8 matmul to int32": (lambda a, b: lax.dot(a, b, preferred_element_type=jnp.int32),
                             (S((4, 8), jnp.int8), S((8, 3), jnp.int8)), 4 * 8 * 3),
    "bfloat16 matmul": (jnp.matmul, (S((4, 8), jnp.bfloat16), S((8, 3), jnp.bfloat16)), 4 * 8 * 3),
    "complex64 matmul (4 real MACs each)": (jnp.matmul, (S((2, 3), jnp.complex64), S((3, 2), jnp.complex64)),
                                            4 * 2 * 3 * 2),
    # --- transformations
    "vmap of a matmul": (jax.vmap(lambda a: a @ jnp.ones((4, 6))), (S((5, 3, 4), f32),), 5 * 3 * 4 * 6),
    "vmap of a convolution": (jax.vmap(lambda x: conv(x, jnp.ones((3, 3, 2, 4)))), (S((3, 1, 6, 6, 2), f32),),
                              3 * 36 * 4 * 2 * 9),
    "scan, 7 steps": (lambda h: lax.scan(lambda h, _: (h @ W44, None), h, None, length=7)[0], (S((2, 4), f32),),
                      7 * 2 * 4 * 4),
    "lax.map": (lambda xs: lax.map(lambda a: a @ jnp.ones((3, 5)), xs), (S((4, 2, 3), f32),), 4 * 2 * 3 * 5),
    "fori_loop with static bounds": (lambda h: lax.fori_loop(0, 5, lambda i, h: h @ W44, h), (S((2, 4), f32),),
                                     5 * 32),
    "while without MACs, then a matmul": (lambda h: lax.while_loop(lambda h: h.sum() < 9.0, lambda h: h * 2.0, h) @ W44,
                                          (S((2, 4), f32),), 32),
    "cond, equal branches": (lambda p, h: lax.cond(p, lambda h: h @ W44, lambda h: jnp.tanh(h) @ W44, h),
                             (S((), jnp.bool_), S((2, 4), f32)), 32),
    "switch, three equal branches": (lambda i, h: lax.switch(i, [lambda h: h @ W44, lambda h: (h + 1) @ W44,
                                                                 lambda h: (2 * h) @ W44], h),
                                     (S((), jnp.int32), S((2, 4), f32)), 32),
    "jax.checkpoint": (jax.checkpoint(lambda h: jnp.tanh(h @ W44) @ W44), (S((2, 4), f32),), 64),
    "custom_jvp (relu) around a matmul": (lambda h: jax.nn.relu(h @ W44), (S((2, 4), f32),), 32),
    "custom_vjp forward": (_linear, (S((2, 3), f32), S((3, 4), f32)), 24),
    # the gradient of sum(f): the forward value is dead; the hand-written backward's two products remain
    "grad of a custom_vjp": (jax.grad(lambda x, w: _linear(x, w).sum(), argnums=(0, 1)),
                             (S((2, 3), f32), S((3, 4), f32)), 2 * 4 * 3 + 3 * 4 * 2),
    # forward of layer 1 (kept for the backward), dW2, dh, dW1; layer 2's output is only summed: dead
    "grad of a two-layer MLP": (jax.grad(lambda w1, w2, x: (jnp.tanh(x @ w1) @ w2).sum(), argnums=(0, 1)),
                                (S((3, 5), f32), S((5, 2), f32), S((4, 3), f32)), 60 + 40 + 40 + 60),
    # forward 3 steps, and per step a weight and a carry gradient (the first step's too: one loop body)
    "grad through scan": (jax.grad(lambda ws, h: _scan_tanh(h, ws).sum()), (S((3, 4, 4), f32), S((2, 4), f32)),
                          3 * 32 + 3 * 32 + 3 * 32),
    "jacfwd of a matmul": (jax.jacfwd(lambda x: x @ jnp.ones((3, 4))), (S((3,), f32),), 3 * 3 * 4),
    "jacrev of a matmul": (jax.jacrev(lambda x: x @ jnp.ones((3, 4))), (S((3,), f32),), 4 * 4 * 3),
    # --- no MACs at all
    "average pooling": (lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4,
                        (S((1, 4, 4, 3), f32),), 0),
    "sort, cumsum, top_k, random": (lambda k, x: jnp.sort(x).cumsum() + lax.top_k(x, 2)[0].sum()
                                    + jax.random.normal(k, x.shape), (jax.random.key(0), S((6,), f32)), 0),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_exact_programs(name):
    fn, args, macs = EXACT[name]
    result = count(fn, *args)
    assert result.complete, result.uncosted
    assert result.macs == macs


UNCOSTED = {
    "FFT": (jnp.fft.fft, (S((8,), jnp.complex64),), {"fft"}),
    "solve": (jnp.linalg.solve, (S((3, 3), f32), S((3,), f32)), None),
    "cholesky": (jnp.linalg.cholesky, (S((3, 3), f32),), {"cholesky"}),
    "while with a matmul": (lambda h: lax.while_loop(lambda h: h.sum() < 9.0, lambda h: h @ W44, h), (S((2, 4), f32),),
                            {"while"}),
    "cond, unequal branches": (lambda p, h: lax.cond(p, lambda h: h @ W44, lambda h: h, h),
                               (S((), jnp.bool_), S((2, 4), f32)), {"cond"}),
    "pure_callback": (lambda x: jax.pure_callback(np.sin, S((3,), f32), x), (S((3,), f32),), {"pure_callback"}),
}


@pytest.mark.parametrize("name", list(UNCOSTED))
def test_programs_the_contract_leaves_uncosted(name):
    fn, args, primitives = UNCOSTED[name]
    result = count(fn, *args)
    assert not result.complete
    if primitives is not None:
        assert set(result.uncosted) == primitives


def test_flax_linen():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (3, 3))(x)  # SAME by default
            return nn.Dense(10)(x.mean(axis=(1, 2)))

    x = jnp.ones((2, 5, 5, 3))
    params = jax.eval_shape(Net().init, jax.random.key(0), x)
    result = count(lambda p, x: Net().apply(p, x), params, x)
    assert result.complete and result.macs == 2 * 25 * 4 * 3 * 9 + 2 * 4 * 10


def test_equinox():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, key=jax.random.key(0))  # 3 -> 8 -> 8 -> 2
    result = count(lambda m, x: jax.vmap(m)(x), mlp, jnp.ones((5, 3)))
    assert result.complete and result.macs == 5 * (3 * 8 + 8 * 8 + 8 * 2)


def test_flax_nnx_scan_over_stacked_layers_keeps_paths():
    from flax import nnx

    class Layer(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(4, 4, rngs=rngs)

        def __call__(self, x):
            return jnp.tanh(self.fc(x))

    class Net(nnx.Module):
        def __init__(self, rngs):
            keys = jax.random.split(jax.random.key(0), 3)
            self.layers = nnx.vmap(lambda key: Layer(nnx.Rngs(key)), in_axes=0, out_axes=0)(keys)

        def __call__(self, x):
            @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
            def step(x, layer):
                return layer(x)

            return step(x, self.layers)

    result = count(Net(nnx.Rngs(0)), jnp.ones((2, 4)))
    assert result.complete and result.macs == 3 * 2 * 4 * 4
    assert [row["path"] for row in result.layers()] == ["layers.fc"]


def test_named_scopes_name_the_rows():
    def block(x):
        with jax.named_scope("attn"):
            x = x @ W44
        with jax.named_scope("mlp"):
            return jnp.tanh(x) @ W44

    result = count(jax.jit(block), jnp.ones((2, 4)))
    assert [(row["path"], row["macs"]) for row in result.layers()] == [("attn", 32), ("mlp", 32)]

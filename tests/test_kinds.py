"""One vocabulary of layer kinds and one rule (sepconv.kinds), checked on hand-made layers; the transforms
(deploy.layer_kind, fast_depthwise.is_depthwise) classify through it."""

import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax import lax

from sepconv import cost
from sepconv.counter import count
from sepconv.kinds import LayerKind, classify, equation_kind, is_depthwise_equation, module_kind


def test_a_kind_is_its_string():
    kind = LayerKind.DEPTHWISE
    assert kind == "depthwise" and {"depthwise": 1}[kind] == 1 and f"{kind}" == str(kind) == "depthwise"
    assert repr([kind]) == "['depthwise']" and json.dumps({"k": kind}) == '{"k": "depthwise"}'
    assert LayerKind("pointwise") is LayerKind.POINTWISE


def test_families_and_what_multiplies():
    assert {k.value: k.family for k in LayerKind} == {
        "linear": "dense", "depthwise": "conv", "grouped": "conv", "pointwise": "conv", "full": "conv",
        "norm": "norm", "scale": "scale"}
    assert [k.value for k in LayerKind if not k.multiplies] == ["norm", "scale"]


@pytest.mark.parametrize("kernel, groups, c_in, c_out, expected", [
    ((3, 3), 1, 32, 64, "full"),           # a standard 3x3 convolution
    ((1, 1), 1, 32, 64, "pointwise"),
    ((1, 3), 1, 8, 8, "full"),             # a 1x3 kernel is not 1x1
    ((3, 3), 32, 32, 32, "depthwise"),     # one input and one output channel per group
    ((5, 5), 32, 32, None, "depthwise"),   # output channels unknown: one input channel per group
    ((3, 3), 32, 32, 64, "grouped"),       # a depth multiplier of 2
    ((1, 1), 3, 240, 240, "grouped"),      # ShuffleNet's 1x1 group convolution (g = 3)
    ((3, 3), 2, 2, 2, "depthwise"),
    ((1, 1), 4, 4, 4, "depthwise"),        # a 1x1 depthwise layer is a per-channel scale: depthwise
])
def test_classify_by_hand(kernel, groups, c_in, c_out, expected):
    assert classify(kernel, groups, c_in, c_out) == expected


def _eqn(fn, *shapes):
    """The one product equation of ``fn`` traced on arrays of ``shapes``."""
    jaxpr = jax.make_jaxpr(fn)(*(jnp.ones(s) for s in shapes)).jaxpr
    (eqn,) = [e for e in jaxpr.eqns if e.primitive.name in ("conv_general_dilated", "dot_general")]
    return eqn


def _conv(groups=1, layout=("NHWC", "HWIO", "NHWC"), lhs_dilation=None, batch_groups=1):
    return lambda x, w: lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)], lhs_dilation=lhs_dilation,
                                                 dimension_numbers=layout, feature_group_count=groups,
                                                 batch_group_count=batch_groups)


EQUATIONS = {  # name: (function, shapes, kind by hand)
    "standard": (_conv(), [(1, 8, 8, 4), (3, 3, 4, 6)], "full"),
    "pointwise": (_conv(), [(1, 8, 8, 4), (1, 1, 4, 6)], "pointwise"),
    "depthwise": (_conv(4), [(1, 8, 8, 4), (3, 3, 1, 4)], "depthwise"),
    "depthwise NCHW": (_conv(4, ("NCHW", "OIHW", "NCHW")), [(1, 4, 8, 8), (4, 1, 3, 3)], "depthwise"),
    "multiplier 2": (_conv(4), [(1, 8, 8, 4), (3, 3, 1, 8)], "grouped"),
    "grouped": (_conv(2), [(1, 8, 8, 4), (3, 3, 2, 6)], "grouped"),
    "transposed depthwise": (_conv(4, lhs_dilation=(2, 2)), [(1, 8, 8, 4), (3, 3, 1, 4)], "grouped"),
    "batch groups": (_conv(1, batch_groups=4), [(4, 8, 8, 4), (3, 3, 4, 4)], "full"),
    "matmul": (lambda a, b: a @ b, [(3, 4), (4, 5)], "linear"),
}


@pytest.mark.parametrize("name", EQUATIONS)
def test_equation_kind_by_hand_and_as_the_transforms_classify(name):
    fn, shapes, expected = EQUATIONS[name]
    eqn = _eqn(fn, *shapes)
    assert equation_kind(eqn) == expected
    assert is_depthwise_equation(eqn) == (expected == "depthwise")


def test_equation_kind_names_what_it_cannot_classify():
    eqn = jax.make_jaxpr(lambda a: a * 2.0)(jnp.ones(3)).jaxpr.eqns[0]
    with pytest.raises(ValueError, match="got 'mul'"):
        equation_kind(eqn)


@pytest.mark.parametrize("make, expected", [
    (lambda r: nnx.Conv(8, 8, (3, 3), feature_group_count=8, rngs=r), "depthwise"),
    (lambda r: nnx.Conv(8, 16, (3, 3), feature_group_count=8, rngs=r), "depthwise"),  # one input channel per group
    (lambda r: nnx.Conv(8, 16, (3, 3), feature_group_count=2, rngs=r), "grouped"),
    (lambda r: nnx.Conv(8, 16, (1, 1), rngs=r), "pointwise"),
    (lambda r: nnx.Conv(3, 16, (3, 3), rngs=r), "full"),
    (lambda r: nnx.Linear(8, 10, rngs=r), "linear"),
])
def test_module_kind_by_hand_and_as_deploy_classifies(make, expected):
    module = make(nnx.Rngs(0))
    assert module_kind(module) == expected


def test_closed_form_costs_and_counted_operations_speak_the_same_kinds():
    assert cost.standard_conv_cost(8, 8, 4, 6).layer_kind == "full"
    assert cost.depthwise_conv_cost(8, 8, 4).layer_kind == "depthwise"
    assert cost.depthwise_conv_cost(8, 8, 4, depth_multiplier=2).layer_kind == "grouped"
    assert cost.pointwise_conv_cost(8, 8, 4, 6).layer_kind == "pointwise"
    assert cost.grouped_conv_cost(8, 8, 4, 6, groups=2).layer_kind == "grouped"
    assert cost.dense_cost(4, 6).layer_kind == "linear" and cost.dense_cost(4, 6).kind == "dense"
    assert cost.norm_cost(4).layer_kind == "norm" == cost.norm_cost(4).kind
    assert cost.scale_cost(4).layer_kind == "scale" and cost.depthwise_conv_cost(8, 8, 4).kind == "conv"

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.stem = nnx.Conv(3, 4, (3, 3), rngs=rngs)
            self.dw = nnx.Conv(4, 4, (3, 3), feature_group_count=4, rngs=rngs)
            self.pw = nnx.Conv(4, 6, (1, 1), rngs=rngs)
            self.fc = nnx.Linear(6, 10, rngs=rngs)

        def __call__(self, x):
            return self.fc(self.pw(self.dw(self.stem(x))).mean(axis=(1, 2)))

    result = count(Block(nnx.Rngs(0)), jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32))
    assert [(op.path, op.kind) for op in result.ops] == [
        ("stem", "full"), ("dw", "depthwise"), ("pw", "pointwise"), ("fc", "linear")]
    network = cost.NetworkCost((cost.standard_conv_cost(8, 8, 3, 4), cost.norm_cost(4),
                                *cost.depthwise_separable_cost(8, 8, 4, 6), cost.dense_cost(6, 10)))
    assert [layer.layer_kind for layer in network.select(kind="conv")] == ["full", "depthwise", "pointwise"]
    assert [layer.name for layer in network.select(kind="depthwise")] == ["depthwise"]
    assert [layer.layer_kind for layer in network.costed()] == ["full", "depthwise", "pointwise", "linear"]

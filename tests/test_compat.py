"""The version shims: a method replaced only for the length of a block, and only where it is defined."""

import jax.numpy as jnp
from flax import nnx

from sepconv.compat import replaced, variable_value


class Greeter:
    def hello(self):
        return "hello"


class Quiet(Greeter):
    pass


def test_a_method_is_replaced_inside_the_block_and_restored_after():
    original = Greeter.__dict__["hello"]
    with replaced(Greeter, "hello", lambda self: "hi"):
        assert Greeter().hello() == "hi"
    assert Greeter.__dict__["hello"] is original and Greeter().hello() == "hello"


def test_nothing_is_replaced_where_the_class_does_not_define_the_method():
    with replaced(Quiet, "hello", lambda self: "hi"), replaced(None, "hello", lambda self: "hi"):
        assert Quiet().hello() == "hello"  # inherited, not defined by Quiet: left alone
    assert "hello" not in Quiet.__dict__


def test_a_variable_value_is_read_on_this_flax():
    assert variable_value(nnx.Param(jnp.arange(3.0))).tolist() == [0.0, 1.0, 2.0]

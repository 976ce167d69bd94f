"""Adapters between the book's programs and other libraries' models: ``keras`` (keras.applications on
the JAX backend as a pure function). Every program the book times, counts or rewrites is a pure JAX
function ``fn(state, x)``; ``pure_module`` (``sepconv.counter``) makes one of a Flax module."""

"""Random test inputs drawn on the host with NumPy.

``jax.random`` compiles a program for every new shape it draws (about 0.7 s on a 2-core CPU), which
was most of the time of a property test whose every example has new shapes; NumPy compiles nothing.
"""

import numpy as np


def normal(seed: int, *shapes):
    """Standard normal float32 arrays of ``shapes``, one generator seeded by ``seed`` (one array for one shape)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def uniform(seed: int, shape):
    """Float32 values uniform in [0, 1) of ``shape``, from a generator seeded by ``seed``."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)

"""sepconv: the cost, the code and the published numbers of depthwise-separable ConvNets."""

from .cost import (LayerCost, conv2d_cost, conv_output_size, dense_cost, depthwise_conv_cost,
                   depthwise_separable_cost, grouped_conv_cost, padding_amounts, pointwise_conv_cost,
                   separable_ratio, standard_conv_cost, total_cost, valid_taps)

__version__ = "0.1.0"


def __getattr__(name):
    # The counter imports JAX; load it only when asked for so the cost model stays light.
    if name in ("count", "count_macs", "CountResult"):
        from . import counter
        return getattr(counter, name)
    raise AttributeError(f"module 'sepconv' has no attribute {name!r}")

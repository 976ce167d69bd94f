"""The old home of the shifted depthwise layer, the fast-inference rewrite and the generic rewriter, now
``sepconv.transforms`` (``shifts``, ``fast_inference``, ``rewrite``); re-exported here so that
``from sepconv.fast_depthwise import ...`` keeps working."""

from .transforms.fast_inference import (IM2COL_MAX_CHANNELS, fast_equation, fast_inference,  # noqa: F401
                                        is_narrow_conv, is_pointwise)
from .transforms.rewrite import rewrite_equations  # noqa: F401
from .transforms.shifts import REWRITTEN_NAME, depthwise_by_shifts, is_depthwise, shifted_depthwise_conv  # noqa: F401

__all__ = ["depthwise_by_shifts", "fast_inference", "rewrite_equations", "fast_equation", "is_depthwise", "is_pointwise",
           "shifted_depthwise_conv", "REWRITTEN_NAME"]

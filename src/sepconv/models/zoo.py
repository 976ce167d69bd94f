"""Imports every network module, which registers it (``sepconv.models.registry``)."""

from . import (convnext, efficientnet, mobilenet_v1, mobilenet_v2, mobilenet_v3, shufflenet_v1,  # noqa: F401
               shufflenet_v2, squeezenet, xception)
from . import mnasnet, mobilenet_v4  # noqa: F401,E402
from . import mobileone, repvit  # noqa: F401,E402

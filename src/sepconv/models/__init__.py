"""The networks of the book, built from specs read like the papers' tables.

``build_model(name, ...)`` makes any of ``MODEL_NAMES`` in eval mode.
"""

from __future__ import annotations

from flax import nnx

from .mobilenet_v1 import MobileNetV1, mobilenet_v1_layers
from .mobilenet_v2 import MobileNetV2, mobilenet_v2_layers
from .mobilenet_v3 import MOBILENET_V3_LARGE, MOBILENET_V3_SMALL, MobileNetV3, minimalistic
from .rounding import make_divisible, v1_depth
from .shufflenet_v1 import SHUFFLENET_V1_CHANNELS, ShuffleNetV1
from .shufflenet_v2 import SHUFFLENET_V2_WIDTHS, ShuffleNetV2
from .squeezenet import SqueezeNet
from .xception import Xception

__all__ = ["MODEL_NAMES", "build_model", "MobileNetV1", "MobileNetV2", "MobileNetV3", "ShuffleNetV1",
           "ShuffleNetV2", "SqueezeNet", "Xception", "mobilenet_v1_layers", "mobilenet_v2_layers", "make_divisible", "v1_depth"]

MODEL_NAMES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v1",
               "shufflenet_v2", "squeezenet1_0", "squeezenet1_1", "xception")


def build_model(name: str, *, alpha: float = 1.0, width: float = 1.0, groups: int = 3, classes: int = 1000,
                seed: int = 0, convention: str = "torchvision", minimal: bool = False) -> nnx.Module:
    """A model by name, in eval mode. ``alpha`` is the MobileNet width multiplier, ``width`` ShuffleNet v2's,
    ``groups`` ShuffleNet v1's; MobileNet v3 also takes the reference ``convention`` of its width rule
    (``"torchvision"`` or ``"keras"``) and ``minimal=True`` for the minimalistic variant."""
    rngs = nnx.Rngs(seed)
    is_v3 = name in ("mobilenet_v3_large", "mobilenet_v3_small")
    if not is_v3 and (convention != "torchvision" or minimal):
        raise ValueError(f"convention and minimal apply only to MobileNet v3, not to {name!r}")
    if name == "mobilenet_v1":
        model = MobileNetV1(alpha, classes, rngs=rngs)
    elif name == "mobilenet_v2":
        model = MobileNetV2(alpha, classes, rngs=rngs)
    elif is_v3:
        spec = MOBILENET_V3_LARGE if name.endswith("large") else MOBILENET_V3_SMALL
        model = MobileNetV3(minimalistic(spec) if minimal else spec, alpha, classes, convention=convention,
                            rngs=rngs)
    elif name == "shufflenet_v1":
        model = ShuffleNetV1(groups, classes, rngs=rngs)
    elif name == "xception":
        model = Xception(classes, rngs=rngs)
    elif name == "shufflenet_v2":
        model = ShuffleNetV2(width, classes, rngs=rngs)
    elif name in ("squeezenet1_0", "squeezenet1_1"):
        model = SqueezeNet(name[-3:], classes, rngs=rngs)
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    model.eval()
    return model

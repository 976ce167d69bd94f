"""The counter's public names, from ``sepconv.counting`` (the package whose docstring is the counting
contract): ``from sepconv.counter import count`` keeps working in chapters, assignments and code.
"""

from .counting import *  # noqa: F401,F403
from .counting import __all__  # noqa: F401

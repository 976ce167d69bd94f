import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings  # noqa: E402

settings.register_profile("sepconv", deadline=None, derandomize=True, max_examples=40)
settings.load_profile("sepconv")

"""Shared pytest setup: quiet TensorFlow logs and two logical CPU devices for mirrored tests.

The CPU must be split before TensorFlow initialises, so it happens here, at collection time.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core import runtime  # noqa: E402

runtime.split_cpu(2)

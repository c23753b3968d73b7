"""Test stand-in for libcamera's Python bindings (see _libcamera.py).

Laid out like the real package, which re-exports its C++ extension ``_libcamera``.
"""

from ._libcamera import *  # noqa: F403
from ._libcamera import controls, properties, rig  # noqa: F401

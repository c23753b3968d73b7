"""Test stand-in for pykms (the DRM/KMS bindings of Raspberry Pi OS).

picamera2 imports it at start-up for its on-screen preview and builds a table
of pixel formats from it; the agent never shows a preview, so only those
names exist here.
"""

import enum


class PixelFormat(enum.Enum):
    RGB888 = "RG24"
    BGR888 = "BG24"
    XRGB8888 = "XR24"
    XBGR8888 = "XB24"
    YUV420 = "YU12"
    YVU420 = "YV12"
    NV12 = "NV12"

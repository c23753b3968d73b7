"""lfr-edge-agent: the device daemon and operator tools for live facial recognition cameras."""

__version__ = "0.1.0"

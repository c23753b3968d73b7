"""lfr-edge-agent: the device daemon and operator tools for live facial recognition cameras."""

import os

# The onnxruntime wheels for Linux carry Microsoft's telemetry client: left on, it writes a
# persistent device id and an event cache and contacts Microsoft's collector. Nothing but
# sealed alerts, status and reports may leave a camera, so it is switched off here, before
# anything can load onnxruntime (the setting is read once, at its initialisation).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"

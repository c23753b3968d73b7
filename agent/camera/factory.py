"""Builds the configured frame source."""

from __future__ import annotations

from pathlib import Path

from agent.camera.frame_source import FrameSource
from agent.config import CameraSection, picamera2_device_problem
from agent.errors import ConfigError


def make_source(cam: CameraSection) -> FrameSource:
    if cam.source == "replay":
        from agent.camera.replay_source import ReplaySource

        return ReplaySource(Path(cam.device), fps=cam.fps, loop=cam.loop)
    if cam.source == "opencv":
        from agent.camera.opencv_source import OpenCvSource

        return OpenCvSource(
            cam.device, cam.width, cam.height, cam.fps, cam.open_timeout_s, cam.read_timeout_s
        )
    from agent.camera.picamera2_source import Picamera2Source

    if (problem := picamera2_device_problem(cam)) is not None:
        raise ConfigError([problem])
    num = int(cam.device) if cam.device else 0
    return Picamera2Source(num, cam.width, cam.height, cam.fps, cam.read_timeout_s)

"""H.264 in MP4, in memory: the one encoder alert clips and recording segments use.

Encoding runs through FFmpeg's libraries (PyAV). On a Raspberry Pi whose camera stack
picamera2 reports as VC4 (Pi 4 and earlier) the SoC's hardware H.264 encoder is used the
way picamera2's own ``LibavH264Encoder(use_hw=True)`` uses it: FFmpeg's ``h264_v4l2m2m``
codec on the bcm2835 codec device. Everywhere else (a Pi 5 has no H.264 encoder in
hardware; a PC) the software encoder libx264 runs with its fastest preset, so it costs
the face pipeline as little CPU as possible. picamera2 is imported only to ask which Pi
this is, and only when ``auto`` or ``hardware`` is configured.

The MP4 is written to memory and never to a file: plaintext video must not touch the
disk (the caller seals it before it is stored).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import LfrError
from agent.trust.sealed_media import VideoInfo

log = logging.getLogger(__name__)

SOFTWARE_CODEC = "libx264"
HARDWARE_CODEC = "h264_v4l2m2m"
#: The bcm2835 codec's encoder node on Raspberry Pi OS.
PI_ENCODER_DEVICE = Path("/dev/video11")
_SOFTWARE_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "26"}


class VideoEncoderError(LfrError):
    """Video could not be encoded (no such encoder here, or it failed)."""


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # a broken install: av is a dependency
        raise VideoEncoderError("video: PyAV (av) is not installed") from exc
    return av


def pi_hardware_encoder_present() -> bool:
    """True on a Pi whose H.264 hardware encoder FFmpeg can drive (VC4 platforms)."""
    if not PI_ENCODER_DEVICE.exists():
        return False
    try:
        from picamera2 import platform as pi_platform
    except Exception:
        return False
    if pi_platform.get_platform() != pi_platform.Platform.VC4:
        return False
    return HARDWARE_CODEC in _av().codecs_available


def choose_codec(preference: str) -> str:
    """The FFmpeg codec for ``auto``, ``hardware`` or ``software``."""
    if preference == "software":
        return SOFTWARE_CODEC
    present = pi_hardware_encoder_present()
    if preference == "hardware" and not present:
        raise VideoEncoderError(
            "video: encoder 'hardware': no Pi H.264 hardware encoder here "
            f"({PI_ENCODER_DEVICE} on a VC4 Pi); use 'auto' or 'software'"
        )
    return HARDWARE_CODEC if present else SOFTWARE_CODEC


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """``target_width`` (never upscaled) and the height that keeps the aspect, both even."""
    w = min(target_width, width) // 2 * 2
    h = max(2, round(height * w / width) // 2 * 2)
    return max(2, w), h


@dataclass(frozen=True)
class EncodedVideo:
    mp4: bytes
    info: VideoInfo


class Mp4Writer:
    """Frames in (BGR arrays of one size), an MP4 out, all in memory."""

    def __init__(self, width: int, height: int, fps: int, codec: str = SOFTWARE_CODEC) -> None:
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise VideoEncoderError(f"video: {width}×{height}: sides must be even")
        av = _av()
        self.width, self.height, self.fps, self.codec = width, height, fps, codec
        self.frames = 0
        self._buf = io.BytesIO()
        try:
            self._container = av.open(self._buf, "w", format="mp4")
            self._stream = self._container.add_stream(codec, rate=fps)
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = "yuv420p"
            if codec == SOFTWARE_CODEC:
                self._stream.options = dict(_SOFTWARE_OPTIONS)
                # One thread: the face pipeline owns the other cores.
                self._stream.codec_context.thread_count = 1
            else:
                self._stream.bit_rate = max(500_000, width * height * fps // 8)
        except Exception as exc:
            raise VideoEncoderError(f"video: encoder {codec} cannot start: {exc}") from exc
        self._av = av

    def add(self, image: np.ndarray[Any, Any]) -> None:
        if image.shape[:2] != (self.height, self.width):
            raise VideoEncoderError(
                f"video: frame {image.shape[1]}×{image.shape[0]}, expected {self.width}×{self.height}"
            )
        try:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = self.frames
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except Exception as exc:
            raise VideoEncoderError(f"video: encoding failed: {exc}") from exc
        self.frames += 1

    def finish(self) -> EncodedVideo:
        """Flush the encoder and return the MP4 (at least one frame must have been added)."""
        if self.frames == 0:
            self.abandon()
            raise VideoEncoderError("video: no frames to encode")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except Exception as exc:
            raise VideoEncoderError(f"video: encoding failed: {exc}") from exc
        data = self._buf.getvalue()
        self._buf = io.BytesIO()
        return EncodedVideo(data, VideoInfo(self.frames, self.width, self.height, float(self.fps)))

    def abandon(self) -> None:
        """Drop everything encoded so far (nothing of it is kept)."""
        # Closing a half-written container may complain; nothing of it is kept either way.
        with contextlib.suppress(Exception):
            self._container.close()
        self._buf = io.BytesIO()


def encode_frames(frames: list[np.ndarray[Any, Any]], fps: int, codec: str) -> EncodedVideo:
    """One MP4 of ``frames`` (all of one even size)."""
    if not frames:
        raise VideoEncoderError("video: no frames to encode")
    h, w = frames[0].shape[:2]
    writer = Mp4Writer(w, h, fps, codec)
    try:
        for f in frames:
            writer.add(f)
    except VideoEncoderError:
        writer.abandon()
        raise
    return writer.finish()

"""OpenCvSource: video files for real; missing devices and unreachable streams as named errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.camera.factory import make_source
from agent.camera.opencv_source import OpenCvSource, parse_device
from agent.config import CameraSection
from agent.errors import CameraError


def test_parse_device() -> None:
    assert parse_device("0") == (0, cv2.CAP_V4L2, True)
    assert parse_device("/dev/video2") == ("/dev/video2", cv2.CAP_V4L2, True)
    assert parse_device("rtsp://cam/stream")[1:] == (cv2.CAP_FFMPEG, True)
    assert parse_device("/data/clip.mp4")[2] is False
    with pytest.raises(CameraError, match="unsupported stream scheme 'ftp'"):
        parse_device("ftp://x/y")


def test_video_file_reads_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 50 * i, np.uint8))
    writer.release()
    src = OpenCvSource(str(path))
    src.open()
    frames = list(iter(src.read, None))
    src.close()
    assert [f.seq for f in frames] == [1, 2, 3, 4]


def test_missing_device_is_a_clear_error() -> None:
    src = OpenCvSource("/dev/video97")
    with pytest.raises(CameraError, match="/dev/video97: no such device or file"):
        src.open()
    assert not src.is_open and src.counters.opens == 0


def test_unreachable_stream_is_a_clear_error() -> None:
    # Port 9 on loopback: nothing listens, so the connection is refused at once.
    src = OpenCvSource("rtsp://127.0.0.1:9/none", open_timeout_s=1.0, read_timeout_s=1.0)
    with pytest.raises(CameraError, match="cannot open"):
        src.open()


def test_factory_builds_each_backend(tmp_path: Path) -> None:
    assert make_source(CameraSection(source="replay", device=str(tmp_path))).kind == "replay"
    assert make_source(CameraSection(source="opencv", device="0")).kind == "opencv"
    assert make_source(CameraSection(source="picamera2", device="1")).describe() == "picamera2:1"

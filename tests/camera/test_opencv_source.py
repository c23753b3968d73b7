"""OpenCvSource: video files and live HTTP MJPEG streams for real; failures as named errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.camera.factory import make_source
from agent.camera.frame_source import SourceDied
from agent.camera.opencv_source import OpenCvSource, parse_device
from agent.config import CameraSection
from agent.errors import CameraError, ConfigError


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
    assert make_source(CameraSection(source="picamera2", device="")).describe() == "picamera2:0"


def test_factory_refuses_a_picamera2_device_that_is_not_a_number() -> None:
    # Once read as camera 0: a path meant for the opencv backend silently picked the Pi camera.
    with pytest.raises(ConfigError, match="camera.device: picamera2 takes a camera number"):
        make_source(CameraSection(source="picamera2", device="/dev/video0"))
    for not_ascii in ("²", "١"):  # digits to str.isdigit(), not camera numbers
        with pytest.raises(ConfigError, match="picamera2 takes a camera number"):
            make_source(CameraSection(source="picamera2", device=not_ascii))


STREAM_FRAMES = 8


class _MjpegCamera(BaseHTTPRequestHandler):
    """An IP camera's MJPEG feed that sends STREAM_FRAMES frames, then dies.

    ``server.ending`` picks how: "drop" closes the connection (camera rebooted,
    cable cut), "freeze" keeps it open and silent (camera hung).
    """

    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(STREAM_FRAMES):
            ok, jpg = cv2.imencode(".jpg", np.full((48, 64, 3), 30 * i, np.uint8))
            assert ok
            data = jpg.tobytes()
            self.wfile.write(
                b"--frame\r\nContent-Type: image/jpeg\r\n"
                + f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
                + b"\r\n"
            )
            self.wfile.flush()
            time.sleep(0.02)
        if getattr(self.server, "ending", "drop") == "freeze":
            self.server.release_freeze.wait(30)  # type: ignore[attr-defined]


@pytest.fixture
def mjpeg_camera() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MjpegCamera)
    server.daemon_threads = True
    server.release_freeze = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release_freeze.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("ending", ["drop", "freeze"])
def test_live_stream_dying_mid_stream_is_source_died(
    mjpeg_camera: ThreadingHTTPServer, ending: str
) -> None:
    mjpeg_camera.ending = ending  # type: ignore[attr-defined]
    port = mjpeg_camera.server_address[1]
    src = OpenCvSource(f"http://127.0.0.1:{port}/stream", open_timeout_s=2.0, read_timeout_s=0.5)
    src.open()
    levels = []
    with pytest.raises(SourceDied, match="stream stopped delivering frames"):
        for _ in range(STREAM_FRAMES + 5):
            frame = src.read()
            assert frame is not None, "a live stream must never report end-of-recording"
            levels.append(int(frame.image.mean().round()))
    # Every frame sent before the failure arrived, in order, and nothing after it.
    assert levels == [30 * i for i in range(STREAM_FRAMES)]
    assert src.is_open  # the gate, not the source, decides to close
    src.close()
    assert (src.counters.opens, src.counters.closes, src.counters.frames) == (1, 1, STREAM_FRAMES)

"""ReplaySource on real image folders and video files written by the test."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.camera.frame_source import SourceDied
from agent.camera.replay_source import ReplaySource
from agent.errors import CameraError


def write_frames(folder: Path, n: int, size: tuple[int, int] = (64, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 10 % 256, np.uint8)
        cv2.imwrite(str(folder / f"{i:06d}.png"), img)
    return folder


def test_frames_in_order_with_sequence_and_monotonic_time(tmp_path: Path) -> None:
    src = ReplaySource(write_frames(tmp_path / "f", 5), fps=200, skip_late_frames=False)
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 10, 20, 30, 40]
    assert all(b.t_mono >= a.t_mono for a, b in itertools.pairwise(frames))
    assert src.counters.opens == 1 and src.counters.closes == 1 and src.counters.frames == 5


def test_pacing_never_runs_faster_than_fps(tmp_path: Path) -> None:
    # One-sided bound: a loaded machine can only make intervals longer.
    fps = 50.0
    src = ReplaySource(write_frames(tmp_path / "f", 10), fps=fps, skip_late_frames=False)
    src.open()
    t = [f.t_mono for f in iter(src.read, None)]
    src.close()
    assert len(t) == 10
    assert (t[-1] - t[0]) >= 9 / fps * 0.95


def test_a_late_consumer_skips_frames_like_a_live_camera(tmp_path: Path) -> None:
    fps = 100.0
    src = ReplaySource(write_frames(tmp_path / "f", 40), fps=fps)
    src.open()
    first = src.read()
    assert first is not None
    time.sleep(10 / fps)
    second = src.read()
    src.close()
    assert second is not None
    assert src.skipped >= 8
    assert int(second.image[0, 0, 0]) >= 90  # frame index >= 9 was delivered next


def test_loop_restarts_and_without_loop_ends(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "f", 3)
    looped = ReplaySource(folder, fps=500, loop=True, skip_late_frames=False)
    looped.open()
    values = [int(looped.read().image[0, 0, 0]) for _ in range(7)]  # type: ignore[union-attr]
    looped.close()
    assert values == [0, 10, 20, 0, 10, 20, 0]


def test_reopen_starts_a_new_sequence(tmp_path: Path) -> None:
    src = ReplaySource(write_frames(tmp_path / "f", 3), fps=500, skip_late_frames=False)
    src.open()
    src.read()
    src.close()
    src.open()
    frame = src.read()
    src.close()
    assert frame is not None and frame.seq == 1
    assert src.counters.opens == 2 and src.counters.closes == 2


def test_close_is_idempotent_and_read_when_closed_is_an_error(tmp_path: Path) -> None:
    src = ReplaySource(write_frames(tmp_path / "f", 2), fps=500)
    src.close()
    assert src.counters.closes == 0
    with pytest.raises(CameraError, match="read while closed"):
        src.read()


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such file or folder"):
        ReplaySource(tmp_path / "nope").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraError, match="holds no images"):
        ReplaySource(tmp_path / "empty").open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(CameraError, match="not a readable video"):
        ReplaySource(junk).open()
    with pytest.raises(CameraError, match="fps must be positive"):
        ReplaySource(tmp_path, fps=0)


def test_corrupt_frame_mid_stream_is_reported_not_a_crash(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "f", 3)
    (folder / "000001.png").write_bytes(b"garbage")
    src = ReplaySource(folder, fps=500, skip_late_frames=False)
    src.open()
    assert src.read() is not None
    with pytest.raises(SourceDied, match="000001.png: not a readable image"):
        src.read()
    src.close()


def test_video_file_replay(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    assert writer.isOpened()
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    src = ReplaySource(path, fps=500, skip_late_frames=False)
    src.open()
    frames = list(iter(src.read, None))
    src.close()
    assert len(frames) == 6
    assert frames[0].image.shape == (48, 64, 3)
    levels = [int(f.image.mean()) for f in frames]
    assert levels == sorted(levels)

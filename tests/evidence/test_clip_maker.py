"""Clips around alerts: pre-roll from RAM, post-roll after the decision, the ring wiped
when the camera closes, and a clip that cannot be made reported instead of awaited."""

from __future__ import annotations

import io
import threading
import time

import av
import numpy as np
import pytest

from agent.camera.frame_source import Frame
from agent.config import ClipsSection
from agent.evidence.clip_maker import ClipMaker, ClipResult

ALERT = "aa" * 16


#: Cameras stamp frames with the monotonic clock; the tests' times are offsets from the
#: start of each test (reset below): a base taken at import is minutes old by the time a
#: full suite reaches these tests, and the maker then rightly finds every post-roll late.
T0 = time.monotonic()


@pytest.fixture(autouse=True)
def _fresh_time_base() -> None:
    global T0
    T0 = time.monotonic()


def _frame(seq: int, t: float) -> Frame:
    img = np.full((360, 640, 3), seq % 255, np.uint8)
    return Frame(seq, T0 + t, img)


class Collector:
    def __init__(self) -> None:
        self.results: list[ClipResult] = []
        self.got = threading.Event()

    def __call__(self, r: ClipResult) -> None:
        self.results.append(r)
        self.got.set()


def _maker(**kw: object) -> tuple[ClipMaker, Collector]:
    section = ClipsSection(**{"preroll_s": 1.0, "postroll_s": 1.0, "fps": 10, "width": 320, **kw})  # type: ignore[arg-type]
    c = Collector()
    m = ClipMaker(section, c, codec="libx264")
    m.start()
    return m, c


def test_a_clip_holds_the_preroll_and_postroll_at_the_clip_rate_downscaled() -> None:
    m, c = _maker()
    try:
        # 30 fps camera for 3 s; the alert is decided at t=1.5.
        # Paced a little, as a camera is: a flood would (rightly) make the hand-over drop
        # frames, pre-roll included.
        for i in range(45):
            m.offer(_frame(i, 100.0 + i / 30))
            time.sleep(0.01)
            if i == 45 // 2:
                m.order(ALERT, "dep-1", T0 + 100.0 + 1.5 - 1 / 30)
        for i in range(45, 90):
            m.offer(_frame(i, 100.0 + i / 30))
            time.sleep(0.01)
        assert c.got.wait(10)
    finally:
        m.stop()
    r = c.results[0]
    assert r.video is not None and r.problem == ""
    assert 1.8 <= r.end_mono - r.start_mono <= 2.1  # frames come every 0.1 s
    assert 18 <= r.video.info.frames <= 22  # 2 s at 10 fps
    assert (r.video.info.width, r.video.info.height) == (320, 180)
    with av.open(io.BytesIO(r.video.mp4)) as cont:
        assert sum(1 for _ in cont.decode(video=0)) == r.video.info.frames
    assert len(m.ring) == 0  # wiped when the maker stopped


def test_the_preroll_is_wiped_when_the_camera_closes_and_a_later_alert_does_not_see_it() -> None:
    m, c = _maker()
    try:
        for i in range(30):
            m.offer(_frame(i, 200.0 + i / 10))
        for _ in range(100):
            if len(m.ring) >= 10:
                break
            threading.Event().wait(0.02)
        assert len(m.ring) >= 10
        m.camera_closed()
        assert len(m.ring) == 0
        # The camera opens again; an alert right away has only the new frames.
        for i in range(30, 45):
            m.offer(_frame(i, 300.0 + (i - 30) / 10))
        m.order(ALERT, "dep-1", T0 + 300.5)
        for i in range(45, 60):
            m.offer(_frame(i, 300.0 + (i - 30) / 10))
        assert c.got.wait(10)
    finally:
        m.stop()
    r = c.results[0]
    assert r.video is not None and r.start_mono >= T0 + 300.0


def test_the_camera_closing_during_the_postroll_finishes_the_clip_with_what_it_has() -> None:
    m, c = _maker()
    try:
        for i in range(12):
            m.offer(_frame(i, 10.0 + i / 10))
        m.order(ALERT, "dep-1", T0 + 11.1)
        m.offer(_frame(12, 11.2))
        m.camera_closed()
        assert c.got.wait(10)
    finally:
        m.stop()
    r = c.results[0]
    assert r.video is not None and r.end_mono <= T0 + 11.2 + 1e-9


def test_an_alert_with_no_frames_at_all_is_reported_missing() -> None:
    m, c = _maker()
    try:
        # Decided "now" (not relative to the module's T0, which may be long past once
        # other tests ran): the camera closes before the post-roll could even stall.
        m.order(ALERT, "dep-1", time.monotonic())
        m.camera_closed()
        assert c.got.wait(10)
    finally:
        m.stop()
    assert c.results[0].video is None and "before any frame" in c.results[0].problem

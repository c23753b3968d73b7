"""The capture gate over a real ReplaySource (JPEGs written to tmp) and a real audit log.

The wall clock is shifted to the test's fixed date and can be jumped; the
monotonic clock is the real one, the same the replay source stamps frames with.
Assertions are on frame timestamps against the activation's bounds and on the
source's open/close counters, never on how long the test took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from trust.trust_world import DEPLOYMENT, DEVICE, NOW, WATCHLIST, TrustWorld, make_world

from agent.camera.frame_source import Frame
from agent.camera.replay_source import ReplaySource
from agent.runtime.capture_gate import CaptureGate, GateState
from agent.trust.activation_verifier import LiveActivation
from agent.trust.audit_log import AuditLog, verify_audit_log
from agent.trust.system_clock import ClockSync

CLOSE_WITHIN_S = 1.0


class ShiftedClock:
    """Real monotonic clock; wall clock = fixed test date + elapsed + any jumps."""

    def __init__(self) -> None:
        self._m0 = time.monotonic()
        self.offset = 0.0

    def mono(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return NOW + 10 + (time.monotonic() - self._m0) + self.offset

    def sync_state(self) -> ClockSync:
        return ClockSync.SYNCHRONISED


class Rig:
    def __init__(self, tmp: Path, fps: float = 25.0, frames_dir: Path | None = None) -> None:
        self.world: TrustWorld = make_world(tmp)
        self.clock = ShiftedClock()
        self.world.clock = self.clock  # type: ignore[assignment]
        self.source = ReplaySource(
            frames_dir or jpeg_folder(tmp / "frames", 12), fps=fps, loop=True
        )
        self.frames: list[Frame] = []
        self.watchlist_ok = True
        self.audit = AuditLog.open(tmp / "audit.jsonl", self.world.device_keys.signing, 10)
        self.audit_path = tmp / "audit.jsonl"
        self.gate = CaptureGate(
            self.source,
            self.frames.append,
            self.audit.append,
            clock=self.clock,
            watchlist_present=lambda: self.watchlist_ok,
        )

    def live(self, **kw: object) -> LiveActivation:
        result = self.world.verifier().verify(
            self.world.activation(**kw), loaded_watchlist_sha256=WATCHLIST
        )
        assert result.live is not None
        return result.live

    def wait_idle(self, limit_s: float = 20.0) -> None:
        end = time.monotonic() + limit_s
        while self.gate.state is GateState.ACTIVE and time.monotonic() < end:
            time.sleep(0.02)
        assert self.gate.state is GateState.IDLE, "gate never closed"

    def events(self) -> list[str]:
        self.audit.close()
        verify_audit_log(self.audit_path.read_bytes(), self.world.device_keys.signing_public)
        import json

        return [json.loads(x)["event"] for x in self.audit_path.read_bytes().splitlines()]

    def assert_closed_once(self) -> None:
        assert self.source.counters.opens == 1 and self.source.counters.closes == 1
        assert not self.source.is_open


def jpeg_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.full((48, 64, 3), (i * 20) % 256, np.uint8)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), img)
    return folder


def settle_then_count(rig: Rig, seconds: float = 0.3) -> int:
    """Frames delivered in a short pause after closing: must stay unchanged."""
    before = len(rig.frames)
    time.sleep(seconds)
    return len(rig.frames) - before


@pytest.mark.slow
def test_zero_frames_outside_the_window_and_close_at_expiry(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    live = rig.live(duration_s=2, lease_s=2)
    t_before_open = time.monotonic()
    assert rig.gate.activate(live)
    rig.wait_idle()
    status = rig.gate.status()
    assert status.reason == "expired"
    assert rig.frames, "no frame was captured inside the window"
    assert all(t_before_open <= f.t_mono < live.end_mono for f in rig.frames)
    assert status.closed_mono is not None and status.closed_mono - live.end_mono <= CLOSE_WITHIN_S
    assert settle_then_count(rig) == 0
    rig.assert_closed_once()
    # Every gate entry is followed at once by a signed checkpoint.
    assert rig.events()[-4:] == [
        "gate.opened",
        "audit.checkpoint",
        "gate.closed",
        "audit.checkpoint",
    ]


@pytest.mark.slow
def test_camera_waits_for_not_before_then_opens(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    # Accepted within the clock tolerance before its window starts.
    live = rig.live(not_before=int(rig.clock.wall()) + 2, duration_s=600, lease_s=600)
    assert live.start_mono > rig.clock.mono() + 0.5
    assert rig.gate.activate(live)
    assert rig.gate.state is GateState.ARMED and rig.source.counters.opens == 0
    assert rig.gate.live == live  # a stop or renewal can already name it
    end = time.monotonic() + 20
    while len(rig.frames) < 3 and time.monotonic() < end:
        time.sleep(0.02)
    assert rig.gate.state is GateState.ACTIVE
    assert rig.frames and all(f.t_mono >= live.start_mono for f in rig.frames)
    opened = rig.gate.status().opened_mono
    assert opened is not None and opened >= live.start_mono
    rig.gate.stop("stopped")
    rig.assert_closed_once()
    events = rig.events()
    assert events.index("gate.armed") < events.index("gate.opened")


@pytest.mark.slow
def test_stop_while_armed_never_opens_the_camera(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    live = rig.live(not_before=int(rig.clock.wall()) + 2, duration_s=600, lease_s=600)
    assert rig.gate.activate(live)
    assert rig.gate.state is GateState.ARMED
    rig.gate.stop("stopped")
    assert rig.gate.state is GateState.IDLE
    while time.monotonic() < live.start_mono + 0.3:  # past the start: still closed
        time.sleep(0.05)
    assert rig.source.counters.opens == 0 and not rig.frames
    assert rig.gate.status().reason == "stopped"
    events = rig.events()
    assert "gate.armed" in events and "gate.opened" not in events


@pytest.mark.slow
def test_lease_lapse_closes_the_camera(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    live = rig.live(duration_s=600, lease_s=1)
    assert rig.gate.activate(live)
    rig.wait_idle()
    status = rig.gate.status()
    assert status.reason == "lease-lapsed"
    assert all(f.t_mono < live.lease_until_mono for f in rig.frames)
    assert status.closed_mono is not None
    assert status.closed_mono - live.lease_until_mono <= CLOSE_WITHIN_S
    rig.assert_closed_once()


@pytest.mark.slow
def test_renewal_extends_the_lease_then_it_lapses(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    live = rig.live(duration_s=600, lease_s=1)
    assert rig.gate.activate(live)
    time.sleep(0.4)
    renewal = rig.world.issuer("bob").renewal(DEVICE, DEPLOYMENT, 2)
    renewed = rig.world.verifier().verify(renewal, live=rig.gate.live).live
    assert renewed is not None and renewed.lease_until_mono > live.lease_until_mono
    rig.gate.renew(renewed)
    rig.wait_idle()
    assert rig.gate.status().reason == "lease-lapsed"
    assert any(f.t_mono >= live.lease_until_mono for f in rig.frames), "renewal had no effect"
    assert all(f.t_mono < renewed.lease_until_mono for f in rig.frames)
    rig.assert_closed_once()
    assert "gate.renewed" in rig.events()


def test_signed_stop_closes_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    while len(rig.frames) < 3:
        time.sleep(0.02)
    stop = rig.world.issuer("bob").stop(DEVICE, DEPLOYMENT, "officers stood down")
    rig.world.verifier().verify(stop, live=rig.gate.live)
    rig.gate.stop("stopped")
    t_stop = time.monotonic()
    assert rig.gate.state is GateState.IDLE and not rig.source.is_open
    assert all(f.t_mono <= t_stop for f in rig.frames)
    assert settle_then_count(rig) == 0
    assert rig.gate.status().reason == "stopped"
    rig.assert_closed_once()


@pytest.mark.parametrize("how", ["predicate", "notification"])
def test_missing_watchlist_closes_the_camera(tmp_path: Path, how: str) -> None:
    rig = Rig(tmp_path)
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    while len(rig.frames) < 2:
        time.sleep(0.02)
    t_wipe = time.monotonic()
    if how == "predicate":
        rig.watchlist_ok = False
    else:
        rig.gate.watchlist_lost()
    rig.wait_idle()
    status = rig.gate.status()
    assert status.reason == "watchlist-missing"
    assert status.closed_mono is not None and status.closed_mono - t_wipe <= CLOSE_WITHIN_S
    assert settle_then_count(rig) == 0
    rig.assert_closed_once()


def test_wall_clock_jump_forward_ends_the_activation(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    rig.clock.offset = 3600.0
    t_jump = time.monotonic()
    rig.wait_idle()
    status = rig.gate.status()
    assert status.reason == "expired"
    assert status.closed_mono is not None and status.closed_mono - t_jump <= CLOSE_WITHIN_S
    rig.assert_closed_once()


@pytest.mark.slow
def test_wall_clock_jump_back_never_extends_the_activation(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    live = rig.live(duration_s=2, lease_s=2)
    assert rig.gate.activate(live)
    rig.clock.offset = -7200.0  # the wall clock now says the window has hours left
    rig.wait_idle()
    assert rig.gate.status().reason == "expired"
    assert all(f.t_mono < live.end_mono for f in rig.frames)
    rig.assert_closed_once()


def test_activation_that_has_lapsed_on_arrival_never_opens_the_camera(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    live = rig.live(duration_s=600, lease_s=1)
    time.sleep(1.05)
    assert not rig.gate.activate(live)
    assert rig.source.counters.opens == 0 and rig.gate.status().reason == "lease-lapsed"
    assert "gate.refused" in rig.events()


def _failing(exc: Exception) -> Callable[..., None]:
    def f(*_: object, **__: object) -> None:
        raise exc

    return f


def test_consumer_exception_closes_the_camera(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.gate._on_frame = _failing(RuntimeError("pipeline bug"))
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    rig.wait_idle()
    assert rig.gate.status().reason == "internal-error"
    rig.assert_closed_once()


def test_dead_source_closes_the_gate(tmp_path: Path) -> None:
    frames = jpeg_folder(tmp_path / "broken", 3)
    (frames / "0001.jpg").write_bytes(b"not a jpeg")
    rig = Rig(tmp_path, frames_dir=frames)
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    rig.wait_idle()
    assert rig.gate.status().reason == "source-died"
    assert len(rig.frames) == 1
    rig.assert_closed_once()


def test_audit_failure_keeps_the_camera_closed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.gate._audit = _failing(OSError("disk full"))
    assert not rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    assert rig.source.counters.opens == 0 and not rig.source.is_open
    assert rig.gate.status().reason == "internal-error"


def test_camera_that_fails_to_open_is_audited(tmp_path: Path) -> None:
    rig = Rig(tmp_path, frames_dir=tmp_path / "no-such-folder")
    assert not rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    assert rig.gate.status().reason == "source-failed" and not rig.source.is_open
    assert "gate.open-failed" in rig.events()


def test_new_activation_supersedes_the_live_one(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600))
    assert rig.gate.activate(rig.live(duration_s=600, lease_s=600, deployment_id="dep-2"))
    assert rig.gate.status().deployment_id == "dep-2"
    rig.gate.shutdown()
    assert rig.source.counters.opens == 2 and rig.source.counters.closes == 2
    assert rig.gate.status().reason == "shutdown"
    events = rig.events()
    assert events.count("gate.opened") == 2 and events.count("gate.closed") == 2


def test_a_failing_open_hook_closes_the_camera_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)

    def broken() -> None:
        raise RuntimeError("hook failed")

    rig.gate = CaptureGate(
        rig.source, rig.frames.append, rig.audit.append, clock=rig.clock, on_opened=broken
    )
    assert rig.gate.activate(rig.live()) is False
    assert rig.gate.state is GateState.IDLE and rig.gate.status().reason == "internal-error"
    rig.assert_closed_once()
    assert rig.frames == []

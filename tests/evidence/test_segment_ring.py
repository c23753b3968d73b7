"""The sealed CCTV ring: bounded by size and by age, every deletion audited, and the
space kept for alerts never used."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.evidence.segment_ring import RecordingDiskFull, SegmentRing
from agent.trust.sealed_media import SealedMedia, VideoInfo, seal_media

DEV_KEY = Ed25519PrivateKey.generate()
HUB = X25519PrivateKey.generate()
DAY = 86400.0


def _segment(start: float, size: int = 2000) -> SealedMedia:
    return seal_media(
        "segment",
        b"v" * size,
        VideoInfo(600, 64, 36, 10.0),
        device="lfr-test-01",
        deployment="dep-1",
        alert_id="",
        start=start,
        end=start + 60,
        device_key=DEV_KEY,
        hub_key=HUB.public_key(),
    )


class World:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now = 1_800_000_000.0
        self.free = 10**12
        self.audit: list[tuple[str, dict[str, object]]] = []

    def ring(self, max_bytes: int = 10**6, reserve: int = 1000) -> SegmentRing:
        return SegmentRing(
            self.folder,
            max_bytes=max_bytes,
            reserve_bytes=reserve,
            retention_s=31 * DAY,
            audit=lambda e, f: self.audit.append((e, f)),
            clock=lambda: self.now,
            free_bytes=lambda _p: self.free,
        )

    def deleted(self, reason: str) -> int:
        return sum(
            1 for e, f in self.audit if e == "recording.segment_deleted" and f["reason"] == reason
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "recordings")


def test_segments_are_found_by_time_range_after_a_restart(world: World) -> None:
    ring = world.ring()
    t = world.now - 3600
    for i in range(5):
        ring.add(_segment(t + 60 * i))
    again = world.ring()
    hits = again.in_range(t + 90, t + 150)
    assert [round(h.start - t) for h in hits] == [60, 120]
    f = again.read(hits[0].media_id)
    assert f is not None and b"v" * 100 not in f.box  # sealed: no plaintext on disk


def test_the_ring_deletes_the_oldest_when_full_audited(world: World) -> None:
    ring = world.ring(max_bytes=9000)
    t = world.now - 3600
    for i in range(6):
        ring.add(_segment(t + 60 * i))
    assert ring.size_bytes <= 9000
    assert world.deleted("ring-full") == 6 - len(ring)
    assert ring.entries()[0].start > t  # the oldest went first


def test_segments_past_retention_are_deleted_by_the_wall_clock_audited(world: World) -> None:
    ring = world.ring()
    ring.add(_segment(world.now - 40 * DAY))
    ring.add(_segment(world.now - 10 * DAY))
    world.now += 22 * DAY  # a shifted clock: the second is now 32 days old as well
    assert ring.purge_expired() == 2
    assert world.deleted("retention") == 2
    assert len(world.ring()) == 0 and not list(world.folder.glob("*.seg"))


def test_recording_never_eats_the_space_kept_for_alerts(world: World) -> None:
    ring = world.ring(reserve=50_000)
    world.free = 51_000
    with pytest.raises(RecordingDiskFull, match="kept for alerts"):
        ring.add(_segment(world.now))
    assert len(ring) == 0

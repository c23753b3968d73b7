"""The clip outbox on the real filesystem: promises survive a crash, clips leave only
with the hub's proof, damage is never sent, retention is audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.evidence.clip_outbox import ClipOutbox, ClipOutboxFull
from agent.trust.sealed_media import (
    MediaManifest,
    SealedMedia,
    VideoInfo,
    missing_clip_notice,
    open_manifest,
    seal_media,
)
from agent.trust.signed_document import key_id

DEV = "lfr-test-01"
DEV_KEY = Ed25519PrivateKey.generate()
HUB = X25519PrivateKey.generate()


class World:
    def __init__(self, folder: Path, max_bytes: int = 10**7) -> None:
        self.folder = folder
        self.now = 1_000_000.0
        self.audit: list[tuple[str, dict[str, object]]] = []
        self.max_bytes = max_bytes

    def open(self) -> ClipOutbox:
        return ClipOutbox(
            self.folder,
            max_bytes=self.max_bytes,
            retention_s=31 * 86400,
            read_manifest=self.read,
            audit=lambda e, f: self.audit.append((e, f)),
            clock=lambda: self.now,
        )

    @staticmethod
    def read(data: bytes) -> MediaManifest:
        return open_manifest(data, sender=DEV, device_key=DEV_KEY.public_key())


def _clip(alert: str, size: int = 1000) -> SealedMedia:
    return seal_media(
        "clip",
        b"v" * size,
        VideoInfo(10, 64, 36, 10.0),
        device=DEV,
        deployment="dep-1",
        alert_id=alert,
        start=1.0,
        end=2.0,
        device_key=DEV_KEY,
        hub_key=HUB.public_key(),
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "clips")


def test_a_promise_left_by_a_crash_is_handed_back_and_a_stored_clip_fulfils_it(
    world: World,
) -> None:
    ob = world.open()
    ob.expect("a1" * 16, "dep-1", 5.0)
    ob.expect("b2" * 16, "dep-1", 6.0)
    ob.add(_clip("b2" * 16))
    # SIGKILL here: the next start finds one unfulfilled promise.
    again = world.open()
    assert [e.alert_id for e in again.left_over] == ["a1" * 16]
    assert [e.manifest.alert_id for e in again.pending()] == ["b2" * 16]


def test_only_the_hubs_proof_deletes_a_clip(world: World) -> None:
    ob = world.open()
    sealed = _clip("c3" * 16)
    ob.add(sealed)
    mid = sealed.manifest.media_id
    assert not ob.acknowledge(mid, b"\x00" * 16)
    assert not ob.acknowledge(mid, None)
    assert ob.acknowledge(mid, sealed.ack_secret)
    assert len(world.open()) == 0


def test_a_notice_is_deleted_when_noted(world: World) -> None:
    ob = world.open()
    m, data = missing_clip_notice(
        device=DEV,
        deployment="dep-1",
        alert_id="d4" * 16,
        reason="camera closed",
        device_key=DEV_KEY,
        hub_key_id=key_id(HUB.public_key()),
        at=1.0,
    )
    ob.add_notice(m, data)
    assert ob.read(m.media_id) is not None
    assert ob.acknowledge(m.media_id, None) and len(ob) == 0


def test_a_damaged_entry_is_discarded_audited_never_sent(world: World) -> None:
    ob = world.open()
    sealed = _clip("e5" * 16)
    entry = ob.add(sealed)
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 0xFF
    entry.path.write_bytes(bytes(data))
    assert ob.read(sealed.manifest.media_id) is None
    assert any(e == "clips.entry_discarded" for e, _ in world.audit)
    assert not entry.path.exists()


def test_the_cap_refuses_a_clip_but_never_a_notice(tmp_path: Path) -> None:
    world = World(tmp_path / "clips", max_bytes=3000)
    ob = world.open()
    ob.add(_clip("f6" * 16, 1500))
    with pytest.raises(ClipOutboxFull):
        ob.add(_clip("a7" * 16, 1500))
    m, data = missing_clip_notice(
        device=DEV,
        deployment="dep-1",
        alert_id="a7" * 16,
        reason="clip outbox full",
        device_key=DEV_KEY,
        hub_key_id=key_id(HUB.public_key()),
        at=1.0,
    )
    ob.add_notice(m, data)
    assert len(ob) == 2


def test_retention_deletes_old_clips_audited(world: World) -> None:
    ob = world.open()
    ob.add(_clip("b8" * 16))
    world.now += 32 * 86400
    assert ob.purge_expired() == 1
    assert [e for e, _ in world.audit if e == "clips.retention_purge"]
    assert len(world.open()) == 0

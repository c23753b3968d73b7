"""The hub's media receiver, fed crafted chunk messages: only a complete, hash-checked,
decrypted, decodable clip of a stored alert is ever stored; everything else is refused
with its reason and leaves nothing visible."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Column
from support.alert_factory import AlertKeys, make_content

from agent.evidence.video_encoder import encode_frames
from agent.hub.intake.media_receiver import MediaReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.media_store import MediaStore
from agent.protocol.media_transfer import CHUNK_BYTES, chunk_count, chunk_slice, encode_chunk
from agent.trust.alert_envelope import open_alert, seal_alert
from agent.trust.sealed_media import SealedMedia, VideoInfo, missing_clip_notice, seal_media
from agent.trust.signed_document import key_id

DEV = "lfr-test-01"


class World:
    def __init__(self, db_url: str) -> None:
        self.keys = AlertKeys.generate()
        self.store = AlertStore(db_url)
        self.store.register_device_key(DEV, self.keys.device.public_key())
        self.media = MediaStore(self.store.database)
        self.rx = MediaReceiver(self.store, self.media, self.keys.hub)
        sealed = seal_alert(
            make_content(DEV),
            seq=1,
            device_key=self.keys.device,
            hub_key=self.keys.hub.public_key(),
        )
        self.alert = open_alert(
            sealed.envelope,
            sender=DEV,
            device_key=self.keys.device.public_key(),
            hub_key=self.keys.hub,
        )
        self.store.store_alert(self.alert)
        self.row_id = self.store.get(self.alert.header.alert_id, device_id=DEV).row_id

    def clip(self, mp4: bytes | None = None, alert_id: str | None = None) -> SealedMedia:
        if mp4 is None:
            frames = [
                np.random.default_rng(i).integers(0, 255, (360, 640, 3), np.uint8) for i in range(8)
            ]
            video = encode_frames(frames, 10, "libx264")
            mp4, info = video.mp4, video.info
        else:
            info = VideoInfo(8, 640, 360, 10.0)
        return seal_media(
            "clip",
            mp4,
            info,
            device=DEV,
            deployment=self.alert.header.deployment,
            alert_id=alert_id or self.alert.header.alert_id,
            start=1.0,
            end=2.0,
            device_key=self.keys.device,
            hub_key=self.keys.hub.public_key(),
        )

    def chunks(self, s: SealedMedia) -> list[bytes]:
        n = chunk_count(len(s.box))
        return [
            encode_chunk(s.manifest_bytes, i, n, s.box[slice(*chunk_slice(len(s.box), i))])
            for i in range(n)
        ]


@pytest.fixture
def world(hub_db_url: str) -> Iterator[World]:
    """On SQLite and on PostgreSQL (``hub_db_url``)."""
    w = World(hub_db_url)
    yield w
    w.store.close()


TOPIC = f"lfr/v1/{DEV}/clip"


def test_a_clip_in_chunks_is_stored_once_and_resumes_from_what_is_missing(world: World) -> None:
    s = world.clip()
    parts = world.chunks(s)
    assert len(parts) >= 2, "random frames make a clip of several chunks"
    last = world.rx.receive(TOPIC, parts[-1])  # the probe: the hub lists what it lacks
    assert (
        last.outcome == "staged" and last.ack and last.ack.missing == tuple(range(len(parts) - 1))
    )
    assert world.media.clip(world.row_id) is None  # never shown partial
    for p in parts[:-1]:
        r = world.rx.receive(TOPIC, p)
    assert r.outcome == "stored" and r.ack and r.ack.secret == s.ack_secret
    clip = world.media.clip(world.row_id)
    assert clip is not None and clip.state == "complete" and clip.frames == 8
    again = world.rx.receive(TOPIC, parts[0])
    assert again.outcome == "duplicate" and again.ack and again.ack.secret == s.ack_secret


def test_a_corrupt_box_is_refused_and_its_chunks_dropped(world: World) -> None:
    s = world.clip()
    bad_box = bytearray(s.box)
    bad_box[CHUNK_BYTES // 2] ^= 1
    parts = [
        encode_chunk(
            s.manifest_bytes,
            i,
            len(world.chunks(s)),
            bytes(bad_box)[slice(*chunk_slice(len(s.box), i))],
        )
        for i in range(len(world.chunks(s)))
    ]
    for p in parts:
        r = world.rx.receive(TOPIC, p)
    assert r.outcome == "rejected" and "does not match its manifest" in r.reason
    assert r.ack and r.ack.state == "refused"
    assert world.media.clip(world.row_id) is None
    assert world.media.staged_box(s.manifest.media_id) == b""


def test_video_that_does_not_decode_is_never_stored(world: World) -> None:
    s = world.clip(mp4=b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100)
    for p in world.chunks(s):
        r = world.rx.receive(TOPIC, p)
    assert r.outcome == "rejected" and "decode" in r.reason
    assert world.media.clip(world.row_id) is None


def test_a_clip_for_an_unknown_alert_or_on_the_wrong_topic_is_refused(world: World) -> None:
    s = world.clip(alert_id="ee" * 16)
    r = world.rx.receive(TOPIC, world.chunks(s)[0])
    assert r.outcome == "rejected" and "not stored here" in r.reason
    s = world.clip()
    r = world.rx.receive(f"lfr/v1/{DEV}/evidence", world.chunks(s)[0])
    assert r.outcome == "rejected" and "does not travel" in r.reason
    r = world.rx.receive("lfr/v1/lfr-other/clip", world.chunks(s)[0])
    assert r.outcome == "rejected" and "not enrolled" in r.reason
    r = world.rx.receive(TOPIC, b"LFRCHK1\n" + b"\xff" * 20)
    assert r.outcome == "rejected"


def test_a_chunk_of_the_wrong_size_is_refused(world: World) -> None:
    s = world.clip()
    n = len(world.chunks(s))
    r = world.rx.receive(TOPIC, encode_chunk(s.manifest_bytes, 0, n, s.box[:100]))
    assert r.outcome == "rejected" and "size" in r.reason


def test_a_missing_clip_notice_marks_the_alert_and_a_late_clip_still_replaces_it(
    world: World,
) -> None:
    _, data = missing_clip_notice(
        device=DEV,
        deployment=world.alert.header.deployment,
        alert_id=world.alert.header.alert_id,
        reason="the agent stopped before the clip was encoded",
        device_key=world.keys.device,
        hub_key_id=key_id(world.keys.hub.public_key()),
        at=1.0,
    )
    r = world.rx.receive(TOPIC, encode_chunk(data, 0, 0, b""))
    assert r.outcome == "noted" and r.ack and r.ack.state == "noted"
    clip = world.media.clip(world.row_id)
    assert clip is not None and clip.state == "missing" and "agent stopped" in clip.reason
    late = world.clip()
    for p in world.chunks(late):
        r = world.rx.receive(TOPIC, p)
    assert r.outcome == "stored"
    clip = world.media.clip(world.row_id)
    assert clip is not None and clip.state == "complete"
    world.store.purge(0.0)
    assert world.media.clip(world.row_id) is None  # purged with its alert


def test_storing_clips_builds_no_statement_objects_per_clip(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip's upsert is built once: per clip, its ``excluded`` alias made fourteen column
    proxies in reference cycles, which the hub's heap kept until a full collection."""
    made: list[str] = []
    original = Column.__init__

    def counting(self: Column[object], *args: object, **kwargs: object) -> None:
        made.append(str(args[0]) if args else "?")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    for part in world.chunks(world.clip()):  # the first clip builds the statement
        world.rx.receive(TOPIC, part)
    assert world.media.clip(world.row_id) is not None
    monkeypatch.setattr(Column, "__init__", counting)
    for seq in (2, 3, 4):
        sealed = seal_alert(
            make_content(DEV),
            seq=seq,
            device_key=world.keys.device,
            hub_key=world.keys.hub.public_key(),
        )
        alert = open_alert(
            sealed.envelope,
            sender=DEV,
            device_key=world.keys.device.public_key(),
            hub_key=world.keys.hub,
        )
        world.store.store_alert(alert)
        receipts = [
            world.rx.receive(TOPIC, p)
            for p in world.chunks(world.clip(alert_id=alert.header.alert_id))
        ]
        assert receipts[-1].outcome == "stored"
    assert made == []

"""Sealed clips and segments: only the hub key they were sealed to opens them, and any
change to the manifest, the box or the pairing of the two is refused."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.trust.sealed_media import (
    SealedMediaError,
    VideoInfo,
    missing_clip_notice,
    open_manifest,
    open_media,
    seal_media,
)
from agent.trust.signed_document import key_id

DEV = "lfr-test-01"
ALERT = "12" * 16
INFO = VideoInfo(frames=30, width=640, height=360, fps=10.0)


@pytest.fixture
def keys() -> tuple[Ed25519PrivateKey, X25519PrivateKey, X25519PrivateKey]:
    return Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), X25519PrivateKey.generate()


def _clip(dev_key: Ed25519PrivateKey, hub: X25519PrivateKey, mp4: bytes = b"\x00mp4 bytes"):  # type: ignore[no-untyped-def]
    return seal_media(
        "clip",
        mp4,
        INFO,
        device=DEV,
        deployment="dep-1",
        alert_id=ALERT,
        start=100.0,
        end=106.0,
        device_key=dev_key,
        hub_key=hub.public_key(),
        now=200,
    )


def test_the_hub_key_opens_a_clip_and_gets_the_video_and_the_receipt_secret(keys) -> None:  # type: ignore[no-untyped-def]
    dev, hub, _ = keys
    sealed = _clip(dev, hub)
    m = open_manifest(sealed.manifest_bytes, sender=DEV, device_key=dev.public_key())
    assert (m.kind, m.alert_id, m.box_len) == ("clip", ALERT, len(sealed.box))
    assert m.box_sha256 == hashlib.sha256(sealed.box).hexdigest()
    opened = open_media(m, sealed.box, hub)
    assert opened.mp4 == b"\x00mp4 bytes" and opened.info == INFO
    assert opened.ack_secret == sealed.ack_secret
    assert b"mp4 bytes" not in sealed.box  # encrypted


def test_only_the_key_it_was_sealed_to_opens_it(keys) -> None:  # type: ignore[no-untyped-def]
    dev, hub, other = keys
    sealed = _clip(dev, hub)
    m = open_manifest(sealed.manifest_bytes, sender=DEV, device_key=dev.public_key())
    with pytest.raises(SealedMediaError, match="different hub clip key"):
        open_media(m, sealed.box, other)


def test_a_changed_box_or_a_box_from_another_clip_is_refused(keys) -> None:  # type: ignore[no-untyped-def]
    dev, hub, _ = keys
    a, b = _clip(dev, hub), _clip(dev, hub, b"other video")
    m = open_manifest(a.manifest_bytes, sender=DEV, device_key=dev.public_key())
    flipped = bytearray(a.box)
    flipped[-1] ^= 1
    for box in (bytes(flipped), b.box, a.box[:-1]):
        with pytest.raises(SealedMediaError, match="does not match its manifest"):
            open_media(m, box, hub)


def test_a_manifest_from_another_sender_or_key_is_refused(keys) -> None:  # type: ignore[no-untyped-def]
    dev, hub, _ = keys
    sealed = _clip(dev, hub)
    with pytest.raises(SealedMediaError, match="came from"):
        open_manifest(sealed.manifest_bytes, sender="lfr-other", device_key=dev.public_key())
    with pytest.raises(SealedMediaError, match="trusted key"):
        open_manifest(
            sealed.manifest_bytes, sender=DEV, device_key=Ed25519PrivateKey.generate().public_key()
        )


def test_a_missing_clip_notice_is_signed_and_has_no_box(keys) -> None:  # type: ignore[no-untyped-def]
    dev, hub, _ = keys
    _, data = missing_clip_notice(
        device=DEV,
        deployment="dep-1",
        alert_id=ALERT,
        reason="agent stopped\n",
        device_key=dev,
        hub_key_id=key_id(hub.public_key()),
        at=150.0,
    )
    back = open_manifest(data, sender=DEV, device_key=dev.public_key())
    assert back.missing and back.reason == "agent stopped" and back.box_len == 0
    with pytest.raises(SealedMediaError, match="no box"):
        open_media(back, b"", hub)


def test_segments_name_no_alert_and_clips_must(keys) -> None:  # type: ignore[no-untyped-def]
    dev, hub, _ = keys
    seg = seal_media(
        "segment",
        b"v",
        INFO,
        device=DEV,
        deployment="dep-1",
        alert_id="",
        start=1.0,
        end=61.0,
        device_key=dev,
        hub_key=hub.public_key(),
    )
    assert open_media(seg.manifest, seg.box, hub).mp4 == b"v"
    with pytest.raises(ValueError, match="alert id"):
        seal_media(
            "segment",
            b"v",
            INFO,
            device=DEV,
            deployment="dep-1",
            alert_id=ALERT,
            start=1.0,
            end=2.0,
            device_key=dev,
            hub_key=hub.public_key(),
        )

"""Alert contents and key pairs for tests (no real faces needed to test transport)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.trust.alert_envelope import AlertContent
from agent.trust.plate_alert_envelope import PlateAlertContent

#: A minimal valid JPEG header + marker so crops look like what they are.
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8 + b"\xff\xd9"


@dataclass(frozen=True)
class AlertKeys:
    device: Ed25519PrivateKey
    hub: X25519PrivateKey

    @classmethod
    def generate(cls) -> AlertKeys:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())


def make_content(
    device_id: str = "lfr-test-01", n: int = 0, *, scene: bool = False, jpeg: bytes = FAKE_JPEG
) -> AlertContent:
    now = time.time()
    return AlertContent(
        device_id=device_id,
        deployment_id="dep-2026-11-22-a",
        watchlist_entry=f"W-{n:04d}",
        score=0.71,
        threshold=0.6,
        model_id="sface-2021dec-fp32:0123abcd",
        track_id=n,
        first_seen=now - 1.5,
        decided_at=now - 0.2,
        probe_jpeg=jpeg,
        scene_jpeg=jpeg[::-1] if scene else None,
        quality={"inter_eye_px": 42.0, "sharpness": 130.5, "yaw": 0.1, "detector_score": 0.93},
    )


def make_plate_content(
    device_id: str = "lfr-test-01",
    n: int = 0,
    *,
    plate: str = "AB12 CDE",
    deployment_id: str = "dep-plates-a",
    jpeg: bytes = FAKE_JPEG,
) -> PlateAlertContent:
    """A plate hit's content (the crops are stand-in JPEG bytes)."""
    now = time.time()
    return PlateAlertContent(
        device_id=device_id,
        deployment_id=deployment_id,
        hotlist_entry=f"h{n:012x}",
        plate=plate,
        plate_format="current",
        colour="yellow",
        confidence=0.93,
        threshold=0.7,
        model_id="ppocrv4-rec:0123abcd",
        track_id=n,
        reads=5,
        agreeing=4,
        first_seen=now - 2.0,
        decided_at=now - 0.5,
        plate_jpeg=jpeg,
        vehicle_jpeg=jpeg[::-1],
    )

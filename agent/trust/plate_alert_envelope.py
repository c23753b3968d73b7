"""The sealed plate alert: what a camera sends when a vehicle's plate is on the hotlist.

The same three layers as a face alert (``alert_envelope``: clear authenticated header,
box sealed to the hub alert key with a fresh ephemeral key, signed envelope), with its
own payload type and sealing label (``agent/protocol/plate_alert.py``) so neither kind
can be opened as the other. The box holds::

    u32 len(meta) ‖ meta ‖ u32 len(plate) ‖ plate JPEG ‖ u32 len(vehicle) ‖ vehicle JPEG

``meta`` is canonical JSON with exactly the fields of ``PLATE_ALERT_RULES`` (the plate
as read, its confidence and the threshold in force, the hotlist entry it hit, the reads
voted, when the vehicle was first seen and decided, and the ack secret).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.protocol.plate_alert import (
    PLATE_ALERT_INFO,
    PLATE_ALERT_PAYLOAD_TYPE,
    plate_alert_problem,
)
from agent.trust.alert_envelope import (
    AlertEnvelopeError,
    AlertHeader,
    SealedAlert,
    open_envelope,
    seal_envelope,
)
from agent.trust.signed_document import UntrustedJsonError, canonical_json, loads_untrusted

_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class PlateAlertContent:
    """Everything an operator needs to check one plate hit (filled by the daemon)."""

    device_id: str
    deployment_id: str
    hotlist_entry: str
    plate: str
    plate_format: str
    colour: str
    confidence: float
    threshold: float
    model_id: str
    track_id: int
    reads: int
    agreeing: int
    first_seen: float
    decided_at: float
    plate_jpeg: bytes = field(repr=False)
    vehicle_jpeg: bytes = field(repr=False)


@dataclass(frozen=True)
class OpenedPlateAlert:
    header: AlertHeader
    content: PlateAlertContent
    envelope_sha256: str
    signed_sha256: str
    ack_secret: bytes = field(repr=False)


def _meta(c: PlateAlertContent, ack_secret: bytes) -> dict[str, object]:
    return {
        "device_id": c.device_id,
        "deployment_id": c.deployment_id,
        "hotlist_entry": c.hotlist_entry,
        "plate": c.plate,
        "plate_format": c.plate_format,
        "colour": c.colour,
        "confidence": float(c.confidence),
        "threshold": float(c.threshold),
        "model_id": c.model_id,
        "track_id": int(c.track_id),
        "reads": int(c.reads),
        "agreeing": int(c.agreeing),
        "first_seen": float(c.first_seen),
        "decided_at": float(c.decided_at),
        "ack_secret": ack_secret.hex(),
    }


def _content_bytes(c: PlateAlertContent, ack_secret: bytes) -> bytes:
    meta = _meta(c, ack_secret)
    problem = plate_alert_problem(meta)
    if problem is not None:
        # The hub refuses what does not match: fail here, where it can be fixed.
        raise ValueError(f"plate alert: {problem}")
    if not c.plate_jpeg or not c.vehicle_jpeg:
        raise ValueError("plate alert: needs the plate and vehicle crops")
    return b"".join(
        _U32.pack(len(part)) + part
        for part in (canonical_json(meta), bytes(c.plate_jpeg), bytes(c.vehicle_jpeg))
    )


def seal_plate_alert(
    content: PlateAlertContent,
    *,
    seq: int,
    device_key: Ed25519PrivateKey,
    hub_key: X25519PublicKey,
    alert_id: str | None = None,
    now: float | None = None,
) -> SealedAlert:
    """Encrypt ``content`` to the hub alert key and sign it with the device key."""
    return seal_envelope(
        PLATE_ALERT_PAYLOAD_TYPE,
        PLATE_ALERT_INFO,
        lambda secret: _content_bytes(content, secret),
        device_id=content.device_id,
        deployment_id=content.deployment_id,
        seq=seq,
        device_key=device_key,
        hub_key=hub_key,
        alert_id=alert_id,
        now=now,
    )


def _split(data: bytes) -> tuple[bytes, bytes, bytes]:
    parts: list[bytes] = []
    pos = 0
    for _ in range(3):
        if len(data) < pos + 4:
            raise AlertEnvelopeError("plate alert: content is truncated")
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if len(data) < pos + n:
            raise AlertEnvelopeError("plate alert: content is truncated")
        parts.append(data[pos : pos + n])
        pos += n
    if pos != len(data):
        raise AlertEnvelopeError("plate alert: content has trailing bytes")
    return parts[0], parts[1], parts[2]


def open_plate_alert(
    envelope: bytes,
    *,
    sender: str,
    device_key: Ed25519PublicKey,
    hub_key: X25519PrivateKey,
) -> OpenedPlateAlert:
    """Verify, check the sender, decrypt and check every field of a plate alert received
    from device ``sender``; AlertEnvelopeError (one line, never quoting content) if not."""
    header, plaintext, signed_sha256, envelope_sha256 = open_envelope(
        envelope,
        PLATE_ALERT_PAYLOAD_TYPE,
        PLATE_ALERT_INFO,
        sender=sender,
        device_key=device_key,
        hub_key=hub_key,
    )
    meta_bytes, plate_jpeg, vehicle_jpeg = _split(plaintext)
    try:
        meta = loads_untrusted(meta_bytes)
    except UntrustedJsonError as exc:
        raise AlertEnvelopeError(f"plate alert: content is not usable JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise AlertEnvelopeError("plate alert: content is not a JSON object")
    problem = plate_alert_problem(meta)
    if problem is not None:
        raise AlertEnvelopeError(f"plate alert: content {problem}")
    if not plate_jpeg or not vehicle_jpeg:
        raise AlertEnvelopeError("plate alert: content lacks the plate or vehicle crop")
    if meta["device_id"] != header.device or meta["deployment_id"] != header.deployment:
        raise AlertEnvelopeError("plate alert: content and header disagree")
    content = PlateAlertContent(
        device_id=str(meta["device_id"]),
        deployment_id=str(meta["deployment_id"]),
        hotlist_entry=str(meta["hotlist_entry"]),
        plate=str(meta["plate"]),
        plate_format=str(meta["plate_format"]),
        colour=str(meta["colour"]),
        confidence=float(meta["confidence"]),
        threshold=float(meta["threshold"]),
        model_id=str(meta["model_id"]),
        track_id=int(meta["track_id"]),
        reads=int(meta["reads"]),
        agreeing=int(meta["agreeing"]),
        first_seen=float(meta["first_seen"]),
        decided_at=float(meta["decided_at"]),
        plate_jpeg=plate_jpeg,
        vehicle_jpeg=vehicle_jpeg,
    )
    return OpenedPlateAlert(
        header, content, envelope_sha256, signed_sha256, bytes.fromhex(str(meta["ack_secret"]))
    )

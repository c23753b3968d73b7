"""Sealed video: an alert clip (sealed to the hub alert key) or a recording segment
(sealed to the hub evidence key), and the device-signed manifest that names it.

    manifest   a signed document (type MEDIA_TYPE, signed by the device key) whose body is
               {"v": 1, "kind": "clip"|"segment", "id", "device", "deployment",
                "alert_id" (clip: the alert it belongs to; segment: ""),
                "start", "end" (Unix seconds of the first and last frame),
                "recipient" (key id of the hub key it is sealed to), "sealed_at",
                "state": "sealed"|"missing", "reason" ("" unless missing),
                "box_len", "box_sha256" ("" when missing)}
    box        sealed_box.seal(hub key, plaintext, aad = canonical JSON of
               {"alert_id", "deployment", "device", "id", "kind", "recipient"},
               info = b"lfr/v1 clip" or b"lfr/v1 segment")
    plaintext  u32 len(meta) ‖ meta ‖ MP4 bytes      (big-endian length)
    meta       canonical JSON {"ack_secret": 32 hex, "fps", "frames", "height", "width"}

The device keeps no key that opens a box: only the hub can read a clip or a segment. A
``missing`` manifest has no box: it tells the hub that the clip of an alert could not be
made (the agent stopped before its post-roll was encoded) so it is reported, not awaited.
The hub proves it stored an object by returning the ``ack_secret`` sealed inside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.errors import CheckFailed
from agent.protocol.fields import ALERT_ID_RE, DEVICE_ID_RE, HEX64_RE, MAX_TEXT, NAME_RE
from agent.protocol.media_transfer import MAX_BOX_BYTES, MEDIA_KINDS
from agent.trust.sealed_box import SealedBoxError, open_box, seal
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    canonical_json,
    key_id,
    loads_untrusted,
    open_document,
    sign_document,
)

MEDIA_TYPE = "application/vnd.lfr.sealed-media+json; v=1"
MEDIA_VERSION = 1
INFO = {"clip": b"lfr/v1 clip", "segment": b"lfr/v1 segment"}
ACK_SECRET_BYTES = 16
_FIELDS = {
    "v",
    "kind",
    "id",
    "device",
    "deployment",
    "alert_id",
    "start",
    "end",
    "recipient",
    "sealed_at",
    "state",
    "reason",
    "box_len",
    "box_sha256",
}
_META_FIELDS = {"ack_secret", "fps", "frames", "height", "width"}
_U32 = struct.Struct(">I")
_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")


class SealedMediaError(CheckFailed):
    """A media manifest or box is malformed, not signed by the device, or not for this key."""


@dataclass(frozen=True)
class MediaManifest:
    kind: str
    media_id: str
    device: str
    deployment: str
    alert_id: str
    start: float
    end: float
    recipient: str
    sealed_at: int
    state: str
    reason: str
    box_len: int
    box_sha256: str

    @property
    def missing(self) -> bool:
        return self.state == "missing"


@dataclass(frozen=True)
class SealedMedia:
    """What the device stores and sends: the signed manifest and the sealed box."""

    manifest: MediaManifest
    manifest_bytes: bytes
    box: bytes = field(repr=False)
    ack_secret: bytes = field(repr=False)


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class OpenedMedia:
    manifest: MediaManifest
    mp4: bytes = field(repr=False)
    info: VideoInfo
    ack_secret: bytes = field(repr=False)


def new_media_id() -> str:
    return secrets.token_hex(16)


def _aad(m: MediaManifest | dict[str, Any]) -> bytes:
    if isinstance(m, MediaManifest):
        m = {
            "alert_id": m.alert_id,
            "deployment": m.deployment,
            "device": m.device,
            "id": m.media_id,
            "kind": m.kind,
            "recipient": m.recipient,
        }
    return canonical_json(
        {k: m[k] for k in ("alert_id", "deployment", "device", "id", "kind", "recipient")}
    )


def _check_identity(kind: str, device: str, deployment: str, alert_id: str) -> None:
    if kind not in MEDIA_KINDS:
        raise ValueError(f"media kind {kind!r}: must be clip or segment")
    if not DEVICE_ID_RE.fullmatch(device) or not NAME_RE.fullmatch(deployment):
        raise ValueError("media: device or deployment id is not valid")
    if (kind == "clip") != bool(ALERT_ID_RE.fullmatch(alert_id)) or (
        kind == "segment" and alert_id
    ):
        raise ValueError("media: a clip names its alert id, a segment none")


def seal_media(
    kind: str,
    mp4: bytes,
    info: VideoInfo,
    *,
    device: str,
    deployment: str,
    alert_id: str,
    start: float,
    end: float,
    device_key: Ed25519PrivateKey,
    hub_key: X25519PublicKey,
    media_id: str | None = None,
    now: float | None = None,
) -> SealedMedia:
    """Seal ``mp4`` to ``hub_key`` and sign its manifest with the device key."""
    _check_identity(kind, device, deployment, alert_id)
    if not mp4:
        raise ValueError("media: no video to seal")
    ack_secret = secrets.token_bytes(ACK_SECRET_BYTES)
    ident = {
        "alert_id": alert_id,
        "deployment": deployment,
        "device": device,
        "id": media_id or new_media_id(),
        "kind": kind,
        "recipient": key_id(hub_key),
    }
    meta = canonical_json(
        {
            "ack_secret": ack_secret.hex(),
            "fps": float(info.fps),
            "frames": int(info.frames),
            "height": int(info.height),
            "width": int(info.width),
        }
    )
    box = seal(hub_key, _U32.pack(len(meta)) + meta + mp4, aad=_aad(ident), info=INFO[kind])
    body = {
        **ident,
        "v": MEDIA_VERSION,
        "start": float(start),
        "end": float(end),
        "sealed_at": int(time.time() if now is None else now),
        "state": "sealed",
        "reason": "",
        "box_len": len(box),
        "box_sha256": hashlib.sha256(box).hexdigest(),
    }
    manifest_bytes = sign_document(MEDIA_TYPE, body, device_key)
    return SealedMedia(_manifest(body), manifest_bytes, box, ack_secret)


def missing_clip_notice(
    *,
    device: str,
    deployment: str,
    alert_id: str,
    reason: str,
    device_key: Ed25519PrivateKey,
    hub_key_id: str,
    at: float,
    media_id: str | None = None,
    now: float | None = None,
) -> tuple[MediaManifest, bytes]:
    """A signed notice that the clip of ``alert_id`` could not be made."""
    _check_identity("clip", device, deployment, alert_id)
    body = {
        "alert_id": alert_id,
        "deployment": deployment,
        "device": device,
        "id": media_id or new_media_id(),
        "kind": "clip",
        "recipient": hub_key_id,
        "v": MEDIA_VERSION,
        "start": float(at),
        "end": float(at),
        "sealed_at": int(time.time() if now is None else now),
        "state": "missing",
        "reason": "".join(c for c in reason if c.isprintable())[:MAX_TEXT] or "unknown",
        "box_len": 0,
        "box_sha256": "",
    }
    return _manifest(body), sign_document(MEDIA_TYPE, body, device_key)


def _num(body: dict[str, Any], name: str) -> float:
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise SealedMediaError(f"media manifest: {name} must be a non-negative number")
    return float(v)


def _int(body: dict[str, Any], name: str, limit: int) -> int:
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limit:
        raise SealedMediaError(f"media manifest: {name} must be an integer 0–{limit}")
    return v


def _str(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None) -> str:
    v = body[name]
    if not isinstance(v, str) or len(v) > MAX_TEXT:
        raise SealedMediaError(f"media manifest: {name} must be a short string")
    if pattern is not None and not pattern.fullmatch(v):
        raise SealedMediaError(f"media manifest: {name} is not valid")
    return v


def _manifest(body: dict[str, Any]) -> MediaManifest:
    """Check a manifest body field by field (strict: exactly the expected fields)."""
    if set(body) != _FIELDS:
        odd = sorted(set(body) ^ _FIELDS)[0]
        raise SealedMediaError(f"media manifest: field {odd!r} missing or unknown")
    if body["v"] != MEDIA_VERSION or isinstance(body["v"], bool):
        raise SealedMediaError(f"media manifest: version must be {MEDIA_VERSION}")
    kind = body["kind"]
    if kind not in MEDIA_KINDS:
        raise SealedMediaError("media manifest: kind must be clip or segment")
    state = body["state"]
    if state not in ("sealed", "missing") or (state == "missing" and kind != "clip"):
        raise SealedMediaError("media manifest: state must be sealed (or missing, for a clip)")
    alert_id = _str(body, "alert_id", None)
    if (kind == "clip" and not ALERT_ID_RE.fullmatch(alert_id)) or (kind == "segment" and alert_id):
        raise SealedMediaError("media manifest: a clip names its alert id, a segment none")
    m = MediaManifest(
        kind=str(kind),
        media_id=_str(body, "id", ALERT_ID_RE),
        device=_str(body, "device", DEVICE_ID_RE),
        deployment=_str(body, "deployment", NAME_RE),
        alert_id=alert_id,
        start=_num(body, "start"),
        end=_num(body, "end"),
        recipient=_str(body, "recipient", HEX64_RE),
        sealed_at=_int(body, "sealed_at", 2**53),
        state=str(state),
        reason=_str(body, "reason", None),
        box_len=_int(body, "box_len", MAX_BOX_BYTES),
        box_sha256=_str(body, "box_sha256", None),
    )
    if not m.reason.isprintable():
        raise SealedMediaError("media manifest: reason holds control characters")
    if m.end < m.start:
        raise SealedMediaError("media manifest: end is before start")
    if m.missing:
        if m.box_len or m.box_sha256 or not m.reason:
            raise SealedMediaError("media manifest: a missing-clip notice has a reason, no box")
    elif not HEX64_RE.fullmatch(m.box_sha256) or m.box_len == 0 or m.reason:
        raise SealedMediaError("media manifest: a sealed object has a box length and hash")
    return m


def open_manifest(data: bytes, *, sender: str, device_key: Ed25519PublicKey) -> MediaManifest:
    """Verify a manifest's signature under the device's enrolled key and check its fields.

    ``sender`` is the device id the broker vouched for (the topic)."""
    expected = key_id(device_key)
    try:
        doc = open_document(data, MEDIA_TYPE, lambda kid: device_key if kid == expected else None)
    except DocumentError as exc:
        raise SealedMediaError(f"media manifest: {exc}") from exc
    m = _manifest(doc.body)
    if m.device != sender:
        raise SealedMediaError(
            f"media manifest: names device {m.device!r} but it came from {sender!r}"
        )
    return m


def open_media(manifest: MediaManifest, box: bytes, hub_key: X25519PrivateKey) -> OpenedMedia:
    """Check the box against its manifest (length, SHA-256), decrypt it and split it."""
    if manifest.missing:
        raise SealedMediaError("media: a missing-clip notice has no box")
    if len(box) != manifest.box_len or hashlib.sha256(box).hexdigest() != manifest.box_sha256:
        raise SealedMediaError("media: the reassembled box does not match its manifest hash")
    if manifest.recipient != key_id(hub_key.public_key()):
        raise SealedMediaError(f"media: sealed to a different hub {manifest.kind} key")
    try:
        plain = open_box(hub_key, box, aad=_aad(manifest), info=INFO[manifest.kind])
    except SealedBoxError as exc:
        raise SealedMediaError(f"media: {exc}") from exc
    if len(plain) < 4:
        raise SealedMediaError("media: content is truncated")
    (n,) = _U32.unpack_from(plain, 0)
    if len(plain) < 4 + n:
        raise SealedMediaError("media: content is truncated")
    try:
        meta = loads_untrusted(plain[4 : 4 + n])
    except UntrustedJsonError as exc:
        raise SealedMediaError(f"media: content metadata is not JSON ({exc})") from exc
    if not isinstance(meta, dict) or set(meta) != _META_FIELDS:
        raise SealedMediaError("media: content metadata fields are not the expected set")
    secret = meta["ack_secret"]
    if not isinstance(secret, str) or not _SECRET_RE.fullmatch(secret):
        raise SealedMediaError("media: content ack secret is malformed")
    try:
        info = VideoInfo(
            frames=_int(meta, "frames", 10**7),
            width=_int(meta, "width", 16384),
            height=_int(meta, "height", 16384),
            fps=_num(meta, "fps"),
        )
    except SealedMediaError as exc:
        raise SealedMediaError(str(exc).replace("media manifest", "media content")) from exc
    mp4 = plain[4 + n :]
    if not mp4:
        raise SealedMediaError("media: content holds no video")
    return OpenedMedia(manifest, mp4, info, bytes.fromhex(secret))


def manifest_summary(m: MediaManifest) -> str:
    """One line for logs (identifiers and times only; nothing from inside the box)."""
    return json.dumps(
        {"kind": m.kind, "id": m.media_id, "alert_id": m.alert_id, "state": m.state},
        sort_keys=True,
    )

"""The sealed alert envelope: what a device sends when a face matches its watchlist.

Built in three layers (byte-exact description in ``docs/protocol.md``):

1. ``header`` — canonical JSON, travels in clear but authenticated::

       {"alert_id": 32 hex, "deployment": str, "device": str, "recipient": hex key id
        of the hub alert key, "sealed_at": integer Unix seconds, "seq": int ≥ 1, "v": 1}

2. ``box`` — ``sealed_box.seal(hub alert key, content, aad=header bytes,
   info=b"lfr/v1 alert")`` where content frames the metadata JSON and the raw crops: a fresh
   ephemeral X25519 key per alert, so the device keeps nothing that decrypts what it sent.
   The metadata carries a fresh random 16-byte ``ack_secret``: only the hub, which can
   decrypt, learns it, and it proves the hub's acknowledgement (the device keeps a copy
   beside the outbox entry and deletes the entry only when an ack carries it).

3. the envelope — a signed document (``signed_document.sign_document``) of type
   ``ALERT_PAYLOAD_TYPE`` whose body is ``{"box": b64(box), "header": b64(header bytes)}``,
   signed with the device's Ed25519 key. The header is carried as the exact bytes that
   were authenticated, so the hub never re-serialises anything before checking it.

The hub checks, in order: the signature (device key enrolled at the hub), that the
header names the device whose topic carried it, that it was sealed to this hub key,
then decrypts. Any failure raises ``AlertEnvelopeError`` with a one-line reason that
never quotes the content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.errors import CheckFailed
from agent.protocol.fields import (
    ALERT_ID_RE,
    DEPLOYMENT_ID_RE,
    DEVICE_ID_RE,
    HEX64_RE,
    MODEL_ID_RE,
    QUALITY_KEY_RE,
    REF_RE,
)
from agent.trust.sealed_box import SealedBoxError, open_box, seal
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    canonical_json,
    key_id,
    loads_untrusted,
    open_document,
    pae,
    parse_envelope,
)
from agent.trust.signed_document import sign_document as _sign_document

ALERT_PAYLOAD_TYPE = "application/vnd.lfr.alert+json; v=1"
ALERT_INFO = b"lfr/v1 alert"
ENVELOPE_VERSION = 1
#: Largest envelope the hub accepts; a probe and a scene crop fit easily.
MAX_ENVELOPE_BYTES = 8 * 1024 * 1024

_ALERT_ID_RE = ALERT_ID_RE
_ID_RE = DEVICE_ID_RE
_HEADER_KEYS = {"alert_id", "deployment", "device", "recipient", "sealed_at", "seq", "v"}
_CONTENT_KEYS = {
    "device_id",
    "deployment_id",
    "watchlist_entry",
    "score",
    "threshold",
    "model_id",
    "track_id",
    "quality",
    "first_seen",
    "decided_at",
}
#: Content written before acknowledgements carried a proof has no ``ack_secret``.
_CONTENT_KEYS_V2 = _CONTENT_KEYS | {"ack_secret"}
ACK_SECRET_BYTES = 16
_ACK_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_U32 = struct.Struct(">I")
#: More quality figures than the quality gate measures; bounds what an alert may carry.
MAX_QUALITY_FIGURES = 16


class AlertEnvelopeError(CheckFailed):
    """An alert envelope is malformed, not signed by the device, or not for this hub."""


@dataclass(frozen=True)
class AlertContent:
    """Everything an operator needs to adjudicate one candidate match (filled by the daemon).

    Times are Unix seconds. ``quality`` holds the figures the quality gate measured
    (e.g. inter_eye_px, sharpness, yaw, detector_score).
    """

    device_id: str
    deployment_id: str
    watchlist_entry: str
    score: float
    threshold: float
    model_id: str
    track_id: int
    first_seen: float
    decided_at: float
    probe_jpeg: bytes
    scene_jpeg: bytes | None = None
    quality: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertHeader:
    """The authenticated clear header."""

    alert_id: str
    device: str
    deployment: str
    seq: int
    sealed_at: int
    recipient: str


@dataclass(frozen=True)
class SealedAlert:
    """An envelope ready for the outbox, with the header fields the outbox indexes and the
    ack secret sealed inside it (kept on the device beside the outbox entry only)."""

    header: AlertHeader
    envelope: bytes
    ack_secret: bytes = field(repr=False)


@dataclass(frozen=True)
class OpenedAlert:
    header: AlertHeader
    content: AlertContent
    #: SHA-256 of the envelope bytes exactly as received.
    envelope_sha256: str
    #: SHA-256 of what the device signed (the payload type and body bytes, in the
    #: signature's pre-authentication encoding). Two envelopes with the same value carry
    #: the same signed alert, whatever else differs in their encoding (white space, key
    #: order, base64 spelling, signatures by other keys): a resend, not a new alert.
    signed_sha256: str
    #: None for content sealed by a device from before ack proofs (it cannot be acked).
    ack_secret: bytes | None = field(default=None, repr=False)


def new_alert_id() -> str:
    """A random 128-bit alert id, lower-case hex."""
    return secrets.token_hex(16)


def _content_bytes(c: AlertContent, ack_secret: bytes) -> bytes:
    """``u32 len(meta) ‖ meta ‖ u32 len(probe) ‖ probe ‖ u32 len(scene) ‖ scene`` (big-endian).

    The crops travel as raw bytes (not base64) to keep envelopes small on cellular links;
    a zero-length scene means there is no scene crop.
    """
    meta = canonical_json(
        {
            "device_id": c.device_id,
            "deployment_id": c.deployment_id,
            "watchlist_entry": c.watchlist_entry,
            "score": float(c.score),
            "threshold": float(c.threshold),
            "model_id": c.model_id,
            "track_id": int(c.track_id),
            "quality": {str(k): float(v) for k, v in c.quality.items()},
            "first_seen": float(c.first_seen),
            "decided_at": float(c.decided_at),
            "ack_secret": ack_secret.hex(),
        }
    )
    if not c.probe_jpeg:
        raise ValueError("an alert needs a probe crop")
    scene = c.scene_jpeg or b""
    return b"".join(
        _U32.pack(len(part)) + part for part in (meta, bytes(c.probe_jpeg), bytes(scene))
    )


def seal_alert(
    content: AlertContent,
    *,
    seq: int,
    device_key: Ed25519PrivateKey,
    hub_key: X25519PublicKey,
    alert_id: str | None = None,
    now: float | None = None,
) -> SealedAlert:
    """Encrypt ``content`` to the hub alert key and sign the result with the device key."""
    if seq < 1:
        raise ValueError("alert sequence numbers start at 1")
    for value, pattern, what in (
        (content.device_id, _ID_RE, "device id"),
        (content.deployment_id, DEPLOYMENT_ID_RE, "deployment id"),
        (content.watchlist_entry, REF_RE, "watchlist entry"),
        (content.model_id, MODEL_ID_RE, "model id"),
    ):
        # The hub refuses what does not match (docs/protocol.md 11.1–11.2): fail here.
        if not pattern.fullmatch(value):
            raise ValueError(f"{what} {value[:70]!r} is not valid")
    if len(content.quality) > MAX_QUALITY_FIGURES or not all(
        QUALITY_KEY_RE.fullmatch(k) for k in content.quality
    ):
        raise ValueError("quality figures must be at most 16, named [a-z][a-z0-9_]*")
    ack_secret = secrets.token_bytes(ACK_SECRET_BYTES)
    return seal_envelope(
        ALERT_PAYLOAD_TYPE,
        ALERT_INFO,
        lambda secret: _content_bytes(content, secret),
        device_id=content.device_id,
        deployment_id=content.deployment_id,
        seq=seq,
        device_key=device_key,
        hub_key=hub_key,
        alert_id=alert_id,
        now=now,
        ack_secret=ack_secret,
    )


def seal_envelope(
    payload_type: str,
    info: bytes,
    content_bytes: Callable[[bytes], bytes],
    *,
    device_id: str,
    deployment_id: str,
    seq: int,
    device_key: Ed25519PrivateKey,
    hub_key: X25519PublicKey,
    alert_id: str | None = None,
    now: float | None = None,
    ack_secret: bytes | None = None,
) -> SealedAlert:
    """The three layers around any alert kind's content (face alerts here, plate alerts in
    ``plate_alert_envelope``): the clear header, the box sealed to the hub alert key with
    the header as associated data, the signed envelope of ``payload_type``.
    ``content_bytes(ack_secret)`` frames the content with the ack secret inside it."""
    if seq < 1:
        raise ValueError("alert sequence numbers start at 1")
    header = AlertHeader(
        alert_id=alert_id or new_alert_id(),
        device=device_id,
        deployment=deployment_id,
        seq=seq,
        sealed_at=int(time.time() if now is None else now),
        recipient=key_id(hub_key),
    )
    header_bytes = canonical_json(
        {
            "alert_id": header.alert_id,
            "deployment": header.deployment,
            "device": header.device,
            "recipient": header.recipient,
            "sealed_at": header.sealed_at,
            "seq": header.seq,
            "v": ENVELOPE_VERSION,
        }
    )
    secret = ack_secret if ack_secret is not None else secrets.token_bytes(ACK_SECRET_BYTES)
    box = seal(hub_key, content_bytes(secret), aad=header_bytes, info=info)
    body = {
        "box": base64.b64encode(box).decode("ascii"),
        "header": base64.b64encode(header_bytes).decode("ascii"),
    }
    return SealedAlert(header, _sign_document(payload_type, body, device_key), secret)


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise AlertEnvelopeError(f"alert: {what} is not a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise AlertEnvelopeError(f"alert: {what} is not valid base64") from exc


def _number(obj: dict[str, Any], key: str, what: str) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise AlertEnvelopeError(f"alert: {what}.{key} must be a finite number")
    return float(v)


def _integer(obj: dict[str, Any], key: str, what: str) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise AlertEnvelopeError(f"alert: {what}.{key} must be a non-negative integer")
    return v


def _text(obj: dict[str, Any], key: str, what: str, pattern: re.Pattern[str] | None = None) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v or len(v) > 256:
        raise AlertEnvelopeError(f"alert: {what}.{key} must be a non-empty string")
    if pattern is not None and not pattern.fullmatch(v):
        raise AlertEnvelopeError(f"alert: {what}.{key} is not valid")
    return v


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = loads_untrusted(data)
    except UntrustedJsonError as exc:
        raise AlertEnvelopeError(f"alert: {what} is not usable JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise AlertEnvelopeError(f"alert: {what} is not a JSON object")
    return obj


def parse_header(header_bytes: bytes) -> AlertHeader:
    """Validate the clear header bytes (strictly: no unknown or missing field)."""
    h = _json_object(header_bytes, "header")
    if set(h) != _HEADER_KEYS:
        raise AlertEnvelopeError("alert: header fields are not the expected set")
    if h["v"] != ENVELOPE_VERSION or isinstance(h["v"], bool):
        raise AlertEnvelopeError(f"alert: header version must be {ENVELOPE_VERSION}")
    seq = _integer(h, "seq", "header")
    if seq < 1:
        raise AlertEnvelopeError("alert: header.seq must be a positive integer")
    return AlertHeader(
        alert_id=_text(h, "alert_id", "header", _ALERT_ID_RE),
        device=_text(h, "device", "header", _ID_RE),
        deployment=_text(h, "deployment", "header", DEPLOYMENT_ID_RE),
        seq=seq,
        sealed_at=_integer(h, "sealed_at", "header"),
        recipient=_text(h, "recipient", "header", HEX64_RE),
    )


def _split_content(data: bytes) -> tuple[bytes, bytes, bytes]:
    parts: list[bytes] = []
    pos = 0
    for _ in range(3):
        if len(data) < pos + 4:
            raise AlertEnvelopeError("alert: content is truncated")
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if len(data) < pos + n:
            raise AlertEnvelopeError("alert: content is truncated")
        parts.append(data[pos : pos + n])
        pos += n
    if pos != len(data):
        raise AlertEnvelopeError("alert: content has trailing bytes")
    return parts[0], parts[1], parts[2]


def _parse_content(data: bytes) -> tuple[AlertContent, bytes | None]:
    meta, probe, scene = _split_content(data)
    c = _json_object(meta, "content")
    if set(c) not in (_CONTENT_KEYS_V2, _CONTENT_KEYS):
        raise AlertEnvelopeError("alert: content fields are not the expected set")
    ack_secret = None
    if "ack_secret" in c:
        ack_secret = bytes.fromhex(_text(c, "ack_secret", "content", _ACK_SECRET_RE))
    if not probe:
        raise AlertEnvelopeError("alert: content has no probe crop")
    quality = c["quality"]
    if (
        not isinstance(quality, dict)
        or len(quality) > MAX_QUALITY_FIGURES
        or not all(isinstance(k, str) and QUALITY_KEY_RE.fullmatch(k) for k in quality)
    ):
        raise AlertEnvelopeError("alert: content.quality must be an object of named numbers")
    track = c["track_id"]
    if isinstance(track, bool) or not isinstance(track, int):
        raise AlertEnvelopeError("alert: content.track_id must be an integer")
    content = AlertContent(
        device_id=_text(c, "device_id", "content", _ID_RE),
        deployment_id=_text(c, "deployment_id", "content", DEPLOYMENT_ID_RE),
        watchlist_entry=_text(c, "watchlist_entry", "content", REF_RE),
        score=_number(c, "score", "content"),
        threshold=_number(c, "threshold", "content"),
        model_id=_text(c, "model_id", "content", MODEL_ID_RE),
        track_id=track,
        first_seen=_number(c, "first_seen", "content"),
        decided_at=_number(c, "decided_at", "content"),
        probe_jpeg=probe,
        scene_jpeg=scene or None,
        quality={k: _number(quality, k, "content.quality") for k in quality},
    )
    return content, ack_secret


def open_alert(
    envelope: bytes,
    *,
    sender: str,
    device_key: Ed25519PublicKey,
    hub_key: X25519PrivateKey,
) -> OpenedAlert:
    """Verify, check the sender and decrypt an envelope received from device ``sender``.

    ``sender`` is the device id the broker vouched for (the topic, which the ACL ties
    to the certificate CN); ``device_key`` is that device's enrolled public key.
    """
    header, plaintext, signed_sha256, envelope_sha256 = open_envelope(
        envelope,
        ALERT_PAYLOAD_TYPE,
        ALERT_INFO,
        sender=sender,
        device_key=device_key,
        hub_key=hub_key,
    )
    content, ack_secret = _parse_content(plaintext)
    if content.device_id != header.device or content.deployment_id != header.deployment:
        raise AlertEnvelopeError("alert: content and header disagree on device or deployment")
    return OpenedAlert(header, content, envelope_sha256, signed_sha256, ack_secret)


def envelope_payload_type(envelope: bytes) -> str | None:
    """The payload type an envelope claims, read before anything is verified, only to pick
    which alert kind's checks to run (each then verifies everything)."""
    try:
        ptype, _, _ = parse_envelope(envelope)
    except DocumentError:
        return None
    return ptype


def open_envelope(
    envelope: bytes,
    payload_type: str,
    info: bytes,
    *,
    sender: str,
    device_key: Ed25519PublicKey,
    hub_key: X25519PrivateKey,
) -> tuple[AlertHeader, bytes, str, str]:
    """Verify the signature, the header and the sender, and decrypt the box of an alert
    envelope of ``payload_type``: (header, plaintext, signed SHA-256, envelope SHA-256)."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise AlertEnvelopeError(f"alert: larger than {MAX_ENVELOPE_BYTES} bytes")
    expected_kid = key_id(device_key)
    try:
        doc = open_document(
            envelope, payload_type, lambda kid: device_key if kid == expected_kid else None
        )
    except DocumentError as exc:
        raise AlertEnvelopeError(f"alert: {exc}") from exc
    if set(doc.body) != {"box", "header"}:
        raise AlertEnvelopeError("alert: envelope body fields are not the expected set")
    header_bytes = _b64(doc.body["header"], "header")
    box = _b64(doc.body["box"], "box")
    header = parse_header(header_bytes)
    if header.device != sender:
        raise AlertEnvelopeError(
            f"alert: header names device {header.device!r} but it came from {sender!r}"
        )
    if header.recipient != key_id(hub_key.public_key()):
        raise AlertEnvelopeError("alert: sealed to a different hub alert key")
    try:
        plaintext = open_box(hub_key, box, aad=header_bytes, info=info)
    except SealedBoxError as exc:
        raise AlertEnvelopeError(f"alert: {exc}") from exc
    signed_sha256 = hashlib.sha256(pae(doc.payload_type, doc.body_bytes)).hexdigest()
    return header, plaintext, signed_sha256, doc.envelope_sha256


ACK_VERSION = 2
#: Most acknowledgements in one payload; the hub sends one per received alert.
MAX_ACK_ENTRIES = 500
MAX_ACK_BYTES = 64 * 1024
_ACK_ENTRY_KEYS = {"alert_id", "secret"}


def encode_ack(proofs: list[tuple[str, bytes]]) -> bytes:
    """The hub's acknowledgement on ``lfr/v1/<dev>/ack``::

        {"ack": [{"alert_id": 32 hex, "secret": 32 hex}, …], "v": 2}

    ``secret`` is the ack secret the hub decrypted from that alert's content: it proves
    the hub opened (and, since it is sent after the commit, stored) the alert.
    """
    if len(proofs) > MAX_ACK_ENTRIES:
        raise ValueError(f"an ack holds at most {MAX_ACK_ENTRIES} alerts")
    entries = []
    for alert_id, secret in proofs:
        if not _ALERT_ID_RE.fullmatch(alert_id) or len(secret) != ACK_SECRET_BYTES:
            raise ValueError("an ack needs a 32-hex alert id and a 16-byte secret")
        entries.append({"alert_id": alert_id, "secret": secret.hex()})
    return canonical_json({"ack": entries, "v": ACK_VERSION})


def decode_ack(payload: bytes) -> list[tuple[str, bytes]]:
    """(alert id, ack secret) pairs from an acknowledgement; AlertEnvelopeError if malformed.

    Strict: any unknown or missing field, another version, a bad id or a secret of the
    wrong form rejects the whole payload.
    """
    if len(payload) > MAX_ACK_BYTES:
        raise AlertEnvelopeError(f"ack: larger than {MAX_ACK_BYTES} bytes")
    obj = _json_object(payload, "ack")
    entries = obj.get("ack")
    version = obj.get("v")
    if set(obj) != {"ack", "v"} or not isinstance(entries, list):
        raise AlertEnvelopeError('ack: expected {"ack": [...], "v": 2}')
    if isinstance(version, bool) or version != ACK_VERSION:
        raise AlertEnvelopeError(f"ack: version must be {ACK_VERSION}")
    if len(entries) > MAX_ACK_ENTRIES:
        raise AlertEnvelopeError(f"ack: more than {MAX_ACK_ENTRIES} alerts")
    proofs: list[tuple[str, bytes]] = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != _ACK_ENTRY_KEYS:
            raise AlertEnvelopeError('ack: each entry must be {"alert_id": …, "secret": …}')
        alert_id, secret = entry["alert_id"], entry["secret"]
        if not isinstance(alert_id, str) or not _ALERT_ID_RE.fullmatch(alert_id):
            raise AlertEnvelopeError("ack: an alert id is not 32 lower-case hex digits")
        if not isinstance(secret, str) or not _ACK_SECRET_RE.fullmatch(secret):
            raise AlertEnvelopeError("ack: a secret is not 32 lower-case hex digits")
        proofs.append((alert_id, bytes.fromhex(secret)))
    return proofs

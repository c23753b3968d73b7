"""The plate hotlist bundle: what the hub sends a camera for one plates deployment.

It holds no plate in clear: each entry is ``HMAC-SHA256(key, b"lfr/v1 plate " +
normalised plate)`` under a fresh 32-byte key made for this bundle (so the same plate
hashes differently in every deployment), an opaque per-build entry reference, and the
entry's own expiry. Reasons and categories stay at the hub (the hub map file). It travels
in the watchlist's envelope family: the same sealed file (``watchlist_bundle
.seal_for_devices``: content key sealed to each device's X25519 key; its magic is
``LFRHLS01``) around an inner bundle signed by the hub's list-signing key (the key
certified for watchlists)::

    b"LFRHLI01" | u32 BE n | envelope (n bytes) | digests (count × 32 bytes)

``envelope`` is a signed document of type ``HOTLIST_PAYLOAD_TYPE`` whose body is::

    {"format": 1, "deployment_id": str, "devices": [id, …], "created_at": unix s,
     "expires_at": unix s, "normalisation": "uk-v1", "key": b64 (32 bytes),
     "count": N, "digests_sha256": hex, "refs": [ref × N], "entry_expires": [unix s × N]}

**Hotlist hash**: SHA-256 of the signed body bytes, as for a watchlist; a plates
activation names it. The key is inside the sealed, signed bundle: whoever decrypts the
bundle can test a guessed plate, but nothing in it lists a plate (docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.matching.watchlist_bundle import (
    DEPLOYMENT_ID_RE,
    DEVICE_ID_RE,
    FindSigningKey,
    SealedBundle,
    WatchlistError,
    decrypt_for_device,
    seal_for_devices,
)
from agent.plates.uk_plate_format import normalise
from agent.protocol.fields import HEX64_RE, REF_RE
from agent.trust.signed_document import (
    DocumentError,
    canonical_json,
    open_document,
    sign_document,
)

HOTLIST_PAYLOAD_TYPE = "application/vnd.lfr.hotlist+json; v=1"
INNER_MAGIC = b"LFRHLI01"
#: The sealed file's own magic (the watchlist's is ``LFRWLS01``): a camera knows which
#: store a sealed bundle is for before it decrypts anything.
SEALED_MAGIC = b"LFRHLS01"
BUNDLE_FORMAT = 1
NORMALISATION = "uk-v1"
#: What a hotlist records where a watchlist records its embedder: the plate normal form.
SCHEME_ID = f"plates-{NORMALISATION}"
KEY_BYTES = 32
DIGEST_BYTES = 32
MAX_ENTRIES = 200_000
_DOMAIN = b"lfr/v1 plate "
_BODY_KEYS = {
    "format",
    "deployment_id",
    "devices",
    "created_at",
    "expires_at",
    "normalisation",
    "key",
    "count",
    "digests_sha256",
    "refs",
    "entry_expires",
}


class HotlistError(WatchlistError):
    """A hotlist bundle is malformed, not for this device, or fails a check."""


def new_hotlist_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_entry_ref() -> str:
    """A fresh opaque entry reference (random per build: never links deployments)."""
    return "h" + secrets.token_hex(6)


def plate_digest(key: bytes | bytearray, plate: str) -> bytes:
    """The keyed hash of a plate in its normal form (``uk_plate_format.normalise``)."""
    return hmac.new(bytes(key), _DOMAIN + normalise(plate).encode("ascii"), "sha256").digest()


@dataclass(frozen=True)
class HotlistContent:
    deployment_id: str
    devices: tuple[str, ...]
    created_at: float
    expires_at: float
    key: bytes
    refs: Sequence[str]
    digests: Sequence[bytes]
    entry_expires: Sequence[float]


def _check(c: HotlistContent) -> None:
    def bad(msg: str) -> HotlistError:
        return HotlistError("bad-field", f"hotlist: {msg}")

    if not DEPLOYMENT_ID_RE.fullmatch(c.deployment_id):
        raise bad(f"deployment id {c.deployment_id[:70]!r} is not valid")
    if not c.devices or len(set(c.devices)) != len(c.devices):
        raise bad("name each target device once")
    for dev in c.devices:
        if not DEVICE_ID_RE.fullmatch(dev):
            raise bad(f"device id {dev[:70]!r} is not valid")
    if not (math.isfinite(c.created_at) and math.isfinite(c.expires_at)):
        raise bad("times must be finite")
    if c.expires_at <= c.created_at:
        raise bad("expiry must be after creation")
    if len(c.key) != KEY_BYTES:
        raise bad(f"the key must be {KEY_BYTES} bytes")
    n = len(c.refs)
    if not 0 < n <= MAX_ENTRIES or len(c.digests) != n or len(c.entry_expires) != n:
        raise bad(f"1–{MAX_ENTRIES} entries, each with a reference, digest and expiry")
    if any(len(d) != DIGEST_BYTES for d in c.digests):
        raise bad("every digest must be 32 bytes")
    if len(set(c.digests)) != n:
        raise bad("a plate is listed twice")
    if not all(REF_RE.fullmatch(r) for r in c.refs):
        raise bad("an entry reference is not valid")
    if not all(math.isfinite(t) for t in c.entry_expires):
        raise bad("entry expiries must be finite")


def build_hotlist_bundle(
    content: HotlistContent,
    signing_key: Ed25519PrivateKey,
    recipients: Mapping[str, X25519PublicKey],
) -> SealedBundle:
    """Sign ``content`` with the hub list-signing key and seal it to every named device."""
    _check(content)
    missing = [d for d in content.devices if d not in recipients]
    if missing:
        raise HotlistError("bad-field", f"hotlist: no X25519 key for device {missing[0]}")
    digests = b"".join(content.digests)
    body = {
        "format": BUNDLE_FORMAT,
        "deployment_id": content.deployment_id,
        "devices": list(content.devices),
        "created_at": float(content.created_at),
        "expires_at": float(content.expires_at),
        "normalisation": NORMALISATION,
        "key": base64.b64encode(content.key).decode("ascii"),
        "count": len(content.refs),
        "digests_sha256": hashlib.sha256(digests).hexdigest(),
        "refs": list(content.refs),
        "entry_expires": [float(t) for t in content.entry_expires],
    }
    envelope = sign_document(HOTLIST_PAYLOAD_TYPE, body, signing_key)
    hotlist_hash = hashlib.sha256(canonical_json(body)).hexdigest()
    inner = INNER_MAGIC + struct.pack(">I", len(envelope)) + envelope + digests
    data = seal_for_devices(inner, content.devices, recipients, SEALED_MAGIC)
    return SealedBundle(data, hotlist_hash, len(data))


@dataclass
class OpenedHotlist:
    """A decrypted, verified hotlist. ``wipe()`` zeroes the decrypted buffer and the key.

    ``watchlist_hash`` is the hotlist hash (the name the sealed-list store uses)."""

    watchlist_hash: str
    signer_key_id: str
    deployment_id: str
    devices: tuple[str, ...]
    created_at: float
    expires_at: float
    refs: list[str]
    entry_expires: list[float]
    key: bytearray = field(repr=False)
    _digest_offset: int = field(repr=False)
    _buffer: bytearray = field(repr=False)
    model_id: str = SCHEME_ID

    @property
    def count(self) -> int:
        return len(self.refs)

    def digests(self) -> list[bytes]:
        start = self._digest_offset
        return [
            bytes(self._buffer[start + i * DIGEST_BYTES : start + (i + 1) * DIGEST_BYTES])
            for i in range(len(self.refs))
        ]

    def wipe(self) -> None:
        self._buffer[:] = bytes(len(self._buffer))
        self.key[:] = bytes(len(self.key))
        self.refs.clear()
        self.entry_expires.clear()


def _malformed(msg: str) -> HotlistError:
    return HotlistError("malformed", f"hotlist: {msg}")


def verify_hotlist_inner(inner: bytearray, find_signing_key: FindSigningKey) -> OpenedHotlist:
    """Check the signature and digests hash of a decrypted hotlist and parse it strictly."""
    view = memoryview(inner)
    if len(inner) < 12 or bytes(view[:8]) != INNER_MAGIC:
        raise _malformed("decrypted content is not a hotlist")
    (n,) = struct.unpack(">I", view[8:12])
    if 12 + n > len(inner):
        raise _malformed("signed part length is out of range")
    try:
        doc = open_document(bytes(view[12 : 12 + n]), HOTLIST_PAYLOAD_TYPE, find_signing_key)
    except DocumentError as exc:
        raise HotlistError("bad-signature", f"hotlist: {exc}") from exc
    b = doc.body
    if set(b) != _BODY_KEYS:
        raise _malformed("fields are not the expected set")
    if b["format"] != BUNDLE_FORMAT or b["normalisation"] != NORMALISATION:
        raise _malformed("unknown bundle format or plate normal form")
    deployment, devices = b["deployment_id"], b["devices"]
    if not isinstance(deployment, str) or not DEPLOYMENT_ID_RE.fullmatch(deployment):
        raise _malformed("field 'deployment_id' is not a valid name")
    if (
        not isinstance(devices, list)
        or not devices
        or not all(isinstance(d, str) and DEVICE_ID_RE.fullmatch(d) for d in devices)
    ):
        raise _malformed("field 'devices' is malformed")
    times = [b["created_at"], b["expires_at"]]
    if not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in times
    ):
        raise _malformed("times must be finite numbers")
    count, refs, expires = b["count"], b["refs"], b["entry_expires"]
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not 0 < count <= MAX_ENTRIES
        or not isinstance(refs, list)
        or not isinstance(expires, list)
        or len(refs) != count
        or len(expires) != count
        or not all(isinstance(r, str) and REF_RE.fullmatch(r) for r in refs)
        or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            for t in expires
        )
    ):
        raise _malformed("entries are malformed")
    digests_sha = b["digests_sha256"]
    if not isinstance(digests_sha, str) or not HEX64_RE.fullmatch(digests_sha):
        raise _malformed("field 'digests_sha256' is malformed")
    try:
        key = bytearray(base64.b64decode(str(b["key"]), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise _malformed("field 'key' is not base64") from exc
    if len(key) != KEY_BYTES:
        raise _malformed("the key has the wrong length")
    start = 12 + n
    if len(inner) - start != count * DIGEST_BYTES:
        raise _malformed(f"digests are not {count} × {DIGEST_BYTES} bytes")
    if hashlib.sha256(view[start:]).hexdigest() != digests_sha:
        raise HotlistError("tampered", "hotlist: digests do not match their signed hash")
    return OpenedHotlist(
        watchlist_hash=hashlib.sha256(doc.body_bytes).hexdigest(),
        signer_key_id=doc.signer_key_id,
        deployment_id=deployment,
        devices=tuple(devices),
        created_at=float(times[0]),
        expires_at=float(times[1]),
        refs=list(refs),
        entry_expires=[float(t) for t in expires],
        key=key,
        _digest_offset=start,
        _buffer=inner,
    )


def open_hotlist(
    data: bytes,
    device_id: str,
    device_key: X25519PrivateKey,
    find_signing_key: FindSigningKey,
) -> OpenedHotlist:
    """Decrypt and verify a sealed hotlist for this device (signature by a trusted
    list-signing key, digests hash, names this device). Expiry is the store's check."""
    try:
        inner = decrypt_for_device(data, device_id, device_key, "hotlist", SEALED_MAGIC)
    except HotlistError:
        raise
    except WatchlistError as exc:
        raise HotlistError(exc.reason, str(exc)) from exc
    try:
        opened = verify_hotlist_inner(inner, find_signing_key)
    except BaseException:
        inner[:] = bytes(len(inner))
        raise
    if device_id not in opened.devices:
        opened.wipe()
        raise HotlistError(
            "wrong-device", f"hotlist: signed for {', '.join(opened.devices[:5])}, not {device_id}"
        )
    return opened

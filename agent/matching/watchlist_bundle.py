"""The watchlist bundle: what the hub sends a device for one deployment.

A bundle carries only what matching needs: float16 embeddings, one opaque
reference per entry (never a name or a photo), the embedder model they were
made with, the deployment, the devices it is for, and its creation and expiry
times. Two layers, both binary so that 10,000 entries stay under 3 MB:

**Inner signed bundle** (plaintext, only ever in memory on the device)::

    b"LFRWLI01" | u32 BE n | envelope (n bytes) | embeddings (count × dim × 2 bytes)

``envelope`` is a signed document (``agent.trust.signed_document``) of type
``WATCHLIST_PAYLOAD_TYPE``, signed by the hub watchlist key. Its body is::

    {"format": 1, "deployment_id": str, "devices": [device id, …],
     "created_at": unix s, "expires_at": unix s,
     "model": {"id": model id, "sha256": hex},
     "count": N, "dim": D, "dtype": "<f2", "embeddings_sha256": hex,
     "refs": [entry reference × N]}

The embeddings (row-major, little-endian float16) are covered by the
signature through ``embeddings_sha256``, so they need no base64.

**Watchlist hash**: the lower-case hex SHA-256 of the signed body bytes (the
exact canonical JSON the signature covers). It commits to every field and,
through ``embeddings_sha256``, to every embedding. Activations name it.

**Sealed file** (what travels and what the device keeps at rest)::

    b"LFRWLS01" | u32 BE n | header (n bytes, canonical JSON) | ciphertext

    header = {"format": 1, "recipients": [{"device": id, "key_id": hex, "key_box": b64}, …]}
    ciphertext = ChaCha20-Poly1305(content key, nonce 0, inner bundle, aad = magic | n | header)
    key_box    = sealed_box.seal(device X25519 key, content key,
                                 aad = device id, info = b"lfr/v1 watchlist")

One file serves every device named at build time: the 32-byte content key is
fresh per file (so the zero nonce is safe) and is sealed to each device's
X25519 key. ``key_id`` is the SHA-256 of that device key.

**Hub copy.** The hub may add one more recipient, ``HUB_RECIPIENT`` (``"@hub"``,
which no device id can be), whose box is sealed to the hub alert key with
``aad = "@hub"`` and ``info = b"lfr/v1 watchlist hub"``. It lets the hub that built
a watchlist open it again to calibrate thresholds against exactly the entries a
device will match (``open_hub_copy``); devices ignore it. Bundles built without
it still load everywhere; the hub then cannot calibrate against them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import secrets
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from agent.errors import CheckFailed
from agent.protocol.fields import DEVICE_ID_RE as DEVICE_ID_RE
from agent.protocol.fields import HEX64_RE, REF_RE
from agent.protocol.fields import MAX_REF_LEN as MAX_REF_LEN
from agent.trust.key_certificates import NAME_PATTERN
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

WATCHLIST_PAYLOAD_TYPE = "application/vnd.lfr.watchlist+json; v=1"
WATCHLIST_INFO = b"lfr/v1 watchlist"
WATCHLIST_HUB_INFO = b"lfr/v1 watchlist hub"
HUB_RECIPIENT = "@hub"
BUNDLE_FORMAT = 1
SEALED_MAGIC = b"LFRWLS01"
INNER_MAGIC = b"LFRWLI01"
DTYPE = "<f2"
MAX_HEADER_BYTES = 64 * 1024
_NONCE = b"\x00" * 12
_TAG_LEN = 16

# The activations' pattern: a watchlist is never built for a deployment that cannot be activated.
DEPLOYMENT_ID_RE = re.compile(NAME_PATTERN)
_REF_RE = REF_RE
_HEX64_RE = HEX64_RE
#: The sealed header and each of its recipient entries hold exactly these keys.
_HEADER_KEYS = {"format", "recipients"}
_RECIPIENT_KEYS = {"device", "key_id", "key_box"}
_BODY_KEYS = {
    "format",
    "deployment_id",
    "devices",
    "created_at",
    "expires_at",
    "model",
    "count",
    "dim",
    "dtype",
    "embeddings_sha256",
    "refs",
}

Float16Array = npt.NDArray[np.float16]
FindSigningKey = Callable[[str], Ed25519PublicKey | None]


class WatchlistError(CheckFailed):
    """A watchlist bundle is malformed, not for this device, or fails a check.

    ``reason`` is a short stable code for audit records (e.g. ``bad-signature``);
    ``str(err)`` is the one-line message for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def new_entry_ref() -> str:
    """A fresh opaque entry reference. Random per build, so references never link a
    subject across deployments; only the hub's mapping file knows who it is."""
    return "w" + secrets.token_hex(6)


@dataclass(frozen=True)
class WatchlistContent:
    """What the hub puts in a bundle (before signing and encryption)."""

    deployment_id: str
    devices: tuple[str, ...]
    created_at: float
    expires_at: float
    model_id: str
    model_sha256: str
    refs: Sequence[str]
    embeddings: npt.NDArray[Any]  # N × D, any float dtype; stored as float16


@dataclass(frozen=True)
class SealedBundle:
    data: bytes
    watchlist_hash: str
    size_bytes: int


def _check_content(c: WatchlistContent) -> npt.NDArray[np.float16]:
    if not DEPLOYMENT_ID_RE.fullmatch(c.deployment_id):
        raise WatchlistError(
            "bad-field",
            f"watchlist: deployment id {c.deployment_id[:70]!r} must match {DEPLOYMENT_ID_RE.pattern}",
        )
    if not c.devices:
        raise WatchlistError("bad-field", "watchlist: no target device given")
    for dev in c.devices:
        if not DEVICE_ID_RE.fullmatch(dev):
            raise WatchlistError("bad-field", f"watchlist: device id {dev[:70]!r} is not valid")
    if len(set(c.devices)) != len(c.devices):
        raise WatchlistError("bad-field", "watchlist: a device is named twice")
    if not (math.isfinite(c.created_at) and math.isfinite(c.expires_at)):
        raise WatchlistError("bad-field", "watchlist: times must be finite")
    if c.expires_at <= c.created_at:
        raise WatchlistError("bad-field", "watchlist: expiry must be after creation")
    emb = np.ascontiguousarray(c.embeddings, dtype=DTYPE)
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise WatchlistError("bad-field", "watchlist: embeddings must be a non-empty N×D array")
    if len(c.refs) != emb.shape[0]:
        raise WatchlistError(
            "bad-field", f"watchlist: {len(c.refs)} references for {emb.shape[0]} embeddings"
        )
    for ref in c.refs:
        if not _REF_RE.fullmatch(ref):
            raise WatchlistError(
                "bad-field", f"watchlist: entry reference {ref[:70]!r} is not valid"
            )
    if not np.isfinite(emb).all():
        raise WatchlistError("bad-field", "watchlist: embeddings contain NaN or infinity")
    return emb


def build_bundle(
    content: WatchlistContent,
    signing_key: Ed25519PrivateKey,
    recipients: Mapping[str, X25519PublicKey],
    hub_key: X25519PublicKey | None = None,
) -> SealedBundle:
    """Sign ``content`` with the hub watchlist key and encrypt it to every device in
    ``content.devices``; ``recipients`` maps each of them to its X25519 public key.
    With ``hub_key`` (the hub alert key) the hub can open it again (``open_hub_copy``)."""
    emb = _check_content(content)
    missing = [d for d in content.devices if d not in recipients]
    if missing:
        raise WatchlistError("bad-field", f"watchlist: no X25519 key for device {missing[0]}")
    emb_bytes = emb.tobytes()
    body = {
        "format": BUNDLE_FORMAT,
        "deployment_id": content.deployment_id,
        "devices": list(content.devices),
        "created_at": float(content.created_at),
        "expires_at": float(content.expires_at),
        "model": {"id": content.model_id, "sha256": content.model_sha256},
        "count": int(emb.shape[0]),
        "dim": int(emb.shape[1]),
        "dtype": DTYPE,
        "embeddings_sha256": hashlib.sha256(emb_bytes).hexdigest(),
        "refs": list(content.refs),
    }
    envelope = sign_document(WATCHLIST_PAYLOAD_TYPE, body, signing_key)
    watchlist_hash = hashlib.sha256(canonical_json(body)).hexdigest()
    inner = INNER_MAGIC + struct.pack(">I", len(envelope)) + envelope + emb_bytes
    data = seal_for_devices(inner, content.devices, recipients, hub_key=hub_key)
    return SealedBundle(data, watchlist_hash, len(data))


def seal_for_devices(
    inner: bytes,
    devices: Sequence[str],
    recipients: Mapping[str, X25519PublicKey],
    magic: bytes = SEALED_MAGIC,
    hub_key: X25519PublicKey | None = None,
) -> bytes:
    """The sealed file around a signed inner bundle: a fresh content key, sealed to each
    device's X25519 key (and to ``hub_key``, when given, so the hub can open it again).
    Plate hotlists travel in the same sealed file (their inner bundle has its own magic
    and signed payload type)."""
    content_key = ChaCha20Poly1305.generate_key()
    boxes = []
    for dev in devices:
        pub = recipients[dev]
        box = seal(pub, content_key, aad=dev.encode(), info=WATCHLIST_INFO)
        boxes.append(
            {"device": dev, "key_id": key_id(pub), "key_box": base64.b64encode(box).decode()}
        )
    if hub_key is not None:
        box = seal(hub_key, content_key, aad=HUB_RECIPIENT.encode(), info=WATCHLIST_HUB_INFO)
        boxes.append(
            {
                "device": HUB_RECIPIENT,
                "key_id": key_id(hub_key),
                "key_box": base64.b64encode(box).decode(),
            }
        )
    header = canonical_json({"format": BUNDLE_FORMAT, "recipients": boxes})
    prefix = magic + struct.pack(">I", len(header)) + header
    ciphertext = ChaCha20Poly1305(content_key).encrypt(_NONCE, inner, prefix)
    return prefix + ciphertext


@dataclass(frozen=True)
class Recipient:
    device: str
    key_id: str
    key_box: bytes


@dataclass(frozen=True)
class SealedHeader:
    recipients: tuple[Recipient, ...]
    prefix_len: int

    def for_device(self, device_id: str) -> Recipient | None:
        return next((r for r in self.recipients if r.device == device_id), None)


def read_sealed_header(
    data: bytes, what: str = "watchlist", magic: bytes = SEALED_MAGIC
) -> SealedHeader:
    """Parse the clear header of a sealed file (nothing is decrypted or trusted yet)."""
    if len(data) < len(magic) + 4 or data[: len(magic)] != magic:
        raise WatchlistError("not-a-bundle", f"{what}: not a sealed {what} bundle")
    (n,) = struct.unpack(">I", data[8:12])
    if n > MAX_HEADER_BYTES or 12 + n + _TAG_LEN > len(data):
        raise WatchlistError("malformed", f"{what}: sealed header length is out of range")
    try:
        header = loads_untrusted(data[12 : 12 + n])
    except UntrustedJsonError as exc:
        raise WatchlistError("malformed", f"{what}: sealed header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise WatchlistError("malformed", f"{what}: unknown sealed header format")
    if set(header) != _HEADER_KEYS:
        raise WatchlistError("malformed", f"{what}: sealed header fields are not the expected set")
    raw = header.get("recipients")
    if not isinstance(raw, list) or not raw:
        raise WatchlistError("malformed", f"{what}: sealed header lists no recipients")
    out = []
    for i, r in enumerate(raw):
        if (
            not isinstance(r, dict)
            or set(r) != _RECIPIENT_KEYS
            or not all(isinstance(r[k], str) for k in _RECIPIENT_KEYS)
            or not (r["device"] == HUB_RECIPIENT or DEVICE_ID_RE.fullmatch(r["device"]))
            or not HEX64_RE.fullmatch(r["key_id"])
        ):
            raise WatchlistError("malformed", f"{what}: recipient {i} is malformed")
        try:
            box = base64.b64decode(r["key_box"], validate=True)
        except binascii.Error as exc:
            raise WatchlistError("malformed", f"{what}: recipient {i} box is not base64") from exc
        out.append(Recipient(r["device"], r["key_id"], box))
    return SealedHeader(tuple(out), 12 + n)


def decrypt_for_device(
    data: bytes,
    device_id: str,
    device_key: X25519PrivateKey,
    what: str = "watchlist",
    magic: bytes = SEALED_MAGIC,
    info: bytes = WATCHLIST_INFO,
) -> bytearray:
    """Decrypt a sealed file with this device's X25519 key. Returns the inner bundle in a
    mutable buffer the caller zeroes when done (see ``OpenedWatchlist.wipe``)."""
    header = read_sealed_header(data, what, magic)
    mine = header.for_device(device_id)
    if mine is None and device_id == HUB_RECIPIENT:
        raise WatchlistError(
            "no-hub-copy",
            f"{what}: built without a hub copy (before hub calibration existed); "
            "rebuild it with 'lfr-hub watchlist build' to calibrate against it",
        )
    if mine is None:
        names = ", ".join(r.device for r in header.recipients if r.device != HUB_RECIPIENT)
        raise WatchlistError(
            "wrong-device", f"{what}: made for {names}, not for this device {device_id}"
        )
    if mine.key_id != key_id(device_key.public_key()):
        raise WatchlistError(
            "wrong-device",
            f"{what}: encrypted to another X25519 key for {device_id} "
            "(device keys were regenerated since the hub enrolled them?)",
        )
    try:
        content_key = open_box(device_key, mine.key_box, aad=device_id.encode(), info=info)
    except SealedBoxError as exc:
        raise WatchlistError("undecryptable", f"{what}: key box {exc}") from exc
    if len(content_key) != 32:
        raise WatchlistError("malformed", f"{what}: content key has the wrong length")
    prefix = memoryview(data)[: header.prefix_len]
    ct = memoryview(data)[header.prefix_len :]
    buf = bytearray(len(ct) - _TAG_LEN)
    try:
        ChaCha20Poly1305(content_key).decrypt_into(_NONCE, ct, prefix, buf)
    except InvalidTag as exc:
        raise WatchlistError(
            "tampered", f"{what}: does not decrypt (file altered or truncated)"
        ) from exc
    return buf


@dataclass
class OpenedWatchlist:
    """A decrypted, verified bundle. ``embeddings`` is a read-only view on ``_buffer``;
    ``wipe()`` zeroes the buffer so no copy of the plaintext outlives its use."""

    watchlist_hash: str
    signer_key_id: str
    deployment_id: str
    devices: tuple[str, ...]
    created_at: float
    expires_at: float
    model_id: str
    model_sha256: str
    refs: list[str]
    embeddings: Float16Array
    _buffer: bytearray = field(repr=False)

    @property
    def count(self) -> int:
        return len(self.refs)

    def wipe(self) -> None:
        self._buffer[:] = bytes(len(self._buffer))
        self.refs.clear()


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WatchlistError("malformed", f"watchlist: field {name!r} is missing or of wrong type")
    return value


def verify_inner(inner: bytearray, find_signing_key: FindSigningKey) -> OpenedWatchlist:
    """Check the signature and the embeddings hash of a decrypted inner bundle and parse it.

    ``find_signing_key`` maps a key id to a public key trusted to sign watchlists,
    or None. Nothing here depends on the device, the model or the time.
    """
    view = memoryview(inner)
    if len(inner) < 12 or bytes(view[:8]) != INNER_MAGIC:
        raise WatchlistError("malformed", "watchlist: decrypted content is not a watchlist")
    (n,) = struct.unpack(">I", view[8:12])
    if 12 + n > len(inner):
        raise WatchlistError("malformed", "watchlist: signed part length is out of range")
    try:
        doc = open_document(bytes(view[12 : 12 + n]), WATCHLIST_PAYLOAD_TYPE, find_signing_key)
    except DocumentError as exc:
        raise WatchlistError("bad-signature", f"watchlist: {exc}") from exc
    body = doc.body
    unknown = set(body) - _BODY_KEYS
    if unknown:
        raise WatchlistError("malformed", f"watchlist: unknown field {sorted(unknown)[0]!r}")
    if body.get("format") != BUNDLE_FORMAT:
        raise WatchlistError("malformed", "watchlist: unknown bundle format")
    deployment = _field(body, "deployment_id", str)
    if not DEPLOYMENT_ID_RE.fullmatch(deployment):
        raise WatchlistError("malformed", "watchlist: field 'deployment_id' is not a valid name")
    devices = _field(body, "devices", list)
    if not devices or not all(isinstance(d, str) for d in devices):
        raise WatchlistError("malformed", "watchlist: field 'devices' is malformed")
    created = float(_field(body, "created_at", (int, float)))
    expires = float(_field(body, "expires_at", (int, float)))
    if not (math.isfinite(created) and math.isfinite(expires)):
        raise WatchlistError("malformed", "watchlist: times must be finite numbers")
    model = _field(body, "model", dict)
    model_id, model_sha = model.get("id"), model.get("sha256")
    if (
        set(model) != {"id", "sha256"}
        or not isinstance(model_id, str)
        or not isinstance(model_sha, str)
    ):
        raise WatchlistError("malformed", "watchlist: field 'model' is malformed")
    count = _field(body, "count", int)
    dim = _field(body, "dim", int)
    if body.get("dtype") != DTYPE or not 0 < dim <= 4096 or count <= 0:
        raise WatchlistError("malformed", "watchlist: embedding layout is not supported")
    refs = _field(body, "refs", list)
    if len(refs) != count or not all(isinstance(r, str) and _REF_RE.fullmatch(r) for r in refs):
        raise WatchlistError("malformed", "watchlist: entry references are malformed")
    emb_sha = _field(body, "embeddings_sha256", str)
    start = 12 + n
    if len(inner) - start != count * dim * 2:
        raise WatchlistError(
            "malformed", f"watchlist: embeddings are not {count}×{dim} float16 values"
        )
    emb_view = view[start:]
    if hashlib.sha256(emb_view).hexdigest() != emb_sha:
        raise WatchlistError("tampered", "watchlist: embeddings do not match their signed hash")
    emb = np.frombuffer(inner, dtype=DTYPE, count=count * dim, offset=start).reshape(count, dim)
    emb.flags.writeable = False
    if not np.isfinite(emb).all():
        raise WatchlistError("malformed", "watchlist: embeddings contain NaN or infinity")
    return OpenedWatchlist(
        watchlist_hash=hashlib.sha256(doc.body_bytes).hexdigest(),
        signer_key_id=doc.signer_key_id,
        deployment_id=deployment,
        devices=tuple(devices),
        created_at=created,
        expires_at=expires,
        model_id=model_id,
        model_sha256=model_sha,
        refs=list(refs),
        embeddings=emb,
        _buffer=inner,
    )


def open_bundle(
    data: bytes,
    device_id: str,
    device_key: X25519PrivateKey,
    find_signing_key: FindSigningKey,
) -> OpenedWatchlist:
    """Decrypt and verify a sealed file for this device: signature by a trusted watchlist
    key, embeddings hash, and that the signed body names this device. Model and time
    checks are the caller's (see ``check_model`` and the store)."""
    inner = decrypt_for_device(data, device_id, device_key)
    try:
        opened = verify_inner(inner, find_signing_key)
    except BaseException:
        inner[:] = bytes(len(inner))
        raise
    if device_id not in opened.devices:
        opened.wipe()
        raise WatchlistError(
            "wrong-device",
            f"watchlist: signed for {', '.join(opened.devices[:5])}, not {device_id}",
        )
    return opened


def open_hub_copy(
    data: bytes, hub_key: X25519PrivateKey, find_signing_key: FindSigningKey
) -> OpenedWatchlist:
    """Decrypt and verify a sealed file with the hub alert key (its ``"@hub"`` recipient):
    signature by a trusted watchlist key and the embeddings hash, as a device would."""
    inner = decrypt_for_device(data, HUB_RECIPIENT, hub_key, info=WATCHLIST_HUB_INFO)
    try:
        return verify_inner(inner, find_signing_key)
    except BaseException:
        inner[:] = bytes(len(inner))
        raise


def check_model(opened: OpenedWatchlist, model_id: str, model_sha256: str) -> None:
    """Refuse a watchlist made with another embedder than the one this device runs."""
    if opened.model_sha256 != model_sha256:
        raise WatchlistError(
            "wrong-model",
            f"watchlist: made with model {opened.model_id}, but this device runs {model_id}; "
            "rebuild it with the device's model",
        )

"""Sealed media on the wire: alert clips and recording segments travel as chunks, and the
hub answers with progress and receipts. Byte layouts are in docs/protocol.md ("Media
transfer"); the sealing itself is ``agent/trust/sealed_media.py``.

A *transfer* is one sealed object (a clip or a segment): a signed manifest (which names the
object, its kind, and the length and SHA-256 of its sealed box) and the box, cut into
chunks of at most ``CHUNK_BYTES``. Every chunk message carries the whole manifest, so the
hub can check each chunk on its own and resume a transfer whatever it saw before::

    magic      8   b"LFRCHK1\\n"
    mlen       4   unsigned big-endian, manifest length
    manifest   mlen bytes (a signed document, agent/trust/sealed_media.py)
    index      4   unsigned big-endian, this chunk's position (0 …)
    count      4   unsigned big-endian, chunks in the transfer (0 for a missing-clip notice)
    data       the chunk's bytes: CHUNK_BYTES each, except the last

The hub's answer on ``lfr/v1/<dev>/media-ack`` (canonical JSON)::

    {"v": 1, "media": [{"id": 32 hex, "kind": "clip"|"segment",
                        "state": "complete", "secret": 32 hex}            stored; the secret
                                                                            is the one sealed
                                                                            inside (proof)
                     | {"id", "kind", "state": "partial", "missing": [i, …]}   send these
                     | {"id", "kind", "state": "noted"}                   a missing-clip
                                                                            notice is recorded
                     | {"id", "kind", "state": "refused", "reason": text}]}
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass

from agent.protocol.fields import ALERT_ID_RE

MAGIC = b"LFRCHK1\n"
#: Largest chunk of a sealed box in one message (the rest of the message is the manifest).
CHUNK_BYTES = 256 * 1024
#: Largest manifest a chunk may carry.
MAX_MANIFEST_BYTES = 16 * 1024
#: Largest sealed object: a 10-minute segment at a high bit rate fits with room to spare.
MAX_BOX_BYTES = 512 * 1024 * 1024
MAX_CHUNKS = MAX_BOX_BYTES // CHUNK_BYTES
MAX_CHUNK_MESSAGE = len(MAGIC) + 4 + MAX_MANIFEST_BYTES + 8 + CHUNK_BYTES

MEDIA_KINDS = ("clip", "segment")
#: The MQTT topic kind each media kind travels on.
TOPIC_KIND = {"clip": "clip", "segment": "evidence"}
ACK_VERSION = 1
MAX_ACK_BYTES = 256 * 1024
MAX_ACK_ENTRIES = 200
MAX_MISSING_LISTED = 2048
MAX_REASON = 200
_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_U32 = struct.Struct(">I")


class MediaTransferError(ValueError):
    """A chunk message or a media acknowledgement that is not well formed."""


@dataclass(frozen=True)
class Chunk:
    manifest: bytes
    index: int
    count: int
    data: bytes


def chunk_count(box_len: int) -> int:
    """How many chunks a sealed box of ``box_len`` bytes travels in."""
    return -(-box_len // CHUNK_BYTES)


def chunk_slice(box_len: int, index: int) -> tuple[int, int]:
    """(start, end) of chunk ``index`` within the box."""
    start = index * CHUNK_BYTES
    return start, min(box_len, start + CHUNK_BYTES)


def encode_chunk(manifest: bytes, index: int, count: int, data: bytes) -> bytes:
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise MediaTransferError(f"chunk: manifest longer than {MAX_MANIFEST_BYTES} bytes")
    if len(data) > CHUNK_BYTES or not (0 <= index < count or count == index == 0):
        raise MediaTransferError("chunk: index, count or size out of range")
    return b"".join(
        (MAGIC, _U32.pack(len(manifest)), manifest, _U32.pack(index), _U32.pack(count), data)
    )


def decode_chunk(payload: bytes) -> Chunk:
    """Parse a chunk message; MediaTransferError names what is wrong."""
    if len(payload) > MAX_CHUNK_MESSAGE:
        raise MediaTransferError(f"chunk: message larger than {MAX_CHUNK_MESSAGE} bytes")
    if payload[: len(MAGIC)] != MAGIC:
        raise MediaTransferError("chunk: bad magic")
    pos = len(MAGIC)
    if len(payload) < pos + 4:
        raise MediaTransferError("chunk: truncated")
    (mlen,) = _U32.unpack_from(payload, pos)
    pos += 4
    if mlen > MAX_MANIFEST_BYTES or len(payload) < pos + mlen + 8:
        raise MediaTransferError("chunk: manifest length out of range or truncated")
    manifest = payload[pos : pos + mlen]
    pos += mlen
    (index,) = _U32.unpack_from(payload, pos)
    (count,) = _U32.unpack_from(payload, pos + 4)
    data = payload[pos + 8 :]
    if count > MAX_CHUNKS:
        raise MediaTransferError(f"chunk: more than {MAX_CHUNKS} chunks")
    if count == 0:
        if index != 0 or data:
            raise MediaTransferError("chunk: a transfer of no chunks carries no data")
    elif index >= count:
        raise MediaTransferError(f"chunk: index {index} not below count {count}")
    if len(data) > CHUNK_BYTES:
        raise MediaTransferError(f"chunk: data longer than {CHUNK_BYTES} bytes")
    return Chunk(manifest, index, count, data)


@dataclass(frozen=True)
class MediaAck:
    """One entry of the hub's answer about one transfer."""

    media_id: str
    kind: str
    state: str  # "complete", "partial", "noted" or "refused"
    secret: bytes | None = None
    missing: tuple[int, ...] = ()
    reason: str = ""


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode_media_ack(entries: list[MediaAck]) -> bytes:
    if len(entries) > MAX_ACK_ENTRIES:
        raise MediaTransferError(f"media ack: more than {MAX_ACK_ENTRIES} entries")
    out = []
    for e in entries:
        if not ALERT_ID_RE.fullmatch(e.media_id) or e.kind not in MEDIA_KINDS:
            raise MediaTransferError("media ack: bad id or kind")
        item: dict[str, object] = {"id": e.media_id, "kind": e.kind, "state": e.state}
        if e.state == "complete":
            if e.secret is None or len(e.secret) != 16:
                raise MediaTransferError("media ack: a receipt needs the 16-byte secret")
            item["secret"] = e.secret.hex()
        elif e.state == "partial":
            item["missing"] = sorted(e.missing)[:MAX_MISSING_LISTED]
        elif e.state == "refused":
            item["reason"] = "".join(c for c in e.reason if c.isprintable())[:MAX_REASON]
        elif e.state != "noted":
            raise MediaTransferError(f"media ack: unknown state {e.state!r}")
        out.append(item)
    return _canonical({"media": out, "v": ACK_VERSION})


_ENTRY_KEYS = {
    "complete": {"id", "kind", "state", "secret"},
    "partial": {"id", "kind", "state", "missing"},
    "noted": {"id", "kind", "state"},
    "refused": {"id", "kind", "state", "reason"},
}


def decode_media_ack(payload: bytes) -> list[MediaAck]:
    """Strict: an unknown or missing field, another version or a bad value rejects it all."""
    if len(payload) > MAX_ACK_BYTES:
        raise MediaTransferError(f"media ack: larger than {MAX_ACK_BYTES} bytes")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MediaTransferError("media ack: not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != {"media", "v"}:
        raise MediaTransferError('media ack: expected {"media": [...], "v": 1}')
    if obj["v"] != ACK_VERSION or isinstance(obj["v"], bool):
        raise MediaTransferError(f"media ack: version must be {ACK_VERSION}")
    items = obj["media"]
    if not isinstance(items, list) or len(items) > MAX_ACK_ENTRIES:
        raise MediaTransferError("media ack: media must be a list of at most 200 entries")
    acks = []
    for item in items:
        if not isinstance(item, dict):
            raise MediaTransferError("media ack: an entry is not an object")
        state = item.get("state")
        if (
            not isinstance(state, str)
            or state not in _ENTRY_KEYS
            or set(item) != _ENTRY_KEYS[state]
        ):
            raise MediaTransferError("media ack: an entry's fields do not match its state")
        media_id, kind = item["id"], item["kind"]
        if not isinstance(media_id, str) or not ALERT_ID_RE.fullmatch(media_id):
            raise MediaTransferError("media ack: an id is not 32 lower-case hex digits")
        if kind not in MEDIA_KINDS:
            raise MediaTransferError("media ack: kind must be clip or segment")
        secret: bytes | None = None
        missing: tuple[int, ...] = ()
        reason = ""
        if state == "complete":
            s = item["secret"]
            if not isinstance(s, str) or not _SECRET_RE.fullmatch(s):
                raise MediaTransferError("media ack: a secret is not 32 lower-case hex digits")
            secret = bytes.fromhex(s)
        elif state == "partial":
            m = item["missing"]
            if (
                not isinstance(m, list)
                or len(m) > MAX_MISSING_LISTED
                or not all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_CHUNKS
                    for i in m
                )
            ):
                raise MediaTransferError("media ack: missing must be a list of chunk indexes")
            missing = tuple(m)
        elif state == "refused":
            r = item["reason"]
            if not isinstance(r, str) or len(r) > MAX_REASON:
                raise MediaTransferError("media ack: reason must be a short string")
            reason = r
        acks.append(MediaAck(media_id, str(kind), state, secret, missing, reason))
    return acks

"""The on-disk form of one sealed clip or segment (both folders use it).

All integers big-endian::

    magic       8   b"LFRMED1\\n"
    created     8   unsigned, Unix milliseconds when the file was written
    ack_secret 16   the secret sealed inside the box (zeros for a missing-clip notice)
    mlen        4   unsigned, manifest length
    blen        4   unsigned, box length (0 for a missing-clip notice)
    sha256     32   SHA-256 of every byte before it, the manifest and the box
    manifest   mlen bytes (signed, agent/trust/sealed_media.py)
    box        blen bytes (sealed to a hub key: this device cannot open it)

Files are written atomically (temporary file, fsync, rename, fsync of the folder), so a
power cut leaves either the whole file or a ``.tmp-`` file that is discarded on open. A
file whose length or hash is wrong is reported damaged, never sent.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from agent.durable_files import write_atomic
from agent.errors import LfrError

MAGIC = b"LFRMED1\n"
_HEAD = struct.Struct(">8sQ16sII32s")
HEADER_LEN = _HEAD.size
_DIGEST_AT = HEADER_LEN - 32
TMP_PREFIX = ".tmp-"


class MediaFileError(LfrError):
    """A sealed media file cannot be written, or is torn or damaged."""


@dataclass(frozen=True)
class MediaFile:
    created: float
    manifest: bytes
    box: bytes = field(repr=False)
    ack_secret: bytes = field(repr=False)


def encode(manifest: bytes, box: bytes, ack_secret: bytes, created: float) -> bytes:
    if len(ack_secret) != 16:
        raise ValueError("an ack secret is 16 bytes")
    head = _HEAD.pack(MAGIC, int(created * 1000), ack_secret, len(manifest), len(box), b"")
    head = head[:_DIGEST_AT]
    digest = hashlib.sha256(head + manifest + box).digest()
    return head + digest + manifest + box


def decode(data: bytes) -> MediaFile:
    if len(data) < HEADER_LEN:
        raise MediaFileError("media file shorter than its header")
    magic, created_ms, secret, mlen, blen, digest = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise MediaFileError("media file has a bad magic number")
    if len(data) != HEADER_LEN + mlen + blen:
        raise MediaFileError(f"media file length {len(data)} differs from its header")
    manifest = data[HEADER_LEN : HEADER_LEN + mlen]
    box = data[HEADER_LEN + mlen :]
    if hashlib.sha256(data[:_DIGEST_AT] + manifest + box).digest() != digest:
        raise MediaFileError("media file checksum does not match")
    return MediaFile(created_ms / 1000.0, manifest, box, secret)


def read_manifest(path: Path) -> tuple[float, bytes, bytes, int]:
    """(created, manifest, ack secret, box length) from the head of a file, without
    reading (or checking) the box: listing a folder of large segments stays cheap."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER_LEN)
            if len(head) < HEADER_LEN:
                raise MediaFileError("media file shorter than its header")
            magic, created_ms, secret, mlen, blen, _ = _HEAD.unpack(head)
            if magic != MAGIC:
                raise MediaFileError("media file has a bad magic number")
            manifest = f.read(mlen)
    except OSError as exc:
        raise MediaFileError(f"{path.name}: cannot read ({exc.strerror})") from exc
    if len(manifest) != mlen:
        raise MediaFileError("media file is truncated")
    return created_ms / 1000.0, manifest, secret, blen


def read(path: Path) -> MediaFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaFileError(f"{path.name}: cannot read ({exc.strerror})") from exc
    return decode(data)


def write(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data, 0o600, tmp_prefix=TMP_PREFIX)
    except OSError as exc:
        raise MediaFileError(
            f"{path}: cannot write ({exc.strerror or type(exc).__name__})"
        ) from exc

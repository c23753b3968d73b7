"""The on-device CCTV ring: sealed recording segments, bounded in size and in age.

Layout of ``<paths.state_dir>/recordings``::

    <start ms:015d>-<end ms:015d>-<media id>.seg   one sealed segment (sealed_media_file.py)
    .tmp-*                                          a write that never completed

Every segment is sealed to the hub evidence key before it is written: this device holds
no key that opens one. Segments leave the ring only by deletion, and every deletion is
an audit entry (``recording.segment_deleted`` with the reason): ``retention`` (its last
frame is older than ``recording.retention_days`` by the wall clock), ``ring-full`` (the
ring reached ``recording.max_mb``: the oldest goes first) or ``damaged``.

A write is refused (``RecordingDiskFull``) when it would leave the file system with less
than ``recording.reserve_mb`` free: the alert outbox lives on the same disk and alerts
come first. The recorder then stops recording; alerts carry on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.durable_files import fsync_dir
from agent.evidence import sealed_media_file as mf
from agent.trust.sealed_media import MediaManifest, SealedMedia

log = logging.getLogger(__name__)

AuditFn = Callable[[str, dict[str, object]], None]
SUFFIX = ".seg"
_NAME_RE = re.compile(r"^([0-9]{15})-([0-9]{15})-([0-9a-f]{32})\.seg$")


class RecordingDiskFull(mf.MediaFileError):
    """Writing the segment would eat into the space kept for alerts."""


@dataclass(frozen=True)
class SegmentEntry:
    media_id: str
    start: float
    end: float
    size: int
    path: Path


class SegmentRing:
    """Thread-safe."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        reserve_bytes: int,
        retention_s: float,
        audit: AuditFn,
        clock: Callable[[], float] = time.time,
        free_bytes: Callable[[Path], int] | None = None,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.retention_s = retention_s
        self._audit = audit
        self._clock = clock
        self._free = free_bytes or _free_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, SegmentEntry] = {}
        self._bytes = 0
        self._open()

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for tmp in self.folder.glob(f"{mf.TMP_PREFIX}*"):
            # A segment whose write never completed: sealed, but never stored.
            tmp.unlink()
            self._audit("recording.incomplete_write_discarded", {"file": tmp.name})
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(mf.TMP_PREFIX):
                continue
            m = _NAME_RE.fullmatch(path.name)
            if m is None or not path.is_file():
                self._delete_path(path, "damaged")
                continue
            self._index(
                SegmentEntry(
                    m.group(3),
                    int(m.group(1)) / 1000.0,
                    int(m.group(2)) / 1000.0,
                    path.stat().st_size,
                    path,
                )
            )

    def _index(self, e: SegmentEntry) -> None:
        self._entries[e.media_id] = e
        self._bytes += e.size

    def _drop(self, e: SegmentEntry) -> None:
        if self._entries.pop(e.media_id, None) is not None:
            self._bytes -= e.size

    def _delete(self, e: SegmentEntry, reason: str) -> None:
        self._drop(e)
        self._delete_path(e.path, reason, e)

    def _delete_path(self, path: Path, reason: str, e: SegmentEntry | None = None) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("recording: %s not deleted: %s", path.name, exc.strerror)
            return
        fields: dict[str, object] = {"file": path.name, "reason": reason}
        if e is not None:
            fields.update(media_id=e.media_id, start=e.start, end=e.end, bytes=e.size)
        self._audit("recording.segment_deleted", fields)

    # ---- writing --------------------------------------------------------------------------
    def add(self, sealed: SealedMedia) -> SegmentEntry:
        """Store a sealed segment, making room by deleting the oldest (audited)."""
        m: MediaManifest = sealed.manifest
        data = mf.encode(sealed.manifest_bytes, sealed.box, sealed.ack_secret, self._clock())
        if len(data) > self.max_bytes:
            raise RecordingDiskFull(
                f"recording: a segment of {len(data)} bytes exceeds recording.max_mb"
            )
        with self._lock:
            for e in sorted(self._entries.values(), key=lambda e: e.start):
                if self._bytes + len(data) <= self.max_bytes:
                    break
                self._delete(e, "ring-full")
            free = self._free(self.folder)
            if free - len(data) < self.reserve_bytes:
                raise RecordingDiskFull(
                    f"recording: {free // 2**20} MB free; recording.reserve_mb "
                    f"({self.reserve_bytes // 2**20} MB) is kept for alerts"
                )
            name = f"{int(m.start * 1000):015d}-{int(m.end * 1000):015d}-{m.media_id}{SUFFIX}"
            path = self.folder / name
            try:
                mf.write(path, data)
            except mf.MediaFileError as exc:
                if "No space" in str(exc):
                    raise RecordingDiskFull(f"recording: {exc}") from exc
                raise
            entry = SegmentEntry(m.media_id, m.start, m.end, len(data), path)
            self._index(entry)
            return entry

    # ---- retention ----------------------------------------------------------------------
    def purge_expired(self) -> int:
        """Delete segments whose last frame is older than the retention period (audited)."""
        cutoff = self._clock() - self.retention_s
        with self._lock:
            old = [e for e in self._entries.values() if e.end < cutoff]
            for e in sorted(old, key=lambda e: e.start):
                self._delete(e, "retention")
            if old:
                fsync_dir(self.folder)
        return len(old)

    # ---- reading (for the hub's requests) -------------------------------------------------
    def in_range(self, start: float, end: float) -> list[SegmentEntry]:
        """Segments that overlap [start, end], oldest first."""
        with self._lock:
            hits = [e for e in self._entries.values() if e.end >= start and e.start <= end]
        return sorted(hits, key=lambda e: e.start)

    def get(self, media_id: str) -> SegmentEntry | None:
        with self._lock:
            return self._entries.get(media_id)

    def read(self, media_id: str) -> mf.MediaFile | None:
        with self._lock:
            e = self._entries.get(media_id)
            if e is None:
                return None
            try:
                return mf.read(e.path)
            except mf.MediaFileError as exc:
                log.error("recording: %s damaged (%s)", e.path.name, exc)
                self._delete(e, "damaged")
                return None

    def entries(self) -> list[SegmentEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.start)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes


def _free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize

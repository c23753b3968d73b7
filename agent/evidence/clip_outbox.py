"""The clip outbox: sealed alert clips (and missing-clip notices) wait here, on disk,
until the hub confirms it stored them. It is separate from the alert outbox on purpose:
a clip can never hold up, crowd out or block an alert.

Layout of ``<paths.state_dir>/clips``::

    <created ms:015d>-<media id>.media   one sealed clip or notice (sealed_media_file.py)
    <alert id>.expect                    a clip promised for a stored alert, not sealed yet
    .tmp-*                               a write that never completed (discarded on open)

The daemon writes ``<alert id>.expect`` as soon as an alert is stored, before its
post-roll is even captured. When the clip is sealed its entry is written first and the
expectation removed after, so a power cut or SIGKILL at any point leaves either the
clip or the expectation. Expectations found when the outbox opens (the agent stopped
before the clip was encoded: its frames were only in RAM) are handed to the daemon,
which turns each into a signed missing-clip notice: the hub then shows the clip as
missing, never waits for it and never shows part of it.

An entry leaves when the hub's receipt carries the secret sealed inside it (a notice:
when the hub says it noted it), or when it is older than the retention period (audited).
At the size cap a new clip is refused (the caller sends a notice instead): alerts are
never refused for a clip.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.durable_files import fsync_dir, write_atomic
from agent.evidence import sealed_media_file as mf
from agent.protocol.fields import ALERT_ID_RE, NAME_RE
from agent.trust.sealed_media import MediaManifest, SealedMedia

log = logging.getLogger(__name__)

AuditFn = Callable[[str, dict[str, object]], None]
ManifestReader = Callable[[bytes], MediaManifest]
SUFFIX = ".media"
EXPECT_SUFFIX = ".expect"
_NAME_RE = re.compile(r"^([0-9]{15})-([0-9a-f]{32})\.media$")
_ZERO_SECRET = bytes(16)


class ClipOutboxFull(mf.MediaFileError):
    """The clip outbox is at its size cap; the clip was refused."""


@dataclass(frozen=True)
class ClipEntry:
    manifest: MediaManifest
    created: float
    size: int
    path: Path


@dataclass(frozen=True)
class ExpectedClip:
    alert_id: str
    deployment_id: str
    at: float


class ClipOutbox:
    """Thread-safe."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        retention_s: float,
        read_manifest: ManifestReader,
        audit: AuditFn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self._read_manifest = read_manifest
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, ClipEntry] = {}
        self._bytes = 0
        self.left_over: list[ExpectedClip] = []
        self._open()

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for tmp in self.folder.glob(f"{mf.TMP_PREFIX}*"):
            tmp.unlink()
            self._audit("clips.incomplete_write_discarded", {"file": tmp.name})
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                m = _NAME_RE.fullmatch(path.name)
                if m is None:
                    raise mf.MediaFileError("file name is not <created>-<id>.media")
                created, manifest, _, blen = mf.read_manifest(path)
                man = self._read_manifest(manifest)
                if man.media_id != m.group(2) or blen != man.box_len:
                    raise mf.MediaFileError("file does not match its manifest")
            except Exception as exc:
                self._discard(path, str(exc))
                continue
            self._index(ClipEntry(man, created, path.stat().st_size, path))
        have = {e.manifest.alert_id for e in self._entries.values()}
        for path in sorted(self.folder.glob(f"*{EXPECT_SUFFIX}")):
            try:
                exp = _parse_expectation(path.read_bytes())
            except (OSError, ValueError) as exc:
                self._discard(path, f"unreadable expectation ({exc})")
                continue
            if exp.alert_id in have:
                # The clip was stored just before the stop; only its expectation was left.
                self._remove_expectation(exp.alert_id)
            else:
                self.left_over.append(exp)

    def _discard(self, path: Path, reason: str) -> None:
        log.error("clip outbox: %s discarded (%s)", path.name, reason)
        path.unlink(missing_ok=True)
        fsync_dir(self.folder)
        self._audit("clips.entry_discarded", {"file": path.name, "reason": reason[:200]})

    def _index(self, entry: ClipEntry) -> None:
        self._entries[entry.manifest.media_id] = entry
        self._bytes += entry.size

    # ---- expectations -------------------------------------------------------------------
    def expect(self, alert_id: str, deployment_id: str, at: float) -> None:
        """Record, durably, that the clip of a stored alert is on its way."""
        body = json.dumps(
            {"alert_id": alert_id, "deployment_id": deployment_id, "at": at}, sort_keys=True
        ).encode()
        try:
            write_atomic(self.folder / f"{alert_id}{EXPECT_SUFFIX}", body, 0o600, mf.TMP_PREFIX)
        except OSError as exc:
            raise mf.MediaFileError(
                f"clip outbox: cannot write expectation ({exc.strerror})"
            ) from exc

    def _remove_expectation(self, alert_id: str) -> None:
        path = self.folder / f"{alert_id}{EXPECT_SUFFIX}"
        if path.exists():
            path.unlink()
            fsync_dir(self.folder)

    # ---- entries ------------------------------------------------------------------------
    def add(self, sealed: SealedMedia) -> ClipEntry:
        """Store a sealed clip durably (then drop its expectation). ClipOutboxFull at the cap."""
        return self._add(sealed.manifest, sealed.manifest_bytes, sealed.box, sealed.ack_secret)

    def add_notice(self, manifest: MediaManifest, manifest_bytes: bytes) -> ClipEntry:
        """Store a missing-clip notice (tiny; accepted even at the cap)."""
        return self._add(manifest, manifest_bytes, b"", _ZERO_SECRET, force=True)

    def _add(
        self, man: MediaManifest, manifest: bytes, box: bytes, secret: bytes, force: bool = False
    ) -> ClipEntry:
        created = self._clock()
        data = mf.encode(manifest, box, secret, created)
        with self._lock:
            if not force and self._bytes + len(data) > self.max_bytes:
                self._audit(
                    "clips.full_refused",
                    {"alert_id": man.alert_id, "bytes": self._bytes, "cap": self.max_bytes},
                )
                raise ClipOutboxFull(f"clip outbox: full ({self._bytes} of {self.max_bytes} bytes)")
            path = self.folder / f"{int(created * 1000):015d}-{man.media_id}{SUFFIX}"
            mf.write(path, data)
            entry = ClipEntry(man, created, len(data), path)
            self._index(entry)
            self._remove_expectation(man.alert_id)
            return entry

    def pending(self) -> list[ClipEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.created)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def read(self, media_id: str) -> mf.MediaFile | None:
        """An entry's bytes, checked; None if gone (a damaged one is discarded, audited)."""
        with self._lock:
            entry = self._entries.get(media_id)
            if entry is None:
                return None
            try:
                return mf.read(entry.path)
            except mf.MediaFileError as exc:
                self._drop(entry)
                self._discard(entry.path, str(exc))
                return None

    def _drop(self, entry: ClipEntry) -> None:
        if self._entries.pop(entry.manifest.media_id, None) is not None:
            self._bytes -= entry.size

    def acknowledge(self, media_id: str, secret: bytes | None) -> bool:
        """Delete an entry the hub stored (its sealed secret) or noted (a notice: None)."""
        with self._lock:
            entry = self._entries.get(media_id)
            if entry is None:
                return False
            if entry.manifest.missing:
                if secret is not None:
                    return False
            else:
                if secret is None:
                    return False
                try:
                    own = mf.read(entry.path).ack_secret
                except mf.MediaFileError:
                    return False
                if not hmac.compare_digest(own, secret):
                    return False
            entry.path.unlink(missing_ok=True)
            fsync_dir(self.folder)
            self._drop(entry)
            return True

    def purge_expired(self) -> int:
        """Delete entries and expectations older than the retention period (audited)."""
        cutoff = self._clock() - self.retention_s
        purged = 0
        with self._lock:
            for entry in [e for e in self._entries.values() if e.created < cutoff]:
                entry.path.unlink(missing_ok=True)
                self._drop(entry)
                purged += 1
                self._audit(
                    "clips.retention_purge",
                    {"media_id": entry.manifest.media_id, "alert_id": entry.manifest.alert_id},
                )
            for path in self.folder.glob(f"*{EXPECT_SUFFIX}"):
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        purged += 1
                except OSError:
                    continue
            if purged:
                fsync_dir(self.folder)
        return purged

    @property
    def size_bytes(self) -> int:
        return self._bytes


def _parse_expectation(data: bytes) -> ExpectedClip:
    obj = json.loads(data)
    if not isinstance(obj, dict) or set(obj) != {"alert_id", "deployment_id", "at"}:
        raise ValueError("fields are not the expected set")
    alert_id, dep, at = obj["alert_id"], obj["deployment_id"], obj["at"]
    if not isinstance(alert_id, str) or not ALERT_ID_RE.fullmatch(alert_id):
        raise ValueError("bad alert id")
    if not isinstance(dep, str) or not NAME_RE.fullmatch(dep):
        raise ValueError("bad deployment id")
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        raise ValueError("bad time")
    return ExpectedClip(alert_id, dep, float(at))

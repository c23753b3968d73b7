"""The durable outbox: sealed alerts wait here, on disk, until the hub acknowledges them.

Layout of the outbox folder::

    sequence                      next per-device alert sequence number (atomic, fsynced)
    <seq:020d>-<alert id>.alert   one entry per sealed alert
    .tmp-<seq>.alert              an entry being written (never published)
    .tmp-sequence                 the sequence number being written
    quarantine/                   entries found damaged (kept for inspection, then purged
                                  at the same retention period as alerts)

An entry is written to a temporary file, fsynced, renamed into place and the folder
fsynced, and only then handed to the publisher. A power cut can therefore only tear
a temporary file (deleted on open, audited with its name: the sequence number that was
never stored) — but a damaged entry file is still detected by its length and SHA-256
and moved to ``quarantine/`` (audited), never published.

Entry bytes (all integers big-endian)::

    magic       8   b"LFROBX2\\n"
    created     8   unsigned, Unix milliseconds when the entry was written
    seq         8   unsigned, the alert's sequence number
    alert_id   16   the alert id (raw 128 bits)
    ack_secret 16   the secret sealed inside the envelope; an ack must carry it
    length      4   unsigned, envelope length in bytes
    sha256     32   SHA-256 of every byte before it and of the envelope
    envelope   length bytes

Entries of the first format (magic ``b"LFROBX1\\n"``, no ``ack_secret``, SHA-256 of the
envelope only) are still read and published, but no acknowledgement can delete them:
nothing proves the hub stored them, so they stay until the retention period (logged
once when the outbox is opened).

Full outbox: when adding an alert would exceed ``max_bytes`` the outbox refuses it
(``OutboxFullError``, an audit event and the alarm) instead of evicting an older,
unacknowledged alert: dropping evidence silently is worse than a loud stop that the
health status shows. Entries older than the retention period are purged (audited)
whether or not they were acknowledged, because alert records may not be kept longer.

A disk that fails under the outbox (full file system, I/O error) surfaces as an
``OutboxError`` naming the file and the problem, never as a bare ``OSError``: the
caller then holds the alert and stops capture instead of losing it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from agent.config import OutboxSection
from agent.durable_files import fsync_dir, write_atomic
from agent.errors import LfrError
from agent.trust.alert_envelope import ACK_SECRET_BYTES

log = logging.getLogger(__name__)

AuditFn = Callable[[str, dict[str, object]], None]
#: Called with (active, message) whenever the fill alarm turns on or off. It runs with the
#: outbox lock held, so it must only record the state (e.g. for the health status).
AlarmFn = Callable[[bool, str], None]

MAGIC = b"LFROBX2\n"
_HEAD = struct.Struct(">8sQQ16s16sI32s")
HEADER_LEN = _HEAD.size
_DIGEST_AT = HEADER_LEN - 32
LEGACY_MAGIC = b"LFROBX1\n"
_LEGACY_HEAD = struct.Struct(">8sQQ16sI32s")
SUFFIX = ".alert"


class OutboxError(LfrError):
    """The outbox cannot store or read an entry."""


class OutboxFullError(OutboxError):
    """The outbox is at its size cap; the new alert was refused (nothing was dropped)."""


@dataclass(frozen=True)
class OutboxEntry:
    alert_id: str
    seq: int
    created: float
    size: int
    path: Path
    #: None for an entry of the first format, which no acknowledgement can delete.
    ack_secret: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DecodedEntry:
    alert_id: str
    seq: int
    created: float
    envelope: bytes
    ack_secret: bytes | None = field(repr=False)


class AckResult(Enum):
    DELETED = "deleted"
    UNKNOWN = "unknown"  # not (or no longer) in the outbox: e.g. an ack for a duplicate
    REFUSED = "refused"  # the proof does not match (or the entry cannot be acknowledged)


def _write_durably(path: Path, data: bytes, tmp_name: str) -> None:
    # The outbox lock is held: the temporary file can have a fixed name.
    try:
        write_atomic(path, data, 0o600, tmp_name=tmp_name)
    except OSError as exc:
        raise OutboxError(f"outbox: cannot write {path}: {_os_problem(exc)}") from exc


def _os_problem(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def encode_entry(
    alert_id: str, seq: int, envelope: bytes, created: float, ack_secret: bytes | None = None
) -> bytes:
    """Entry bytes. Without ``ack_secret`` a random one is drawn: such an entry can leave
    the outbox only by retention (useful for tests and rigs that fake entries)."""
    secret = secrets.token_bytes(ACK_SECRET_BYTES) if ack_secret is None else ack_secret
    if len(secret) != ACK_SECRET_BYTES:
        raise ValueError(f"an ack secret is {ACK_SECRET_BYTES} bytes")
    head = _HEAD.pack(
        MAGIC, int(created * 1000), seq, bytes.fromhex(alert_id), secret, len(envelope), b""
    )[:_DIGEST_AT]
    return head + hashlib.sha256(head + envelope).digest() + envelope


def decode_entry(data: bytes) -> DecodedEntry:
    """Parse entry bytes (either format); raise OutboxError if torn or damaged."""
    if data[:8] == LEGACY_MAGIC:
        return _decode_legacy_entry(data)
    if len(data) < HEADER_LEN:
        raise OutboxError("entry shorter than its header")
    magic, created_ms, seq, aid, secret, length, digest = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise OutboxError("entry has a bad magic number")
    envelope = data[HEADER_LEN:]
    if len(envelope) != length:
        raise OutboxError(f"entry length {len(envelope)} differs from its header ({length})")
    if hashlib.sha256(data[:_DIGEST_AT] + envelope).digest() != digest:
        raise OutboxError("entry checksum does not match")
    return DecodedEntry(aid.hex(), seq, created_ms / 1000.0, envelope, secret)


def _decode_legacy_entry(data: bytes) -> DecodedEntry:
    if len(data) < _LEGACY_HEAD.size:
        raise OutboxError("entry shorter than its header")
    _, created_ms, seq, aid, length, digest = _LEGACY_HEAD.unpack_from(data)
    envelope = data[_LEGACY_HEAD.size :]
    if len(envelope) != length:
        raise OutboxError(f"entry length {len(envelope)} differs from its header ({length})")
    if hashlib.sha256(envelope).digest() != digest:
        raise OutboxError("entry checksum does not match")
    return DecodedEntry(aid.hex(), seq, created_ms / 1000.0, envelope, None)


class AlertOutbox:
    """A folder of sealed alerts awaiting acknowledgement. Thread-safe."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        alarm_fraction: float,
        retention_s: float,
        audit: AuditFn,
        alarm: AlarmFn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.alarm_fraction = alarm_fraction
        self.retention_s = retention_s
        self._audit = audit
        self._alarm_cb = alarm
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, OutboxEntry] = {}
        self._refused: set[str] = set()
        self._bytes = 0
        self.alarm_active = False
        self._open()

    # ---- opening ----------------------------------------------------------------
    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        discarded = 0
        for tmp in self.folder.glob(".tmp-*"):
            # A write that never completed its rename: it was never published.
            tmp.unlink()
            discarded += 1
            self._audit("outbox.incomplete_write_discarded", {"file": tmp.name})
        if discarded:
            fsync_dir(self.folder)
        legacy = 0
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                data = path.read_bytes()
                d = decode_entry(data)
                if path.name != f"{d.seq:020d}-{d.alert_id}{SUFFIX}":
                    raise OutboxError("entry name does not match its header")
            except OutboxError as exc:
                self._quarantine(path, str(exc))
                continue
            legacy += d.ack_secret is None
            self._add_index(
                OutboxEntry(d.alert_id, d.seq, d.created, len(data), path, d.ack_secret)
            )
        if legacy:
            log.warning(
                "outbox: %d entries of the first format (no ack secret): they are sent "
                "as usual but kept until the retention period",
                legacy,
            )
            self._audit("outbox.legacy_entries", {"count": legacy})
        self._check_alarm()

    def _quarantine(self, path: Path, reason: str) -> None:
        qdir = self.quarantine_dir
        qdir.mkdir(exist_ok=True, mode=0o700)
        os.replace(path, qdir / path.name)
        # Both folders changed: the entry left one and arrived in the other.
        fsync_dir(qdir)
        fsync_dir(self.folder)
        log.error("outbox: damaged entry %s quarantined (%s)", path.name, reason)
        self._audit("outbox.entry_quarantined", {"file": path.name, "reason": reason})

    @property
    def quarantine_dir(self) -> Path:
        return self.folder / "quarantine"

    def _add_index(self, entry: OutboxEntry) -> None:
        self._entries[entry.alert_id] = entry
        self._bytes += entry.size

    # ---- sequence ---------------------------------------------------------------
    def next_sequence(self) -> int:
        """Allocate the next alert sequence number; it is on disk before it is returned."""
        with self._lock:
            path = self.folder / "sequence"
            try:
                current = int(path.read_text(encoding="ascii").strip() or "0")
            except FileNotFoundError:
                current = 0
            except ValueError as exc:
                raise OutboxError(f"outbox: {path}: not a sequence number") from exc
            except OSError as exc:
                raise OutboxError(f"outbox: cannot read {path}: {_os_problem(exc)}") from exc
            # Never reuse a number still held by a pending entry, even if the counter
            # file was restored from an old backup.
            current = max([current, *(e.seq for e in self._entries.values())])
            _write_durably(path, f"{current + 1}\n".encode("ascii"), ".tmp-sequence")
            return current + 1

    # ---- entries ----------------------------------------------------------------
    def add(self, alert_id: str, seq: int, envelope: bytes, ack_secret: bytes) -> OutboxEntry:
        """Store a sealed alert and its ack secret durably. OutboxFullError at the size cap.

        Storing an alert that is already stored returns its entry: a caller retrying
        after an error that came once the entry was durable must not see a refusal."""
        data = encode_entry(alert_id, seq, envelope, self._clock(), ack_secret)
        with self._lock:
            existing = self._entries.get(alert_id)
            if existing is not None:
                if existing.seq != seq:
                    raise OutboxError(
                        f"outbox: alert {alert_id} is already stored under sequence {existing.seq}"
                    )
                return existing
            if self._bytes + len(data) > self.max_bytes:
                msg = (
                    f"outbox: full ({self._bytes} of {self.max_bytes} bytes); "
                    f"alert {alert_id} refused"
                )
                # The caller holds a refused alert and retries it every tick: one log
                # line and one audit entry per alert, not per attempt.
                if alert_id not in self._refused:
                    self._refused.add(alert_id)
                    log.error("%s", msg)
                    self._audit(
                        "outbox.full_refused",
                        {
                            "alert_id": alert_id,
                            "seq": seq,
                            "bytes": self._bytes,
                            "cap": self.max_bytes,
                        },
                    )
                self._set_alarm(True, msg)
                raise OutboxFullError(msg)
            path = self.folder / f"{seq:020d}-{alert_id}{SUFFIX}"
            _write_durably(path, data, f".tmp-{seq}{SUFFIX}")
            self._refused.discard(alert_id)
            created = decode_entry(data).created
            entry = OutboxEntry(alert_id, seq, created, len(data), path, ack_secret)
            self._add_index(entry)
            try:
                self._check_alarm()
            except LfrError as exc:
                # The alert is on disk; an alarm that cannot be audited must not make
                # the caller think it was refused.
                log.error("outbox: alarm could not be recorded: %s", exc)
            return entry

    def pending(self) -> list[OutboxEntry]:
        """Unacknowledged entries, oldest sequence first."""
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.seq)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, alert_id: object) -> bool:
        with self._lock:
            return alert_id in self._entries

    def read(self, alert_id: str) -> bytes | None:
        """The envelope of a pending entry (re-verified), or None if it is no longer here."""
        with self._lock:
            entry = self._entries.get(alert_id)
            if entry is None:
                return None
            try:
                envelope = decode_entry(entry.path.read_bytes()).envelope
            except (OSError, OutboxError) as exc:
                self._drop_index(entry)
                if entry.path.exists():
                    self._quarantine(entry.path, str(exc))
                return None
            return envelope

    def _drop_index(self, entry: OutboxEntry) -> None:
        if self._entries.pop(entry.alert_id, None) is not None:
            self._bytes -= entry.size

    def acknowledge(self, alert_id: str, ack_secret: bytes) -> AckResult:
        """Delete an entry the hub acknowledged, only if ``ack_secret`` is the entry's own."""
        with self._lock:
            entry = self._entries.get(alert_id)
            if entry is None:
                return AckResult.UNKNOWN
            if entry.ack_secret is None or not hmac.compare_digest(entry.ack_secret, ack_secret):
                return AckResult.REFUSED
            entry.path.unlink(missing_ok=True)
            fsync_dir(self.folder)
            self._drop_index(entry)
            self._check_alarm()
            return AckResult.DELETED

    def purge_expired(self) -> int:
        """Delete entries (and quarantined files) older than the retention period; each
        deletion is audited. Returns how many pending entries were deleted."""
        cutoff = self._clock() - self.retention_s
        purged = 0
        with self._lock:
            for entry in sorted(self._entries.values(), key=lambda e: e.seq):
                if entry.created >= cutoff:
                    continue
                entry.path.unlink(missing_ok=True)
                self._drop_index(entry)
                purged += 1
                self._audit(
                    "outbox.retention_purge",
                    {"alert_id": entry.alert_id, "seq": entry.seq, "created": entry.created},
                )
            if purged:
                fsync_dir(self.folder)
                self._check_alarm()
            self._purge_quarantine(cutoff)
        return purged

    def _purge_quarantine(self, cutoff: float) -> int:
        """Delete quarantined entries older than the retention period (by file time: a
        damaged header cannot be trusted for its date); each deletion is audited."""
        qdir = self.quarantine_dir
        if not qdir.is_dir():
            return 0
        purged = 0
        for path in sorted(qdir.iterdir()):
            try:
                written = path.stat().st_mtime
                if written >= cutoff:
                    continue
                path.unlink()
            except OSError as exc:
                log.error("outbox: quarantined %s not purged: %s", path.name, _os_problem(exc))
                continue
            purged += 1
            self._audit("outbox.quarantine_purge", {"file": path.name, "written": written})
        if purged:
            fsync_dir(qdir)
        return purged

    # ---- size and alarm ---------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def fill_fraction(self) -> float:
        return self._bytes / self.max_bytes

    def _check_alarm(self) -> None:
        active = self.fill_fraction >= self.alarm_fraction
        if active != self.alarm_active:
            self._set_alarm(
                active,
                f"outbox: {self.fill_fraction:.0%} full ({self._bytes} of {self.max_bytes} bytes)",
            )

    def _set_alarm(self, active: bool, message: str) -> None:
        if active == self.alarm_active:
            return
        self.alarm_active = active
        self._audit(
            "outbox.alarm_on" if active else "outbox.alarm_off",
            {"bytes": self._bytes, "cap": self.max_bytes},
        )
        if active:
            log.warning("%s", message)
        if self._alarm_cb is not None:
            self._alarm_cb(active, message)


def open_outbox(
    section: OutboxSection, state_dir: Path, audit: AuditFn, alarm: AlarmFn | None = None
) -> AlertOutbox:
    """The outbox as configured: ``<paths.state_dir>/outbox`` with the ``[outbox]`` limits."""
    return AlertOutbox(
        state_dir / "outbox",
        max_bytes=section.max_mb * 1024 * 1024,
        alarm_fraction=section.alarm_fraction,
        retention_s=section.retention_days * 86400.0,
        audit=audit,
        alarm=alarm,
    )

"""The append-only, hash-chained, periodically signed audit log.

One canonical-JSON object per line::

    {"event":"gate.opened","fields":{...},"prev":"<hex sha-256 of the previous line>",
     "seq":7,"time":"2026-11-22T05:20:23.123Z"}

``prev`` of the first entry is 64 zeros; the hash is over the previous line's
bytes without its newline. Each line is written with one ``write`` and
fsynced. Right after every security-relevant entry (events starting with
``gate.``, ``control.``, ``watchlist.``, ``deployment.``, ``alert.``, ``outbox.``, ``camera.`` or
``agent.``, and ``audit.recovered``), every ``checkpoint_every`` entries, and on
close, a checkpoint entry
(event ``audit.checkpoint``) is added whose ``sig`` is the device key's
Ed25519 signature over the DSSE pre-authentication encoding of
``CHECKPOINT_TYPE`` and the entry's canonical bytes without ``sig``; as the
entry holds ``prev``, it signs the whole chain before it.

A power cut can tear the last line. Each line is written with its newline in one
``write``, but the kernel may hand it to the disk in pieces (at page boundaries) and
the disk may keep any of them: the last line may lack its newline, or end with it
but have lost an earlier piece (zeros in its place). On the next open the last line
is always terminated with a newline; a complete entry is simply continued from,
while a torn line (no newline, or zeros where a piece was lost) is kept (it is
evidence) and an ``audit.recovered`` entry naming its line number is appended,
chained from the last good entry. ``verify_audit_log`` accepts a bad line only in
those two places: as the very last line if it looks torn ("torn tail") or right
before the matching ``audit.recovered`` entry.

Field values are limited to short strings, numbers, booleans and null, and
field names that suggest biometric content are refused outright.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.config import AgentConfig
from agent.durable_files import fsync_dir
from agent.errors import CheckFailed, LfrError
from agent.trust.signed_document import (
    UntrustedJsonError,
    b64e,
    canonical_json,
    key_id,
    loads_untrusted,
    pae,
)

AUDIT_FILE = "audit.jsonl"  # under paths.state_dir
CHECKPOINT_TYPE = "application/vnd.lfr.audit-checkpoint+json; v=1"
CHECKPOINT_EVENT = "audit.checkpoint"
RECOVERED_EVENT = "audit.recovered"
# Entries of these kinds are followed at once by a signed checkpoint, so the
# unsigned tail (which anyone with the file could rewrite) never holds one.
SECURITY_EVENT_PREFIXES = (
    "gate.",
    "control.",
    "watchlist.",
    "deployment.",
    "alert.",
    "agent.",
    "outbox.",  # retention purges are deletion records (alerts kept at most 31 days)
    "camera.",  # the camera opened outside a deployment (probe)
    "console.",  # the hub's log: logins, logouts
    "user.",  # the hub's log: console accounts added, disabled, passwords changed
)
GENESIS_PREV = "0" * 64
ENTRY_KEYS = {"seq", "time", "event", "fields", "prev"}
EVENT_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
FIELD_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,47}")
MAX_STRING = 256
# Field names that could carry biometric data are refused whatever their value.
FORBIDDEN_FIELD_PARTS = (
    "embedding",
    "crop",
    "image",
    "pixel",
    "landmark",
    "score",
    "template",
    "vector",
    "biometric",
    "photo",
    "jpeg",
)

FieldValue = str | int | float | bool | None


class AuditFieldRefused(LfrError):
    """An audit entry was refused: bad event name, field name or field value."""


class AuditLogError(CheckFailed):
    """The audit log does not verify (edited, removed, reordered or truncated lines)."""


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_fields(event: str, fields: dict[str, Any]) -> None:
    """Refuse anything that is not an allowed event name and plain, short, non-biometric fields."""
    if not EVENT_PATTERN.fullmatch(event):
        raise AuditFieldRefused(f"audit: event name {event[:40]!r} is not allowed")
    for name, value in fields.items():
        if not FIELD_PATTERN.fullmatch(name):
            raise AuditFieldRefused(f"audit: field name {name[:40]!r} is not allowed")
        if any(part in name for part in FORBIDDEN_FIELD_PARTS):
            raise AuditFieldRefused(f"audit: field {name!r} may hold biometric data; refused")
        if value is None or isinstance(value, (bool, int)):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise AuditFieldRefused(f"audit: field {name!r} is not a finite number")
            continue
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise AuditFieldRefused(f"audit: field {name!r} is longer than {MAX_STRING}")
            continue
        raise AuditFieldRefused(
            f"audit: field {name!r} has type {type(value).__name__}; only str, int, float,"
            " bool or None"
        )


def _parse_entry(line: bytes) -> dict[str, Any] | None:
    """The entry on ``line`` if it is a well-formed canonical entry, else None."""
    try:
        entry = loads_untrusted(line)
    except UntrustedJsonError:
        return None
    if not isinstance(entry, dict) or canonical_json(entry) != line:
        return None
    keys = set(entry)
    if keys != ENTRY_KEYS and keys != ENTRY_KEYS | {"sig"}:
        return None
    seq, prev, fields = entry["seq"], entry["prev"], entry["fields"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None
    if not isinstance(prev, str) or not isinstance(fields, dict):
        return None
    if not isinstance(entry["event"], str) or not isinstance(entry["time"], str):
        return None
    return entry


def _looks_torn(line: bytes, terminated: bool) -> bool:
    """A bad last line is a torn write if its newline never reached the disk, or a piece
    of it was lost: an append's lost piece reads back as zeros, which no entry holds."""
    return not terminated or b"\x00" in line


def _checkpoint_message(entry: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in entry.items() if k != "sig"}
    return pae(CHECKPOINT_TYPE, canonical_json(unsigned))


class AuditLog:
    """Appends audit entries; safe across threads and across processes (the daemon and
    a technician's command may hold the same log open). Use ``AuditLog.open``."""

    def __init__(
        self,
        path: Path,
        fd: int,
        signing_key: Ed25519PrivateKey,
        checkpoint_every: int,
        wall: Callable[[], float],
    ) -> None:
        self.path = path
        self._fd = fd
        self._key = signing_key
        self._key_id = key_id(signing_key.public_key())
        self._every = checkpoint_every
        self._wall = wall
        self._lock = threading.Lock()
        self._closed = False
        # The chain as far as this object has read the file: the last entry's sequence
        # and line hash, entries since the last checkpoint, lines and bytes read.
        self._seq = 0
        self._prev = GENESIS_PREV
        self._since_checkpoint = 0
        self._lines = 0
        self._end = 0
        self.recovered_torn_line: int | None = None

    @classmethod
    def open(
        cls,
        path: Path,
        device_signing_key: Ed25519PrivateKey,
        checkpoint_every: int,
        wall: Callable[[], float] = time.time,
    ) -> AuditLog:
        """Open (or create) the log; recover from a torn final line; continue the chain."""
        if checkpoint_every < 1:
            raise AuditFieldRefused("audit: checkpoint_every must be at least 1")
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LfrError(f"audit: {path}: cannot open ({exc.strerror})") from exc
        if not existed:
            fsync_dir(path.parent)
        log = cls(path, fd, device_signing_key, checkpoint_every, wall)
        try:
            with log._lock, log._file_locked():
                pass  # reading the file to its end is all an open needs
        except BaseException:
            os.close(fd)
            raise
        return log

    @contextlib.contextmanager
    def _file_locked(self) -> Iterator[None]:
        """Hold the file lock and first catch up with what other writers appended."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise LfrError(f"audit: {self.path}: cannot lock ({exc.strerror})") from exc
        try:
            self._catch_up()
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        try:
            size = os.fstat(self._fd).st_size
            data = os.pread(self._fd, size - self._end, self._end) if size > self._end else b""
        except OSError as exc:
            raise LfrError(f"audit: {self.path}: read failed ({exc.strerror})") from exc
        if not data:
            return
        self._end += len(data)
        lines = data.split(b"\n")
        ends_clean = lines[-1] == b""
        if ends_clean:
            lines.pop()
        torn: tuple[int, int] | None = None
        for i, line in enumerate(lines, start=1):
            self._lines += 1
            entry = _parse_entry(line)
            if entry is None:
                # Only the last line is a torn write (a writer died in its write, or the
                # power went before all of it reached the disk, newline or not);
                # anything else is left for verify to report.
                if i == len(lines) and _looks_torn(line, ends_clean):
                    torn = (self._lines, len(line))
                continue
            self._seq, self._prev = entry["seq"], line_hash(line)
            self._since_checkpoint = (
                0 if entry["event"] == CHECKPOINT_EVENT else self._since_checkpoint + 1
            )
        if not ends_clean:
            # A complete last entry without its newline (or a torn fragment) must be
            # terminated, or the next entry would be joined onto it for good.
            self._write_bytes(b"\n")
        if torn is not None:
            self.recovered_torn_line = torn[0]
            self._record_locked(RECOVERED_EVENT, {"torn_line": torn[0], "torn_bytes": torn[1]})

    def append(self, event: str, **fields: FieldValue) -> None:
        """Add one entry (fsynced before returning); may add a signed checkpoint after it."""
        check_fields(event, fields)
        if event in (CHECKPOINT_EVENT, RECOVERED_EVENT):
            raise AuditFieldRefused(f"audit: event {event!r} is reserved")
        with self._lock:
            if self._closed:
                raise LfrError(f"audit: {self.path}: log is closed")
            with self._file_locked():
                self._record_locked(event, dict(fields))

    def _record_locked(self, event: str, fields: dict[str, Any]) -> None:
        self._write(event, fields)
        self._since_checkpoint += 1
        if (
            self._since_checkpoint >= self._every
            or event == RECOVERED_EVENT
            or event.startswith(SECURITY_EVENT_PREFIXES)
        ):
            self._checkpoint()

    def checkpoint(self) -> None:
        with self._lock:
            if self._closed:
                return
            with self._file_locked():
                if self._since_checkpoint:
                    self._checkpoint()

    def close(self) -> None:
        """Sign a final checkpoint (unless the last entry is one) and close the file."""
        with self._lock:
            if self._closed:
                return
            try:
                with self._file_locked():
                    if self._since_checkpoint:
                        self._checkpoint()
            finally:
                self._closed = True
                os.close(self._fd)

    @property
    def last_sequence(self) -> int:
        return self._seq

    def head(self) -> tuple[int, str]:
        """(sequence, SHA-256 of the line) of the last entry, to anchor the chain in a
        report; (0, 64 zeros) for an empty log. A log cut back to an earlier point
        no longer contains an entry with this sequence and hash."""
        with self._lock:
            return self._seq, self._prev

    def _checkpoint(self) -> None:
        self._write(CHECKPOINT_EVENT, {"key_id": self._key_id}, sign=True)
        self._since_checkpoint = 0

    def _write(self, event: str, fields: dict[str, Any], sign: bool = False) -> None:
        entry: dict[str, Any] = {
            "seq": self._seq + 1,
            "time": _utc(self._wall()),
            "event": event,
            "fields": fields,
            "prev": self._prev,
        }
        if sign:
            entry["sig"] = b64e(self._key.sign(_checkpoint_message(entry)))
        line = canonical_json(entry)
        self._write_bytes(line + b"\n")
        self._seq += 1
        self._prev = line_hash(line)
        self._lines += 1

    def _write_bytes(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            raise LfrError(f"audit: {self.path}: write failed ({exc.strerror})") from exc
        if written != len(data):
            # Leave the fragment unread: the next catch-up terminates it and records
            # audit.recovered, so the next entry is not joined onto it.
            raise LfrError(f"audit: {self.path}: short write ({written} of {len(data)} bytes)")
        self._end += written


def audit_log_path(cfg: AgentConfig) -> Path:
    return cfg.paths.state_dir / AUDIT_FILE


def open_device_audit_log(cfg: AgentConfig, device_signing_key: Ed25519PrivateKey) -> AuditLog:
    """The device's audit log at its configured place, with the configured checkpoint interval."""
    return AuditLog.open(audit_log_path(cfg), device_signing_key, cfg.audit.checkpoint_every)


@dataclass
class AuditReport:
    """What ``verify_audit_log`` found in a log that verified."""

    entries: int = 0
    checkpoints: int = 0
    unsigned_tail: int = 0  # entries after the last checkpoint (chained, not yet signed)
    recovered_lines: list[int] = field(default_factory=list)
    torn_tail_line: int | None = None  # a torn final line not yet recovered (power cut)
    head: tuple[int, str] = (0, GENESIS_PREV)  # (seq, line hash) of the last entry


def verify_audit_log(
    data: bytes, public_key: Ed25519PublicKey, anchors: Mapping[int, str] | None = None
) -> AuditReport:
    """Verify chain, sequence and checkpoint signatures; raise AuditLogError at the first fault.

    ``anchors`` maps sequence numbers to the line hashes recorded elsewhere (the
    ``audit_seq``/``audit_sha256`` a deployment report carries to the hub): a log cut
    back before an anchor, or rewritten under it, fails although its own chain holds.
    """
    anchors = dict(anchors or {})
    report = AuditReport()
    lines = data.split(b"\n")
    ends_clean = lines[-1] == b""
    if ends_clean:
        lines.pop()
    kid = key_id(public_key)
    prev_hash, prev_seq, prev_line = GENESIS_PREV, 0, 0
    pending_torn: int | None = None
    for i, line in enumerate(lines, start=1):
        entry = _parse_entry(line)
        if entry is None:
            if i == len(lines) and _looks_torn(line, ends_clean):
                report.torn_tail_line = i
                break
            if pending_torn is not None:
                raise AuditLogError(f"line {pending_torn}: not a valid entry")
            pending_torn = i
            continue
        if pending_torn is not None:
            if (
                entry["event"] != RECOVERED_EVENT
                or entry["fields"].get("torn_line") != pending_torn
            ):
                raise AuditLogError(f"line {pending_torn}: not a valid entry (edited or truncated)")
            report.recovered_lines.append(pending_torn)
            pending_torn = None
        where = f"line {i} (seq {entry['seq']})"
        if entry["seq"] != prev_seq + 1:
            raise AuditLogError(
                f"{where}: sequence follows {prev_seq} (a line was removed or reordered)"
            )
        if entry["prev"] != prev_hash:
            after = f"line {prev_line}" if prev_line else "the start"
            raise AuditLogError(
                f"{where}: does not chain to {after} (a line was edited, removed or reordered)"
            )
        if entry["event"] == CHECKPOINT_EVENT:
            if entry["fields"].get("key_id") != kid:
                raise AuditLogError(f"{where}: checkpoint signed by another key")
            try:
                sig = base64.b64decode(str(entry.get("sig")), validate=True)
                public_key.verify(sig, _checkpoint_message(entry))
            except (InvalidSignature, binascii.Error, ValueError) as exc:
                raise AuditLogError(f"{where}: checkpoint signature does not verify") from exc
            report.checkpoints += 1
            report.unsigned_tail = 0
        else:
            if "sig" in entry:
                raise AuditLogError(f"{where}: unexpected signature on a plain entry")
            report.unsigned_tail += 1
        report.entries += 1
        prev_hash, prev_seq, prev_line = line_hash(line), entry["seq"], i
        expected = anchors.pop(prev_seq, None)
        if expected is not None and expected != prev_hash:
            raise AuditLogError(f"{where}: is not the entry anchored elsewhere (log rewritten)")
    if pending_torn is not None:
        raise AuditLogError(f"line {pending_torn}: not a valid entry (edited)")
    if anchors:
        raise AuditLogError(
            f"the log ends at seq {prev_seq}, before the anchored seq {min(anchors)}"
            " (entries were cut off its end)"
        )
    report.head = (prev_seq, prev_hash)
    return report

"""The hub's alert database (embedded SQLite): alerts, their crops, operator adjudications,
and the registry of enrolled device signing keys.

Every alert id is stored exactly once: ``alerts.alert_id`` is the primary key, so several
receiver workers sharing the load (and redeliveries after a crash) cannot create a second
row. ``(device_id, key_id, seq)`` is unique too: a different envelope re-using a device's
sequence number under the same signing key is refused. ``key_id`` is the SHA-256 of the
device signing key that verified the alert: a re-flashed camera, re-approved with
``device approve --replace``, has a new key and starts its sequence again, so its new
alerts must not clash with the old key's alerts or tombstones. (Databases made before
this get the device's enrolled key at the time of the upgrade for their rows.)

``alerts.ack_secret`` keeps the secret sealed inside each alert, which the hub's
acknowledgement must carry for the device to delete its copy (NULL for alerts from
devices that predate it). It is only a proof of receipt, not content.

A retention purge deletes an alert with its crops and outcomes but leaves a tombstone
in ``purged_alerts``: the id, device, sequence, envelope hash and ack secret, nothing
about the face or the match. A camera that never got its ack keeps re-sending; the
tombstone makes such a late copy a duplicate (acknowledged, never stored again), and a
different envelope re-using the id or sequence a conflict. Every purge run, including
one that found nothing, is a row of ``purge_log``: the hub's record that retention ran.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import LfrError, UsageError
from agent.trust.alert_envelope import OpenedAlert
from agent.trust.signed_document import key_id as public_key_id

log = logging.getLogger(__name__)
_CHECKPOINT_ATTEMPTS = 3
_CHECKPOINT_WAIT_MS = 500
_CHECKPOINT_PAUSE_S = 0.2

OUTCOMES = ("true-alert", "false-alert", "confirmed-true", "confirmed-false")
AuditFn = Callable[[str, dict[str, object]], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_keys (
    device_id   TEXT PRIMARY KEY,
    public_pem  TEXT NOT NULL,
    added_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id        TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    deployment_id   TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    sealed_at       REAL NOT NULL,
    received_at     REAL NOT NULL,
    watchlist_entry TEXT NOT NULL,
    score           REAL NOT NULL,
    threshold       REAL NOT NULL,
    model_id        TEXT NOT NULL,
    track_id        INTEGER NOT NULL,
    first_seen      REAL NOT NULL,
    decided_at      REAL NOT NULL,
    quality_json    TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    ack_secret      BLOB,
    key_id          TEXT NOT NULL DEFAULT '',
    UNIQUE (device_id, key_id, seq)
);
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at);
CREATE TABLE IF NOT EXISTS crops (
    alert_id TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('probe', 'scene')),
    jpeg     BLOB NOT NULL,
    PRIMARY KEY (alert_id, kind)
);
CREATE TABLE IF NOT EXISTS purge_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    older_than_s REAL NOT NULL,
    cutoff       REAL NOT NULL,
    alerts       INTEGER NOT NULL,
    by_ref       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS purged_alerts (
    alert_id        TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    ack_secret      BLOB,
    purge_id        INTEGER NOT NULL REFERENCES purge_log (id),
    key_id          TEXT NOT NULL DEFAULT '',
    UNIQUE (device_id, key_id, seq)
);
CREATE TABLE IF NOT EXISTS adjudications (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id  TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    outcome   TEXT NOT NULL,
    by_ref    TEXT NOT NULL,
    at        REAL NOT NULL
);
"""

# The columns ``_row`` reads, in its order.
_ALERT_COLUMNS = (
    "alert_id, device_id, deployment_id, seq, sealed_at, received_at, watchlist_entry, "
    "score, threshold, model_id, track_id, first_seen, decided_at, quality_json"
)
_A_COLUMNS = ", ".join(f"a.{c.strip()}" for c in _ALERT_COLUMNS.split(","))


class AlertStoreError(LfrError):
    """The alert database cannot be opened or does not hold what was asked for."""


class StoreResult(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same alert id, same envelope: a redelivery
    CONFLICT = "conflict"  # same alert id, or (device, key, seq), with different bytes: refused


@dataclass(frozen=True)
class AlertRow:
    alert_id: str
    device_id: str
    deployment_id: str
    seq: int
    sealed_at: float
    received_at: float
    watchlist_entry: str
    score: float
    threshold: float
    model_id: str
    track_id: int
    first_seen: float
    decided_at: float
    quality: dict[str, float]
    outcome: str | None
    outcome_by: str | None


@dataclass(frozen=True)
class PurgeRecord:
    """One run of the retention purge."""

    purge_id: int
    at: float
    older_than_s: float
    cutoff: float
    alerts: int
    by_ref: str


class AlertStore:
    """One connection per store object; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Face crops live here: operator-only, and SQLite gives its -wal and -shm
            # files the same mode as the database file.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA synchronous=FULL")
            # Deleted crops are overwritten with zeros instead of lingering in free pages.
            self._db.execute("PRAGMA secure_delete=ON")
            # Off while the schema is upgraded: rebuilding the alerts table drops the old
            # one, which would otherwise cascade to every crop and adjudication.
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._init_schema()
            self._db.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise AlertStoreError(f"alert store: {path}: cannot open ({exc})") from exc
        self._lock = threading.Lock()
        self._checkpoint_pending = False

    def _init_schema(self) -> None:
        # Switching to WAL takes an exclusive lock that SQLite's busy handler does not
        # wait for; several workers opening the same file at once retry briefly.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(alerts)")}
                if "ack_secret" not in columns:
                    # A database made before acks carried a proof: same place as new.
                    self._db.execute("ALTER TABLE alerts ADD COLUMN ack_secret BLOB")
                self._add_key_ids()
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _add_key_ids(self) -> None:
        """Rebuild tables from before per-key sequences (SQLite cannot change a UNIQUE
        constraint in place); their rows get the device's key enrolled now."""
        kids = {}
        for device, pem in self._db.execute("SELECT device_id, public_pem FROM device_keys"):
            key = _signing_key(pem)
            if key is not None:
                kids[str(device)] = public_key_id(key)
        for table in ("alerts", "purged_alerts"):
            columns = [r[1] for r in self._db.execute(f"PRAGMA table_info({table})")]
            if "key_id" in columns:
                continue
            create = next(
                st for st in _SCHEMA.split(";") if f"CREATE TABLE IF NOT EXISTS {table} (" in st
            )
            self._db.execute(create.replace(f"IF NOT EXISTS {table} (", f"{table}_rekeyed ("))
            cols = ", ".join(columns)
            self._db.execute(f"INSERT INTO {table}_rekeyed ({cols}) SELECT {cols} FROM {table}")
            self._db.executemany(
                f"UPDATE {table}_rekeyed SET key_id = ? WHERE device_id = ?",
                [(kid, device) for device, kid in kids.items()],
            )
            self._db.execute(f"DROP TABLE {table}")
            self._db.execute(f"ALTER TABLE {table}_rekeyed RENAME TO {table}")
        self._db.execute("CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at)")
        broken = self._db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise sqlite3.IntegrityError(f"schema upgrade broke {len(broken)} references")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- device keys ----------------------------------------------------------------
    def register_device_key(self, device_id: str, key: Ed25519PublicKey) -> None:
        """Enrol (or replace) the Ed25519 key that signs ``device_id``'s alerts."""
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        with self._tx() as db:
            db.execute(
                "INSERT INTO device_keys VALUES (?, ?, ?) ON CONFLICT (device_id) DO UPDATE "
                "SET public_pem = excluded.public_pem, added_at = excluded.added_at",
                (device_id, pem, time.time()),
            )

    def device_key(self, device_id: str) -> Ed25519PublicKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT public_pem FROM device_keys WHERE device_id = ?", (device_id,)
            ).fetchone()
        return None if row is None else _signing_key(row[0])

    # ---- alerts ---------------------------------------------------------------------
    def store_alert(
        self,
        alert: OpenedAlert,
        received_at: float | None = None,
        *,
        key: Ed25519PublicKey | None = None,
    ) -> StoreResult:
        """Insert an opened alert exactly once; the commit is durable when this returns.

        ``key`` is the device key that verified the alert (default: the one enrolled
        now); sequence numbers clash only within one key.
        """
        h, c = alert.header, alert.content
        key = key or self.device_key(h.device)
        kid = "" if key is None else public_key_id(key)
        try:
            with self._tx() as db:
                existing = db.execute(
                    "SELECT envelope_sha256 FROM alerts WHERE alert_id = ? UNION ALL "
                    "SELECT envelope_sha256 FROM purged_alerts WHERE alert_id = ?",
                    (h.alert_id, h.alert_id),
                ).fetchone()
                if existing is not None:
                    same = existing[0] == alert.envelope_sha256
                    return StoreResult.DUPLICATE if same else StoreResult.CONFLICT
                if db.execute(
                    "SELECT 1 FROM purged_alerts WHERE device_id = ? AND key_id = ? AND seq = ?",
                    (h.device, kid, h.seq),
                ).fetchone():
                    return StoreResult.CONFLICT
                db.execute(
                    f"INSERT INTO alerts ({_ALERT_COLUMNS}, envelope_sha256, ack_secret, key_id) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        h.alert_id,
                        h.device,
                        h.deployment,
                        h.seq,
                        h.sealed_at,
                        time.time() if received_at is None else received_at,
                        c.watchlist_entry,
                        c.score,
                        c.threshold,
                        c.model_id,
                        c.track_id,
                        c.first_seen,
                        c.decided_at,
                        json.dumps(c.quality, sort_keys=True),
                        alert.envelope_sha256,
                        alert.ack_secret,
                        kid,
                    ),
                )
                db.execute("INSERT INTO crops VALUES (?, 'probe', ?)", (h.alert_id, c.probe_jpeg))
                if c.scene_jpeg is not None:
                    db.execute(
                        "INSERT INTO crops VALUES (?, 'scene', ?)", (h.alert_id, c.scene_jpeg)
                    )
        except sqlite3.IntegrityError:
            # Another worker inserted the same id between our check and insert, or the
            # (device, key, seq) is taken by a different alert.
            with self._lock:
                row = self._db.execute(
                    "SELECT envelope_sha256 FROM alerts WHERE alert_id = ?", (h.alert_id,)
                ).fetchone()
            if row is not None and row[0] == alert.envelope_sha256:
                return StoreResult.DUPLICATE
            return StoreResult.CONFLICT
        return StoreResult.STORED

    def ack_secret(self, alert_id: str) -> bytes | None:
        """The ack secret stored with an alert, or kept in its tombstone after a purge
        (None if unknown or from an older device)."""
        with self._lock:
            row = self._db.execute(
                "SELECT ack_secret FROM alerts WHERE alert_id = ? UNION ALL "
                "SELECT ack_secret FROM purged_alerts WHERE alert_id = ?",
                (alert_id, alert_id),
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM alerts").fetchone()[0])

    def list_alerts(
        self, *, device_id: str | None = None, limit: int = 50, unadjudicated: bool = False
    ) -> list[AlertRow]:
        sql = (
            f"SELECT {_A_COLUMNS}, (SELECT outcome FROM adjudications j WHERE j.alert_id = a.alert_id "
            "ORDER BY j.id DESC LIMIT 1), (SELECT by_ref FROM adjudications j "
            "WHERE j.alert_id = a.alert_id ORDER BY j.id DESC LIMIT 1) FROM alerts a"
        )
        where, params = [], []
        if device_id:
            where.append("a.device_id = ?")
            params.append(device_id)
        if unadjudicated:
            where.append("NOT EXISTS (SELECT 1 FROM adjudications j WHERE j.alert_id = a.alert_id)")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.received_at DESC, a.seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return [_row(r) for r in rows]

    def get(self, alert_id: str) -> AlertRow:
        """One alert by id or by a unique prefix of at least 6 hex digits."""
        if not re.fullmatch(r"[0-9a-fA-F]{6,32}", alert_id):
            raise UsageError(f"alert id {alert_id[:40]!r}: give 6–32 hex digits")
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_A_COLUMNS}, (SELECT outcome FROM adjudications j WHERE j.alert_id = a.alert_id "
                "ORDER BY j.id DESC LIMIT 1), (SELECT by_ref FROM adjudications j "
                "WHERE j.alert_id = a.alert_id ORDER BY j.id DESC LIMIT 1) "
                "FROM alerts a WHERE a.alert_id LIKE ? || '%' LIMIT 2",
                (alert_id.lower(),),
            ).fetchall()
        if not rows:
            raise AlertStoreError(f"alert {alert_id}: not in {self.path}")
        if len(rows) > 1:
            raise UsageError(f"alert id {alert_id!r}: matches more than one alert")
        return _row(rows[0])

    def crop(self, alert_id: str, kind: str = "probe") -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT jpeg FROM crops WHERE alert_id = ? AND kind = ?", (alert_id, kind)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def adjudicate(self, alert_id: str, outcome: str, by_ref: str) -> AlertRow:
        """Record an operator's outcome; later records supersede earlier ones (all kept)."""
        if outcome not in OUTCOMES:
            raise UsageError(f"outcome {outcome!r}: must be one of {', '.join(OUTCOMES)}")
        if not by_ref.strip():
            raise UsageError("adjudication: --by must name the operator or officer")
        row = self.get(alert_id)
        with self._tx() as db:
            db.execute(
                "INSERT INTO adjudications (alert_id, outcome, by_ref, at) VALUES (?, ?, ?, ?)",
                (row.alert_id, outcome, by_ref.strip(), time.time()),
            )
        return self.get(row.alert_id)

    def is_purged(self, alert_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM purged_alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return row is not None

    def purge_older_than(
        self, age_s: float, audit: AuditFn | None = None, *, by_ref: str = "alerts purge"
    ) -> int:
        """``purge`` returning only the number of alerts deleted."""
        return self.purge(age_s, audit, by_ref=by_ref).alerts

    def purge(
        self, age_s: float, audit: AuditFn | None = None, *, by_ref: str = "alerts purge"
    ) -> PurgeRecord:
        """Delete alerts (with crops and adjudications) received more than ``age_s`` ago,
        leave a tombstone for each and record the run in ``purge_log``, in one commit."""
        now = time.time()
        cutoff = now - age_s
        with self._tx() as db:
            rows = db.execute(
                "SELECT alert_id, device_id, seq, envelope_sha256, ack_secret, key_id "
                "FROM alerts WHERE received_at < ?",
                (cutoff,),
            ).fetchall()
            cur = db.execute(
                "INSERT INTO purge_log (at, older_than_s, cutoff, alerts, by_ref) "
                "VALUES (?, ?, ?, ?, ?)",
                (now, age_s, cutoff, len(rows), by_ref),
            )
            purge_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT OR IGNORE INTO purged_alerts (alert_id, device_id, seq, envelope_sha256, "
                "ack_secret, key_id, purge_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*r, purge_id) for r in rows],
            )
            db.execute("DELETE FROM alerts WHERE received_at < ?", (cutoff,))
        # The delete is committed: record it before anything else can fail.
        for r in rows:
            if audit is not None:
                audit("hub.alert_purged", {"alert_id": r[0]})
        if rows or self._checkpoint_pending:
            self._checkpoint_pending = not self._checkpoint()
        return PurgeRecord(purge_id, now, age_s, cutoff, len(rows), by_ref)

    def _checkpoint(self) -> bool:
        """Copy the write-ahead log into the database and truncate it; False if a reader
        kept it from completing (then the old pages, crops included, are still in -wal)."""
        # The write-ahead log still holds the purged pages until a checkpoint copies the
        # zeroed pages back. A reader on an older snapshot blocks it; retry briefly rather
        # than wait the whole busy timeout, and try again at the next purge.
        problem = "a reader kept it busy"
        with self._lock:
            try:
                self._db.execute(f"PRAGMA busy_timeout={_CHECKPOINT_WAIT_MS}")
                for attempt in range(_CHECKPOINT_ATTEMPTS):
                    busy, _log, _done = self._db.execute(
                        "PRAGMA wal_checkpoint(TRUNCATE)"
                    ).fetchone()
                    if busy == 0:
                        return True
                    if attempt + 1 < _CHECKPOINT_ATTEMPTS:
                        time.sleep(_CHECKPOINT_PAUSE_S)
            except sqlite3.Error as exc:
                problem = str(exc)
            finally:
                self._db.execute("PRAGMA busy_timeout=30000")
        log.warning(
            "alert store %s: checkpoint after purge incomplete (%s): purged pages stay in "
            "its -wal file until the next purge completes one",
            self.path,
            problem,
        )
        return False

    def purge_log(self, limit: int = 50) -> list[PurgeRecord]:
        """The latest purge runs, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, older_than_s, cutoff, alerts, by_ref FROM purge_log "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            PurgeRecord(int(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4]), str(r[5]))
            for r in rows
        ]


def _signing_key(pem: object) -> Ed25519PublicKey | None:
    """An enrolled device signing key as the ``device_keys`` table holds it (PEM text)."""
    key = serialization.load_pem_public_key(str(pem).encode("ascii"))
    return key if isinstance(key, Ed25519PublicKey) else None


def _row(r: tuple[object, ...]) -> AlertRow:
    return AlertRow(
        alert_id=str(r[0]),
        device_id=str(r[1]),
        deployment_id=str(r[2]),
        seq=int(r[3]),  # type: ignore[call-overload]
        sealed_at=float(r[4]),  # type: ignore[arg-type]
        received_at=float(r[5]),  # type: ignore[arg-type]
        watchlist_entry=str(r[6]),
        score=float(r[7]),  # type: ignore[arg-type]
        threshold=float(r[8]),  # type: ignore[arg-type]
        model_id=str(r[9]),
        track_id=int(r[10]),  # type: ignore[call-overload]
        first_seen=float(r[11]),  # type: ignore[arg-type]
        decided_at=float(r[12]),  # type: ignore[arg-type]
        quality=json.loads(str(r[13])),
        outcome=None if r[14] is None else str(r[14]),
        outcome_by=None if r[15] is None else str(r[15]),
    )

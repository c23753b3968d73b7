"""The hub's alert store: alerts, their crops, operator adjudications, retention purges
with their tombstones, and the registry of enrolled device signing keys. The tables are
in ``alert_tables.py``; SQLite or PostgreSQL alike (``database.py``).

Every alert is stored exactly once, whichever worker receives it and however often: an
alert is identified by its camera, the key that signed it and its alert id, and the
database refuses a second row for it (or for the same camera, key and sequence number),
so workers racing on one alert end with one row, and the loser reads the winner's.
A camera re-using another camera's alert id cannot block the genuine alert; both are
kept and a lookup by that id alone asks for the device.

A copy whose signed content equals the stored alert's (``OpenedAlert.signed_sha256``:
a redelivery, even re-encoded) is a duplicate; anything else under a stored identity or
sequence number is a conflict and refused. A ``key_id`` is the SHA-256 of the device
signing key that verified the alert: a re-flashed camera, re-approved with ``device
approve --replace``, has a new key and starts its sequence again without clashing with
its old alerts or their tombstones.

A retention purge deletes an alert with its crops and outcomes but leaves a tombstone in
``purged_alerts`` (identity, digests, ack secret; nothing about the face or the match).
A camera that never got its ack keeps re-sending; the tombstone makes such a late copy a
duplicate (acknowledged, never stored again). Every purge run, including one that found
nothing, is a row of ``purge_log``. The deleted bytes are then removed from the database
files as well: on SQLite by ``secure_delete`` and a WAL checkpoint, on PostgreSQL by
rewriting the tables and recycling the write-ahead log (``purge_scrub.py``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from agent.errors import LfrError, UsageError
from agent.hub.store.alert_tables import (
    adjudications,
    alerts,
    crops,
    device_keys,
    device_withdrawals,
    purge_log,
    purged_alerts,
)
from agent.hub.store.conflict_insert import conflict_insert_on
from agent.hub.store.database import HubDatabase
from agent.hub.store.database_engine import describe_error
from agent.hub.store.legal_hold_tables import legal_holds
from agent.hub.store.purge_scrub import PurgeScrubber
from agent.hub.store.transient_retry import retry_transient
from agent.trust.alert_envelope import OpenedAlert
from agent.trust.signed_document import key_id as public_key_id

log = logging.getLogger(__name__)

OUTCOMES = ("true-alert", "false-alert", "confirmed-true", "confirmed-false")
AuditFn = Callable[[str, dict[str, object]], None]
#: The advisory lock (PostgreSQL) that lets many workers store alerts at once (shared)
#: but not while a purge moves alerts to tombstones (exclusive): "lfr-alr" in ASCII.
ALERT_LOCK_KEY = 0x6C66722D616C72
_HEX_ID = re.compile(r"[0-9a-fA-F]{6,32}")


class AlertStoreError(LfrError):
    """The alert database cannot be opened or does not hold what was asked for."""


class StoreResult(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # the same signed alert again: a redelivery
    CONFLICT = "conflict"  # its identity or (device, key, seq) holds another alert: refused


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
    #: The hub's own key of this alert (unique in this database, never re-used).
    row_id: int


@dataclass(frozen=True)
class PurgeRecord:
    """One run of the retention purge."""

    purge_id: int
    at: float
    older_than_s: float
    cutoff: float
    alerts: int
    by_ref: str
    #: Alerts past the age limit kept because of a legal hold (this run only; not in
    #: ``purge_log``).
    held: int = 0


def _latest_adjudication(column: str) -> Any:
    j = adjudications.alias("j")
    return (
        select(j.c[column])
        .where(j.c.alert_row_id == alerts.c.row_id)
        .order_by(j.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


#: The signing key of a camera that is enrolled and not withdrawn. Built once, the device
#: bound at execution: the hub asks for every alert and every clip chunk it receives, and
#: a query built per call leaves some sixteen objects in reference cycles (its ``EXISTS``
#: and scalar subquery) for the cyclic collector, which grows the heap between its passes.
_ENROLLED_KEY = select(device_keys.c.public_pem).where(
    device_keys.c.device_id == bindparam("device_id"),
    ~exists().where(device_withdrawals.c.device_id == device_keys.c.device_id),
)

_ROW_COLUMNS = (
    alerts.c.alert_id,
    alerts.c.device_id,
    alerts.c.deployment_id,
    alerts.c.seq,
    alerts.c.sealed_at,
    alerts.c.received_at,
    alerts.c.watchlist_entry,
    alerts.c.score,
    alerts.c.threshold,
    alerts.c.model_id,
    alerts.c.track_id,
    alerts.c.first_seen,
    alerts.c.decided_at,
    alerts.c.quality_json,
    _latest_adjudication("outcome"),
    _latest_adjudication("by_ref"),
    alerts.c.row_id,
)


class AlertStore:
    """The alert tables of one hub database; thread-safe (a connection pool).

    ``target`` is a ``HubDatabase`` to share, or a store URL or path to open one that
    this store owns (and closes).
    """

    def __init__(self, target: HubDatabase | str | Path) -> None:
        if isinstance(target, HubDatabase):
            self.database, self._owns_database = target, False
        else:
            try:
                self.database, self._owns_database = HubDatabase(target), True
            except LfrError as exc:
                raise AlertStoreError(f"alert store: {exc}") from exc
        self._scrubber = PurgeScrubber(self.database)

    @property
    def where(self) -> str:
        """The database as messages name it (file path, or URL without password)."""
        return self.database.where

    def close(self) -> None:
        if self._owns_database:
            self.database.close()

    # ---- device keys ----------------------------------------------------------------
    def register_device_key(self, device_id: str, key: Ed25519PublicKey) -> None:
        """Enrol (or replace) the Ed25519 key that signs ``device_id``'s alerts."""
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        values = {"device_id": device_id, "public_pem": pem, "added_at": time.time()}
        with self.database.write() as db:
            if db.scalar(
                select(device_withdrawals.c.device_id).where(
                    device_withdrawals.c.device_id == device_id
                )
            ):
                raise AlertStoreError(
                    f"device {device_id}: withdrawn for good; enrol its replacement under a new id"
                )
            stmt = conflict_insert_on(db, device_keys).values(**values)
            self.database.changes.emit(db, "device.key", device_id)
            db.execute(
                stmt.on_conflict_do_update(
                    index_elements=["device_id"],
                    set_={
                        "public_pem": stmt.excluded.public_pem,
                        "added_at": stmt.excluded.added_at,
                    },
                )
            )

    def device_key(self, device_id: str) -> Ed25519PublicKey | None:
        """The enrolled signing key of ``device_id`` (None if not enrolled, or withdrawn)."""

        def read() -> object:
            with self.database.read() as db:
                return db.scalar(_ENROLLED_KEY, {"device_id": device_id})

        pem = retry_transient(read, what=f"alert store {self.where}")
        return None if pem is None else signing_key_from_pem(pem)

    def withdraw_device(
        self, device_id: str, *, by: str, reason: str, revoked_serials: list[str], at: float
    ) -> bool:
        """Record ``device_id`` as withdrawn for good: its key is no longer accepted.
        False if it was withdrawn already (the first record is kept)."""
        with self.database.write() as db:
            if db.scalar(
                select(device_withdrawals.c.device_id).where(
                    device_withdrawals.c.device_id == device_id
                )
            ):
                return False
            pem = db.scalar(
                select(device_keys.c.public_pem).where(device_keys.c.device_id == device_id)
            )
            db.execute(
                device_withdrawals.insert().values(
                    device_id=device_id,
                    public_pem=pem,
                    withdrawn_at=at,
                    by_ref=by,
                    reason=reason,
                    revoked_serials=",".join(revoked_serials),
                )
            )
        return True

    def withdrawal(self, device_id: str) -> dict[str, object] | None:
        """The withdrawal record of ``device_id``, or None."""
        with self.database.read() as db:
            row = db.execute(
                select(device_withdrawals).where(device_withdrawals.c.device_id == device_id)
            ).first()
        return None if row is None else dict(row._mapping)

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
        now); alert ids and sequence numbers clash only within one device and key.
        A lost database connection (PostgreSQL restarting) is retried for a while;
        ``AlertStoreError`` after that.
        """
        key = key or self.device_key(alert.header.device)
        kid = "" if key is None else public_key_id(key)
        at = time.time() if received_at is None else received_at
        return retry_transient(
            lambda: self._store_once(alert, kid, at), what=f"alert store {self.where}"
        )

    def _store_once(self, alert: OpenedAlert, kid: str, received_at: float) -> StoreResult:
        h, c = alert.header, alert.content
        try:
            with self.database.write() as db:
                self._share_alert_lock(db)
                known = _stored_digests(db, h.device, kid, h.alert_id)
                if known is not None:
                    return _compare(known, alert)
                if db.scalar(
                    select(literal(1)).where(_same_seq(purged_alerts, h.device, kid, h.seq))
                ):
                    return StoreResult.CONFLICT
                row_id = db.execute(
                    insert(alerts)
                    .values(
                        alert_id=h.alert_id,
                        device_id=h.device,
                        key_id=kid,
                        deployment_id=h.deployment,
                        seq=h.seq,
                        sealed_at=h.sealed_at,
                        received_at=received_at,
                        watchlist_entry=c.watchlist_entry,
                        score=c.score,
                        threshold=c.threshold,
                        model_id=c.model_id,
                        track_id=c.track_id,
                        first_seen=c.first_seen,
                        decided_at=c.decided_at,
                        quality_json=json.dumps(c.quality, sort_keys=True),
                        envelope_sha256=alert.envelope_sha256,
                        signed_sha256=alert.signed_sha256,
                        ack_secret=alert.ack_secret,
                    )
                    .returning(alerts.c.row_id)
                ).scalar_one()
                images = [("probe", c.probe_jpeg)]
                if c.scene_jpeg is not None:
                    images.append(("scene", c.scene_jpeg))
                db.execute(
                    insert(crops),
                    [{"alert_row_id": row_id, "kind": k, "jpeg": jpeg} for k, jpeg in images],
                )
                self.database.changes.emit(db, "alert.stored", str(row_id))
        except IntegrityError:
            # Another worker stored this alert between our check and insert, or its
            # (device, key, seq) holds a different alert.
            with self.database.read() as db:
                known = _stored_digests(db, h.device, kid, h.alert_id)
            return StoreResult.CONFLICT if known is None else _compare(known, alert)
        return StoreResult.STORED

    def _share_alert_lock(self, db: Connection) -> None:
        if self.database.dialect == "postgresql":
            db.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": ALERT_LOCK_KEY})

    def ack_secret(self, alert_id: str, *, device_id: str | None = None) -> bytes | None:
        """The ack secret stored with an alert, or kept in its tombstone after a purge
        (None if unknown or from an older device). ``device_id`` narrows the lookup to
        one camera (an alert id is unique only per camera and key)."""
        where = [alerts.c.alert_id == alert_id]
        where_purged = [purged_alerts.c.alert_id == alert_id]
        if device_id is not None:
            where.append(alerts.c.device_id == device_id)
            where_purged.append(purged_alerts.c.device_id == device_id)
        query = union_all(
            select(alerts.c.ack_secret, alerts.c.row_id.label("n")).where(*where),
            select(purged_alerts.c.ack_secret, literal(0).label("n")).where(*where_purged),
        )

        def read() -> list[Row[Any]]:
            with self.database.read() as db:
                return list(db.execute(query).all())

        rows = retry_transient(read, what=f"alert store {self.where}")
        secrets = {bytes(r[0]) for r in rows if r[0] is not None}
        if len(secrets) != 1:
            return None  # unknown, from an older device, or ambiguous across cameras
        return secrets.pop()

    def count(self) -> int:
        with self.database.read() as db:
            return int(db.scalar(select(func.count()).select_from(alerts)) or 0)

    def list_alerts(
        self, *, device_id: str | None = None, limit: int = 50, unadjudicated: bool = False
    ) -> list[AlertRow]:
        query = select(*_ROW_COLUMNS)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        if unadjudicated:
            query = query.where(~exists().where(adjudications.c.alert_row_id == alerts.c.row_id))
        query = query.order_by(
            alerts.c.received_at.desc(), alerts.c.seq.desc(), alerts.c.row_id.desc()
        ).limit(limit)
        with self.database.read() as db:
            return [_row(r) for r in db.execute(query)]

    def outcome_counts(self, device_id: str, deployment_id: str) -> dict[str | None, int]:
        """How many stored alerts of one deployment on one camera have each latest
        outcome (None: undecided)."""
        query = select(_latest_adjudication("outcome")).where(
            alerts.c.device_id == device_id, alerts.c.deployment_id == deployment_id
        )
        counts: dict[str | None, int] = {}
        with self.database.read() as db:
            for (outcome,) in db.execute(query):
                key = None if outcome is None else str(outcome)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def review_queue(
        self,
        *,
        device_id: str | None = None,
        deployment_id: str | None = None,
        outcome: str | None = None,
        limit: int = 200,
    ) -> list[AlertRow]:
        """The console's queue: undecided alerts first, oldest first, then decided ones,
        newest first. ``outcome`` is one of ``OUTCOMES`` or ``"open"`` (undecided)."""
        latest = _latest_adjudication("outcome")
        query = select(*_ROW_COLUMNS)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        if deployment_id:
            query = query.where(alerts.c.deployment_id == deployment_id)
        if outcome == "open":
            query = query.where(latest.is_(None))
        elif outcome:
            query = query.where(latest == outcome)
        undecided_first = case((latest.is_(None), 0), else_=1)
        oldest_open_first = case(
            (latest.is_(None), alerts.c.received_at), else_=-alerts.c.received_at
        )
        query = query.order_by(undecided_first, oldest_open_first, alerts.c.row_id).limit(limit)
        with self.database.read() as db:
            return [_row(r) for r in db.execute(query)]

    def get(self, alert_id: str, *, device_id: str | None = None) -> AlertRow:
        """One alert by id or by a unique prefix of at least 6 hex digits; ``device_id``
        picks one camera's alert when several cameras used the same id."""
        if not _HEX_ID.fullmatch(alert_id):
            raise UsageError(f"alert id {alert_id[:40]!r}: give 6–32 hex digits")
        wanted = alert_id.lower()
        match = (
            alerts.c.alert_id == wanted
            if len(wanted) == 32
            else alerts.c.alert_id.like(wanted + "%")
        )
        query = select(*_ROW_COLUMNS).where(match)
        if device_id is not None:
            query = query.where(alerts.c.device_id == device_id)
        with self.database.read() as db:
            rows = db.execute(query.order_by(alerts.c.row_id).limit(10)).all()
        if not rows:
            raise AlertStoreError(f"alert {alert_id}: not in {self.where}")
        if len(rows) > 1:
            found = [_row(r) for r in rows]
            if len({r.alert_id for r in found}) == 1:
                cameras = ", ".join(sorted({r.device_id for r in found}))
                raise UsageError(
                    f"alert id {alert_id!r}: used by several cameras ({cameras}); "
                    "name the device too"
                )
            raise UsageError(f"alert id {alert_id!r}: matches more than one alert")
        return _row(rows[0])

    def get_row(self, row_id: int) -> AlertRow:
        """One alert by the hub's row id (``AlertRow.row_id``)."""
        with self.database.read() as db:
            row = db.execute(select(*_ROW_COLUMNS).where(alerts.c.row_id == row_id)).first()
        if row is None:
            raise AlertStoreError(f"alert row {row_id}: not in {self.where}")
        return _row(row)

    def crop(
        self, alert_id: str, kind: str = "probe", *, device_id: str | None = None
    ) -> bytes | None:
        """An alert's probe or scene JPEG (None if it has none, or is purged or unknown)."""
        query = (
            select(crops.c.jpeg)
            .join(alerts, alerts.c.row_id == crops.c.alert_row_id)
            .where(alerts.c.alert_id == alert_id, crops.c.kind == kind)
        )
        if device_id is not None:
            query = query.where(alerts.c.device_id == device_id)
        with self.database.read() as db:
            rows = db.execute(query.limit(2)).all()
        if len(rows) > 1:
            raise UsageError(f"alert id {alert_id!r}: used by several cameras; name the device too")
        return None if not rows else bytes(rows[0][0])

    def adjudicate(
        self,
        alert_id: str,
        outcome: str,
        by_ref: str,
        *,
        device_id: str | None = None,
        note: str = "",
    ) -> AlertRow:
        """Record an operator's outcome (with an optional note); later records supersede
        earlier ones (all kept)."""
        if outcome not in OUTCOMES:
            raise UsageError(f"outcome {outcome!r}: must be one of {', '.join(OUTCOMES)}")
        if not by_ref.strip():
            raise UsageError("adjudication: --by must name the operator or officer")
        row = self.get(alert_id, device_id=device_id)
        try:
            with self.database.write() as db:
                db.execute(
                    insert(adjudications).values(
                        alert_row_id=row.row_id,
                        outcome=outcome,
                        by_ref=by_ref.strip(),
                        note=note,
                        at=time.time(),
                    )
                )
                self.database.changes.emit(db, "alert.adjudicated", str(row.row_id))
        except IntegrityError as exc:
            # The alert was purged between the lookup and the insert.
            raise AlertStoreError(f"alert {row.alert_id}: no longer in {self.where}") from exc
        return self.get_row(row.row_id)

    def adjudication_history(self, row_id: int) -> list[tuple[str, str, float]]:
        """Every outcome recorded for an alert row, oldest first: (outcome, by, at)."""
        with self.database.read() as db:
            rows = db.execute(
                select(adjudications.c.outcome, adjudications.c.by_ref, adjudications.c.at)
                .where(adjudications.c.alert_row_id == row_id)
                .order_by(adjudications.c.id)
            ).all()
        return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    def is_purged(self, alert_id: str, *, device_id: str | None = None) -> bool:
        query = select(literal(1)).where(purged_alerts.c.alert_id == alert_id)
        if device_id is not None:
            query = query.where(purged_alerts.c.device_id == device_id)
        with self.database.read() as db:
            return db.scalar(query.limit(1)) is not None

    def purge_older_than(
        self, age_s: float, audit: AuditFn | None = None, *, by_ref: str = "alerts purge"
    ) -> int:
        """``purge`` returning only the number of alerts deleted."""
        return self.purge(age_s, audit, by_ref=by_ref).alerts

    def purge(
        self, age_s: float, audit: AuditFn | None = None, *, by_ref: str = "alerts purge"
    ) -> PurgeRecord:
        """Delete alerts (with crops and adjudications) received more than ``age_s`` ago
        and not under an active legal hold (``legal_hold_store.py``), leave a tombstone for each and record the run in ``purge_log``, in one commit;
        then remove the deleted bytes from the database files (``purge_scrub``)."""
        now = time.time()
        cutoff = now - age_s
        held = exists().where(
            legal_holds.c.alert_row_id == alerts.c.row_id, legal_holds.c.released_at.is_(None)
        )
        # An alert under a legal hold stays, however old, until the hold is released.
        old = and_(alerts.c.received_at < cutoff, ~held)
        try:
            with self.database.write() as db:
                if self.database.dialect == "postgresql":
                    # No alert may be stored between reading the tombstones and writing them.
                    db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ALERT_LOCK_KEY})
                kept = db.scalar(
                    select(func.count())
                    .select_from(alerts)
                    .where(alerts.c.received_at < cutoff, held)
                )
                rows = db.execute(
                    select(
                        alerts.c.alert_id,
                        alerts.c.device_id,
                        alerts.c.key_id,
                        alerts.c.seq,
                        alerts.c.envelope_sha256,
                        alerts.c.signed_sha256,
                        alerts.c.ack_secret,
                    ).where(old)
                ).all()
                purge_id = db.execute(
                    insert(purge_log)
                    .values(
                        at=now, older_than_s=age_s, cutoff=cutoff, alerts=len(rows), by_ref=by_ref
                    )
                    .returning(purge_log.c.id)
                ).scalar_one()
                if rows:
                    db.execute(
                        conflict_insert_on(db, purged_alerts).on_conflict_do_nothing(),
                        [{**r._asdict(), "purge_id": purge_id} for r in rows],
                    )
                    db.execute(delete(alerts).where(old))
                    self.database.changes.emit(db, "alerts.purged", str(purge_id))
        except SQLAlchemyError as exc:
            raise AlertStoreError(
                f"alert store {self.where}: purge failed ({describe_error(exc)})"
            ) from exc
        # The delete is committed: record it before anything else can fail.
        for r in rows:
            if audit is not None:
                audit("hub.alert_purged", {"alert_id": r.alert_id})
        self._scrubber.after_purge(deleted=len(rows))
        return PurgeRecord(int(purge_id), now, age_s, cutoff, len(rows), by_ref, int(kept or 0))

    def purge_log(self, limit: int = 50) -> list[PurgeRecord]:
        """The latest purge runs, newest first."""
        with self.database.read() as db:
            rows = db.execute(
                select(
                    purge_log.c.id,
                    purge_log.c.at,
                    purge_log.c.older_than_s,
                    purge_log.c.cutoff,
                    purge_log.c.alerts,
                    purge_log.c.by_ref,
                )
                .order_by(purge_log.c.id.desc())
                .limit(limit)
            ).all()
        return [
            PurgeRecord(int(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4]), str(r[5]))
            for r in rows
        ]


def signing_key_from_pem(pem: object) -> Ed25519PublicKey | None:
    """An enrolled device signing key as the ``device_keys`` table holds it (PEM text)."""
    key = serialization.load_pem_public_key(str(pem).encode("ascii"))
    return key if isinstance(key, Ed25519PublicKey) else None


def _same_seq(table: Any, device: str, kid: str, seq: int) -> ColumnElement[bool]:
    return and_(table.c.device_id == device, table.c.key_id == kid, table.c.seq == seq)


def _stored_digests(db: Connection, device: str, kid: str, alert_id: str) -> Row[Any] | None:
    """(signed_sha256, envelope_sha256) of the alert or tombstone with this identity."""
    query = union_all(
        *(
            select(t.c.signed_sha256, t.c.envelope_sha256).where(
                t.c.device_id == device, t.c.key_id == kid, t.c.alert_id == alert_id
            )
            for t in (alerts, purged_alerts)
        )
    )
    return db.execute(query).first()


def _compare(known: Sequence[Any], alert: OpenedAlert) -> StoreResult:
    signed, envelope = known[0], known[1]
    # Rows from before signed digests were kept compare by the exact envelope bytes.
    same = (
        signed == alert.signed_sha256 if signed is not None else envelope == alert.envelope_sha256
    )
    return StoreResult.DUPLICATE if same else StoreResult.CONFLICT


def _row(r: Sequence[Any]) -> AlertRow:
    return AlertRow(
        alert_id=str(r[0]),
        device_id=str(r[1]),
        deployment_id=str(r[2]),
        seq=int(r[3]),
        sealed_at=float(r[4]),
        received_at=float(r[5]),
        watchlist_entry=str(r[6]),
        score=float(r[7]),
        threshold=float(r[8]),
        model_id=str(r[9]),
        track_id=int(r[10]),
        first_seen=float(r[11]),
        decided_at=float(r[12]),
        quality=json.loads(str(r[13])),
        outcome=None if r[14] is None else str(r[14]),
        outcome_by=None if r[15] is None else str(r[15]),
        row_id=int(r[16]),
    )

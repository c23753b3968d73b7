"""The hub's plate alert store: plate alerts (once each), their plate and vehicle crops,
operator adjudications, and retention purges leaving tombstones. Its tables
(``plate_tables.py``) are apart from the face tables and this store never reads those:
a plate record and a face record are never joined (docs/privacy.md).

Storing follows the face alert store's rules: an alert is identified by camera, signing
key and alert id (unique per camera, key and sequence too); a copy of the same signed
content is a duplicate (acknowledged again, not stored again), anything else under a
stored identity or sequence is a conflict and refused; a purged alert's tombstone makes a
late copy a duplicate.

Like the face store it announces its changes on the hub's change feed (``plate.stored``
and ``plate.adjudicated``, ref: the row id; ``plates.purged``, ref: how many), so the
console's plate queue follows them live on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, case, delete, func, insert, literal, select, union_all
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from agent.errors import LfrError, UsageError
from agent.hub.store.alert_store import OUTCOMES, StoreResult
from agent.hub.store.database import HubDatabase
from agent.hub.store.database_engine import describe_error
from agent.hub.store.plate_tables import (
    plate_adjudications,
    plate_alerts,
    plate_crops,
    purged_plate_alerts,
)
from agent.hub.store.purge_scrub import PurgeScrubber
from agent.hub.store.transient_retry import retry_transient
from agent.trust.plate_alert_envelope import OpenedPlateAlert
from agent.trust.signed_document import key_id as public_key_id

CROP_KINDS = ("plate", "vehicle")


class PlateAlertStoreError(LfrError):
    """The plate alert tables cannot be used, or hold nothing under what was asked."""


@dataclass(frozen=True)
class PlateAlertRow:
    row_id: int
    alert_id: str
    device_id: str
    deployment_id: str
    seq: int
    sealed_at: float
    received_at: float
    hotlist_entry: str
    plate: str
    plate_format: str
    colour: str
    confidence: float
    threshold: float
    model_id: str
    track_id: int
    reads: int
    agreeing: int
    first_seen: float
    decided_at: float
    outcome: str | None
    outcome_by: str | None


def _latest(column: str) -> Any:
    j = plate_adjudications.alias("j")
    return (
        select(j.c[column])
        .where(j.c.alert_row_id == plate_alerts.c.row_id)
        .order_by(j.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


_COLUMNS = (
    plate_alerts.c.row_id,
    plate_alerts.c.alert_id,
    plate_alerts.c.device_id,
    plate_alerts.c.deployment_id,
    plate_alerts.c.seq,
    plate_alerts.c.sealed_at,
    plate_alerts.c.received_at,
    plate_alerts.c.hotlist_entry,
    plate_alerts.c.plate,
    plate_alerts.c.plate_format,
    plate_alerts.c.colour,
    plate_alerts.c.confidence,
    plate_alerts.c.threshold,
    plate_alerts.c.model_id,
    plate_alerts.c.track_id,
    plate_alerts.c.reads,
    plate_alerts.c.agreeing,
    plate_alerts.c.first_seen,
    plate_alerts.c.decided_at,
    _latest("outcome"),
    _latest("by_ref"),
)


def _row(r: Sequence[Any]) -> PlateAlertRow:
    return PlateAlertRow(
        row_id=int(r[0]),
        alert_id=str(r[1]),
        device_id=str(r[2]),
        deployment_id=str(r[3]),
        seq=int(r[4]),
        sealed_at=float(r[5]),
        received_at=float(r[6]),
        hotlist_entry=str(r[7]),
        plate=str(r[8]),
        plate_format=str(r[9]),
        colour=str(r[10]),
        confidence=float(r[11]),
        threshold=float(r[12]),
        model_id=str(r[13]),
        track_id=int(r[14]),
        reads=int(r[15]),
        agreeing=int(r[16]),
        first_seen=float(r[17]),
        decided_at=float(r[18]),
        outcome=None if r[19] is None else str(r[19]),
        outcome_by=None if r[20] is None else str(r[20]),
    )


class PlateAlertStore:
    """The plate alert tables of one hub database; thread-safe (a connection pool)."""

    def __init__(self, target: HubDatabase | str | Path) -> None:
        if isinstance(target, HubDatabase):
            self.database, self._owns_database = target, False
        else:
            try:
                self.database, self._owns_database = HubDatabase(target), True
            except LfrError as exc:
                raise PlateAlertStoreError(f"plate alert store: {exc}") from exc
        self._scrubber = PurgeScrubber(
            self.database, ("plate_crops", "plate_alerts", "plate_adjudications")
        )

    @property
    def where(self) -> str:
        return self.database.where

    def close(self) -> None:
        if self._owns_database:
            self.database.close()

    # ---- storing ---------------------------------------------------------------------
    def store_alert(
        self, alert: OpenedPlateAlert, key: Ed25519PublicKey, received_at: float | None = None
    ) -> StoreResult:
        """Insert an opened plate alert exactly once (``key``: the device key that
        verified it); durable when this returns."""
        kid = public_key_id(key)
        at = time.time() if received_at is None else received_at
        return retry_transient(
            lambda: self._store_once(alert, kid, at), what=f"plate alert store {self.where}"
        )

    def _store_once(self, alert: OpenedPlateAlert, kid: str, received_at: float) -> StoreResult:
        h, c = alert.header, alert.content
        try:
            with self.database.write() as db:
                known = _stored_digest(db, h.device, kid, h.alert_id)
                if known is not None:
                    return _compare(known, alert)
                if db.scalar(
                    select(literal(1)).where(
                        purged_plate_alerts.c.device_id == h.device,
                        purged_plate_alerts.c.key_id == kid,
                        purged_plate_alerts.c.seq == h.seq,
                    )
                ):
                    return StoreResult.CONFLICT
                row_id = db.execute(
                    insert(plate_alerts)
                    .values(
                        alert_id=h.alert_id,
                        device_id=h.device,
                        key_id=kid,
                        deployment_id=h.deployment,
                        seq=h.seq,
                        sealed_at=h.sealed_at,
                        received_at=received_at,
                        hotlist_entry=c.hotlist_entry,
                        plate=c.plate,
                        plate_format=c.plate_format,
                        colour=c.colour,
                        confidence=c.confidence,
                        threshold=c.threshold,
                        model_id=c.model_id,
                        track_id=c.track_id,
                        reads=c.reads,
                        agreeing=c.agreeing,
                        first_seen=c.first_seen,
                        decided_at=c.decided_at,
                        envelope_sha256=alert.envelope_sha256,
                        signed_sha256=alert.signed_sha256,
                        ack_secret=alert.ack_secret,
                    )
                    .returning(plate_alerts.c.row_id)
                ).scalar_one()
                self.database.changes.emit(db, "plate.stored", str(row_id))
                db.execute(
                    insert(plate_crops),
                    [
                        {"alert_row_id": row_id, "kind": "plate", "jpeg": c.plate_jpeg},
                        {"alert_row_id": row_id, "kind": "vehicle", "jpeg": c.vehicle_jpeg},
                    ],
                )
        except IntegrityError:
            with self.database.read() as db:
                known = _stored_digest(db, h.device, kid, h.alert_id)
            return StoreResult.CONFLICT if known is None else _compare(known, alert)
        return StoreResult.STORED

    def ack_secret(self, alert_id: str, *, device_id: str) -> bytes | None:
        """The ack secret of a stored (or purged) plate alert of ``device_id``."""
        query = union_all(
            *(
                select(t.c.ack_secret).where(t.c.alert_id == alert_id, t.c.device_id == device_id)
                for t in (plate_alerts, purged_plate_alerts)
            )
        )
        with self.database.read() as db:
            row = db.execute(query).first()
        return None if row is None else bytes(row[0])

    # ---- reading ---------------------------------------------------------------------
    def count(self) -> int:
        with self.database.read() as db:
            return int(db.scalar(select(func.count()).select_from(plate_alerts)) or 0)

    def list_alerts(
        self, limit: int = 50, *, device_id: str | None = None, deployment_id: str | None = None
    ) -> list[PlateAlertRow]:
        query = select(*_COLUMNS)
        if device_id:
            query = query.where(plate_alerts.c.device_id == device_id)
        if deployment_id:
            query = query.where(plate_alerts.c.deployment_id == deployment_id)
        query = query.order_by(plate_alerts.c.received_at.desc()).limit(limit)
        with self.database.read() as db:
            return [_row(r) for r in db.execute(query)]

    def review_queue(
        self,
        *,
        device_id: str | None = None,
        deployment_id: str | None = None,
        outcome: str | None = None,
        limit: int = 200,
    ) -> list[PlateAlertRow]:
        """The console's queue, ordered as the face queue: undecided hits first, oldest
        first, then decided ones, newest first. ``outcome`` is one of ``OUTCOMES`` or
        ``"open"`` (undecided)."""
        latest = _latest("outcome")
        query = select(*_COLUMNS)
        if device_id:
            query = query.where(plate_alerts.c.device_id == device_id)
        if deployment_id:
            query = query.where(plate_alerts.c.deployment_id == deployment_id)
        if outcome == "open":
            query = query.where(latest.is_(None))
        elif outcome:
            query = query.where(latest == outcome)
        undecided_first = case((latest.is_(None), 0), else_=1)
        oldest_open_first = case(
            (latest.is_(None), plate_alerts.c.received_at), else_=-plate_alerts.c.received_at
        )
        query = query.order_by(undecided_first, oldest_open_first, plate_alerts.c.row_id)
        with self.database.read() as db:
            return [_row(r) for r in db.execute(query.limit(limit))]

    def get(self, alert_id: str, *, device_id: str | None = None) -> PlateAlertRow:
        query = select(*_COLUMNS).where(plate_alerts.c.alert_id == alert_id)
        if device_id:
            query = query.where(plate_alerts.c.device_id == device_id)
        with self.database.read() as db:
            rows = db.execute(query.limit(2)).all()
        if not rows:
            raise PlateAlertStoreError(f"plate alert {alert_id[:40]}: not in {self.where}")
        if len(rows) > 1:
            raise UsageError(
                f"plate alert {alert_id[:40]}: held for several cameras; give --device"
            )
        return _row(rows[0])

    def get_row(self, row_id: int) -> PlateAlertRow:
        with self.database.read() as db:
            r = db.execute(select(*_COLUMNS).where(plate_alerts.c.row_id == row_id)).first()
        if r is None:
            raise PlateAlertStoreError(f"plate alert row {row_id}: not in {self.where}")
        return _row(r)

    def crop(self, row_id: int, kind: str) -> bytes | None:
        if kind not in CROP_KINDS:
            raise UsageError(f"crop {kind!r}: must be one of {', '.join(CROP_KINDS)}")
        with self.database.read() as db:
            jpeg = db.scalar(
                select(plate_crops.c.jpeg).where(
                    plate_crops.c.alert_row_id == row_id, plate_crops.c.kind == kind
                )
            )
        return None if jpeg is None else bytes(jpeg)

    # ---- adjudication ----------------------------------------------------------------
    def adjudicate(
        self, alert_id: str, outcome: str, by_ref: str, *, device_id: str | None = None
    ) -> PlateAlertRow:
        """Record an operator's outcome (as for faces); later ones supersede, all kept."""
        if outcome not in OUTCOMES:
            raise UsageError(f"outcome {outcome!r}: must be one of {', '.join(OUTCOMES)}")
        if not by_ref.strip() or not by_ref.strip().isprintable() or len(by_ref) > 200:
            raise UsageError("adjudication: --by must name the operator or officer")
        row = self.get(alert_id, device_id=device_id)
        return self.adjudicate_row(row.row_id, outcome, by_ref)

    def adjudicate_row(self, row_id: int, outcome: str, by_ref: str) -> PlateAlertRow:
        if outcome not in OUTCOMES:
            raise UsageError(f"outcome {outcome!r}: must be one of {', '.join(OUTCOMES)}")
        try:
            with self.database.write() as db:
                db.execute(
                    insert(plate_adjudications).values(
                        alert_row_id=row_id, outcome=outcome, by_ref=by_ref.strip(), at=time.time()
                    )
                )
                self.database.changes.emit(db, "plate.adjudicated", str(row_id))
        except IntegrityError as exc:
            raise PlateAlertStoreError(f"plate alert row {row_id}: no longer stored") from exc
        return self.get_row(row_id)

    def adjudication_history(self, row_id: int) -> list[tuple[str, str, float]]:
        with self.database.read() as db:
            rows = db.execute(
                select(
                    plate_adjudications.c.outcome,
                    plate_adjudications.c.by_ref,
                    plate_adjudications.c.at,
                )
                .where(plate_adjudications.c.alert_row_id == row_id)
                .order_by(plate_adjudications.c.id)
            ).all()
        return [(str(o), str(b), float(a)) for o, b, a in rows]

    # ---- retention -------------------------------------------------------------------
    def purge(self, age_s: float) -> int:
        """Delete plate alerts (crops, adjudications) received more than ``age_s`` ago,
        leaving a tombstone each; then scrub the deleted bytes from the database files."""
        now = time.time()
        old = plate_alerts.c.received_at < now - age_s
        try:
            with self.database.write() as db:
                rows = db.execute(
                    select(
                        plate_alerts.c.alert_id,
                        plate_alerts.c.device_id,
                        plate_alerts.c.key_id,
                        plate_alerts.c.seq,
                        plate_alerts.c.envelope_sha256,
                        plate_alerts.c.signed_sha256,
                        plate_alerts.c.ack_secret,
                    ).where(old)
                ).all()
                if rows:
                    db.execute(
                        insert(purged_plate_alerts),
                        [{**r._asdict(), "purged_at": now} for r in rows],
                    )
                    db.execute(delete(plate_alerts).where(old))
                    self.database.changes.emit(db, "plates.purged", str(len(rows)))
        except SQLAlchemyError as exc:
            raise PlateAlertStoreError(
                f"plate alert store {self.where}: purge failed ({describe_error(exc)})"
            ) from exc
        self._scrubber.after_purge(deleted=len(rows))
        return len(rows)


def _stored_digest(db: Connection, device: str, kid: str, alert_id: str) -> str | None:
    query = union_all(
        *(
            select(t.c.signed_sha256).where(
                t.c.device_id == device, t.c.key_id == kid, t.c.alert_id == alert_id
            )
            for t in (plate_alerts, purged_plate_alerts)
        )
    )
    row = db.execute(query).first()
    return None if row is None else str(row[0])


def _compare(known: str, alert: OpenedPlateAlert) -> StoreResult:
    return StoreResult.DUPLICATE if known == alert.signed_sha256 else StoreResult.CONFLICT

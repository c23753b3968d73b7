"""The hub's deployment reports: each verified report kept once, one row per (device,
deployment, activation sequence), whatever the number of redeliveries or workers.
Reports carry aggregate figures only, so they can be published. The table is in
``report_tables.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select

from agent.errors import LfrError
from agent.hub.store.conflict_insert import conflict_insert_on
from agent.hub.store.database import HubDatabase
from agent.hub.store.report_tables import deployment_reports as reports
from agent.hub.store.transient_retry import retry_transient


class ReportStoreError(LfrError):
    """The report table cannot be opened."""


@dataclass(frozen=True)
class StoredReport:
    device_id: str
    deployment_id: str
    activation_sequence: int
    received_at: float
    body: dict[str, Any]


def _columns(table: Table) -> tuple[Any, ...]:
    return (
        table.c.device_id,
        table.c.deployment_id,
        table.c.activation_sequence,
        table.c.received_at,
        table.c.body,
    )


class DeploymentReportStore:
    """The ``deployment_reports`` table of the hub database.

    ``target`` is a ``HubDatabase`` to share, or a store URL or path to open one that
    this store owns (and closes).
    """

    def __init__(self, target: HubDatabase | str | Path, table: Table = reports) -> None:
        """``table``: ``deployment_reports`` (faces) or ``plate_deployment_reports``; the two
        kinds are kept apart (``plate_report_store``)."""
        self._table = table
        if isinstance(target, HubDatabase):
            self.database, self._owns_database = target, False
        else:
            try:
                self.database, self._owns_database = HubDatabase(target), True
            except LfrError as exc:
                raise ReportStoreError(f"reports: {exc}") from exc

    def close(self) -> None:
        if self._owns_database:
            self.database.close()

    def add(self, body: dict[str, Any], envelope: bytes, received_at: float) -> bool:
        """Store a verified report; False when this one was already held."""

        def insert_once() -> bool:
            with self.database.write() as db:
                result = db.execute(
                    conflict_insert_on(db, self._table)
                    .values(
                        device_id=body["device_id"],
                        deployment_id=body["deployment_id"],
                        activation_sequence=body["activation_sequence"],
                        received_at=received_at,
                        body=json.dumps(body, sort_keys=True),
                        envelope=envelope,
                    )
                    .on_conflict_do_nothing()
                    .returning(self._table.c.device_id)
                )
                # A row comes back only when it was inserted (not on a conflict).
                stored = result.first() is not None
                if stored:
                    ref = (
                        f"{body['device_id']}/{body['deployment_id']}/{body['activation_sequence']}"
                    )
                    self.database.changes.emit(db, "report.stored", ref[:200])
                return stored

        return retry_transient(insert_once, what=f"reports {self.database.where}")

    def latest(self, device_id: str | None = None, limit: int = 50) -> list[StoredReport]:
        t = self._table
        query = select(*_columns(t))
        if device_id:
            query = query.where(t.c.device_id == device_id)
        query = query.order_by(t.c.received_at.desc()).limit(limit)
        with self.database.read() as db:
            return [_report(r) for r in db.execute(query)]

    def one(
        self, device_id: str, deployment_id: str, activation_sequence: int
    ) -> StoredReport | None:
        """The report of one activation of a deployment on one camera, or None."""
        t = self._table
        query = select(*_columns(t)).where(
            t.c.device_id == device_id,
            t.c.deployment_id == deployment_id,
            t.c.activation_sequence == activation_sequence,
        )
        with self.database.read() as db:
            row = db.execute(query).first()
        return None if row is None else _report(row)

    def between(self, start: float, end: float) -> list[StoredReport]:
        """Reports of deployments that closed in ``[start, end)`` (the camera's
        ``closed_at``; the received time when a report has none), oldest first."""
        t = self._table
        query = select(*_columns(t)).order_by(t.c.received_at, t.c.device_id)
        with self.database.read() as db:
            found = [_report(r) for r in db.execute(query)]
        return [r for r in found if start <= _closed_at(r) < end]

    def for_deployment(self, deployment_id: str) -> list[StoredReport]:
        t = self._table
        query = (
            select(*_columns(t))
            .where(t.c.deployment_id == deployment_id)
            .order_by(t.c.activation_sequence, t.c.device_id)
        )
        with self.database.read() as db:
            return [_report(r) for r in db.execute(query)]


def _report(r: Any) -> StoredReport:
    return StoredReport(str(r[0]), str(r[1]), int(r[2]), float(r[3]), json.loads(r[4]))


def _closed_at(r: StoredReport) -> float:
    closed = r.body.get("closed_at")
    return float(closed) if isinstance(closed, int | float) else r.received_at

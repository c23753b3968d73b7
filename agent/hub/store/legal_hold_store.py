"""Legal holds on alerts: a supervisor holds an alert with a case reference (required)
and releases it later; the retention purge (``AlertStore.purge``) skips an alert with
an active hold. Alert images are kept up to 31 days, or, when an arrest is made, until
the investigation or judicial process ends: the hold is how the second is recorded.
The table is in ``legal_hold_tables.py``; SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from agent.errors import LfrError, UsageError
from agent.hub.store.alert_store import ALERT_LOCK_KEY
from agent.hub.store.alert_tables import alerts
from agent.hub.store.database import HubDatabase
from agent.hub.store.legal_hold_tables import legal_holds

#: A case reference as forces write them (letters, digits and a few separators).
CASE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./:_-]{0,63}")


class LegalHoldError(LfrError):
    """A hold that cannot be placed or released (the reason is the message)."""


@dataclass(frozen=True)
class LegalHold:
    alert_row_id: int
    case_ref: str
    held_by: str
    held_at: float
    released_by: str | None
    released_at: float | None


_COLUMNS = (
    legal_holds.c.alert_row_id,
    legal_holds.c.case_ref,
    legal_holds.c.held_by,
    legal_holds.c.held_at,
    legal_holds.c.released_by,
    legal_holds.c.released_at,
)
_ACTIVE = legal_holds.c.released_at.is_(None)


def check_case_ref(case_ref: str) -> str:
    """The case reference, stripped; ``UsageError`` when missing or malformed."""
    ref = case_ref.strip()
    if not ref:
        raise UsageError("case reference: required for a legal hold")
    if not CASE_REF.fullmatch(ref):
        raise UsageError(
            "case reference: 1-64 letters, digits, spaces or . / : _ - (starting with a "
            "letter or digit)"
        )
    return ref


class LegalHoldStore:
    """The ``legal_holds`` table of one hub database."""

    def __init__(self, database: HubDatabase) -> None:
        self.database = database

    def hold(self, alert_row_id: int, case_ref: str, by: str) -> LegalHold:
        """Put the alert on hold; refused without a case reference, for an alert that
        is not stored (purged already) or one already on hold."""
        ref = check_case_ref(case_ref)
        now = time.time()
        try:
            with self.database.write() as db:
                if self.database.dialect == "postgresql":
                    # A purge holds this lock exclusively from choosing the alerts it
                    # deletes to deleting them: a hold lands before or after, never between.
                    db.execute(
                        text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": ALERT_LOCK_KEY}
                    )
                if (
                    db.scalar(select(alerts.c.row_id).where(alerts.c.row_id == alert_row_id))
                    is None
                ):
                    raise LegalHoldError(f"alert {alert_row_id}: not stored (purged?)")
                if _active(db, alert_row_id) is not None:
                    raise LegalHoldError(f"alert {alert_row_id}: already on hold")
                db.execute(
                    insert(legal_holds).values(
                        alert_row_id=alert_row_id, case_ref=ref, held_by=by, held_at=now
                    )
                )
                self.database.changes.emit(db, "alert.held", str(alert_row_id))
        except IntegrityError as exc:  # a hold placed at the same moment by another
            raise LegalHoldError(f"alert {alert_row_id}: already on hold or purged") from exc
        return LegalHold(alert_row_id, ref, by, now, None, None)

    def release(self, alert_row_id: int, by: str) -> LegalHold:
        """Release the alert's active hold; the retention purge may then delete it."""
        now = time.time()
        with self.database.write() as db:
            held = _active(db, alert_row_id)
            if held is None:
                raise LegalHoldError(f"alert {alert_row_id}: not on hold")
            db.execute(
                update(legal_holds)
                .where(legal_holds.c.alert_row_id == alert_row_id, _ACTIVE)
                .values(released_by=by, released_at=now)
            )
            self.database.changes.emit(db, "alert.released", str(alert_row_id))
        return LegalHold(alert_row_id, held.case_ref, held.held_by, held.held_at, by, now)

    def active(self, alert_row_id: int) -> LegalHold | None:
        with self.database.read() as db:
            return _active(db, alert_row_id)

    def active_for(self, alert_row_ids: list[int]) -> dict[int, LegalHold]:
        """The active holds of these alerts, by alert row id."""
        if not alert_row_ids:
            return {}
        query = select(*_COLUMNS).where(_ACTIVE, legal_holds.c.alert_row_id.in_(alert_row_ids))
        with self.database.read() as db:
            return {h.alert_row_id: h for h in (_hold(r) for r in db.execute(query))}

    def count_held(self, device_id: str, deployment_id: str) -> int:
        """How many alerts of one deployment on one camera are on hold now."""
        query = (
            select(func.count())
            .select_from(legal_holds.join(alerts, alerts.c.row_id == legal_holds.c.alert_row_id))
            .where(
                _ACTIVE, alerts.c.device_id == device_id, alerts.c.deployment_id == deployment_id
            )
        )
        with self.database.read() as db:
            return int(db.scalar(query) or 0)

    def history(self, alert_row_id: int) -> list[LegalHold]:
        query = (
            select(*_COLUMNS)
            .where(legal_holds.c.alert_row_id == alert_row_id)
            .order_by(legal_holds.c.id)
        )
        with self.database.read() as db:
            return [_hold(r) for r in db.execute(query)]


def _active(db: Any, alert_row_id: int) -> LegalHold | None:
    row = db.execute(
        select(*_COLUMNS).where(legal_holds.c.alert_row_id == alert_row_id, _ACTIVE)
    ).first()
    return None if row is None else _hold(row)


def _hold(r: Any) -> LegalHold:
    return LegalHold(
        int(r[0]),
        str(r[1]),
        str(r[2]),
        float(r[3]),
        None if r[4] is None else str(r[4]),
        None if r[5] is None else float(r[5]),
    )

"""The legal hold table of the hub database (newest revision).

``legal_holds``: one row per hold a supervisor put on an alert row (``alerts.row_id``)
with the case reference, who and when, and once released who released it and when.
At most one hold per alert is active (``released_at`` NULL; a partial unique index on
both engines). The retention purge skips an alert with an active hold; a released hold
stays as the alert's history and goes with the alert when it is purged.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Table

from agent.hub.store.metadata import RowId, Seconds, Str, metadata

legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column(
        "alert_row_id",
        RowId,
        ForeignKey("alerts.row_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("case_ref", Str, nullable=False),
    Column("held_by", Str, nullable=False),
    Column("held_at", Seconds, nullable=False),
    Column("released_by", Str, nullable=True),
    Column("released_at", Seconds, nullable=True),
    sqlite_autoincrement=True,
)

Index(
    "uq_legal_holds_active",
    legal_holds.c.alert_row_id,
    unique=True,
    sqlite_where=legal_holds.c.released_at.is_(None),
    postgresql_where=legal_holds.c.released_at.is_(None),
)

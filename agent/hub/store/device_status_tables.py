"""The last status each camera published (retained ``lfr/v1/<dev>/status``), as the
hub's status tracker received it. Statuses are unsigned: the fleet page says so."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Table

from agent.hub.store.metadata import Seconds, Str, metadata

device_status = Table(
    "device_status",
    metadata,
    Column("device_id", Str, primary_key=True),
    Column("online", Boolean, nullable=False),
    # The checked status body (agent/protocol/device_status.py) as JSON; "{}" offline.
    Column("body_json", Str, nullable=False),
    Column("received_at", Seconds, nullable=False),
)

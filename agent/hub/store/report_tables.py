"""The deployment report table: each verified report once per (device, deployment,
activation sequence). Reports carry aggregate figures only."""

from __future__ import annotations

from sqlalchemy import Column, Table

from agent.hub.store.metadata import Bytes, RowId, Seconds, Str, metadata

deployment_reports = Table(
    "deployment_reports",
    metadata,
    Column("device_id", Str, primary_key=True),
    Column("deployment_id", Str, primary_key=True),
    Column("activation_sequence", RowId, primary_key=True, autoincrement=False),
    Column("received_at", Seconds, nullable=False),
    Column("body", Str, nullable=False),
    Column("envelope", Bytes, nullable=False),
)

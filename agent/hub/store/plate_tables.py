"""The plate tables of the hub database, apart from the face tables.

Plate alerts and plates deployment reports have tables of their own and nothing in
them refers to a face table or is referred to by one: no foreign key, no shared row id,
no join (the hub never relates a plate record to a face record; docs/privacy.md).

``plate_alerts``: one row per stored plate alert, identified like a face alert by camera,
signing key and alert id (and unique per camera, key and sequence); ``plate_crops`` (the
plate and vehicle JPEGs) and ``plate_adjudications`` belong to it and go with it;
``purged_plate_alerts`` is the tombstone a retention purge leaves (identity, digests and
ack secret; no plate); ``plate_deployment_reports`` keeps each verified plates report once.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Table, UniqueConstraint

from agent.hub.store.metadata import Bytes, RowId, Seconds, Str, metadata

plate_alerts = Table(
    "plate_alerts",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("alert_id", Str, nullable=False),
    Column("device_id", Str, nullable=False),
    Column("key_id", Str, nullable=False),
    Column("deployment_id", Str, nullable=False),
    Column("seq", RowId, nullable=False),
    Column("sealed_at", Seconds, nullable=False),
    Column("received_at", Seconds, nullable=False),
    Column("hotlist_entry", Str, nullable=False),
    Column("plate", Str, nullable=False),
    Column("plate_format", Str, nullable=False),
    Column("colour", Str, nullable=False),
    Column("confidence", Seconds, nullable=False),
    Column("threshold", Seconds, nullable=False),
    Column("model_id", Str, nullable=False),
    Column("track_id", RowId, nullable=False),
    Column("reads", RowId, nullable=False),
    Column("agreeing", RowId, nullable=False),
    Column("first_seen", Seconds, nullable=False),
    Column("decided_at", Seconds, nullable=False),
    Column("envelope_sha256", Str, nullable=False),
    Column("signed_sha256", Str, nullable=False),
    Column("ack_secret", Bytes, nullable=False),
    UniqueConstraint("device_id", "key_id", "alert_id"),
    UniqueConstraint("device_id", "key_id", "seq"),
    Index(None, "received_at"),
    Index(None, "alert_id"),
    sqlite_autoincrement=True,
)

plate_crops = Table(
    "plate_crops",
    metadata,
    Column(
        "alert_row_id",
        RowId,
        ForeignKey("plate_alerts.row_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", Str, primary_key=True),
    Column("jpeg", Bytes, nullable=False),
    CheckConstraint("kind IN ('plate', 'vehicle')", name="kind"),
)

plate_adjudications = Table(
    "plate_adjudications",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column(
        "alert_row_id",
        RowId,
        ForeignKey("plate_alerts.row_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("outcome", Str, nullable=False),
    Column("by_ref", Str, nullable=False),
    Column("at", Seconds, nullable=False),
    sqlite_autoincrement=True,
)

purged_plate_alerts = Table(
    "purged_plate_alerts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("alert_id", Str, nullable=False),
    Column("device_id", Str, nullable=False),
    Column("key_id", Str, nullable=False),
    Column("seq", RowId, nullable=False),
    Column("envelope_sha256", Str, nullable=False),
    Column("signed_sha256", Str, nullable=False),
    Column("ack_secret", Bytes, nullable=False),
    Column("purged_at", Seconds, nullable=False),
    UniqueConstraint("device_id", "key_id", "alert_id"),
    UniqueConstraint("device_id", "key_id", "seq"),
    sqlite_autoincrement=True,
)

plate_deployment_reports = Table(
    "plate_deployment_reports",
    metadata,
    Column("device_id", Str, primary_key=True),
    Column("deployment_id", Str, primary_key=True),
    Column("activation_sequence", RowId, primary_key=True, autoincrement=False),
    Column("received_at", Seconds, nullable=False),
    Column("body", Str, nullable=False),
    Column("envelope", Bytes, nullable=False),
)

"""The clip and recording tables of the hub database (newest revision).

``media_transfers`` / ``media_chunks``: a clip or segment being received (its verified
manifest, the chunks so far); nothing shows them. ``alert_clips``: one row per alert
row (``alerts.row_id``): the clip, complete (decrypted MP4, checked) or ``missing`` with
the camera's reason; it goes with its alert (``ON DELETE CASCADE``), so the alert's
retention purge covers it. ``evidence_segments``: recording segments as the camera
sealed them (manifest and box), opened only by an export with the evidence key.
``evidence_requests`` records every request and who made it; ``evidence_purges`` every
segment retention run.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Table, UniqueConstraint

from agent.hub.store.metadata import Bytes, RowId, Seconds, Str, metadata

media_transfers = Table(
    "media_transfers",
    metadata,
    Column("media_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("kind", Str, nullable=False),
    Column("manifest", Bytes, nullable=False),
    Column("chunks", RowId, nullable=False),
    Column("started_at", Seconds, nullable=False),
    CheckConstraint("kind IN ('clip', 'segment')", name="kind"),
)

media_chunks = Table(
    "media_chunks",
    metadata,
    Column(
        "media_id",
        Str,
        ForeignKey("media_transfers.media_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("idx", RowId, primary_key=True, autoincrement=False),
    Column("data", Bytes, nullable=False),
)

alert_clips = Table(
    "alert_clips",
    metadata,
    Column(
        "alert_row_id",
        RowId,
        ForeignKey("alerts.row_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("media_id", Str, nullable=False),
    Column("state", Str, nullable=False),
    Column("reason", Str, nullable=False),
    Column("mp4", Bytes, nullable=True),
    Column("sha256", Str, nullable=False),
    Column("frames", RowId, nullable=False),
    Column("width", RowId, nullable=False),
    Column("height", RowId, nullable=False),
    Column("fps", Seconds, nullable=False),
    Column("start", Seconds, nullable=False),
    Column("end", Seconds, nullable=False),
    Column("received_at", Seconds, nullable=False),
    Column("ack_secret", Bytes, nullable=True),
    UniqueConstraint("media_id"),
    CheckConstraint("state IN ('complete', 'missing')", name="state"),
)

evidence_segments = Table(
    "evidence_segments",
    metadata,
    Column("media_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("deployment_id", Str, nullable=False),
    Column("start", Seconds, nullable=False),
    Column("end", Seconds, nullable=False),
    Column("manifest", Bytes, nullable=False),
    Column("box", Bytes, nullable=False),
    Column("frames", RowId, nullable=False),
    Column("ack_secret", Bytes, nullable=False),
    Column("received_at", Seconds, nullable=False),
    Index(None, "device_id", "start"),
)

evidence_requests = Table(
    "evidence_requests",
    metadata,
    Column("request_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("start", Seconds, nullable=False),
    Column("end", Seconds, nullable=False),
    Column("by_ref", Str, nullable=False),
    Column("at", Seconds, nullable=False),
)

evidence_purges = Table(
    "evidence_purges",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("at", Seconds, nullable=False),
    Column("cutoff", Seconds, nullable=False),
    Column("segments", RowId, nullable=False),
    Column("staged", RowId, nullable=False),
    sqlite_autoincrement=True,
)

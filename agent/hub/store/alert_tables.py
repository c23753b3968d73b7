"""The alert tables of the hub database (newest revision).

``alerts``: one row per stored alert. ``row_id`` is the hub's own key; an alert is
identified by its camera, the key that signed it and its alert id together, so a camera
that re-uses another camera's alert id cannot block the genuine alert (both are kept;
lookups by id alone then name both). ``(device_id, key_id, seq)`` is unique as well: a
different envelope re-using a sequence number under the same key is refused. ``key_id``
is the SHA-256 of the device signing key that verified the alert (empty for rows whose
device had no key enrolled when the schema was upgraded). ``signed_sha256`` is the
digest of the signed content (``OpenedAlert.signed_sha256``), which decides whether a
copy is a redelivery; NULL for rows stored before it existed, which compare by
``envelope_sha256`` (the exact envelope bytes). ``ack_secret`` is the proof the hub's
acknowledgement carries (NULL for alerts from devices that predate it).

``crops`` (probe and scene JPEGs) and ``adjudications`` (every outcome, latest last)
belong to an alert row and go with it. ``purged_alerts`` is the tombstone a retention
purge leaves: identity, digests and ack secret only, nothing about the face or the
match; ``purge_log`` records every purge run. ``device_keys`` is the registry of
enrolled device signing keys (PEM); ``device_withdrawals`` records each camera withdrawn
for good (``lfr-hub device withdraw``: who, when, why, the key it held, the certificate
serials revoked): its key is no longer accepted and it cannot be enrolled again.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Table, UniqueConstraint

from agent.hub.store.metadata import Bytes, RowId, Seconds, Str, metadata

device_keys = Table(
    "device_keys",
    metadata,
    Column("device_id", Str, primary_key=True),
    Column("public_pem", Str, nullable=False),
    Column("added_at", Seconds, nullable=False),
)

device_withdrawals = Table(
    "device_withdrawals",
    metadata,
    Column("device_id", Str, primary_key=True),
    Column("public_pem", Str, nullable=True),
    Column("withdrawn_at", Seconds, nullable=False),
    Column("by_ref", Str, nullable=False),
    Column("reason", Str, nullable=False),
    Column("revoked_serials", Str, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("alert_id", Str, nullable=False),
    Column("device_id", Str, nullable=False),
    Column("key_id", Str, nullable=False),
    Column("deployment_id", Str, nullable=False),
    Column("seq", RowId, nullable=False),
    Column("sealed_at", Seconds, nullable=False),
    Column("received_at", Seconds, nullable=False),
    Column("watchlist_entry", Str, nullable=False),
    Column("score", Seconds, nullable=False),
    Column("threshold", Seconds, nullable=False),
    Column("model_id", Str, nullable=False),
    Column("track_id", RowId, nullable=False),
    Column("first_seen", Seconds, nullable=False),
    Column("decided_at", Seconds, nullable=False),
    Column("quality_json", Str, nullable=False),
    Column("envelope_sha256", Str, nullable=False),
    Column("signed_sha256", Str, nullable=True),
    Column("ack_secret", Bytes, nullable=True),
    UniqueConstraint("device_id", "key_id", "alert_id"),
    UniqueConstraint("device_id", "key_id", "seq"),
    Index(None, "received_at"),
    Index(None, "alert_id"),
    sqlite_autoincrement=True,
)

crops = Table(
    "crops",
    metadata,
    Column(
        "alert_row_id",
        RowId,
        ForeignKey("alerts.row_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", Str, primary_key=True),
    Column("jpeg", Bytes, nullable=False),
    CheckConstraint("kind IN ('probe', 'scene')", name="kind"),
)

adjudications = Table(
    "adjudications",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column(
        "alert_row_id",
        RowId,
        ForeignKey("alerts.row_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("outcome", Str, nullable=False),
    Column("by_ref", Str, nullable=False),
    # The operator's free-text note (console adjudications; empty from the CLI).
    Column("note", Str, nullable=False, server_default=""),
    Column("at", Seconds, nullable=False),
    sqlite_autoincrement=True,
)

purge_log = Table(
    "purge_log",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("at", Seconds, nullable=False),
    Column("older_than_s", Seconds, nullable=False),
    Column("cutoff", Seconds, nullable=False),
    Column("alerts", RowId, nullable=False),
    Column("by_ref", Str, nullable=False),
    sqlite_autoincrement=True,
)

purged_alerts = Table(
    "purged_alerts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("alert_id", Str, nullable=False),
    Column("device_id", Str, nullable=False),
    Column("key_id", Str, nullable=False),
    Column("seq", RowId, nullable=False),
    Column("envelope_sha256", Str, nullable=False),
    Column("signed_sha256", Str, nullable=True),
    Column("ack_secret", Bytes, nullable=True),
    Column("purge_id", RowId, ForeignKey("purge_log.id"), nullable=False),
    UniqueConstraint("device_id", "key_id", "alert_id"),
    UniqueConstraint("device_id", "key_id", "seq"),
    Index(None, "alert_id"),
    sqlite_autoincrement=True,
)

"""Alert ids are unique per (camera, signing key), not across the hub; redeliveries are
recognised by the digest of the signed content.

A camera that sends another camera's alert id no longer blocks the genuine alert: an
alert is identified by ``(device_id, key_id, alert_id)`` and gets a hub row id
(``alerts.row_id``) that its crops and adjudications reference. ``signed_sha256`` (NULL
for rows stored before this revision, which compare by envelope bytes) lets a re-encoded
copy of the same signed alert count as a duplicate. Tombstones follow suit.

The four tables are copied aside without constraints, dropped (children first) and
re-created, so every constraint and index carries its conventional name on both engines;
existing rows keep their order and adjudications their ids. On PostgreSQL crops are
stored uncompressed out of line and kept out of the planner's statistics: a crop's bytes
never land in ``pg_statistic``, and nothing is gained compressing JPEG.

Revision ID: 0002_alert_ids_per_camera
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_alert_ids_per_camera"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SECONDS: sa.Double[float] = sa.Double()
_BYTES = sa.LargeBinary()
_COPIED = ("adjudications", "crops", "purged_alerts", "alerts")
_ALERT_COLUMNS = (
    "alert_id, device_id, key_id, deployment_id, seq, sealed_at, received_at, "
    "watchlist_entry, score, threshold, model_id, track_id, first_seen, decided_at, "
    "quality_json, envelope_sha256, ack_secret"
)


def _create_tables() -> None:
    op.create_table(
        "alerts",
        sa.Column("row_id", _ROW_ID, nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.Text(), nullable=False),
        sa.Column("seq", _ROW_ID, nullable=False),
        sa.Column("sealed_at", _SECONDS, nullable=False),
        sa.Column("received_at", _SECONDS, nullable=False),
        sa.Column("watchlist_entry", sa.Text(), nullable=False),
        sa.Column("score", _SECONDS, nullable=False),
        sa.Column("threshold", _SECONDS, nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("track_id", _ROW_ID, nullable=False),
        sa.Column("first_seen", _SECONDS, nullable=False),
        sa.Column("decided_at", _SECONDS, nullable=False),
        sa.Column("quality_json", sa.Text(), nullable=False),
        sa.Column("envelope_sha256", sa.Text(), nullable=False),
        sa.Column("signed_sha256", sa.Text(), nullable=True),
        sa.Column("ack_secret", _BYTES, nullable=True),
        sa.PrimaryKeyConstraint("row_id", name="pk_alerts"),
        sa.UniqueConstraint(
            "device_id", "key_id", "alert_id", name="uq_alerts_device_id_key_id_alert_id"
        ),
        sa.UniqueConstraint("device_id", "key_id", "seq", name="uq_alerts_device_id_key_id_seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alerts_received_at", "alerts", ["received_at"])
    op.create_index("ix_alerts_alert_id", "alerts", ["alert_id"])
    op.create_table(
        "crops",
        sa.Column("alert_row_id", _ROW_ID, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("jpeg", _BYTES, nullable=False),
        sa.PrimaryKeyConstraint("alert_row_id", "kind", name="pk_crops"),
        sa.ForeignKeyConstraint(
            ["alert_row_id"],
            ["alerts.row_id"],
            name="fk_crops_alert_row_id_alerts",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("kind IN ('probe', 'scene')", name="ck_crops_kind"),
    )
    op.create_table(
        "adjudications",
        sa.Column("id", _ROW_ID, nullable=False, autoincrement=True),
        sa.Column("alert_row_id", _ROW_ID, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("by_ref", sa.Text(), nullable=False),
        sa.Column("at", _SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_adjudications"),
        sa.ForeignKeyConstraint(
            ["alert_row_id"],
            ["alerts.row_id"],
            name="fk_adjudications_alert_row_id_alerts",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_adjudications_alert_row_id", "adjudications", ["alert_row_id"])
    op.create_table(
        "purged_alerts",
        sa.Column("id", _ROW_ID, nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("seq", _ROW_ID, nullable=False),
        sa.Column("envelope_sha256", sa.Text(), nullable=False),
        sa.Column("signed_sha256", sa.Text(), nullable=True),
        sa.Column("ack_secret", _BYTES, nullable=True),
        sa.Column("purge_id", _ROW_ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_purged_alerts"),
        sa.ForeignKeyConstraint(
            ["purge_id"], ["purge_log.id"], name="fk_purged_alerts_purge_id_purge_log"
        ),
        sa.UniqueConstraint(
            "device_id", "key_id", "alert_id", name="uq_purged_alerts_device_id_key_id_alert_id"
        ),
        sa.UniqueConstraint(
            "device_id", "key_id", "seq", name="uq_purged_alerts_device_id_key_id_seq"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_purged_alerts_alert_id", "purged_alerts", ["alert_id"])


def upgrade() -> None:
    for table in _COPIED:
        op.execute(f"CREATE TABLE {table}_0001 AS SELECT * FROM {table}")
    for table in _COPIED:
        op.drop_table(table)
    _create_tables()
    # Old alert ids were unique across the hub, so they map each crop and outcome to
    # exactly one new row.
    op.execute(
        f"INSERT INTO alerts ({_ALERT_COLUMNS}) SELECT {_ALERT_COLUMNS} FROM alerts_0001 "
        "ORDER BY received_at, seq"
    )
    op.execute(
        "INSERT INTO crops (alert_row_id, kind, jpeg) SELECT a.row_id, c.kind, c.jpeg "
        "FROM crops_0001 c JOIN alerts a ON a.alert_id = c.alert_id"
    )
    op.execute(
        "INSERT INTO adjudications (id, alert_row_id, outcome, by_ref, at) "
        "SELECT j.id, a.row_id, j.outcome, j.by_ref, j.at "
        "FROM adjudications_0001 j JOIN alerts a ON a.alert_id = j.alert_id ORDER BY j.id"
    )
    op.execute(
        "INSERT INTO purged_alerts (alert_id, device_id, key_id, seq, envelope_sha256, "
        "ack_secret, purge_id) SELECT alert_id, device_id, key_id, seq, envelope_sha256, "
        "ack_secret, purge_id FROM purged_alerts_0001 ORDER BY purge_id, seq"
    )
    for table in _COPIED:
        op.drop_table(f"{table}_0001")
    if op.get_bind().dialect.name == "postgresql":
        # Adjudication ids were copied: the sequence continues after the largest.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('adjudications', 'id'), "
            "COALESCE(MAX(id), 0) + 1, false) FROM adjudications"
        )
        op.execute("ALTER TABLE crops ALTER COLUMN jpeg SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE crops ALTER COLUMN jpeg SET STATISTICS 0")


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

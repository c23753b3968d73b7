"""Baseline: the hub database as it was before migrations (alerts with per-key sequence
numbers and ack secrets, crops, adjudications, purges and tombstones, device keys,
deployment reports).

A file made by the older code, without a version table, is brought to exactly this
revision by ``legacy_sqlite.adopt`` and stamped; a new database is created here.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here: later revisions change the tables, never this file.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SECONDS: sa.Double[float] = sa.Double()
_BYTES = sa.LargeBinary()


def upgrade() -> None:
    op.create_table(
        "device_keys",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("added_at", _SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_keys"),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
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
        sa.Column("ack_secret", _BYTES, nullable=True),
        sa.Column("key_id", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
        sa.UniqueConstraint("device_id", "key_id", "seq", name="uq_alerts_device_id_key_id_seq"),
    )
    op.create_index("alerts_received", "alerts", ["received_at"])
    op.create_table(
        "crops",
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("jpeg", _BYTES, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "kind", name="pk_crops"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert_id"], name="fk_crops_alert_id_alerts", ondelete="CASCADE"
        ),
        sa.CheckConstraint("kind IN ('probe', 'scene')", name="ck_crops_kind"),
    )
    op.create_table(
        "purge_log",
        sa.Column("id", _ROW_ID, nullable=False, autoincrement=True),
        sa.Column("at", _SECONDS, nullable=False),
        sa.Column("older_than_s", _SECONDS, nullable=False),
        sa.Column("cutoff", _SECONDS, nullable=False),
        sa.Column("alerts", _ROW_ID, nullable=False),
        sa.Column("by_ref", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_purge_log"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "purged_alerts",
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("seq", _ROW_ID, nullable=False),
        sa.Column("envelope_sha256", sa.Text(), nullable=False),
        sa.Column("ack_secret", _BYTES, nullable=True),
        sa.Column("purge_id", _ROW_ID, nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("alert_id", name="pk_purged_alerts"),
        sa.ForeignKeyConstraint(
            ["purge_id"], ["purge_log.id"], name="fk_purged_alerts_purge_id_purge_log"
        ),
        sa.UniqueConstraint(
            "device_id", "key_id", "seq", name="uq_purged_alerts_device_id_key_id_seq"
        ),
    )
    op.create_table(
        "adjudications",
        sa.Column("id", _ROW_ID, nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("by_ref", sa.Text(), nullable=False),
        sa.Column("at", _SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_adjudications"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert_id"],
            name="fk_adjudications_alert_id_alerts",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "deployment_reports",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.Text(), nullable=False),
        sa.Column("activation_sequence", _ROW_ID, nullable=False, autoincrement=False),
        sa.Column("received_at", _SECONDS, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("envelope", _BYTES, nullable=False),
        sa.PrimaryKeyConstraint(
            "device_id", "deployment_id", "activation_sequence", name="pk_deployment_reports"
        ),
    )


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

"""Number plates: plate alerts, their crops, adjudications and tombstones, and plates
deployment reports, in tables of their own that no face table refers to (and that refer
to none): the hub never joins a plate record to a face record.

Revision ID: 0005_plate_tables
Revises: 0004_media
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_plate_tables"
down_revision = "0004_media"
branch_labels = None
depends_on = None

# Frozen here: later revisions change the tables, never this file.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SECONDS: sa.Double[float] = sa.Double()
_BYTES = sa.LargeBinary()


def upgrade() -> None:
    op.create_table(
        "plate_alerts",
        sa.Column("row_id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.Text(), nullable=False),
        sa.Column("seq", _ROW_ID, nullable=False),
        sa.Column("sealed_at", _SECONDS, nullable=False),
        sa.Column("received_at", _SECONDS, nullable=False),
        sa.Column("hotlist_entry", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=False),
        sa.Column("plate_format", sa.Text(), nullable=False),
        sa.Column("colour", sa.Text(), nullable=False),
        sa.Column("confidence", _SECONDS, nullable=False),
        sa.Column("threshold", _SECONDS, nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("track_id", _ROW_ID, nullable=False),
        sa.Column("reads", _ROW_ID, nullable=False),
        sa.Column("agreeing", _ROW_ID, nullable=False),
        sa.Column("first_seen", _SECONDS, nullable=False),
        sa.Column("decided_at", _SECONDS, nullable=False),
        sa.Column("envelope_sha256", sa.Text(), nullable=False),
        sa.Column("signed_sha256", sa.Text(), nullable=False),
        sa.Column("ack_secret", _BYTES, nullable=False),
        sa.PrimaryKeyConstraint("row_id", name="pk_plate_alerts"),
        sa.UniqueConstraint(
            "device_id", "key_id", "alert_id", name="uq_plate_alerts_device_id_key_id_alert_id"
        ),
        sa.UniqueConstraint(
            "device_id", "key_id", "seq", name="uq_plate_alerts_device_id_key_id_seq"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_plate_alerts_received_at", "plate_alerts", ["received_at"])
    op.create_index("ix_plate_alerts_alert_id", "plate_alerts", ["alert_id"])
    op.create_table(
        "plate_crops",
        sa.Column("alert_row_id", _ROW_ID, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("jpeg", _BYTES, nullable=False),
        sa.CheckConstraint("kind IN ('plate', 'vehicle')", name="ck_plate_crops_kind"),
        sa.ForeignKeyConstraint(
            ["alert_row_id"],
            ["plate_alerts.row_id"],
            name="fk_plate_crops_alert_row_id_plate_alerts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_row_id", "kind", name="pk_plate_crops"),
    )
    op.create_table(
        "plate_adjudications",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("alert_row_id", _ROW_ID, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("by_ref", sa.Text(), nullable=False),
        sa.Column("at", _SECONDS, nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_row_id"],
            ["plate_alerts.row_id"],
            name="fk_plate_adjudications_alert_row_id_plate_alerts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_plate_adjudications"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_plate_adjudications_alert_row_id", "plate_adjudications", ["alert_row_id"])
    op.create_table(
        "purged_plate_alerts",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("seq", _ROW_ID, nullable=False),
        sa.Column("envelope_sha256", sa.Text(), nullable=False),
        sa.Column("signed_sha256", sa.Text(), nullable=False),
        sa.Column("ack_secret", _BYTES, nullable=False),
        sa.Column("purged_at", _SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_purged_plate_alerts"),
        sa.UniqueConstraint(
            "device_id",
            "key_id",
            "alert_id",
            name="uq_purged_plate_alerts_device_id_key_id_alert_id",
        ),
        sa.UniqueConstraint(
            "device_id", "key_id", "seq", name="uq_purged_plate_alerts_device_id_key_id_seq"
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "plate_deployment_reports",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.Text(), nullable=False),
        sa.Column("activation_sequence", _ROW_ID, autoincrement=False, nullable=False),
        sa.Column("received_at", _SECONDS, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("envelope", _BYTES, nullable=False),
        sa.PrimaryKeyConstraint(
            "device_id",
            "deployment_id",
            "activation_sequence",
            name="pk_plate_deployment_reports",
        ),
    )


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

"""Alert clips and CCTV recording segments: the staging of transfers in chunks, the clip
of each alert (deleted with it), sealed recording segments, evidence requests and the
record of segment retention runs.

Revision ID: 0004_media
Revises: 0003_device_withdrawals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_media"
down_revision = "0003_device_withdrawals"
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SECONDS: sa.Double[float] = sa.Double()
_BYTES = sa.LargeBinary()


def upgrade() -> None:
    op.create_table(
        "media_transfers",
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("manifest", _BYTES, nullable=False),
        sa.Column("chunks", _ROW_ID, nullable=False),
        sa.Column("started_at", _SECONDS, nullable=False),
        sa.CheckConstraint("kind IN ('clip', 'segment')", name="ck_media_transfers_kind"),
        sa.PrimaryKeyConstraint("media_id", name="pk_media_transfers"),
    )
    op.create_table(
        "media_chunks",
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("idx", _ROW_ID, nullable=False, autoincrement=False),
        sa.Column("data", _BYTES, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media_transfers.media_id"],
            name="fk_media_chunks_media_id_media_transfers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("media_id", "idx", name="pk_media_chunks"),
    )
    op.create_table(
        "alert_clips",
        sa.Column("alert_row_id", _ROW_ID, nullable=False, autoincrement=False),
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("mp4", _BYTES, nullable=True),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("frames", _ROW_ID, nullable=False),
        sa.Column("width", _ROW_ID, nullable=False),
        sa.Column("height", _ROW_ID, nullable=False),
        sa.Column("fps", _SECONDS, nullable=False),
        sa.Column("start", _SECONDS, nullable=False),
        sa.Column("end", _SECONDS, nullable=False),
        sa.Column("received_at", _SECONDS, nullable=False),
        sa.Column("ack_secret", _BYTES, nullable=True),
        sa.CheckConstraint("state IN ('complete', 'missing')", name="ck_alert_clips_state"),
        sa.ForeignKeyConstraint(
            ["alert_row_id"],
            ["alerts.row_id"],
            name="fk_alert_clips_alert_row_id_alerts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_row_id", name="pk_alert_clips"),
        sa.UniqueConstraint("media_id", name="uq_alert_clips_media_id"),
    )
    op.create_table(
        "evidence_segments",
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.Text(), nullable=False),
        sa.Column("start", _SECONDS, nullable=False),
        sa.Column("end", _SECONDS, nullable=False),
        sa.Column("manifest", _BYTES, nullable=False),
        sa.Column("box", _BYTES, nullable=False),
        sa.Column("frames", _ROW_ID, nullable=False),
        sa.Column("ack_secret", _BYTES, nullable=False),
        sa.Column("received_at", _SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("media_id", name="pk_evidence_segments"),
    )
    op.create_index(
        "ix_evidence_segments_device_id_start", "evidence_segments", ["device_id", "start"]
    )
    op.create_table(
        "evidence_requests",
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("start", _SECONDS, nullable=False),
        sa.Column("end", _SECONDS, nullable=False),
        sa.Column("by_ref", sa.Text(), nullable=False),
        sa.Column("at", _SECONDS, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_evidence_requests"),
    )
    op.create_table(
        "evidence_purges",
        sa.Column("id", _ROW_ID, nullable=False, autoincrement=True),
        sa.Column("at", _SECONDS, nullable=False),
        sa.Column("cutoff", _SECONDS, nullable=False),
        sa.Column("segments", _ROW_ID, nullable=False),
        sa.Column("staged", _ROW_ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_purges"),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == "postgresql":
        # Video is stored as it is (already compressed), out of line, and kept out of the
        # planner's statistics so no bytes of it land in pg_statistic.
        for table, column in (
            ("alert_clips", "mp4"),
            ("media_chunks", "data"),
            ("evidence_segments", "box"),
        ):
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0")


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

"""Legal holds on alerts: a supervisor's hold with a case reference keeps an alert from
the retention purge until it is released.

Revision ID: 0007_legal_holds
Revises: 0006_console_users
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_legal_holds"
down_revision = "0006_console_users"
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SECONDS: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("alert_row_id", _ROW_ID, nullable=False),
        sa.Column("case_ref", sa.Text(), nullable=False),
        sa.Column("held_by", sa.Text(), nullable=False),
        sa.Column("held_at", _SECONDS, nullable=False),
        sa.Column("released_by", sa.Text(), nullable=True),
        sa.Column("released_at", _SECONDS, nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_row_id"],
            ["alerts.row_id"],
            name="fk_legal_holds_alert_row_id_alerts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_legal_holds"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_legal_holds_alert_row_id", "legal_holds", ["alert_row_id"], unique=False)
    op.create_index(
        "uq_legal_holds_active",
        "legal_holds",
        ["alert_row_id"],
        unique=True,
        sqlite_where=sa.text("released_at IS NULL"),
        postgresql_where=sa.text("released_at IS NULL"),
    )


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

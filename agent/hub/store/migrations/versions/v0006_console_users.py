"""Console accounts and sessions (``lfr-hub user …``, the web console's login), a
note with each adjudication, and each camera's last status (the fleet page).

Revision ID: 0006_console_users
Revises: 0005_plate_tables
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_console_users"
down_revision = "0005_plate_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("adjudications") as batch:
        batch.add_column(sa.Column("note", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "console_users",
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.Text(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.Double(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "role IN ('operator', 'supervisor', 'auditor')", name="ck_console_users_role"
        ),
        sa.PrimaryKeyConstraint("username", name="pk_console_users"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"],
            ["console_users.username"],
            name="fk_console_sessions_username_console_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_username", "console_sessions", ["username"], unique=False)
    op.create_table(
        "device_status",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_status"),
    )


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

"""A record of each camera withdrawn for good (``lfr-hub device withdraw``).

While a row exists for a device, its registered signing key is not accepted (alerts,
reports and receipts from it are refused) and the device cannot be enrolled again.

Revision ID: 0003_device_withdrawals
Revises: 0002_alert_ids_per_camera
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_device_withdrawals"
down_revision = "0002_alert_ids_per_camera"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_withdrawals",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=True),
        sa.Column("withdrawn_at", sa.Double(), nullable=False),
        sa.Column("by_ref", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_serials", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_withdrawals"),
    )


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

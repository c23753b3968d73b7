"""Deployment plans with their public notices: a planned deployment, its notice's
publication, an urgent reason to go ahead without one, and its activation.

Revision ID: 0008_deployments
Revises: 0007_legal_holds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_deployments"
down_revision = "0007_legal_holds"
branch_labels = None
depends_on = None

_SECONDS: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("deployment_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("watchlist_sha256", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("window_start", _SECONDS, nullable=False),
        sa.Column("window_end", _SECONDS, nullable=False),
        sa.Column("officer", sa.Text(), nullable=False),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("planned_by", sa.Text(), nullable=False),
        sa.Column("planned_at", _SECONDS, nullable=False),
        sa.Column("notice_published_by", sa.Text(), nullable=True),
        sa.Column("notice_published_at", _SECONDS, nullable=True),
        sa.Column("urgent_reason", sa.Text(), nullable=True),
        sa.Column("urgent_by", sa.Text(), nullable=True),
        sa.Column("urgent_at", _SECONDS, nullable=True),
        sa.Column("activated_by", sa.Text(), nullable=True),
        sa.Column("activated_at", _SECONDS, nullable=True),
        sa.Column("activation_sha256", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("deployment_id", name="pk_deployments"),
    )
    op.create_index("ix_deployments_device_id", "deployments", ["device_id"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

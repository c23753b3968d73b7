"""Deployment plans stated as a target false-alert rate: the score kind of the threshold,
the target FPIR and the calibration figures (cohort size, false alerts in it, the FPIR
achieved and its 95 % interval). Nullable: plans made before, or with a raw threshold,
have none (a missing score kind is a cosine score).

Revision ID: 0009_deployment_calibration
Revises: 0008_deployments
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_deployment_calibration"
down_revision = "0008_deployments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("score", sa.Text(), nullable=True))
        batch.add_column(sa.Column("target_fpir", sa.Double(), nullable=True))
        batch.add_column(sa.Column("cohort_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("false_alerts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fpir", sa.Double(), nullable=True))
        batch.add_column(sa.Column("fpir_ci_low", sa.Double(), nullable=True))
        batch.add_column(sa.Column("fpir_ci_high", sa.Double(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the hub database is not downgraded: restore a backup instead")

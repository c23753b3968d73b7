"""Revision 0009_deployment_calibration on a database holding plans from 0008: they read
back as cosine thresholds with no target or calibration, and a calibrated plan keeps its
figures (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from agent.hub.store.database import HubDatabase
from agent.hub.store.deployment_store import Deployment, DeploymentStore
from agent.hub.store.schema_upgrade import _config
from agent.trust.activation_token import Calibration

OLD_PLAN = {
    "deployment_id": "dep-before-0009",
    "device_id": "lfr-old-01",
    "watchlist_sha256": "ab" * 32,
    "threshold": 0.55,
    "window_start": 1_800_000_000.0,
    "window_end": 1_800_003_600.0,
    "officer": "Insp. Jane Doe",
    "place": "Market Street",
    "purpose": "public-event-safety",
    "planned_by": "olive",
    "planned_at": 1_799_990_000.0,
}


def test_plans_from_0008_survive_and_calibrated_plans_keep_their_figures(
    hub_db_url: str,
) -> None:
    old = HubDatabase(hub_db_url, upgrade=False)
    with old.engine.begin() as conn:
        command.upgrade(_config(conn), "0008_deployments")
        # Only the columns revision 0008 had.
        columns = ", ".join(OLD_PLAN)
        values = ", ".join(f":{name}" for name in OLD_PLAN)
        conn.execute(text(f"INSERT INTO deployments ({columns}) VALUES ({values})"), OLD_PLAN)
    old.engine.dispose()

    db = HubDatabase(hub_db_url)
    try:
        store = DeploymentStore(db)
        before = store.get("dep-before-0009")
        assert before is not None
        assert (before.threshold, before.score, before.target_fpir, before.calibration) == (
            0.55,
            "cosine",
            None,
            None,
        )
        c = Calibration(cohort_size=20_000, false_alerts=3, fpir=1.5e-4, fpir_ci95=(5e-5, 4.4e-4))
        planned = store.plan(
            Deployment(**{**OLD_PLAN, "deployment_id": "dep-calibrated"}).with_calibration(
                "snorm", 1 / 6000, 3.21, c
            )
        )
        got = store.get("dep-calibrated")
        assert got == planned and got is not None
        assert (got.score, got.target_fpir, got.threshold, got.calibration) == (
            "snorm",
            1 / 6000,
            3.21,
            c,
        )
    finally:
        db.close()

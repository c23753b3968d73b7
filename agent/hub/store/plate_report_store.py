"""The hub's plates deployment reports: kept once each in ``plate_deployment_reports``,
apart from the faces reports (same rules, own table)."""

from __future__ import annotations

from pathlib import Path

from agent.hub.store.database import HubDatabase
from agent.hub.store.plate_tables import plate_deployment_reports
from agent.hub.store.report_store import DeploymentReportStore


class PlateReportStore(DeploymentReportStore):
    def __init__(self, target: HubDatabase | str | Path) -> None:
        super().__init__(target, plate_deployment_reports)

"""What every console page works with: the stores, the accounts, the audit log, the
templates. One per app; built by the service (or a test) and given to the app factory."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from starlette.templating import Jinja2Templates

from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.audit.hub_audit_log import HubAudit
from agent.hub.console.hold_desk import HoldDesk
from agent.hub.console.login_rate_limit import LoginRateLimit
from agent.hub.console.plan_calibration import PlanCalibrator
from agent.hub.console.signing_sessions import SigningSessions
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.media_store import MediaStore
from agent.hub.store.plate_alert_store import PlateAlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.hub.watchlists.hub_maps import HubMaps
from agent.untrusted_text import shown

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    # Text a camera sent: control and bidi characters made visible, then HTML-escaped
    # by autoescape like everything else.
    env.filters["shown"] = shown
    env.filters["utc"] = _utc
    return Jinja2Templates(env=env)


@dataclass
class ConsoleContext:
    alerts: AlertStore
    accounts: ConsoleAccounts
    audit: HubAudit
    templates: Jinja2Templates
    hub_maps: HubMaps | None = None
    login_limit: LoginRateLimit = field(default_factory=LoginRateLimit)
    #: Signing keys unlocked per session (none: the console signs nothing).
    signing: SigningSessions = field(default_factory=lambda: SigningSessions(None))
    #: Live deployments, holds and stops (None: this process has no broker connection).
    hold_desk: HoldDesk | None = None
    #: Thresholds from a target false-alert rate (None: plans give a raw threshold).
    calibrator: PlanCalibrator | None = None
    #: Alert clips (and recording segments): the same database as ``alerts``.
    media: MediaStore = field(init=False)
    #: Deployment reports: the same database as ``alerts``.
    reports: DeploymentReportStore = field(init=False)
    #: Plate hits (ANPR): the same database, their own tables.
    plates: PlateAlertStore = field(init=False)

    def __post_init__(self) -> None:
        self.media = MediaStore(self.alerts.database)
        self.reports = DeploymentReportStore(self.alerts.database)
        self.plates = PlateAlertStore(self.alerts.database)

"""``lfr-hub serve``: the hub as one long-running process.

It runs, under one supervisor:

- the MQTT intake (``agent/hub/intake/``): alerts and deployment reports received,
  verified, stored once and acknowledged, with the retention purge; a shared
  subscription when several workers split the alerts;
- the device status tracker (``agent/hub/devices/status_tracker.py``): retained
  statuses and last wills, for the fleet page;
- the renewal keeper (``agent/hub/service/renewal_keeper.py``): renews a live
  deployment's lease only while officers are confirmed present from the console;
- the web console (uvicorn, HTTPS only) on the same hub database.

SIGTERM or SIGINT stops it gracefully: the intake first (no new messages are taken;
the one being stored is finished and acknowledged; an alert not yet acknowledged is
re-sent by its camera and stored once), then the web server (open pages and event
streams are closed after ``GRACEFUL_S``), then the database and the audit log.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol

import uvicorn
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.errors import LfrError
from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.audit.hub_audit_log import HubAudit
from agent.hub.console.console_app import create_console_app
from agent.hub.console.console_context import ConsoleContext, make_templates
from agent.hub.console.hold_desk import HoldDesk
from agent.hub.console.plan_calibration import PlanCalibrator
from agent.hub.console.signing_sessions import SigningSessions
from agent.hub.devices.live_leases import LeaseBook
from agent.hub.devices.officer_holds import HoldTiming, OfficerHolds
from agent.hub.devices.status_tracker import StatusTracker
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker
from agent.hub.intake.media_receiver import HubMediaWorker, MediaReceiver
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.keys.pki import certificate_common_name, hub_identity, load_certificate
from agent.hub.service.control_channel import ControlChannel
from agent.hub.service.hub_config import HubConfig
from agent.hub.service.renewal_keeper import RenewalKeeper
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase
from agent.hub.store.device_status_store import DeviceStatusStore
from agent.hub.store.media_store import MediaStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.hub.watchlists.hub_maps import HubMaps
from agent.protocol.topics import ALL_EVENTS, shared_subscription
from agent.transport.mqtt_link import MqttLink, MqttSettings
from agent.trust.key_files import load_private_key

log = logging.getLogger(__name__)
GRACEFUL_S = 3.0


class BackgroundTask(Protocol):
    """A part of the service with its own thread(s): started before the web server,
    stopped after it, in reverse order of starting."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _broker_settings(cfg: HubConfig) -> MqttSettings:
    b = cfg.broker
    host, _, port = b.address.rpartition(":")
    cn = hub_identity(b.identity)
    clients = b.pki_dir / "clients"
    cert = clients / f"{cn}-cert.pem"
    client_id = certificate_common_name(load_certificate(cert)) if cert.is_file() else cn
    return MqttSettings(
        host=host,
        port=int(port),
        ca_file=b.pki_dir / "ca.pem",
        cert_file=cert,
        key_file=clients / f"{cn}-key.pem",
        client_id=client_id,
    )


class MqttIntake:
    """The alert and report receiver on one broker connection, with the retention purge."""

    def __init__(self, cfg: HubConfig, store: AlertStore, audit: HubAudit) -> None:
        b = cfg.broker
        self.audit = audit
        hub_key = load_private_key(b.alert_key, X25519PrivateKey)  # type: ignore[type-abstract]
        self.link = MqttLink(_broker_settings(cfg))
        self.store = store
        self.retention_s = b.retention_days * 86400
        self.purge_every_s = b.purge_every_s
        group = b.share_group or None
        self.worker = HubAlertWorker(
            self.link, AlertReceiver(store, hub_key, max_age_s=self.retention_s), share_group=group
        )
        evidence_key = (
            load_private_key(Path(b.evidence_key), X25519PrivateKey)  # type: ignore[type-abstract]
            if b.evidence_key
            else None
        )
        self.media = MediaStore(store.database)
        # Clips and requested segments on the same connection and share group.
        HubMediaWorker(
            self.link,
            MediaReceiver(store, self.media, hub_key, evidence_key),
            share_group=group,
        )
        self.reports = DeploymentReportStore(store.database)
        report_receiver = ReportReceiver(
            self.reports, store.device_key, hub_key=hub_key, acknowledge=self.link.publish
        )
        events = shared_subscription(group, ALL_EVENTS) if group else ALL_EVENTS
        self.link.subscribe(events, report_receiver.handle)
        # Every worker follows every status (retained; recording one twice is harmless).
        StatusTracker(self.link, DeviceStatusStore(store.database))
        self._by = f"serve hub.{b.identity}"
        self._stop = threading.Event()
        self._purger = threading.Thread(target=self._purge_loop, name="purge", daemon=True)

    def _purge_loop(self) -> None:
        while not self._stop.is_set():
            try:
                record = self.store.purge(self.retention_s, by_ref=self._by)  # clips too
                segments, staged = self.media.purge(self.retention_s)
                # A run that removed nothing is in purge_log only: the audit trail records
                # what was deleted, not every idle check.
                if record.alerts or segments or staged:
                    self.audit.record(
                        "retention.purged",
                        purge_id=record.purge_id,
                        alerts=record.alerts,
                        held=record.held,
                        segments=segments,
                        staged_transfers=staged,
                        older_than_s=self.retention_s,
                        by=self._by,
                    )
            except LfrError as exc:
                log.error("retention purge failed: %s", exc)
            self._stop.wait(self.purge_every_s)

    def start(self) -> None:
        self.worker.start()
        self._purger.start()

    def stop(self) -> None:
        self._stop.set()
        self.worker.stop()  # the link finishes the message in hand before it closes
        self._purger.join(timeout=30)
        self.reports.close()
        self.media.close()


@dataclass
class HubService:
    cfg: HubConfig
    tasks: list[BackgroundTask] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> int:
        cfg = self.cfg
        # Unlocked signing keys live in this process only: gone when it stops.
        keys = HubKeyStore.open(Path(cfg.keys.dir)) if cfg.keys.dir else None
        signing = SigningSessions(keys)
        database = HubDatabase(cfg.database.url)
        store = AlertStore(database)
        audit = HubAudit.open(cfg.audit.log, cfg.audit.signing_key, cfg.audit.checkpoint_every)
        accounts = _accounts(cfg, database)
        desk: HoldDesk | None = None
        server: uvicorn.Server | None = None
        web: threading.Thread | None = None
        started: list[BackgroundTask] = []
        try:
            if cfg.broker.enabled:
                intake = MqttIntake(cfg, store, audit)
                desk = _hold_desk(cfg, intake.link, store)
                keeper = RenewalKeeper(
                    desk.channel, desk.holds, signing, accounts, audit, desk.timing
                )
                # Started in this order, stopped in reverse: the keeper before the link.
                self.tasks[0:0] = [intake, keeper]
            for task in self.tasks:
                task.start()
                started.append(task)
            if cfg.console.enabled:
                ctx = ConsoleContext(
                    store,
                    accounts,
                    audit,
                    make_templates(),
                    HubMaps(cfg.watchlists.maps_dir),
                    signing=signing,
                    hold_desk=desk,
                    # Its cohort stays in memory while the service runs (loaded at first use).
                    calibrator=PlanCalibrator(cfg.calibration, keys, cfg.watchlists.maps_dir),
                )
                server = _web_server(cfg, ctx)
                web = threading.Thread(target=server.run, name="console", daemon=True)
                web.start()
            audit.record("service.started", console=cfg.console.enabled)
            log.info("hub service running")
            while not self.stopping.wait(0.5):
                if web is not None and not web.is_alive():
                    raise LfrError("console: the web server stopped (see the log above)")
        finally:
            for task in reversed(started):
                task.stop()
            if server is not None and web is not None:
                server.should_exit = True
                web.join(timeout=GRACEFUL_S + 10)
            signing.clear()
            audit.record("service.stopped")
            audit.close()
            database.close()
        return 0

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        log.info("signal %d: stopping", signum)
        self.stopping.set()


def _accounts(cfg: HubConfig, database: HubDatabase) -> ConsoleAccounts:
    c = cfg.console
    return ConsoleAccounts(
        database,
        idle_s=c.session_idle_min * 60,
        max_s=c.session_max_h * 3600,
        max_failures=c.login_max_failures,
        lockout_s=c.lockout_min * 60,
    )


def _hold_desk(cfg: HubConfig, link: MqttLink, store: AlertStore) -> HoldDesk:
    """The lease book fed by the cameras' receipts on ``link``, the officers' holds and
    the channel renewals and stops go out on."""
    book = LeaseBook()
    h = cfg.hold
    timing = HoldTiming(h.confirm_every_s, h.renew_every_s, h.lease_s)
    return HoldDesk(book, OfficerHolds(), ControlChannel(link, store.device_key, book), timing)


def _web_server(cfg: HubConfig, ctx: ConsoleContext) -> uvicorn.Server:
    c = cfg.console
    for path in (c.tls_cert, c.tls_key):
        if not path.is_file():
            raise LfrError(f"console: {path}: file not found (the console serves HTTPS only)")
    app = create_console_app(ctx)
    config = uvicorn.Config(
        app,
        host=c.listen_host,
        port=c.port,
        ssl_certfile=str(c.tls_cert),
        ssl_keyfile=str(c.tls_key),
        log_level=cfg.logging.level,
        timeout_graceful_shutdown=int(GRACEFUL_S),
        server_header=False,
        proxy_headers=False,
    )
    return uvicorn.Server(config)


def serve(cfg: HubConfig) -> int:
    """Run until SIGTERM or SIGINT; the signal handlers belong to this thread."""
    service = HubService(cfg)
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    started = time.monotonic()
    rc = service.run()
    log.info("hub service stopped after %.0f s", time.monotonic() - started)
    return rc

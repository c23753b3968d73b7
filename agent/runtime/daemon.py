"""``lfr-agent run``: wires the control plane, the capture gate, the face pipeline and the
alert path together, and looks after them.

Threads and what flows between them::

    paho network thread ──(activation / watchlist payloads)──► control queue
    control thread: verify ─► watchlist bind ─► CaptureGate.activate / renew / stop,
                    deployment end (report, wipe), watchlist expiry ticks
    gate capture thread ─(frames)─► DropOldestQueue (2 frames; the oldest is dropped)
    vision thread: FacePipeline.process ─► MatchCandidate ─► JPEG ─► seal ─► outbox (fsync)
    publisher thread: outbox ─► MQTT; hub acks ─► outbox delete
    clip thread: RAM pre-roll ─► clip around each stored alert ─► seal ─► clip outbox
    recorder thread (deployments with recording on): segments ─► seal ─► segment ring
    media-sender thread: clips, requested segments ─► MQTT in chunks, behind the alerts
    health thread: retained status + STATUS=; watchdog thread: WATCHDOG=1 while all progress

Back-pressure costs frames, never alerts: only frames wait in a bounded queue, and an
alert is written to disk before anything else happens to it. When the outbox cannot take
an alert (full, or its disk failing) the camera closes (``outbox-full`` /
``outbox-error``) and the alerts already made are held in memory (sealed, unless not even
a sequence number could be recorded) and retried every control tick until the outbox
takes them: capture stops, alerts are not dropped.
Non-match data never leaves the vision thread's locals (see agent/vision/face_pipeline.py).

The watchdog is fed by real progress: ``control`` every control tick, ``capture`` per
frame from the camera while the camera is open, ``vision`` per frame processed (or per
wait while the camera is closed and there is nothing to process). A hung camera read
or model call therefore starves systemd's watchdog.

A deployment (one accepted activation) ends when the gate closes for any reason. Its
report is signed and kept, the pipeline's track state is purged, and the watchlist is
wiped when the deployment is over for good (signed stop, expiry) or released from
memory (kept sealed on disk, still under the 24 h limit) when capture stopped for
another reason (lease lapse, camera failure, shutdown) so a new activation can resume.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import cv2

from agent import __version__
from agent.camera.factory import make_source
from agent.camera.frame_source import Frame, FrameSource
from agent.config import AgentConfig
from agent.errors import LfrError
from agent.evidence.device_evidence import DeviceEvidence
from agent.matching.hotlist_bundle import SEALED_MAGIC as HOTLIST_MAGIC
from agent.matching.watchlist_bundle import WatchlistError
from agent.matching.watchlist_store import WatchlistStore
from agent.protocol.plate_alert import PLATE_ALERT_PAYLOAD_TYPE
from agent.protocol.report_ack import ReportAckFormatError, decode_report_ack
from agent.protocol.topics import (
    activation_topic,
    event_topic,
    report_ack_topic,
    status_topic,
    watchlist_topic,
)
from agent.runtime.capture_gate import CaptureGate, GateState
from agent.runtime.control_receipts import ControlOutcome, ReceiptSender, peek_document
from agent.runtime.deployment_report import DeploymentReport, ReportArchive, sign_report
from agent.runtime.frame_queue import DropOldestQueue
from agent.runtime.health_status import HealthReporter, HealthStatus, builder_from_config
from agent.runtime.plate_lane import PlateLane
from agent.runtime.plate_report import PlateDeploymentReport
from agent.runtime.progress_watchdog import ProgressWatchdog
from agent.runtime.sd_notify import SystemdNotifier
from agent.runtime.shared_camera import SharedCamera
from agent.runtime.threshold_record import audit_fields, report_fields
from agent.runtime.update_lock import DeploymentLock, UpdateLockError, lock_path
from agent.transport.alert_outbox import OutboxError, OutboxFullError, open_outbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, MqttSettings, PublishResult
from agent.trust.activation_token import ANALYTIC_PLATES, Activation, Renewal, Stop
from agent.trust.activation_verifier import (
    ActivationRejected,
    ActivationVerifier,
    LiveActivation,
    Verified,
    peek_analytic,
    peek_deployment,
)
from agent.trust.alert_envelope import AlertContent, SealedAlert, envelope_payload_type
from agent.trust.audit_log import AuditLog, open_device_audit_log
from agent.trust.device_keys import DeviceKeys, load_device_keys
from agent.trust.key_certificates import CertificateError
from agent.trust.plate_alert_envelope import PlateAlertContent
from agent.trust.system_clock import Clock, SystemClock
from agent.vision.face_pipeline import FacePipeline, MatchCandidate
from agent.vision.model_store import (
    PinnedModel,
    resolve_configured_models,
    resolve_configured_plate_models,
)

log = logging.getLogger(__name__)

FRAME_QUEUE_FRAMES = 2
#: A loop that has not come round for this long is stalled: systemd's watchdog is starved.
#: (One frame takes well under a second on a Pi 4; ten is beyond any honest slowness.)
PROGRESS_DEADLINE_S = 10.0
CONTROL_TICK_S = 0.1
#: A technician's wipe or a watchlist's expiry closes the camera within twice this.
WATCHLIST_TICK_S = 0.5
PURGE_TICK_S = 3600.0
READY_BROKER_WAIT_S = 10.0
#: How often a start-up wait looks for a stop request (SIGTERM while starting).
STOP_POLL_S = 0.2
VISION_WAIT_S = 0.5
FPS_WINDOW_S = 5.0
JPEG_QUALITY = 90
SCENE_JPEG_QUALITY = 80
#: Reasons after which the deployment is over for good and its watchlist is destroyed.
FINAL_REASONS = frozenset({"stopped", "expired", "superseded", "signer-revoked"})


@dataclass
class _Deployment:
    activation: Activation
    signer: str
    watchlist_size: int
    opened_at: float | None
    dropped_at_start: int
    alerts: int = 0


class AgentDaemon:
    """Build with ``AgentDaemon(cfg)``, then ``start()``, ``run_until_stopped()``, ``shutdown()``."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        clock: Clock | None = None,
        notifier: SystemdNotifier | None = None,
        source: FrameSource | None = None,
        watchdog: ProgressWatchdog | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or SystemdNotifier()
        self._stop = threading.Event()
        self._control: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=64)
        self._vision_lock = threading.Lock()
        # Starting and ending a deployment are one step each, whichever thread asks
        # (the control loop, or a caller of handle_control_document).
        self._deployment_lock = threading.RLock()
        self._deployment: _Deployment | None = None
        # Alerts the outbox has not taken yet, oldest first: sealed once a sequence
        # number could be stored, clear content before that. Never evicted.
        self._unsaved: deque[AlertContent | PlateAlertContent | SealedAlert] = deque()
        self._unsaved_lock = threading.Lock()
        self._store_problem: str | None = None
        self._wiped_by_stop: list[str] = []
        self._frame_times: deque[float] = deque()
        #: Turns of the vision loop, whatever each found (for diagnostics and tests).
        self.vision_steps = 0
        self._threads: list[threading.Thread] = []
        self._state = "starting"

        # Refuse to start on anything doubtful: models, keys, trust, state.
        self.models: dict[str, PinnedModel] = resolve_configured_models(cfg)
        cfg.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keys: DeviceKeys = load_device_keys(cfg.paths.keys_dir)
        self.audit: AuditLog = open_device_audit_log(cfg, self.keys.signing)
        self.verifier = ActivationVerifier.from_config(cfg, clock=self.clock)
        self.watchlists = WatchlistStore.from_config(
            cfg,
            device_key=self.keys.exchange,
            find_signing_key=self.verifier.trust.watchlist_key_finder,
            embedder=self.models["embedder"],
            audit=self.audit.append,
            clock=self.clock.wall,
        )
        self.pipeline = FacePipeline(cfg, self.models)
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(FRAME_QUEUE_FRAMES)
        self.source = source or make_source(cfg.camera)
        # With plates enabled, the faces gate and the plates gate each hold a view of one
        # shared camera (open while either holds it open); without, the gate has it alone.
        self.plate_models: dict[str, PinnedModel] = {}
        self._shared_camera: SharedCamera | None = None
        face_source: FrameSource = self.source
        if cfg.plates.enabled:
            self.plate_models = resolve_configured_plate_models(cfg)
            self._shared_camera = SharedCamera(self.source, cfg.camera.read_timeout_s)
            face_source = self._shared_camera.view("faces")
        self.gate = CaptureGate(
            face_source,
            on_frame=self._on_frame,
            audit=self.audit.append,
            clock=self.clock,
            watchlist_present=self._watchlist_present,
            on_opening=self._on_camera_opening,
            on_opened=self._on_camera_opened,
            on_closed=self._on_camera_closed,
        )
        self.lock = DeploymentLock(lock_path(cfg.paths.runtime_dir))
        #: Deployments live under the one update lock (faces and plates may both be).
        self._lock_holders: set[str] = set()
        self.reports = ReportArchive(cfg.paths.state_dir, cfg.outbox.retention_days * 86400.0)
        self.outbox = open_outbox(
            cfg.outbox,
            cfg.paths.state_dir,
            audit=lambda e, f: self.audit.append(e, **f),  # type: ignore[arg-type]
        )
        self.link = MqttLink(
            MqttSettings.from_config(cfg.mqtt, client_id=cfg.device.id),
            status_topic=status_topic(cfg.device.id),
        )
        self._hub_alert_key = self.verifier.trust.alert_key(self.clock.wall())
        self.publisher = AlertPublisher.from_config(
            cfg,
            self.outbox,
            self.link,
            device_key=self.keys.signing,
            hub_key=self._hub_alert_key,
        )
        self.evidence = DeviceEvidence(
            cfg,
            link=self.link,
            device_key=self.keys.signing,
            trust=self.verifier.trust,
            alert_key=self._hub_alert_key,
            clock=self.clock,
            audit=self.audit.append,
            alerts_waiting=self.publisher.has_unsent,
            alert_pending=lambda alert_id: alert_id in self.outbox,
        )
        # Decision times of alerts not yet stored (by id of their content), for their clips.
        self._decided_mono: dict[int, float] = {}
        #: Report acknowledgements without a valid proof (forged or stray): ignored.
        self.forged_report_acks = 0
        self.receipts = ReceiptSender(self.link, cfg.device.id, self.keys.signing, self.clock.wall)
        self.link.subscribe(activation_topic(cfg.device.id), self._on_control_message)
        self.link.subscribe(watchlist_topic(cfg.device.id), self._on_control_message)
        self.link.subscribe(report_ack_topic(cfg.device.id), self._on_report_ack)
        self.link.add_connect_listener(self._publish_unsent_reports)
        self.health = HealthReporter(
            builder_from_config(
                cfg,
                models=self.models,
                state=self._status_state,
                fps=self._fps,
                dropped_frames=lambda: self.frames.dropped,
                outbox_depth=lambda: len(self.outbox),
                clock_sync=self.clock.sync_state,
                extra_alarms=self._alarms,
            ),
            cfg.health.status_interval_s,
            self._publish_status,
            self.notifier.status,
        )
        # The broker's last will leaves "offline" retained while the link is down: replace
        # it at once on every (re)connect rather than at the next periodic report.
        self.link.add_connect_listener(self.health.poke)
        self.watchdog = watchdog or ProgressWatchdog.from_environment(self.notifier)
        self.watchdog.require("control", PROGRESS_DEADLINE_S)
        self.watchdog.require("vision", PROGRESS_DEADLINE_S)
        self.plates: PlateLane | None = None
        if self._shared_camera is not None:
            self.plates = PlateLane(
                cfg,
                source=self._shared_camera.view("plates"),
                models=self.plate_models,
                device_key=self.keys.exchange,
                find_signing_key=self.verifier.trust.watchlist_key_finder,
                audit=self.audit,
                clock=self.clock,
                watchdog=self.watchdog,
                store_alert=self._store,
                report_ended=self._plate_report,
                hold_lock=self._hold_lock,
                drop_lock=self._drop_lock,
                on_change=self.health.poke,
            )

    # -- life cycle -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a clean stop from now on (main thread only). Call it
        before ``start()``: a stop during the start-up broker wait is honoured too."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def start(self) -> None:
        """Start every thread and wait (briefly) for the broker; returns early, without
        READY, when a stop is requested meanwhile. ``shutdown()`` follows either way."""
        if self._stop.is_set():
            return
        self.lock.prepare()
        self.audit.append(
            "agent.started",
            version=__version__,
            detector=self.models["detector"].model_id,
            embedder=self.models["embedder"].model_id,
        )
        self.link.start()
        self.publisher.start()
        if self.plates is not None:
            self.plates.start()
        self.evidence.start()
        for target, name in ((self._control_loop, "control"), (self._vision_loop, "vision")):
            t = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(t)
            t.start()
        connected = self._wait_for_broker(READY_BROKER_WAIT_S)
        if self._stop.is_set():
            log.info("stop requested while starting", extra={"state": "stopping"})
            return
        if not connected:
            log.warning(
                "broker not reachable yet; alerts are stored and forwarded when it is",
                extra={"state": "store-and-forward"},
            )
        self._state = "idle"
        self.notifier.ready(f"idle, broker {'connected' if connected else 'unreachable'}")
        self.health.start()
        self.watchdog.start()
        log.info("agent ready", extra={"state": "idle", "device_id": self.cfg.device.id})

    def _wait_for_broker(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.link.wait_connected(min(left, STOP_POLL_S)):
                return True
        return False

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def run_until_stopped(self) -> None:
        while not self._stop.wait(1.0):
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        """Close the camera, end the deployment, flush alerts, say ``offline``, stop."""
        self._stop.set()
        self._state = "stopping"
        self.notifier.stopping("closing camera, flushing alerts")
        self.gate.shutdown()
        self.frames.close()
        if self.plates is not None:
            self.plates.shutdown()
        for t in self._threads:
            t.join(timeout=30)
        if self._deployment is not None:
            self._end_deployment("shutdown")
        self._retry_unsaved()
        self.health.stop()
        self.watchdog.stop()
        # Give queued alerts a last chance while the link is up (acks also free room for
        # held ones); the outbox keeps the rest.
        deadline = time.monotonic() + 3.0
        while (
            (len(self.outbox) or self._unsaved)
            and self.link.connected
            and time.monotonic() < deadline
        ):
            self._retry_unsaved()
            self.publisher.publish_due()
            time.sleep(0.1)
        self._account_unsaved_at_exit()
        # Clips still collecting their post-roll are finished with the frames they have.
        self.evidence.stop()
        self.publisher.stop()
        self.link.stop(graceful=True)
        self.pipeline.close()
        self.audit.append("agent.stopped", outbox_depth=len(self.outbox))
        self.audit.close()
        log.info("agent stopped", extra={"state": "stopped"})

    # -- control plane -----------------------------------------------------------------------
    def _on_control_message(self, topic: str, payload: bytes) -> None:
        kind = "watchlist" if topic.endswith("/watchlist") else "activation"
        try:
            self._control.put_nowait((kind, payload))
        except queue.Full:
            log.warning("control queue full; message dropped", extra={"component": "control"})

    def _control_loop(self) -> None:
        next_tick = next_purge = 0.0
        next_report_resend = time.monotonic() + self.cfg.outbox.resend_after_s
        while not self._stop.is_set():
            self.watchdog.beat("control")
            try:
                kind, payload = self._control.get(timeout=CONTROL_TICK_S)
            except queue.Empty:
                kind, payload = "", b""
            try:
                if kind == "activation":
                    outcome = self.apply_control_message(payload)
                    self.receipts.send(payload, outcome, self._camera())
                elif kind == "watchlist":
                    outcome = self._handle_watchlist(payload)
                    self.receipts.send(payload, outcome, self._camera())
                with self._deployment_lock:
                    if self._deployment is not None and self.gate.state is GateState.IDLE:
                        self._end_deployment(self.gate.status().reason or "closed")
                now = time.monotonic()
                if now >= next_tick:
                    # Notices a watchlist past its expiry or wiped by the technician's CLI
                    # (the gate then closes), and wipes any 24 h past expiry.
                    next_tick = now + WATCHLIST_TICK_S
                    for h in self.watchlists.tick():
                        log.info(
                            "watchlist wiped at its time limit", extra={"watchlist_id": h[:16]}
                        )
                    if self.plates is not None:
                        self.plates.tick()
                    # A revocation list a technician installed counts at once.
                    self.verifier.trust.refresh_revocations()
                    self._close_if_signer_revoked()
                if now >= next_purge:
                    next_purge = now + PURGE_TICK_S
                    self.reports.purge()
                if now >= next_report_resend:
                    # Until the hub acknowledges them (a PUBACK proves nothing).
                    next_report_resend = now + self.cfg.outbox.resend_after_s
                    if self.link.connected:
                        self._publish_unsent_reports()
                self.evidence.tick()
                self._retry_unsaved()
            except Exception:
                # Fail closed: whatever went wrong, the camera does not stay open on it.
                log.exception("control step failed; closing the camera")
                self.gate.stop("internal-error")

    def handle_control_document(self, payload: bytes) -> str:
        """Verify and apply an activation, renewal or stop; returns what happened (one line)."""
        return self.apply_control_message(payload).detail

    def apply_control_message(self, payload: bytes) -> ControlOutcome:
        """A message on the activation topic: a control document or a revocation list."""
        facts = peek_document(payload)
        try:
            if facts.kind == "revocations":
                detail, refused = self._apply_revocation_list(payload)
                return ControlOutcome(
                    "revocations",
                    "refused" if refused else "applied",
                    detail,
                    step="revocation" if refused else None,
                )
            detail = self._apply_control_document(payload)
        finally:
            # Any document (even a refused one) may have brought a newer revocation list.
            self._close_if_signer_revoked()
        if detail.startswith("rejected: "):
            step = detail.split(": ", 2)[1]
            return ControlOutcome(
                facts.kind, "refused", detail, step, facts.sequence, facts.deployment_id
            )
        if detail.startswith("refused: ") or detail == "camera did not open":
            step = "camera" if detail == "camera did not open" else "deployment"
            return ControlOutcome(
                facts.kind, "refused", detail, step, facts.sequence, facts.deployment_id
            )
        return ControlOutcome(
            facts.kind, "applied", detail, None, facts.sequence, facts.deployment_id
        )

    def _apply_revocation_list(self, payload: bytes) -> tuple[str, bool]:
        """A root-signed revocation list pushed on its own (an idle camera learns of a
        revocation without waiting for its next activation): verified against the root,
        adopted only if newer, audited. Returns (what happened, refused)."""
        held = self.verifier.trust.revocation_version
        try:
            adopted = self.verifier.trust.offer_revocations(payload)
        except CertificateError as exc:
            self.audit.append("control.rejected", step="revocation", detail=str(exc)[:200])
            log.warning("revocation list refused: %s", exc, extra={"reason": "revocation"})
            return f"rejected: revocation: {exc}", True
        version = self.verifier.trust.revocation_version
        if not adopted:
            return f"revocation list not newer than version {held}: kept version {held}", False
        self.audit.append("control.revocations", version=version, previous=held)
        log.info("revocation list version %d installed", version, extra={"state": self._state})
        return f"revocation list version {version} installed (was {held})", False

    def _apply_control_document(self, payload: bytes) -> str:
        deployment_id = peek_deployment(payload)
        plates = self.plates
        if peek_analytic(payload) == ANALYTIC_PLATES and plates is None:
            self.audit.append(
                "control.rejected", step="analytic", detail="plates are not enabled here"
            )
            log.warning("plates activation refused: plates.enabled is false on this device")
            return "rejected: analytic: plates are not enabled on this device (plates.enabled)"
        # Which deployment the document is for decides which lane checks and applies it:
        # a plates activation, or a renewal or stop naming the live plates deployment.
        to_plates = plates is not None and (
            peek_analytic(payload) == ANALYTIC_PLATES or plates.names(deployment_id)
        )
        try:
            if to_plates:
                assert plates is not None
                loaded = (
                    plates.hotlists.hash_for_deployment(deployment_id) if deployment_id else None
                )
                live = plates.live
            else:
                loaded = (
                    self.watchlists.hash_for_deployment(deployment_id) if deployment_id else None
                )
                live = self.gate.live
            verified = self.verifier.verify(
                payload,
                live=live,
                loaded_watchlist_sha256=loaded,
                before_commit=self._before_accepting_plates
                if to_plates
                else self._before_accepting,
            )
        except ActivationRejected as exc:
            self.audit.append("control.rejected", step=exc.step, detail=str(exc)[:200])
            log.warning(
                "control document rejected at %s: %s", exc.step, exc, extra={"reason": exc.step}
            )
            return f"rejected: {exc.step}: {exc}"
        doc = verified.document
        if to_plates:
            assert plates is not None
            return self._apply_plates_document(plates, verified)
        if isinstance(doc, Activation):
            assert verified.live is not None
            return self._start_deployment(doc, verified.signer.subject, verified.live)
        if isinstance(doc, Renewal):
            if verified.live is not None:
                self.gate.renew(verified.live)
            return f"renewed {doc.deployment_id}"
        assert isinstance(doc, Stop)
        # The stop is applied even if its audit entry cannot be written (the sequence
        # is spent: a resend would be refused as a replay).
        try:
            self.audit.append(
                "control.stop",
                deployment_id=doc.deployment_id,
                signer=verified.signer.subject,
                reason=doc.reason[:200],
                names_live=verified.names_live,
            )
        finally:
            if verified.names_live:
                self.gate.stop("stopped")
                self._end_deployment("stopped")
            else:
                # Nothing of it is live (its lease lapsed, the camera failed, the agent
                # restarted, or another deployment is live): the stop still ends it, so
                # its watchlist (or hotlist) goes.
                wiped = self._wiped_by_stop + self.watchlists.end_deployment(
                    doc.deployment_id, "stopped"
                )
                if self.plates is not None:
                    wiped += self.plates.hotlists.end_deployment(doc.deployment_id, "stopped")
        if verified.names_live:
            return f"stopped {doc.deployment_id}"
        return f"stopped {doc.deployment_id} (not live; {len(wiped)} watchlist(s) wiped)"

    def _apply_plates_document(self, plates: PlateLane, verified: Verified) -> str:
        """An activation tasking plates, or a renewal or stop of the live plates
        deployment (already verified)."""
        doc = verified.document
        if isinstance(doc, Activation):
            assert verified.live is not None
            with self._deployment_lock:
                if not self.cfg.plates.concurrent_with_faces and self._deployment is not None:
                    # One deployment at a time unless the device config allows both.
                    self.gate.stop("superseded")
                    self._end_deployment("superseded")
            return plates.start_deployment(doc, verified.signer.subject, verified.live)
        if isinstance(doc, Renewal):
            if verified.live is not None:
                plates.renew(verified.live)
            return f"renewed {doc.deployment_id}"
        assert isinstance(doc, Stop)
        try:
            self.audit.append(
                "control.stop",
                deployment_id=doc.deployment_id,
                signer=verified.signer.subject,
                reason=doc.reason[:200],
                names_live=verified.names_live,
            )
        finally:
            plates.stop("stopped")
        return f"stopped {doc.deployment_id}"

    def _before_accepting(self, doc: Activation | Renewal | Stop) -> None:
        """A verified stop closes the camera and wipes its deployment's watchlist before
        its sequence is stored: once the stop counts as accepted (a resend is refused),
        a power cut can no longer leave that watchlist on the device."""
        if not isinstance(doc, Stop):
            return
        live = self.gate.live
        if live is not None and live.deployment_id == doc.deployment_id:
            self.gate.stop("stopped")
        self._wiped_by_stop = self.watchlists.end_deployment(doc.deployment_id, "stopped")
        if self.plates is not None:
            self._wiped_by_stop += self.plates.hotlists.end_deployment(doc.deployment_id, "stopped")

    def _before_accepting_plates(self, doc: Activation | Renewal | Stop) -> None:
        """The plates lane's counterpart: a verified stop ends the plates deployment (its
        hotlist wiped) before the stop's sequence is stored."""
        plates = self.plates
        if plates is not None and isinstance(doc, Stop) and plates.names(doc.deployment_id):
            plates.stop("stopped")

    def _close_if_signer_revoked(self) -> None:
        plates = self.plates
        plate_live = plates.live if plates is not None else None
        if (
            plates is not None
            and plate_live is not None
            and self.verifier.signer_revoked(plate_live)
        ):
            log.warning(
                "the signer of the live plates activation has been revoked; closing",
                extra={"deployment_id": plate_live.deployment_id, "reason": "signer-revoked"},
            )
            try:
                self.audit.append(
                    "control.signer_revoked",
                    deployment_id=plate_live.deployment_id,
                    signer=plate_live.signer,
                )
            finally:
                plates.stop("signer-revoked")
        live = self.gate.live
        if live is None or not self.verifier.signer_revoked(live):
            return
        log.warning(
            "the signer of the live activation has been revoked; closing the camera",
            extra={"deployment_id": live.deployment_id, "reason": "signer-revoked"},
        )
        try:
            self.audit.append(
                "control.signer_revoked", deployment_id=live.deployment_id, signer=live.signer
            )
        finally:
            self.gate.stop("signer-revoked")
            self._end_deployment("signer-revoked")

    def _handle_watchlist(self, payload: bytes) -> ControlOutcome:
        # Hotlists share the watchlist topic; their sealed file has its own magic.
        kind = "hotlist" if payload[: len(HOTLIST_MAGIC)] == HOTLIST_MAGIC else "watchlist"
        if kind == "hotlist":
            if self.plates is None:
                log.warning("hotlist refused: plates are not enabled on this device")
                return ControlOutcome(
                    kind, "refused", "refused: plates are not enabled on this device", "analytic"
                )
            result = self.plates.hotlists.handle_watchlist_message(payload)
        else:
            result = self.watchlists.handle_watchlist_message(payload)
        if isinstance(result, LfrError):
            log.warning("%s refused: %s", kind, result, extra={"reason": f"{kind}-refused"})
            step = result.reason if isinstance(result, WatchlistError) else "store"
            return ControlOutcome(kind, "refused", f"refused: {result}", step)
        w = result.watchlist
        log.info(f"{kind} stored", extra={"watchlist_id": w.watchlist_hash[:16]})
        return ControlOutcome(
            kind,
            "applied",
            f"{kind} {w.watchlist_hash[:16]} {result.status}",
            deployment_id=w.deployment_id,
        )

    def _camera(self) -> str:
        """The capture gates as a receipt names them: open if either holds the camera."""
        states = {self.gate.state}
        if self.plates is not None:
            states.add(self.plates.gate.state)
        return (
            "open"
            if GateState.ACTIVE in states
            else "armed"
            if GateState.ARMED in states
            else "closed"
        )

    def _status_state(self) -> str:
        """The status message's state: a live plates deployment counts like a faces one."""
        if self.plates is not None and self._state in ("idle", "armed"):
            plate_state = self.plates.gate.state
            if plate_state is GateState.ACTIVE:
                return "active"
            if plate_state is GateState.ARMED:
                return "armed"
        return self._state

    def _hold_lock(self, deployment_id: str) -> None:
        """Hold the update lock for a deployment (once for any number live)."""
        if not self._lock_holders:
            self.lock.acquire(deployment_id)
        self._lock_holders.add(deployment_id)

    def _drop_lock(self, deployment_id: str) -> None:
        self._lock_holders.discard(deployment_id)
        if not self._lock_holders:
            try:
                self.lock.release()
            except UpdateLockError as exc:
                log.error("deployment lock not released: %s", exc)

    def _plate_report(self, report: PlateDeploymentReport) -> None:
        """A plates deployment ended: sign, keep and publish its report like a faces one."""
        signed = sign_report(report, self.keys.signing, self._hub_alert_key)
        name = self.reports.save(report, signed)
        self._publish_report(name, signed)

    def _watchlist_present(self) -> bool:
        d = self._deployment
        return d is None or self.watchlists.bound_hash == d.activation.watchlist_sha256

    # -- deployments ---------------------------------------------------------------------------
    def _start_deployment(self, act: Activation, signer: str, live: LiveActivation) -> str:
        with self._deployment_lock:
            return self._open_deployment(act, signer, live)

    def _open_deployment(self, act: Activation, signer: str, live: LiveActivation) -> str:
        plates = self.plates
        if (
            plates is not None
            and plates.deployment is not None
            and not self.cfg.plates.concurrent_with_faces
        ):
            # One deployment at a time unless the device config allows both.
            plates.stop("superseded")
        if self._deployment is not None:
            # A new activation for the live deployment (e.g. a longer window) keeps its
            # watchlist; one for another deployment ends this one for good.
            same = self._deployment.activation.deployment_id == act.deployment_id
            reason = "reactivated" if same else "superseded"
            self.gate.stop(reason)
            self._end_deployment(reason)
        self._retry_unsaved()
        problem = self.evidence.recording_problem() if act.recording else None
        if problem is not None:
            self.audit.append(
                "deployment.refused", deployment_id=act.deployment_id, reason=problem[:200]
            )
            log.error(
                "activation not applied: %s", problem, extra={"deployment_id": act.deployment_id}
            )
            return f"refused: {problem}"
        if self._unsaved:
            # Capture would only make more alerts that cannot be stored.
            problem = self._store_problem or "the outbox cannot store alerts"
            self.audit.append(
                "deployment.refused", deployment_id=act.deployment_id, reason=problem[:200]
            )
            log.error(
                "activation not applied: %d alerts still wait for the outbox (%s)",
                len(self._unsaved),
                problem,
                extra={"deployment_id": act.deployment_id},
            )
            return f"refused: {len(self._unsaved)} alerts still wait for the outbox"
        try:
            gallery = self.watchlists.bind(
                act.watchlist_sha256, act.deployment_id, window_ends_at=act.not_after
            )
            with self._vision_lock:
                self.pipeline.reset()
                self.pipeline.set_watchlist(
                    gallery, act.threshold, self.watchlists.model_id, score=act.score
                )
            self._hold_lock(act.deployment_id)
        except (LfrError, UpdateLockError) as exc:
            self.watchlists.release("activation-refused")
            self.audit.append(
                "deployment.refused", deployment_id=act.deployment_id, reason=str(exc)[:200]
            )
            log.error("activation not applied: %s", exc, extra={"deployment_id": act.deployment_id})
            return f"refused: {exc}"
        self._deployment = _Deployment(
            activation=act,
            signer=signer,
            watchlist_size=len(gallery),
            opened_at=None,
            dropped_at_start=self.frames.dropped,
        )
        self.audit.append(
            "deployment.started",
            deployment_id=act.deployment_id,
            sequence=act.sequence,
            watchlist_size=len(gallery),
            threshold=act.threshold,
            **audit_fields(act),
            recording=act.recording,
        )
        self.evidence.deployment_started(act.deployment_id, act.recording)
        self.watchdog.require("vision", PROGRESS_DEADLINE_S)
        if self.gate.activate(live):
            if self.gate.state is GateState.ARMED:
                self._state = "armed"
                self.health.poke()
                log.info(
                    "activation accepted; camera opens when its window starts",
                    extra={"state": "armed", "deployment_id": act.deployment_id},
                )
                return f"armed {act.deployment_id}"
            return f"activated {act.deployment_id}"
        self._end_deployment(self.gate.status().reason or "open-failed")
        return "camera did not open"

    def _on_camera_closed(self) -> None:
        # The clip pre-roll lives only while the camera is open.
        self.evidence.camera_closed()

    def _on_camera_opening(self) -> None:
        # Required from before the open, so a first read that never returns is caught.
        self.watchdog.require("capture", PROGRESS_DEADLINE_S)

    def _on_camera_opened(self) -> None:
        d = self._deployment
        if d is not None:
            d.opened_at = self.clock.wall()
        self._state = "active"
        self.health.poke()
        log.info(
            "camera open",
            extra={"state": "active", "deployment_id": d.activation.deployment_id if d else None},
        )

    def _end_deployment(self, reason: str) -> None:
        with self._deployment_lock:
            self._close_deployment(reason)

    def _close_deployment(self, reason: str) -> None:
        d, self._deployment = self._deployment, None
        if d is None:
            return
        act = d.activation
        self.gate.stop(reason)
        self.watchdog.release("capture")
        self.frames.clear()
        with self._vision_lock:
            self._submit_all(self.pipeline.end_tracks(), d)
            counters = self.pipeline.counters.as_dict()
            self.pipeline.reset()
        recording = self.evidence.deployment_ended(reason)
        if reason in FINAL_REASONS:
            self.watchlists.end_deployment(act.deployment_id, reason)
        else:
            self.watchlists.release(reason)
        audit_seq, audit_sha256 = self.audit.head()
        report = DeploymentReport(
            device_id=self.cfg.device.id,
            deployment_id=act.deployment_id,
            activation_sequence=act.sequence,
            signer=d.signer,
            officer=act.officer,
            not_before=act.not_before,
            not_after=act.not_after,
            opened_at=d.opened_at,
            closed_at=self.clock.wall(),
            end_reason=reason,
            watchlist_sha256=act.watchlist_sha256,
            watchlist_size=d.watchlist_size,
            threshold=act.threshold,
            **report_fields(act),
            detector_model=self.models["detector"].model_id,
            embedder_model=self.models["embedder"].model_id,
            frames=counters["frames"],
            frames_dropped=self.frames.dropped - d.dropped_at_start,
            faces_detected=counters["faces_detected"],
            faces_passed_quality=counters["faces_passed_quality"],
            faces_compared=counters["faces_compared"],
            embeddings=counters["embeddings"],
            tracks=counters["tracks_started"],
            alerts=d.alerts,
            software_version=__version__,
            audit_seq=audit_seq,
            audit_sha256=audit_sha256,
            recording=act.recording,
            recording_segments=recording.segments if recording else 0,
            recording_bytes=recording.bytes if recording else 0,
            recording_stopped=recording.stopped if recording else "",
        )
        signed = sign_report(report, self.keys.signing, self._hub_alert_key)
        name = self.reports.save(report, signed)
        self.audit.append(
            "deployment.ended",
            deployment_id=act.deployment_id,
            reason=reason,
            frames=report.frames,
            faces_detected=report.faces_detected,
            alerts=report.alerts,
        )
        self._publish_report(name, signed)
        self._drop_lock(act.deployment_id)
        self._state = "idle"
        self.health.poke()
        log.info(
            "deployment ended",
            extra={"deployment_id": act.deployment_id, "reason": reason, "state": "idle"},
        )

    # -- vision and alerts ----------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        self.watchdog.beat("capture")
        self.evidence.offer(frame)
        self.frames.put(frame)

    def _vision_loop(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                self._vision_step()
                reported = False
                self.vision_steps += 1
            except Exception as exc:
                # Fail closed and keep the thread: the next activation gets a working
                # loop. Only the exception's type and place are logged: its message
                # or locals could carry face data.
                if not reported:
                    reported = True
                    where = traceback.extract_tb(exc.__traceback__)[-1:]
                    place = f"{Path(where[0].filename).name}:{where[0].lineno}" if where else "?"
                    log.error(
                        "vision step failed (%s at %s); closing the camera",
                        type(exc).__name__,
                        place,
                        extra={"reason": "internal-error"},
                    )
                del exc
                self.gate.stop("internal-error")

    def _vision_step(self) -> None:
        frame = self.frames.get(timeout=VISION_WAIT_S)
        if frame is None:
            # No frame is progress only when none is expected; with the camera open
            # an empty wait means capture is not delivering.
            if self.gate.state is not GateState.ACTIVE:
                self.watchdog.beat("vision")
            return
        with self._vision_lock:
            d = self._deployment
            if d is not None:  # else the deployment ended while this frame waited: dropped
                self._note_frame()
                candidates = self.pipeline.process(frame)
                del frame
                self._submit_all(candidates, d)
        self.watchdog.beat("vision")

    def _submit_all(self, candidates: list[MatchCandidate], d: _Deployment) -> None:
        for c in candidates:
            d.alerts += 1
            self._submit(c, d)

    def _submit(self, c: MatchCandidate, d: _Deployment) -> None:
        ok, jpeg = cv2.imencode(".jpg", c.crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        scene_ok, scene = cv2.imencode(
            ".jpg", c.scene, [cv2.IMWRITE_JPEG_QUALITY, SCENE_JPEG_QUALITY]
        )
        if not ok:
            # Cannot happen for a non-empty BGR crop; if it does, the audit log says so.
            log.error(
                "alert crop could not be encoded",
                extra={"deployment_id": d.activation.deployment_id},
            )
            self.audit.append(
                "alert.lost", deployment_id=d.activation.deployment_id, reason="crop not encodable"
            )
            return
        offset = self.clock.wall() - self.clock.mono()
        content = AlertContent(
            device_id=self.cfg.device.id,
            deployment_id=d.activation.deployment_id,
            watchlist_entry=c.ref,
            score=c.score,
            threshold=c.threshold,
            model_id=c.model_id,
            track_id=c.track_id,
            first_seen=c.first_seen_t_mono + offset,
            decided_at=c.decision_t_mono + offset,
            probe_jpeg=jpeg.tobytes(),
            # Without it the alert still goes: the probe crop is the evidence.
            scene_jpeg=scene.tobytes() if scene_ok else None,
            quality=dict(c.quality),
        )
        self._decided_mono[id(content)] = c.decision_t_mono
        self._store(content)

    def _store(self, content: AlertContent | PlateAlertContent) -> None:
        """Seal and store durably, behind any alert still held (order kept)."""
        with self._unsaved_lock:
            self._unsaved.append(content)
            self._drain_unsaved()

    def _retry_unsaved(self) -> None:
        if self._unsaved:
            with self._unsaved_lock:
                self._drain_unsaved()

    def _drain_unsaved(self) -> None:
        """Store held alerts, oldest first, until the outbox refuses one.

        A refusal closes the camera (fail closed: no capture whose alerts cannot be
        kept) and leaves that alert and those behind it held in memory, alarmed on the
        status topic, for the next try. Called with ``_unsaved_lock`` held."""
        while self._unsaved:
            item = self._unsaved[0]
            try:
                if isinstance(item, AlertContent | PlateAlertContent):
                    decided = self._decided_mono.pop(id(item), None)
                    item = self._unsaved[0] = self.publisher.seal(item)
                    if decided is not None:
                        self._decided_mono[id(item)] = decided
                self.publisher.store(item)
            except OutboxError as exc:
                reason = "outbox-full" if isinstance(exc, OutboxFullError) else "outbox-error"
                if self._store_problem is None:
                    log.error(
                        "alert not stored, camera closed (%s): %s",
                        reason,
                        exc,
                        extra={"reason": reason},
                    )
                    self.health.poke()
                self._store_problem = str(exc)
                self.gate.stop(reason)
                return
            self._unsaved.popleft()
            decided = self._decided_mono.pop(id(item), None)
            if decided is not None:
                self.evidence.alert_stored(item.header.alert_id, item.header.deployment, decided)
            try:
                self._audit_sealed(item)
            except LfrError as exc:
                # The alert is on disk and will be published; capture that cannot be
                # audited stops.
                log.error("alert stored but not audited (%s); closing the camera", exc)
                self.gate.stop("internal-error")
        if self._store_problem is not None:
            self._store_problem = None
            log.info("held alerts stored; the outbox takes alerts again")
            self.health.poke()

    def _audit_sealed(self, sealed: SealedAlert) -> None:
        h = sealed.header
        # A plate alert is audited as its own kind (its deployment is a plates one).
        plate = envelope_payload_type(sealed.envelope) == PLATE_ALERT_PAYLOAD_TYPE
        self.audit.append(
            "plate-alert.sealed" if plate else "alert.sealed",
            alert_id=h.alert_id,
            deployment_id=h.deployment,
            sequence=h.seq,
        )
        log.info(
            "alert sealed and queued", extra={"alert_id": h.alert_id, "deployment_id": h.deployment}
        )

    def _account_unsaved_at_exit(self) -> None:
        """The process is ending with alerts the outbox never took: each is audited."""
        with self._unsaved_lock:
            while self._unsaved:
                item = self._unsaved.popleft()
                deployment = (
                    item.deployment_id
                    if isinstance(item, AlertContent | PlateAlertContent)
                    else item.header.deployment
                )
                try:
                    self.audit.append(
                        "alert.lost",
                        deployment_id=deployment,
                        reason=f"outbox never took it before shutdown: {self._store_problem}"[:200],
                    )
                except LfrError as exc:
                    log.error("alert.lost could not be audited: %s", exc)
                log.error(
                    "alert lost at shutdown: the outbox never took it",
                    extra={"deployment_id": deployment},
                )

    def _note_frame(self) -> None:
        now = time.monotonic()
        self._frame_times.append(now)
        while self._frame_times and now - self._frame_times[0] > FPS_WINDOW_S:
            self._frame_times.popleft()

    def _fps(self) -> float | None:
        times = list(self._frame_times)
        if len(times) < 2 or time.monotonic() - times[-1] > FPS_WINDOW_S:
            # The camera closed (idle, or armed before its window) delivers nothing.
            return 0.0 if self.gate.state is not GateState.ACTIVE else None
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else None

    def _alarms(self) -> list[str]:
        alarms = []
        if self.outbox.alarm_active:
            alarms.append("outbox_nearly_full")
        if self._unsaved:
            alarms.append("alerts_not_stored")
        return alarms

    # -- publishing ------------------------------------------------------------------------------
    def _publish_status(self, status: HealthStatus) -> None:
        if self.link.connected:
            self.link.publish_status(status.to_json())

    def _publish_report(self, name: str, signed: bytes) -> None:
        def done(result: PublishResult) -> None:
            if result.ok:
                self.reports.mark_sent(name)
            else:
                log.error("deployment report refused by the broker: %s", result.reason)

        try:
            self.link.publish(event_topic(self.cfg.device.id), signed, on_result=done)
        except LfrError as exc:
            log.warning("deployment report not published yet: %s", exc)

    def _publish_unsent_reports(self) -> None:
        for name, signed in self.reports.pending():
            self._publish_report(name, signed)

    def _on_report_ack(self, topic: str, payload: bytes) -> None:
        """The hub's acknowledgement: each entry must carry the report's sealed secret."""
        try:
            entries = decode_report_ack(payload)
        except ReportAckFormatError as exc:
            self.forged_report_acks += 1
            log.warning("report acknowledgement ignored: %s", exc)
            return
        for deployment_id, seq, secret in entries:
            if self.reports.acknowledge(
                self.cfg.device.id, deployment_id, seq, secret, self.keys.signing
            ):
                log.info(
                    "deployment report acknowledged by the hub",
                    extra={"deployment_id": deployment_id},
                )
            else:
                self.forged_report_acks += 1
                log.warning("report acknowledgement without a valid proof ignored")

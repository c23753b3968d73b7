"""``lfr-agent run``: wires the control plane, the capture gate, the face pipeline and the
alert path together, and looks after them.

Threads and what flows between them::

    paho network thread ──(activation / watchlist payloads)──► control queue
    control thread: verify ─► watchlist bind ─► CaptureGate.activate / renew / stop,
                    deployment end (report, wipe), watchlist expiry ticks
    gate capture thread ─(frames)─► DropOldestQueue (2 frames; the oldest is dropped)
    vision thread: FacePipeline.process ─► MatchCandidate ─► JPEG ─► seal ─► outbox (fsync)
    publisher thread: outbox ─► MQTT; hub acks ─► outbox delete
    health thread: retained status + STATUS=; watchdog thread: WATCHDOG=1 while all progress

Back-pressure costs frames, never alerts: only frames wait in a bounded queue, and an
alert is written to disk before anything else happens to it. Non-match data never
leaves the vision thread's locals (see agent/vision/face_pipeline.py).

A deployment (one accepted activation) ends when the gate closes for any reason. Its
report is signed and kept, the pipeline's track state is purged, and the watchlist is
wiped when the deployment is over for good (signed stop, expiry) or released from
memory (kept sealed on disk, still under the 24 h limit) when capture stopped for
another reason (lease lapse, camera failure, shutdown) so a new activation can resume.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import Any

import cv2

from agent import __version__
from agent.camera.factory import make_source
from agent.camera.frame_source import Frame, FrameSource
from agent.config import AgentConfig
from agent.errors import LfrError
from agent.matching.watchlist_store import WatchlistStore
from agent.runtime.capture_gate import CaptureGate, GateState
from agent.runtime.deployment_report import DeploymentReport, ReportArchive, sign_report
from agent.runtime.frame_queue import DropOldestQueue
from agent.runtime.health_status import HealthReporter, HealthStatus, builder_from_config
from agent.runtime.progress_watchdog import ProgressWatchdog
from agent.runtime.sd_notify import SystemdNotifier
from agent.runtime.update_lock import DeploymentLock, UpdateLockError, lock_path
from agent.transport.alert_outbox import OutboxError, open_outbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, MqttSettings, PublishResult
from agent.transport.topics import activation_topic, event_topic, status_topic, watchlist_topic
from agent.trust.activation_token import Activation, Renewal, Stop
from agent.trust.activation_verifier import ActivationRejected, ActivationVerifier, LiveActivation
from agent.trust.alert_envelope import AlertContent
from agent.trust.audit_log import AuditLog, open_device_audit_log
from agent.trust.device_keys import DeviceKeys, load_device_keys
from agent.trust.signed_document import DocumentError, parse_envelope
from agent.trust.system_clock import Clock, SystemClock
from agent.vision.face_pipeline import FacePipeline, MatchCandidate
from agent.vision.model_store import PinnedModel, resolve_configured_models

log = logging.getLogger(__name__)

FRAME_QUEUE_FRAMES = 2
#: A loop that has not come round for this long is stalled: systemd's watchdog is starved.
#: (One frame takes well under a second on a Pi 4; ten is beyond any honest slowness.)
PROGRESS_DEADLINE_S = 10.0
CONTROL_TICK_S = 0.1
WATCHLIST_TICK_S = 1.0
PURGE_TICK_S = 3600.0
READY_BROKER_WAIT_S = 10.0
FPS_WINDOW_S = 5.0
JPEG_QUALITY = 90
#: Reasons after which the deployment is over for good and its watchlist is destroyed.
FINAL_REASONS = frozenset({"stopped", "expired", "superseded"})
#: Alerts held in memory while the outbox refuses them (full disk); counted and alarmed.
UNSAVED_ALERTS_MAX = 256


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
    ) -> None:
        self.cfg = cfg
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or SystemdNotifier()
        self._stop = threading.Event()
        self._control: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=64)
        self._vision_lock = threading.Lock()
        self._deployment: _Deployment | None = None
        self._unsaved: deque[AlertContent] = deque()
        self._frame_times: deque[float] = deque()
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
        self.gate = CaptureGate(
            self.source,
            on_frame=self._on_frame,
            audit=self.audit.append,
            clock=self.clock,
            watchlist_present=self._watchlist_present,
        )
        self.lock = DeploymentLock(lock_path(cfg.paths.runtime_dir))
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
        self.publisher = AlertPublisher.from_config(
            cfg,
            self.outbox,
            self.link,
            device_key=self.keys.signing,
            hub_key=self.verifier.trust.alert_key(self.clock.wall()),
        )
        self.link.subscribe(activation_topic(cfg.device.id), self._on_control_message)
        self.link.subscribe(watchlist_topic(cfg.device.id), self._on_control_message)
        self.link.add_connect_listener(self._publish_unsent_reports)
        self.health = HealthReporter(
            builder_from_config(
                cfg,
                models=self.models,
                state=lambda: self._state,
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
        self.watchdog = ProgressWatchdog.from_environment(
            self.notifier, {"control": PROGRESS_DEADLINE_S, "vision": PROGRESS_DEADLINE_S}
        )

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.lock.prepare()
        self.audit.append(
            "agent.started",
            version=__version__,
            detector=self.models["detector"].model_id,
            embedder=self.models["embedder"].model_id,
        )
        self.link.start()
        self.publisher.start()
        for target, name in ((self._control_loop, "control"), (self._vision_loop, "vision")):
            t = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(t)
            t.start()
        connected = self.link.wait_connected(READY_BROKER_WAIT_S)
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

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def run_until_stopped(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
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
        for t in self._threads:
            t.join(timeout=30)
        if self._deployment is not None:
            self._end_deployment("shutdown")
        self._retry_unsaved()
        self.health.stop()
        self.watchdog.stop()
        # Give queued alerts a last chance while the link is up; the outbox keeps the rest.
        deadline = time.monotonic() + 3.0
        while len(self.outbox) and self.link.connected and time.monotonic() < deadline:
            self.publisher.publish_due()
            time.sleep(0.1)
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
        while not self._stop.is_set():
            self.watchdog.beat("control")
            try:
                kind, payload = self._control.get(timeout=CONTROL_TICK_S)
            except queue.Empty:
                kind, payload = "", b""
            try:
                if kind == "activation":
                    self.handle_control_document(payload)
                elif kind == "watchlist":
                    self._handle_watchlist(payload)
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
                if now >= next_purge:
                    next_purge = now + PURGE_TICK_S
                    self.reports.purge()
                self._retry_unsaved()
            except Exception:
                # Fail closed: whatever went wrong, the camera does not stay open on it.
                log.exception("control step failed; closing the camera")
                self.gate.stop("internal-error")

    def handle_control_document(self, payload: bytes) -> str:
        """Verify and apply an activation, renewal or stop; returns what happened (one line)."""
        try:
            deployment_id = _peek_deployment(payload)
            loaded = self.watchlists.hash_for_deployment(deployment_id) if deployment_id else None
            verified = self.verifier.verify(
                payload, live=self.gate.live, loaded_watchlist_sha256=loaded
            )
        except ActivationRejected as exc:
            self.audit.append("control.rejected", step=exc.step, detail=str(exc)[:200])
            log.warning(
                "control document rejected at %s: %s", exc.step, exc, extra={"reason": exc.step}
            )
            return f"rejected: {exc.step}: {exc}"
        doc = verified.document
        if isinstance(doc, Activation):
            assert verified.live is not None
            return self._start_deployment(doc, verified.signer.subject, verified.live)
        if isinstance(doc, Renewal):
            if verified.live is not None:
                self.gate.renew(verified.live)
            return f"renewed {doc.deployment_id}"
        assert isinstance(doc, Stop)
        self.audit.append(
            "control.stop",
            deployment_id=doc.deployment_id,
            signer=verified.signer.subject,
            reason=doc.reason[:200],
        )
        self.gate.stop("stopped")
        if self._deployment is not None:
            self._end_deployment("stopped")
        return f"stopped {doc.deployment_id}"

    def _handle_watchlist(self, payload: bytes) -> None:
        result = self.watchlists.handle_watchlist_message(payload)
        if isinstance(result, LfrError):
            log.warning("watchlist refused: %s", result, extra={"reason": "watchlist-refused"})
        else:
            log.info(
                "watchlist stored", extra={"watchlist_id": result.watchlist.watchlist_hash[:16]}
            )

    def _watchlist_present(self) -> bool:
        d = self._deployment
        return d is None or self.watchlists.bound_hash == d.activation.watchlist_sha256

    # -- deployments ---------------------------------------------------------------------------
    def _start_deployment(self, act: Activation, signer: str, live: LiveActivation) -> str:
        if self._deployment is not None:
            # A new activation for the live deployment (e.g. a longer window) keeps its
            # watchlist; one for another deployment ends this one for good.
            same = self._deployment.activation.deployment_id == act.deployment_id
            reason = "reactivated" if same else "superseded"
            self.gate.stop(reason)
            self._end_deployment(reason)
        try:
            gallery = self.watchlists.bind(act.watchlist_sha256, act.deployment_id)
            with self._vision_lock:
                self.pipeline.reset()
                self.pipeline.set_watchlist(gallery, act.threshold, self.watchlists.model_id)
            self.lock.acquire(act.deployment_id)
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
        )
        self.watchdog.require("vision", PROGRESS_DEADLINE_S)
        if self.gate.activate(live):
            self._deployment.opened_at = self.clock.wall()
            self._state = "active"
            self.health.poke()
            log.info("camera open", extra={"state": "active", "deployment_id": act.deployment_id})
            return f"activated {act.deployment_id}"
        self._end_deployment(self.gate.status().reason or "open-failed")
        return "camera did not open"

    def _end_deployment(self, reason: str) -> None:
        d, self._deployment = self._deployment, None
        if d is None:
            return
        act = d.activation
        self.gate.stop(reason)
        self.frames.clear()
        with self._vision_lock:
            self._submit_all(self.pipeline.end_tracks(), d)
            counters = self.pipeline.counters.as_dict()
            self.pipeline.reset()
        if reason in FINAL_REASONS:
            self.watchlists.end_deployment(act.deployment_id, reason)
        else:
            self.watchlists.release(reason)
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
        )
        signed = sign_report(report, self.keys.signing)
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
        try:
            self.lock.release()
        except UpdateLockError as exc:
            log.error("deployment lock not released: %s", exc)
        self.watchdog.release("vision")
        self._state = "idle"
        self.health.poke()
        log.info(
            "deployment ended",
            extra={"deployment_id": act.deployment_id, "reason": reason, "state": "idle"},
        )

    # -- vision and alerts ----------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        self.frames.put(frame)

    def _vision_loop(self) -> None:
        while not self._stop.is_set():
            self.watchdog.beat("vision")
            frame = self.frames.get(timeout=0.5)
            if frame is None:
                continue
            with self._vision_lock:
                d = self._deployment
                if d is None:
                    continue  # the deployment ended while this frame waited: dropped
                self._note_frame()
                candidates = self.pipeline.process(frame)
                del frame
                self._submit_all(candidates, d)

    def _submit_all(self, candidates: list[MatchCandidate], d: _Deployment) -> None:
        for c in candidates:
            d.alerts += 1
            self._submit(c, d)

    def _submit(self, c: MatchCandidate, d: _Deployment) -> None:
        ok, jpeg = cv2.imencode(".jpg", c.crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
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
        self._store(
            AlertContent(
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
                quality=dict(c.quality),
            )
        )

    def _store(self, content: AlertContent) -> None:
        """Seal and store durably; while the outbox refuses (full disk), hold it in memory."""
        try:
            sealed = self.publisher.submit(content)
        except OutboxError as exc:
            # Never dropped silently: held, alarmed on the status topic, retried every tick.
            log.error("alert not stored: %s", exc, extra={"deployment_id": content.deployment_id})
            if len(self._unsaved) >= UNSAVED_ALERTS_MAX:
                self._unsaved.popleft()
                self.audit.append(
                    "alert.lost",
                    deployment_id=content.deployment_id,
                    reason="outbox unusable and memory full",
                )
            self._unsaved.append(content)
            return
        self.audit.append(
            "alert.sealed",
            alert_id=sealed.header.alert_id,
            deployment_id=content.deployment_id,
            sequence=sealed.header.seq,
        )
        log.info(
            "alert sealed and queued",
            extra={"alert_id": sealed.header.alert_id, "deployment_id": content.deployment_id},
        )

    def _retry_unsaved(self) -> None:
        for _ in range(len(self._unsaved)):
            self._store(self._unsaved.popleft())

    def _note_frame(self) -> None:
        now = time.monotonic()
        self._frame_times.append(now)
        while self._frame_times and now - self._frame_times[0] > FPS_WINDOW_S:
            self._frame_times.popleft()

    def _fps(self) -> float | None:
        times = list(self._frame_times)
        if len(times) < 2 or time.monotonic() - times[-1] > FPS_WINDOW_S:
            return 0.0 if self.gate.state is GateState.IDLE else None
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
        for name, signed in self.reports.unsent():
            self._publish_report(name, signed)


def _peek_deployment(payload: bytes) -> str | None:
    """The deployment a control document names, read *before* verification, only to look
    up which watchlist to check it against (the verifier then checks everything)."""
    try:
        _, body, _ = parse_envelope(payload)
        value = json.loads(body).get("deployment_id")
    except (DocumentError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None

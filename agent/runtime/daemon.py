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
from agent.matching.watchlist_store import WatchlistStore
from agent.runtime.capture_gate import CaptureGate, GateState
from agent.runtime.deployment_report import DeploymentReport, ReportArchive, sign_report
from agent.runtime.frame_queue import DropOldestQueue
from agent.runtime.health_status import HealthReporter, HealthStatus, builder_from_config
from agent.runtime.progress_watchdog import ProgressWatchdog
from agent.runtime.sd_notify import SystemdNotifier
from agent.runtime.update_lock import DeploymentLock, UpdateLockError, lock_path
from agent.transport.alert_outbox import OutboxError, OutboxFullError, open_outbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, MqttSettings, PublishResult
from agent.transport.topics import activation_topic, event_topic, status_topic, watchlist_topic
from agent.trust.activation_token import Activation, Renewal, Stop
from agent.trust.activation_verifier import (
    ActivationRejected,
    ActivationVerifier,
    LiveActivation,
    peek_deployment,
)
from agent.trust.alert_envelope import AlertContent, SealedAlert
from agent.trust.audit_log import AuditLog, open_device_audit_log
from agent.trust.device_keys import DeviceKeys, load_device_keys
from agent.trust.system_clock import Clock, SystemClock
from agent.vision.face_pipeline import FacePipeline, MatchCandidate
from agent.vision.model_store import PinnedModel, resolve_configured_models

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
        self._unsaved: deque[AlertContent | SealedAlert] = deque()
        self._unsaved_lock = threading.Lock()
        self._store_problem: str | None = None
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
        self.gate = CaptureGate(
            self.source,
            on_frame=self._on_frame,
            audit=self.audit.append,
            clock=self.clock,
            watchlist_present=self._watchlist_present,
            on_opening=self._on_camera_opening,
            on_opened=self._on_camera_opened,
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
        # The broker's last will leaves "offline" retained while the link is down: replace
        # it at once on every (re)connect rather than at the next periodic report.
        self.link.add_connect_listener(self.health.poke)
        self.watchdog = watchdog or ProgressWatchdog.from_environment(self.notifier)
        self.watchdog.require("control", PROGRESS_DEADLINE_S)
        self.watchdog.require("vision", PROGRESS_DEADLINE_S)

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
                    # A revocation list a technician installed counts at once.
                    self.verifier.trust.refresh_revocations()
                    self._close_if_signer_revoked()
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
            return self._apply_control_document(payload)
        finally:
            # Any document (even a refused one) may have brought a newer revocation list.
            self._close_if_signer_revoked()

    def _apply_control_document(self, payload: bytes) -> str:
        try:
            deployment_id = peek_deployment(payload)
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
                # its watchlist goes.
                wiped = self.watchlists.end_deployment(doc.deployment_id, "stopped")
        if verified.names_live:
            return f"stopped {doc.deployment_id}"
        return f"stopped {doc.deployment_id} (not live; {len(wiped)} watchlist(s) wiped)"

    def _close_if_signer_revoked(self) -> None:
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
        with self._deployment_lock:
            return self._open_deployment(act, signer, live)

    def _open_deployment(self, act: Activation, signer: str, live: LiveActivation) -> str:
        if self._deployment is not None:
            # A new activation for the live deployment (e.g. a longer window) keeps its
            # watchlist; one for another deployment ends this one for good.
            same = self._deployment.activation.deployment_id == act.deployment_id
            reason = "reactivated" if same else "superseded"
            self.gate.stop(reason)
            self._end_deployment(reason)
        self._retry_unsaved()
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
        self._state = "idle"
        self.health.poke()
        log.info(
            "deployment ended",
            extra={"deployment_id": act.deployment_id, "reason": reason, "state": "idle"},
        )

    # -- vision and alerts ----------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        self.watchdog.beat("capture")
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
                if isinstance(item, AlertContent):
                    item = self._unsaved[0] = self.publisher.seal(item)
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
        self.audit.append(
            "alert.sealed", alert_id=h.alert_id, deployment_id=h.deployment, sequence=h.seq
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
                    item.deployment_id if isinstance(item, AlertContent) else item.header.deployment
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
        for name, signed in self.reports.unsent():
            self._publish_report(name, signed)

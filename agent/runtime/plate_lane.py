"""The plates analytic inside ``lfr-agent run``: its own deployment, capture gate, frame
queue, pipeline thread and hotlist store, beside the faces deployment and apart from it.

The daemon routes here what belongs to plates (activations that task plates, renewals and
stops naming the live plates deployment, sealed hotlists) and lends what both share: the
camera (a view of ``SharedCamera``), the audit log, the alert outbox (plate alerts are
their own sealed kind, ``agent/trust/plate_alert_envelope.py``), the report archive and
the event topic. Nothing of a faces deployment is visible here and nothing of this one
there: no id, list, key, counter or record joins the two.

Threads: ``gate-capture``/``gate-watch`` (the plates gate) and ``plates`` (the pipeline):
frames → ``PlatePipeline.process`` → hits → JPEG → the daemon's alert store (seal, outbox,
fsync). A vehicle that hits nothing is forgotten inside the pipeline; no read of it is
logged, written or sent. A deployment ends when its gate closes for any reason; its
report counts plates read and hits, and its hotlist is wiped (stop, expiry, superseded,
revoked signer) or released from memory (other reasons) like a watchlist.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent import __version__
from agent.camera.frame_source import Frame, FrameSource
from agent.config import AgentConfig
from agent.errors import LfrError
from agent.matching.hotlist_store import HotlistStore
from agent.matching.watchlist_bundle import FindSigningKey
from agent.plates.plate_pipeline import PlateHit, PlatePipeline
from agent.runtime.capture_gate import CaptureGate, GateState
from agent.runtime.frame_queue import DropOldestQueue
from agent.runtime.plate_report import PlateDeploymentReport
from agent.runtime.progress_watchdog import ProgressWatchdog
from agent.trust.activation_token import Activation
from agent.trust.activation_verifier import LiveActivation
from agent.trust.audit_log import AuditLog
from agent.trust.plate_alert_envelope import PlateAlertContent
from agent.trust.system_clock import Clock
from agent.vision.model_store import PinnedModel

log = logging.getLogger(__name__)

FRAME_QUEUE_FRAMES = 2
PROGRESS_DEADLINE_S = 10.0
WAIT_S = 0.5
JPEG_QUALITY = 90
FINAL_REASONS = frozenset({"stopped", "expired", "superseded", "signer-revoked"})
#: Watchdog components of this lane.
LOOP = "plates"
CAPTURE = "plates-capture"


@dataclass
class PlateDeployment:
    activation: Activation
    signer: str
    hotlist_size: int
    opened_at: float | None
    dropped_at_start: int
    alerts: int = 0


class PlateLane:
    def __init__(
        self,
        cfg: AgentConfig,
        *,
        source: FrameSource,
        models: dict[str, PinnedModel],
        device_key: X25519PrivateKey,
        find_signing_key: Callable[[float], FindSigningKey],
        audit: AuditLog,
        clock: Clock,
        watchdog: ProgressWatchdog,
        store_alert: Callable[[PlateAlertContent], None],
        report_ended: Callable[[PlateDeploymentReport], None],
        hold_lock: Callable[[str], None],
        drop_lock: Callable[[str], None],
        on_change: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.models = models
        self.audit = audit
        self.clock = clock
        self.watchdog = watchdog
        self._store_alert = store_alert
        self._report_ended = report_ended
        self._hold_lock = hold_lock
        self._drop_lock = drop_lock
        self._on_change = on_change
        self.hotlists = HotlistStore.from_config(
            cfg,
            device_key=device_key,
            find_signing_key=find_signing_key,
            audit=audit.append,
            clock=clock.wall,
        )
        self.pipeline = PlatePipeline(cfg, models, clock=clock.wall)
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(FRAME_QUEUE_FRAMES)
        self.gate = CaptureGate(
            source,
            on_frame=self._on_frame,
            audit=audit.append,
            clock=clock,
            watchlist_present=self._hotlist_present,
            on_opening=lambda: self.watchdog.require(CAPTURE, PROGRESS_DEADLINE_S),
            on_opened=self._on_opened,
        )
        self._deployment: PlateDeployment | None = None
        self._lock = threading.RLock()
        self._pipeline_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Turns of the plates loop (diagnostics and tests).
        self.steps = 0

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.watchdog.require(LOOP, PROGRESS_DEADLINE_S)
        self._thread = threading.Thread(target=self._loop, name="plates", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        self.gate.shutdown()
        self.frames.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._deployment is not None:
            self.end_deployment("shutdown")
        self.watchdog.release(LOOP)
        self.pipeline.close()

    # -- state ------------------------------------------------------------------------------
    @property
    def deployment(self) -> PlateDeployment | None:
        return self._deployment

    @property
    def live(self) -> LiveActivation | None:
        return self.gate.live

    def names(self, deployment_id: str | None) -> bool:
        """Whether ``deployment_id`` is this lane's live deployment."""
        live = self.gate.live
        return live is not None and deployment_id == live.deployment_id

    def _hotlist_present(self) -> bool:
        d = self._deployment
        return d is None or self.hotlists.bound_hash == d.activation.hotlist_sha256

    # -- deployments ------------------------------------------------------------------------
    def start_deployment(self, act: Activation, signer: str, live: LiveActivation) -> str:
        with self._lock:
            if self._deployment is not None:
                same = self._deployment.activation.deployment_id == act.deployment_id
                reason = "reactivated" if same else "superseded"
                self.gate.stop(reason)
                self._end(reason)
            try:
                matcher = self.hotlists.bind(
                    act.hotlist_sha256, act.deployment_id, window_ends_at=act.not_after
                )
                with self._pipeline_lock:
                    self.pipeline.reset()
                    self.pipeline.set_hotlist(matcher, act.threshold)
                self._hold_lock(act.deployment_id)
            except LfrError as exc:
                self.hotlists.release("activation-refused")
                self.audit.append(
                    "deployment.refused",
                    deployment_id=act.deployment_id,
                    analytic="plates",
                    reason=str(exc)[:200],
                )
                log.error(
                    "plates activation not applied: %s",
                    exc,
                    extra={"deployment_id": act.deployment_id},
                )
                return f"refused: {exc}"
            self._deployment = PlateDeployment(
                activation=act,
                signer=signer,
                hotlist_size=len(matcher),
                opened_at=None,
                dropped_at_start=self.frames.dropped,
            )
            self.audit.append(
                "deployment.started",
                deployment_id=act.deployment_id,
                analytic="plates",
                sequence=act.sequence,
                hotlist_size=len(matcher),
                threshold=act.threshold,
            )
            if self.gate.activate(live):
                self._on_change()
                if self.gate.state is GateState.ARMED:
                    return f"armed {act.deployment_id}"
                return f"activated {act.deployment_id}"
            self._end(self.gate.status().reason or "open-failed")
            return "camera did not open"

    def renew(self, live: LiveActivation) -> None:
        self.gate.renew(live)

    def stop(self, reason: str) -> None:
        """A signed stop (or any closing reason) for the live plates deployment."""
        self.gate.stop(reason)
        self.end_deployment(reason)

    def end_deployment(self, reason: str) -> None:
        with self._lock:
            self._end(reason)

    def tick(self) -> None:
        """The control loop's tick: a closed gate ends its deployment; hotlist limits."""
        with self._lock:
            if self._deployment is not None and self.gate.state is GateState.IDLE:
                self._end(self.gate.status().reason or "closed")
        self.hotlists.tick()

    def _on_opened(self) -> None:
        d = self._deployment
        if d is not None:
            d.opened_at = self.clock.wall()
        self._on_change()
        log.info(
            "camera open for plates",
            extra={"state": "active", "deployment_id": d.activation.deployment_id if d else None},
        )

    def _end(self, reason: str) -> None:
        d, self._deployment = self._deployment, None
        if d is None:
            return
        act = d.activation
        self.gate.stop(reason)
        self.watchdog.release(CAPTURE)
        self.frames.clear()
        with self._pipeline_lock:
            self._submit_all(self.pipeline.end_tracks(), d)
            counters = self.pipeline.counters.as_dict()
            self.pipeline.reset()
        if reason in FINAL_REASONS:
            self.hotlists.end_deployment(act.deployment_id, reason)
        else:
            self.hotlists.release(reason)
        audit_seq, audit_sha256 = self.audit.head()
        report = PlateDeploymentReport(
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
            hotlist_sha256=act.hotlist_sha256,
            hotlist_size=d.hotlist_size,
            threshold=act.threshold,
            detector_model=self.models["plate_detector"].model_id,
            recogniser_model=self.models["plate_recogniser"].model_id,
            frames=counters["frames"],
            frames_read=counters["frames_read"],
            frames_dropped=self.frames.dropped - d.dropped_at_start,
            text_lines=counters["text_lines"],
            plate_candidates=counters["plate_candidates"],
            reads=counters["reads"],
            vehicles=counters["vehicles"],
            plates_read=counters["plates_read"],
            hits=counters["hits"],
            alerts=d.alerts,
            software_version=__version__,
            audit_seq=audit_seq,
            audit_sha256=audit_sha256,
        )
        self.audit.append(
            "deployment.ended",
            deployment_id=act.deployment_id,
            analytic="plates",
            reason=reason,
            frames=report.frames,
            plates_read=report.plates_read,
            hits=report.hits,
            alerts=report.alerts,
        )
        self._report_ended(report)
        self._drop_lock(act.deployment_id)
        self._on_change()
        log.info(
            "plates deployment ended",
            extra={"deployment_id": act.deployment_id, "reason": reason},
        )

    # -- frames and hits --------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        self.watchdog.beat(CAPTURE)
        self.frames.put(frame)

    def _loop(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                self._step()
                reported = False
                self.steps += 1
            except Exception as exc:
                # Fail closed, keep the thread; only the exception's type and place are
                # logged (its message or locals could carry a plate).
                if not reported:
                    reported = True
                    where = traceback.extract_tb(exc.__traceback__)[-1:]
                    place = f"{Path(where[0].filename).name}:{where[0].lineno}" if where else "?"
                    log.error(
                        "plates step failed (%s at %s); closing the camera",
                        type(exc).__name__,
                        place,
                        extra={"reason": "internal-error"},
                    )
                del exc
                self.gate.stop("internal-error")

    def _step(self) -> None:
        frame = self.frames.get(timeout=WAIT_S)
        if frame is None:
            if self.gate.state is not GateState.ACTIVE:
                self.watchdog.beat(LOOP)
            return
        with self._pipeline_lock:
            d = self._deployment
            if d is not None:
                hits = self.pipeline.process(frame)
                del frame
                self._submit_all(hits, d)
        self.watchdog.beat(LOOP)

    def _submit_all(self, hits: list[PlateHit], d: PlateDeployment) -> None:
        for hit in hits:
            d.alerts += 1
            self._submit(hit, d)

    def _submit(self, hit: PlateHit, d: PlateDeployment) -> None:
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        ok_plate, plate_jpeg = cv2.imencode(".jpg", hit.plate_crop, params)
        ok_vehicle, vehicle_jpeg = cv2.imencode(".jpg", hit.vehicle_crop, params)
        if not (ok_plate and ok_vehicle):
            self.audit.append(
                "alert.lost",
                deployment_id=d.activation.deployment_id,
                reason="plate crop not encodable",
            )
            return
        offset = self.clock.wall() - self.clock.mono()
        self._store_alert(
            PlateAlertContent(
                device_id=self.cfg.device.id,
                deployment_id=d.activation.deployment_id,
                hotlist_entry=hit.ref,
                plate=hit.plate,
                plate_format=hit.plate_format,
                colour=hit.colour,
                confidence=hit.confidence,
                threshold=hit.threshold,
                model_id=hit.model_id,
                track_id=hit.track_id,
                reads=hit.reads,
                agreeing=hit.agreeing,
                first_seen=max(0.0, hit.first_seen_t_mono + offset),
                decided_at=max(0.0, hit.decision_t_mono + offset),
                plate_jpeg=plate_jpeg.tobytes(),
                vehicle_jpeg=vehicle_jpeg.tobytes(),
            )
        )

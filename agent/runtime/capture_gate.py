"""The capture gate: the only thing that opens and closes the camera.

States: ``idle`` (camera closed) → [``armed``] → ``active`` (camera open,
frames flowing to ``on_frame``) → ``idle``. The camera is opened only on a
verified activation, and not before its window starts by this device's clock:
an activation accepted within the clock tolerance before its not-before time
waits ``armed`` (camera closed, audited ``gate.armed``) until then, and every
close reason below applies while it waits. The camera is closed, within one
check interval (0.1 s by default), when:

    expired             the wall clock reached not_after, or the monotonic clock
                        reached receipt + what was left of the window at receipt
    stopped             a verified, signed stop
    lease-lapsed        no verified renewal before the lease ran out
    watchlist-missing   the caller's watchlist predicate turned false, or it
                        called ``watchlist_lost()``
    source-died         the source raised or stopped yielding frames
    source-ended        a finite recording ended
    internal-error      anything unexpected in the gate's threads, or the
                        consumer raised, or the audit log could not be written
    superseded          a newer activation replaced the live one
    shutdown            the agent is stopping

A frame is handed on only if, when it arrives, the gate is still active for the
same activation and every bound still holds; otherwise it is dropped and the
camera closed. Every transition is written to the audit log first (an
activation whose opening cannot be audited does not open the camera).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.camera.frame_source import Frame, FrameSource
from agent.trust.activation_verifier import LiveActivation
from agent.trust.system_clock import Clock, SystemClock

log = logging.getLogger(__name__)

AuditCallback = Callable[..., None]  # AuditLog.append(event, **fields)


class GateState(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"  # accepted, waiting for the window to start; camera closed
    ACTIVE = "active"


@dataclass(frozen=True)
class GateStatus:
    """A snapshot for health reporting (no biometric content)."""

    state: GateState
    reason: str  # why the gate is idle ("" before the first activation)
    deployment_id: str | None
    sequence: int | None
    frames_delivered: int  # in the current (or last) activation
    window_left_s: float | None
    lease_left_s: float | None
    opened_mono: float | None
    closed_mono: float | None


class _Session:
    """One activation's stay in ``active``; threads check ``ended`` to know they are stale."""

    def __init__(self, live: LiveActivation) -> None:
        self.live = live
        self.ended = threading.Event()
        self.opened = False
        self.frames = 0
        self.threads: list[threading.Thread] = []


class CaptureGate:
    def __init__(
        self,
        source: FrameSource,
        on_frame: Callable[[Frame], None],
        audit: AuditCallback,
        clock: Clock | None = None,
        watchlist_present: Callable[[], bool] = lambda: True,
        check_interval_s: float = 0.1,
        on_opening: Callable[[], None] = lambda: None,
        on_opened: Callable[[], None] = lambda: None,
        on_closed: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_opening`` runs just before the camera is opened (at once, or when an
        armed gate's window starts), ``on_opened`` once it is open, ``on_closed`` right
        after it is closed (the clip pre-roll is wiped there); all under the gate's
        lock, so they must be quick."""
        self._source = source
        self._on_frame = on_frame
        self._audit = audit
        self._clock: Clock = clock or SystemClock()
        self._watchlist_present = watchlist_present
        self._interval = check_interval_s
        self._on_opening = on_opening
        self._on_opened = on_opened
        self._on_closed = on_closed
        self._lock = threading.RLock()
        self._session: _Session | None = None
        self._last: _Session | None = None
        self._reason = ""
        self._opened_mono: float | None = None
        self._closed_mono: float | None = None

    # -- commands -------------------------------------------------------------------
    def activate(self, live: LiveActivation) -> bool:
        """Open the camera for a verified activation, or arm it to open when the window
        starts. Returns False if it was refused or could not open."""
        with self._lock:
            old = self._session
            if old is not None:
                self._close(old, "superseded")
        if old is not None:
            # The old capture thread must be gone before the source is reopened.
            self._join(old)
        with self._lock:
            act = live.activation
            session = _Session(live)
            try:
                self._audit(
                    "gate.opening",
                    deployment_id=act.deployment_id,
                    sequence=act.sequence,
                    signer=live.signer,
                    officer=act.officer,
                    threshold=act.threshold,
                    analytic=act.analytic,
                    # The deployment's own list: a watchlist (faces) or a hotlist (plates).
                    **{f"{act.list_kind}_sha256": act.list_sha256},
                    not_after=act.not_after,
                    lease_s=act.lease_s,
                )
                doubt = self._doubt(session)
                if doubt:
                    self._reason = doubt
                    self._audit("gate.refused", deployment_id=act.deployment_id, reason=doubt)
                    return False
            except Exception:
                # Capture that cannot be audited does not happen.
                log.exception("capture gate: audit failed; camera stays closed")
                self._reason = "internal-error"
                return False
            self._session = self._last = session
            self._reason = ""
            self._opened_mono = None
            self._closed_mono = None
            wait_s = live.start_mono - self._clock.mono()
            if wait_s > 0:
                self._safe_audit(
                    "gate.armed", deployment_id=act.deployment_id, starts_in_s=round(wait_s, 3)
                )
            elif not self._open_camera(session):
                return False
            if session.ended.is_set():
                return False
            self._start_thread(session, self._watch_loop, "watch")
            return True

    def _open_camera(self, session: _Session) -> bool:
        """Open the source for ``session`` and start capturing; False if it failed."""
        with self._lock:
            act = session.live.activation
            try:
                self._on_opening()
                self._source.open()
            except Exception as exc:
                log.error("capture gate: camera not opened: %s", exc)
                self._source.close()
                session.ended.set()
                if self._session is session:
                    self._session = None
                self._reason = "source-failed"
                self._closed_mono = self._clock.mono()
                self._safe_audit(
                    "gate.open-failed", deployment_id=act.deployment_id, error=str(exc)[:200]
                )
                return False
            session.opened = True
            self._opened_mono = self._clock.mono()
            self._safe_audit("gate.opened", deployment_id=act.deployment_id, sequence=act.sequence)
            if session.ended.is_set():
                return False  # closed because the opening could not be audited
            try:
                self._on_opened()
            except Exception:
                log.exception("capture gate: on_opened failed; camera closed")
                self._close(session, "internal-error")
                return False
            self._start_thread(session, self._capture_loop, "capture")
            return True

    @staticmethod
    def _start_thread(session: _Session, target: Callable[[_Session], None], name: str) -> None:
        t = threading.Thread(target=target, args=(session,), name=f"gate-{name}", daemon=True)
        session.threads.append(t)
        t.start()

    def renew(self, live: LiveActivation) -> None:
        """Take a verified renewal's new lease for the live activation."""
        with self._lock:
            s = self._session
            if s is None or s.live.deployment_id != live.deployment_id:
                return  # nothing live to renew; the verifier normally prevents this
            s.live = live
            self._safe_audit(
                "gate.renewed",
                deployment_id=live.deployment_id,
                lease_left_s=round(live.lease_until_mono - self._clock.mono(), 3),
            )

    def stop(self, reason: str = "stopped") -> None:
        """Close the camera now (signed stop, shutdown, or any caller's doubt)."""
        with self._lock:
            if self._session is not None:
                self._close(self._session, reason)

    def watchlist_lost(self) -> None:
        self.stop("watchlist-missing")

    def shutdown(self, join_timeout_s: float = 2.0) -> None:
        with self._lock:
            session = self._session
            if session is not None:
                self._close(session, "shutdown")
        if session is not None:
            self._join(session, join_timeout_s)

    @staticmethod
    def _join(session: _Session, timeout_s: float = 2.0) -> None:
        for t in session.threads:
            if t is not threading.current_thread():
                t.join(timeout_s)

    # -- state ----------------------------------------------------------------------
    @property
    def state(self) -> GateState:
        s = self._session
        if s is None:
            return GateState.IDLE
        return GateState.ACTIVE if s.opened else GateState.ARMED

    @property
    def live(self) -> LiveActivation | None:
        s = self._session
        return s.live if s is not None else None

    def status(self) -> GateStatus:
        with self._lock:
            s = self._session or self._last
            now = self._clock.mono()
            active = self._session is not None
            return GateStatus(
                state=self.state,
                reason=self._reason,
                deployment_id=s.live.deployment_id if s else None,
                sequence=s.live.activation.sequence if s else None,
                frames_delivered=s.frames if s else 0,
                window_left_s=max(0.0, s.live.end_mono - now) if s and active else None,
                lease_left_s=max(0.0, s.live.lease_until_mono - now) if s and active else None,
                opened_mono=self._opened_mono,
                closed_mono=self._closed_mono,
            )

    # -- internals ------------------------------------------------------------------
    def _doubt(self, session: _Session) -> str:
        """Why this session must not (any longer) capture; "" when all bounds hold."""
        live = session.live
        mono = self._clock.mono()
        if self._clock.wall() >= live.not_after or mono >= live.end_mono:
            return "expired"
        if mono >= live.lease_until_mono:
            return "lease-lapsed"
        if not self._watchlist_present():
            return "watchlist-missing"
        return ""

    def _close(self, session: _Session, reason: str) -> None:
        with self._lock:
            if session.ended.is_set():
                return
            session.ended.set()
            self._source.close()  # never raises
            try:
                self._on_closed()
            except Exception:
                log.exception("capture gate: on_closed failed")
            if self._session is session:
                self._session = None
            self._reason = reason
            self._closed_mono = self._clock.mono()
            self._safe_audit(
                "gate.closed",
                deployment_id=session.live.deployment_id,
                reason=reason,
                frames=session.frames,
            )

    def _safe_audit(self, event: str, **fields: str | int | float | bool | None) -> None:
        try:
            self._audit(event, **fields)
        except Exception:
            # The camera is already in its safe state or about to be closed by the caller.
            log.exception("capture gate: audit entry %s could not be written", event)
            s = self._session
            if s is not None and event != "gate.closed":
                self._close(s, "internal-error")

    def _watch_loop(self, session: _Session) -> None:
        try:
            while not session.ended.wait(self._interval):
                with self._lock:
                    if session.ended.is_set():
                        return
                    doubt = self._doubt(session)
                    if doubt:
                        self._close(session, doubt)
                        return
                    due = not session.opened and self._clock.mono() >= session.live.start_mono
                    if due and not self._open_camera(session):
                        return
        except Exception:
            log.exception("capture gate: watch loop failed")
            self._close(session, "internal-error")

    def _capture_loop(self, session: _Session) -> None:
        try:
            while not session.ended.is_set():
                try:
                    frame = self._source.read()
                except Exception as exc:
                    if not session.ended.is_set():
                        log.error("capture gate: source failed: %s", exc)
                        self._close(session, "source-died")
                    return
                if frame is None:
                    self._close(session, "source-ended")
                    return
                with self._lock:
                    if session.ended.is_set():
                        return  # closed while this frame was in flight: dropped
                    doubt = self._doubt(session)
                    if doubt:
                        self._close(session, doubt)
                        return
                    session.frames += 1
                self._on_frame(frame)
        except Exception:
            log.exception("capture gate: capture loop failed")
            self._close(session, "internal-error")

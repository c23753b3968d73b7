"""One camera, two capture gates: the faces and the plates deployments each hold a view.

When plates are enabled the camera is shared between two ``CaptureGate``s, each the only
code that opens and closes its own view, with the gate's rules unchanged. The camera
itself is open exactly while at least one view is open: the first view to open opens it
and starts one reader thread, the last to close stops the reader and closes it. Every
frame read goes to each open view (a two-frame queue per view, oldest dropped: a slow
plate pipeline never slows the faces). A camera failure or the end of a recording
reaches every open view, so each gate closes for the same reason it would alone.
"""

from __future__ import annotations

import threading
from collections import deque

from agent.camera.frame_source import BgrImage, Frame, FrameSource, SourceDied
from agent.errors import CameraError

_QUEUE_FRAMES = 2


class _ViewState:
    def __init__(self) -> None:
        self.frames: deque[Frame] = deque(maxlen=_QUEUE_FRAMES)
        self.ended = False  # the recording ended
        self.failure: str | None = None
        self.cond = threading.Condition()


class SharedCamera:
    """Shares ``source`` between views; see the module docstring."""

    def __init__(self, source: FrameSource, read_timeout_s: float = 2.0) -> None:
        self.source = source
        self._read_timeout_s = read_timeout_s
        self._lock = threading.RLock()
        self._open_views: dict[str, _ViewState] = {}
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()

    def view(self, name: str) -> CameraView:
        return CameraView(self, name)

    @property
    def is_open(self) -> bool:
        return self.source.is_open

    # -- used by the views --------------------------------------------------------------
    def _attach(self, name: str) -> _ViewState:
        with self._lock:
            state = _ViewState()
            if not self._open_views:
                self.source.open()  # raises CameraError: the view's open fails
                self._stop.clear()
                self._reader = threading.Thread(
                    target=self._read_loop, name="camera-share", daemon=True
                )
                self._open_views[name] = state
                self._reader.start()
            else:
                self._open_views[name] = state
            return state

    def _detach(self, name: str) -> None:
        reader = None
        with self._lock:
            state = self._open_views.pop(name, None)
            if state is not None:
                with state.cond:
                    state.failure = state.failure or "closed"
                    state.cond.notify_all()
            if not self._open_views and self._reader is not None:
                self._stop.set()
                self.source.close()  # never raises; a blocked read returns or fails
                reader, self._reader = self._reader, None
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=self._read_timeout_s + 1.0)

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.source.read()
            except CameraError as exc:
                if not self._stop.is_set():
                    self._broadcast(failure=str(exc) or type(exc).__name__)
                return
            except Exception as exc:
                if not self._stop.is_set():
                    self._broadcast(failure=f"{type(exc).__name__}")
                return
            if frame is None:
                self._broadcast(ended=True)
                return
            self._broadcast(frame=frame)

    def _broadcast(
        self, frame: Frame | None = None, ended: bool = False, failure: str | None = None
    ) -> None:
        with self._lock:
            views = list(self._open_views.values())
        for state in views:
            with state.cond:
                if frame is not None:
                    state.frames.append(frame)
                state.ended = state.ended or ended
                if failure is not None:
                    state.failure = failure
                state.cond.notify_all()


class CameraView(FrameSource):
    """What one gate sees of the shared camera: a ``FrameSource`` like any other."""

    kind = "shared-camera"

    def __init__(self, shared: SharedCamera, name: str) -> None:
        super().__init__()
        self._shared = shared
        self._name = name
        self._state: _ViewState | None = None
        self.kind = f"{shared.source.kind}({name})"

    def _open_device(self) -> None:
        self._state = self._shared._attach(self._name)

    def _close_device(self) -> None:
        self._state = None
        self._shared._detach(self._name)

    def _read_image(self) -> tuple[BgrImage | None, float]:
        state = self._state
        if state is None:
            raise CameraError(f"{self.kind}: read while closed")
        with state.cond:
            ok = state.cond.wait_for(
                lambda: bool(state.frames) or state.ended or state.failure is not None,
                timeout=self._shared._read_timeout_s,
            )
            if state.frames:
                frame = state.frames.popleft()
                return frame.image, frame.t_mono
            if state.ended:
                return None, 0.0
            if state.failure is not None:
                raise SourceDied(f"{self.kind}: {state.failure}")
            if not ok:
                raise SourceDied(f"{self.kind}: no frame for {self._shared._read_timeout_s:g} s")
        raise SourceDied(f"{self.kind}: no frame")  # pragma: no cover - wait_for returned

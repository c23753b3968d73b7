"""The health report published (retained) on ``lfr/v1/<device>/status``.

The payload holds only operational figures: state, software and model
versions, frame rate and dropped frames, outbox depth, free disk, CPU
temperature, clock sync and uptime. Nothing about faces: no counts of who was
seen, no scores, no images. The daemon passes in callables for the live
figures; every read is guarded, so a failing source becomes ``null`` in the
payload and one logged warning, never an exception.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent import __version__
from agent.config import AgentConfig
from agent.runtime.journal_logging import WarnOnce

log = logging.getLogger("agent.runtime.health")

THERMAL_ROOT = Path("/sys/class/thermal")
SCHEMA_VERSION = 1
_T = TypeVar("_T")


class ModelInfo(Protocol):
    """What health needs of a pinned model (``agent.vision.model_store.PinnedModel`` fits)."""

    @property
    def sha256(self) -> str: ...

    @property
    def model_id(self) -> str: ...


@dataclass(frozen=True)
class ModelStatus:
    model_id: str
    sha256: str


@dataclass(frozen=True)
class HealthStatus:
    """One status message. ``None`` means the figure could not be read."""

    device_id: str
    state: str
    version: str
    time: str
    uptime_s: float
    models: Mapping[str, ModelStatus]
    fps: float | None
    dropped_frames: int | None
    outbox_depth: int | None
    disk_free_bytes: int | None
    disk_free_fraction: float | None
    cpu_temp_c: float | None
    clock_sync: str
    alarms: tuple[str, ...] = ()
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["models"] = {role: dataclasses.asdict(m) for role, m in self.models.items()}
        data["alarms"] = list(self.alarms)
        return data

    def to_json(self) -> bytes:
        """Compact, key-sorted JSON (the MQTT payload)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def summary(self) -> str:
        """A short line for systemd's ``STATUS=`` (shown by ``systemctl status``)."""
        parts = [self.state]
        if self.fps is not None:
            parts.append(f"{self.fps:.1f} fps")
        if self.outbox_depth is not None:
            parts.append(f"outbox {self.outbox_depth}")
        if self.dropped_frames:
            parts.append(f"dropped {self.dropped_frames}")
        if self.alarms:
            parts.append("alarms: " + ",".join(self.alarms))
        return ", ".join(parts)


def read_cpu_temp_c(thermal_root: Path = THERMAL_ROOT) -> float | None:
    """Hottest CPU/SoC thermal zone in °C; any zone if none is labelled; None if absent.

    Raises OSError only when zones exist but none can be read.
    """
    zones = sorted(thermal_root.glob("thermal_zone*"))
    if not zones:
        return None
    readings: list[tuple[bool, float]] = []
    errors: list[OSError] = []
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip().lower()
        except OSError:
            kind = ""
        try:
            milli = int((zone / "temp").read_text().strip())
        except OSError as exc:
            errors.append(exc)
            continue
        except ValueError:
            continue
        celsius = milli / 1000.0
        if -40.0 <= celsius <= 150.0:
            readings.append((any(w in kind for w in ("cpu", "soc", "x86_pkg")), celsius))
    if not readings:
        if errors:
            raise errors[0]
        return None
    labelled = [c for is_cpu, c in readings if is_cpu]
    return round(max(labelled or [c for _, c in readings]), 1)


def _sync_text(value: object) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is True:
        return "synchronised"
    if value is False:
        return "unsynchronised"
    if value in ("synchronised", "unsynchronised"):
        return str(value)
    return "unknown"


class HealthStatusBuilder:
    """Collects the figures for one :class:`HealthStatus`.

    ``state``, ``fps``, ``dropped_frames``, ``outbox_depth`` and ``clock_sync``
    are callables owned by the daemon (``clock_sync`` may return a bool, a
    ``ClockSync`` or its value). Alarms are raised when free disk falls below
    ``disk_free_alarm_bytes`` or the CPU reaches ``cpu_temp_alarm_c``.
    """

    def __init__(
        self,
        *,
        device_id: str,
        state_dir: Path,
        models: Mapping[str, ModelInfo],
        state: Callable[[], str],
        fps: Callable[[], float | None] | None = None,
        dropped_frames: Callable[[], int] | None = None,
        outbox_depth: Callable[[], int] | None = None,
        clock_sync: Callable[[], object] | None = None,
        extra_alarms: Callable[[], list[str]] | None = None,
        disk_free_alarm_bytes: int = 0,
        cpu_temp_alarm_c: float | None = None,
        thermal_root: Path = THERMAL_ROOT,
        version: str = __version__,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._device_id = device_id
        self._state_dir = state_dir
        self._models = {
            role: ModelStatus(model_id=m.model_id, sha256=m.sha256) for role, m in models.items()
        }
        self._state = state
        self._fps = fps
        self._dropped = dropped_frames
        self._outbox = outbox_depth
        self._clock_sync = clock_sync
        self._extra_alarms = extra_alarms
        self._disk_alarm = disk_free_alarm_bytes
        self._temp_alarm = cpu_temp_alarm_c
        self._thermal_root = thermal_root
        self._version = version
        self._monotonic = monotonic
        self._wall = wall
        self._started = monotonic()
        self._warn = WarnOnce(log)

    def _read(self, what: str, source: Callable[[], _T] | None) -> _T | None:
        if source is None:
            return None
        try:
            return source()
        except Exception as exc:
            self._warn(what, "health: cannot read %s (%s: %s)", what, type(exc).__name__, exc)
            return None

    def _disk(self) -> tuple[int | None, float | None]:
        try:
            usage = shutil.disk_usage(self._state_dir)
        except OSError as exc:
            self._warn("disk", "health: cannot read free disk of %s (%s)", self._state_dir, exc)
            return None, None
        fraction = usage.free / usage.total if usage.total else None
        return usage.free, None if fraction is None else round(fraction, 4)

    def build(self) -> HealthStatus:
        state = self._read("state", self._state)
        fps = self._read("fps", self._fps)
        if fps is not None and (not isinstance(fps, (int, float)) or not math.isfinite(fps)):
            fps = None
        dropped = self._read("dropped frames", self._dropped)
        depth = self._read("outbox depth", self._outbox)
        free, fraction = self._disk()
        temp = self._read("CPU temperature", lambda: read_cpu_temp_c(self._thermal_root))
        alarms: list[str] = []
        if free is not None and free < self._disk_alarm:
            alarms.append("disk_low")
        if temp is not None and self._temp_alarm is not None and temp >= self._temp_alarm:
            alarms.append("cpu_hot")
        alarms += [str(a) for a in (self._read("alarms", self._extra_alarms) or [])]
        return HealthStatus(
            device_id=self._device_id,
            state=str(state) if state is not None else "unknown",
            version=self._version,
            time=datetime.fromtimestamp(self._wall(), UTC).isoformat(timespec="seconds"),
            uptime_s=round(self._monotonic() - self._started, 1),
            models=dict(self._models),
            fps=None if fps is None else round(float(fps), 2),
            dropped_frames=dropped if isinstance(dropped, int) else None,
            outbox_depth=depth if isinstance(depth, int) else None,
            disk_free_bytes=free,
            disk_free_fraction=fraction,
            cpu_temp_c=temp,
            clock_sync=_sync_text(self._read("clock sync", self._clock_sync)),
            alarms=tuple(sorted(set(alarms))),
        )


def builder_from_config(
    cfg: AgentConfig,
    *,
    models: Mapping[str, ModelInfo],
    state: Callable[[], str],
    fps: Callable[[], float | None] | None = None,
    dropped_frames: Callable[[], int] | None = None,
    outbox_depth: Callable[[], int] | None = None,
    clock_sync: Callable[[], object] | None = None,
    extra_alarms: Callable[[], list[str]] | None = None,
) -> HealthStatusBuilder:
    """A builder for this device: id, state directory and alarm levels from the config."""
    return HealthStatusBuilder(
        device_id=cfg.device.id,
        state_dir=cfg.paths.state_dir,
        models=models,
        state=state,
        fps=fps,
        dropped_frames=dropped_frames,
        outbox_depth=outbox_depth,
        clock_sync=clock_sync,
        extra_alarms=extra_alarms,
        disk_free_alarm_bytes=cfg.health.disk_free_alarm_mb * 1024 * 1024,
        cpu_temp_alarm_c=cfg.health.cpu_temp_alarm_c,
    )


def reporter_from_config(
    cfg: AgentConfig,
    builder: HealthStatusBuilder,
    publish: Callable[[HealthStatus], object],
    status_line: Callable[[str], object] | None = None,
) -> HealthReporter:
    """A reporter refreshing every ``health.status_interval_s``."""
    return HealthReporter(builder, cfg.health.status_interval_s, publish, status_line)


class HealthReporter:
    """Every ``interval_s`` (the config's ``health.status_interval_s``): build, publish, STATUS=.

    ``publish`` receives each :class:`HealthStatus` (the daemon sends it,
    retained, to the status topic); ``status_line`` gets its summary (e.g.
    ``SystemdNotifier.status``). Failures of either are logged once and the
    loop carries on.
    """

    def __init__(
        self,
        builder: HealthStatusBuilder,
        interval_s: float,
        publish: Callable[[HealthStatus], object],
        status_line: Callable[[str], object] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("status interval must be positive")
        self._builder = builder
        self.interval_s = interval_s
        self._publish = publish
        self._status_line = status_line
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._warn = WarnOnce(log)
        self.last: HealthStatus | None = None

    def report_now(self) -> HealthStatus | None:
        """Build and send one status (also called on state changes)."""
        try:
            status = self._builder.build()
        except Exception as exc:
            self._warn("build", "health: status not built (%s: %s)", type(exc).__name__, exc)
            return None
        self.last = status
        try:
            self._publish(status)
        except Exception as exc:
            self._warn("publish", "health: status not published (%s: %s)", type(exc).__name__, exc)
        if self._status_line is not None:
            try:
                self._status_line(status.summary())
            except Exception as exc:
                self._warn("status", "health: STATUS= not sent (%s)", exc)
        return status

    def poke(self) -> None:
        """Ask the reporter thread for a status now (e.g. after a state change)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="health", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.report_now()
            self._wake.wait(self.interval_s)
            self._wake.clear()

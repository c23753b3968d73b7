"""One sample of every resource the soak watches, every ``INTERVAL_S``, into series.

A sample is a row of figures keyed by the resource names of ``soak_budgets.RESOURCES``;
a figure that cannot be read at that moment (the daemon restarting, the broker down) is
``None``: a gap in the curve, left out of the fit.

With ``memory_interval_s`` (the long run: ``MEMORY_INTERVAL_S``) the daemon's and the
hub's RSS and anonymous RSS are read more often than the rest. The daemon's memory rises
and falls by some 20 MB on a cycle of about 40 s; four samples a cycle alias it, and the
cycle means the verdict fits through then scatter by about ±0.7 MB/h in half an hour,
the whole of a 5 % budget. Forty samples a cycle bring that to about ±0.2 MB/h.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hil.soak.device_status_watch import DeviceStatusWatch
from hil.soak.file_figures import GrowingFile, LineRate, file_bytes, folder_size
from hil.soak.growth_verdict import Point
from hil.soak.process_sampler import (
    PROC,
    CpuMeter,
    ProcessSample,
    sample_memory,
    sample_process,
)

INTERVAL_S = 10.0
#: How often the long run reads the two processes' memory (``/proc/PID/status`` only).
MEMORY_INTERVAL_S = 1.0
MB = 1024.0 * 1024.0


def find_program(pid: int | None, marker: str, proc: Path = PROC) -> int | None:
    """``pid`` or the first of its descendants whose command line holds ``marker``.

    The rig starts the agent through ``ip netns exec`` / ``unshare`` / ``sh``; each
    normally replaces itself with the next, but a wrapper that forks leaves the agent
    one level down, and that is the process to sample."""
    if pid is None:
        return None
    todo = [pid]
    seen: set[int] = set()
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.add(p)
        try:
            cmdline = (proc / str(p) / "cmdline").read_bytes().replace(b"\0", b" ")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if marker.encode() in cmdline:
            return p
        todo.extend(_children(p, proc))
    return None


def _children(pid: int, proc: Path) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(proc / str(pid) / "task")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for tid in tasks:
        try:
            text = (proc / str(pid) / "task" / tid / "children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.extend(int(c) for c in text.split())
    return out


class ProcessFigures:
    """The /proc figures of one (possibly restarted) process under a resource prefix."""

    def __init__(self, part: str, pid: Callable[[], int | None], log: Path | None) -> None:
        self.part = part
        self._pid = pid
        self._cpu = CpuMeter()
        self._log = LineRate(log) if log is not None else None
        self.last: ProcessSample | None = None

    def _memory_row(self, rss: int | None, anon: int | None) -> dict[str, float | None]:
        p = self.part
        return {
            f"{p}.rss_mb": rss / MB if rss is not None else None,
            f"{p}.anon_mb": anon / MB if anon is not None else None,
        }

    def memory(self) -> dict[str, float | None]:
        """RSS and anonymous RSS only (the frequent samples of a long run)."""
        pid = self._pid()
        m = sample_memory(pid) if pid is not None else None
        return self._memory_row(*m) if m else self._memory_row(None, None)

    def read(self, wall: float, memory: bool = True) -> dict[str, float | None]:
        pid = self._pid()
        s = sample_process(pid) if pid is not None else None
        self.last = s
        p = self.part
        out: dict[str, float | None] = {}
        if memory:
            out = self._memory_row(s.rss_bytes, s.anon_bytes) if s else self._memory_row(None, None)
        out |= {
            f"{p}.pss_mb": s.pss_bytes / MB if s and s.pss_bytes is not None else None,
            f"{p}.uss_mb": s.uss_bytes / MB if s and s.uss_bytes is not None else None,
            f"{p}.cpu_pct": self._cpu.percent(s, wall) if s else None,
            f"{p}.fds": float(s.fds) if s else None,
            f"{p}.threads": float(s.threads) if s else None,
        }
        if self._log is not None:
            out[f"{p}.log_lines_per_min"] = self._log.per_minute(wall)
        return out


@dataclass
class SoakSources:
    """Where each figure comes from."""

    daemon_pid: Callable[[], int | None]
    hub_pid: Callable[[], int | None]
    broker_pid: Callable[[], int | None]
    daemon_log: Path
    hub_log: Path
    state_dir: Path
    hub_db: Path
    status: DeviceStatusWatch
    alerts_stored: Callable[[], int | None]
    alerts_adjudicated: Callable[[], int]


@dataclass
class Series:
    """Every resource's points (seconds since the start, value or None) and the events."""

    started_wall: float
    points: dict[str, list[Point]] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)

    def add(self, t: float, row: dict[str, float | None]) -> None:
        for name, value in row.items():
            self.points.setdefault(name, []).append((round(t, 1), value))

    def mark(self, t: float, what: str) -> None:
        self.events.append((round(t, 1), what))


class SoakSampler:
    """Takes a sample every ``interval_s`` in its own thread until stopped."""

    def __init__(
        self,
        sources: SoakSources,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = INTERVAL_S,
        journal: Path | None = None,
        memory_interval_s: float | None = None,
    ) -> None:
        if memory_interval_s is not None and not 0.0 < memory_interval_s < interval_s:
            raise ValueError(
                f"memory interval {memory_interval_s:g} s: above 0 and below {interval_s:g} s"
            )
        self.src = sources
        # Every sample is also appended here as it is taken: a long run that dies still
        # leaves its curves behind.
        self.journal = journal
        self.interval_s = interval_s
        self.memory_interval_s = memory_interval_s
        self._clock = clock
        self.t0 = clock()
        self.series = Series(started_wall=time.time())
        self._daemon = ProcessFigures("daemon", sources.daemon_pid, sources.daemon_log)
        self._hub = ProcessFigures("hub", sources.hub_pid, sources.hub_log)
        self._broker = ProcessFigures("broker", sources.broker_pid, None)
        self._audit = GrowingFile(sources.state_dir / "audit.jsonl")
        self._sealed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def now(self) -> float:
        return self._clock() - self.t0

    def mark(self, what: str) -> None:
        with self._lock:
            self.series.mark(self.now(), what)

    def sample_memory(self) -> dict[str, float | None]:
        """The daemon's and the hub's RSS and anonymous RSS now, into the series."""
        row = self._daemon.memory() | self._hub.memory()
        self._record(row)
        return row

    def sample(self) -> dict[str, float | None]:
        wall = self._clock()
        # Memory has its own, more frequent samples when memory_interval_s is set.
        memory = self.memory_interval_s is None
        row: dict[str, float | None] = {}
        row.update(self._daemon.read(wall, memory))
        row.update(self._hub.read(wall, memory))
        broker = self._broker.read(wall)
        for key in ("broker.rss_mb", "broker.fds", "broker.cpu_pct"):
            row[key] = broker[key]
        st = self.src.status.figures()
        row["device.fps"] = st.fps
        row["device.frames"] = st.frames
        row["device.dropped_frames"] = (
            float(st.dropped_frames) if st.dropped_frames is not None else None
        )
        state = self.src.state_dir
        # Every file the outbox folder holds: entries, and half-written or quarantined ones.
        outbox = folder_size(state / "outbox")
        row["device.outbox_files"] = float(outbox.files)
        row["device.outbox_mb"] = outbox.bytes / MB
        row["device.state_mb"] = folder_size(state).bytes / MB
        row["device.audit_mb"] = file_bytes(state / "audit.jsonl") / MB
        self._sealed += sum(1 for line in self._audit.new_lines() if b'"alert.sealed"' in line)
        row["alerts.sealed"] = float(self._sealed)
        stored = self.src.alerts_stored()
        row["alerts.stored"] = float(stored) if stored is not None else None
        row["alerts.adjudicated"] = float(self.src.alerts_adjudicated())
        db = self.src.hub_db
        row["hub.db_mb"] = file_bytes(db, db.with_name(db.name + "-wal")) / MB
        self._record(row)
        return row

    def _record(self, row: dict[str, float | None]) -> None:
        t = self.now()
        with self._lock:
            self.series.add(t, row)
        if self.journal is not None:
            with self.journal.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"t": round(t, 1), **row}) + "\n")

    def _loop(self) -> None:
        tick = self.memory_interval_s or self.interval_s
        next_at = next_full = self._clock()
        while not self._stop.is_set():
            now = self._clock()
            try:
                if now >= next_full:
                    next_full += self.interval_s
                    self.sample()
                if self.memory_interval_s is not None:
                    self.sample_memory()
            except Exception as exc:  # one bad sample is a gap, never the end of the run
                self.errors.append(f"{self.now():.0f} s: {type(exc).__name__}: {exc}")
            next_at += tick
            self._stop.wait(max(0.0, next_at - self._clock()))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

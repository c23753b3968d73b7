"""CPU time and memory of groups of processes, read from /proc once a second.

A group is named ("hub workers", "postgresql", "broker", "cameras") and holds the
processes whose ids it is given, plus, optionally, all their descendants (PostgreSQL's
backends). CPU is user + system time; memory is the proportional set size (Pss, from
``smaps_rollup``), so memory shared between a group's processes (PostgreSQL's shared
buffers) is counted once, not once per backend.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def pss_bytes(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def descendants(root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass
class GroupUsage:
    """What one group used while sampled."""

    cpu_s: float = 0.0
    peak_pss: int = 0
    pss_sum: float = 0.0
    samples: int = 0
    _last_cpu: dict[int, float] = field(default_factory=dict)

    @property
    def mean_pss(self) -> float:
        return self.pss_sum / self.samples if self.samples else 0.0


class ProcessSampler:
    """Samples named groups every ``interval_s`` in a thread, from ``start`` to ``stop``."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._groups: dict[str, tuple[Callable[[], set[int]], GroupUsage]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0
        self.elapsed_s = 0.0

    def watch(self, name: str, pids: Callable[[], set[int]]) -> None:
        """Sample the processes ``pids()`` returns (called at every sample: processes
        restarted during the run are followed)."""
        self._groups[name] = (pids, GroupUsage())

    def usage(self, name: str) -> GroupUsage:
        return self._groups[name][1]

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._sample(prime=True)
        self._thread = threading.Thread(target=self._run, name="fleet-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sample()
        self.elapsed_s = time.monotonic() - self.started_at

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, *, prime: bool = False) -> None:
        """One sample; ``prime`` only notes the processes running now (what they used
        before the measurement started is not counted)."""
        for pids, usage in self._groups.values():
            total_pss = 0
            for pid in pids():
                now = cpu_seconds(pid)
                if now is None:
                    continue
                before = usage._last_cpu.get(pid)
                # A process that appears during the measurement counts from its start (a
                # restarted worker's start-up is part of the cost); others their increase.
                if not prime:
                    usage.cpu_s += now - before if before is not None else now
                usage._last_cpu[pid] = now
                total_pss += pss_bytes(pid) or 0
            if prime:
                continue
            usage.peak_pss = max(usage.peak_pss, total_pss)
            usage.pss_sum += total_pss
            usage.samples += 1

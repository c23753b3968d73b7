"""What one process holds right now, read from ``/proc`` (Linux only; no extra library).

* RSS, anonymous RSS and thread count from ``/proc/PID/status`` (anonymous RSS: the heap,
  stacks and anonymous maps, where a leak lands; unlike USS it does not move when another
  process maps or unmaps the same library files);
* PSS and USS from ``/proc/PID/smaps_rollup`` (USS = private clean + private dirty: the
  memory that would be freed if the process exited; a library page counts as private
  only while no other process maps that file, so USS jumps as unrelated processes using
  the same libraries come and go; PSS shares the pages other processes also map, such as
  the Python interpreter and the models' libraries, out among them);
* CPU time (user + system clock ticks) from ``/proc/PID/stat``;
* open file descriptors: the entries of ``/proc/PID/fd``.

A process that has gone (or was never there) gives ``None``: a sample taken while the
daemon restarts is a gap in the curve, not an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS_PER_S = float(os.sysconf("SC_CLK_TCK"))
KIB = 1024


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    rss_bytes: int
    anon_bytes: int | None  # None when the kernel does not report RssAnon
    pss_bytes: int | None  # None when smaps_rollup is not readable (older kernel)
    uss_bytes: int | None
    cpu_s: float  # user + system time since the process started
    fds: int
    threads: int


def _kib_fields(text: str, names: tuple[str, ...]) -> dict[str, int]:
    """``Name:   123 kB`` lines → {name: bytes} for the names asked for."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in names:
            parts = rest.split()
            if parts and parts[0].isdigit():
                found[name] = int(parts[0]) * KIB
    return found


def _cpu_seconds(stat_text: str) -> float:
    # The command name (field 2) may hold spaces and parentheses: fields are counted from
    # the last ')'. utime and stime are fields 14 and 15 of the whole line.
    after = stat_text.rsplit(")", 1)[1].split()
    return (int(after[11]) + int(after[12])) / CLOCK_TICKS_PER_S


def sample_process(pid: int, proc: Path = PROC) -> ProcessSample | None:
    """The figures of ``pid`` now, or None if the process does not exist (any more)."""
    base = proc / str(pid)
    try:
        status_text = (base / "status").read_text(encoding="ascii", errors="replace")
        cpu_s = _cpu_seconds((base / "stat").read_text(encoding="ascii", errors="replace"))
        fds = len(os.listdir(base / "fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    status = _kib_fields(status_text, ("VmRSS", "RssAnon"))
    threads = next(
        (int(line.split()[1]) for line in status_text.splitlines() if line.startswith("Threads:")),
        0,
    )
    try:
        rollup = _kib_fields(
            (base / "smaps_rollup").read_text(encoding="ascii", errors="replace"),
            ("Pss", "Private_Clean", "Private_Dirty"),
        )
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        rollup = {}
    pss = rollup.get("Pss")
    uss = (
        rollup["Private_Clean"] + rollup["Private_Dirty"]
        if "Private_Clean" in rollup and "Private_Dirty" in rollup
        else None
    )
    return ProcessSample(
        pid=pid,
        rss_bytes=status.get("VmRSS", 0),
        anon_bytes=status.get("RssAnon"),
        pss_bytes=pss,
        uss_bytes=uss,
        cpu_s=cpu_s,
        fds=fds,
        threads=threads,
    )


def sample_memory(pid: int, proc: Path = PROC) -> tuple[int, int | None] | None:
    """(RSS, anonymous RSS) of ``pid`` in bytes from ``/proc/PID/status`` alone: cheap
    enough to take every second (``smaps_rollup`` walks every mapping and is not)."""
    try:
        text = (proc / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    status = _kib_fields(text, ("VmRSS", "RssAnon"))
    return status.get("VmRSS", 0), status.get("RssAnon")


class CpuMeter:
    """CPU use between two samples of one process, as a percentage of one core.

    The first sample of a process (or the first after it was restarted, seen as a new
    pid) has no interval to compare with and gives None."""

    def __init__(self) -> None:
        self._last: tuple[int, float, float] | None = None  # (pid, wall, cpu_s)

    def percent(self, sample: ProcessSample, wall: float) -> float | None:
        last, self._last = self._last, (sample.pid, wall, sample.cpu_s)
        if last is None or last[0] != sample.pid or wall <= last[1]:
            return None
        return 100.0 * max(0.0, sample.cpu_s - last[2]) / (wall - last[1])

"""Wall clock, monotonic clock and whether the kernel believes the wall clock is synchronised.

Activations are bounded by both clocks: the wall clock (what the hub signed) and
the monotonic clock since receipt (what a wall-clock jump cannot move). Every
part that reads time takes a ``Clock`` so tests can jump the wall clock
forwards and backwards.

Sync state, most authoritative first:
1. ``adjtimex(2)`` (read-only query): the kernel returns TIME_ERROR while the
   STA_UNSYNC flag is set, i.e. no time daemon has disciplined the clock.
2. ``/run/systemd/timesync/synchronized`` exists once systemd-timesyncd has
   synchronised since boot.
If neither answers, the state is UNKNOWN (treated like unsynchronised when
``activation.require_clock_sync`` is true: fail closed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import time
from pathlib import Path
from typing import Protocol

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
_TIME_ERROR = 5  # adjtimex return value while the clock is unsynchronised


class ClockSync(enum.Enum):
    SYNCHRONISED = "synchronised"
    UNSYNCHRONISED = "unsynchronised"
    UNKNOWN = "unknown"


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC), as the system clock says."""
        ...

    def mono(self) -> float:
        """Seconds on a clock that never jumps (CLOCK_MONOTONIC)."""
        ...

    def sync_state(self) -> ClockSync: ...


class _Timex(ctypes.Structure):
    # Leading fields of struct timex; the tail is padding large enough for any ABI.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def kernel_sync_state() -> ClockSync:
    """Ask the kernel (adjtimex, modes=0 reads only) whether the clock is disciplined."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        rc = int(libc.adjtimex(ctypes.byref(tx)))
    except (OSError, AttributeError):
        return ClockSync.UNKNOWN
    if rc < 0:
        return ClockSync.UNKNOWN
    return ClockSync.UNSYNCHRONISED if rc == _TIME_ERROR else ClockSync.SYNCHRONISED


class SystemClock:
    """The real clocks of this machine."""

    def __init__(self, timesyncd_flag: Path = TIMESYNCD_FLAG) -> None:
        self._flag = timesyncd_flag

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    def sync_state(self) -> ClockSync:
        state = kernel_sync_state()
        if state is ClockSync.UNKNOWN and self._flag.exists():
            return ClockSync.SYNCHRONISED
        return state


class ManualClock:
    """A clock that moves only when told to: for tests of expiry and clock jumps."""

    def __init__(
        self, wall: float, mono: float = 1000.0, sync: ClockSync = ClockSync.SYNCHRONISED
    ) -> None:
        self._wall = wall
        self._mono = mono
        self.sync = sync

    def wall(self) -> float:
        return self._wall

    def mono(self) -> float:
        return self._mono

    def sync_state(self) -> ClockSync:
        return self.sync

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move together."""
        self._wall += seconds
        self._mono += seconds

    def jump_wall(self, seconds: float) -> None:
        """The wall clock is set (forwards or backwards); the monotonic clock does not move."""
        self._wall += seconds

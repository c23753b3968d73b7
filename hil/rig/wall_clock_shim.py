"""A wall-clock offset for the agent under test on the virtual rig: the rig's clock jump.

The virtual rig cannot step this machine's clock (every other process shares it), a time
namespace shifts only the monotonic clocks, and libfaketime breaks Python's ``time.sleep``.
So the rig copies this file as ``sitecustomize.py`` into a folder of its own, puts that
folder first on the agent's ``PYTHONPATH`` and names an offset file in
``LFR_HIL_WALL_OFFSET_FILE``; Python imports it at start-up, before the agent, and it
replaces ``time.time`` and ``time.time_ns`` with the real clock plus the offset (seconds,
a decimal number in the file). ``time.monotonic`` and every other clock are left alone,
as a real ``date -s`` leaves them.

Only ``time.time``/``time.time_ns`` move: that is what the agent reads for the wall clock
(``agent/trust/system_clock.py``; the audit log, the outbox and the alert envelope take
``time.time`` too). ``datetime.now()`` reads the C clock and does not move; the agent's
run path does not call it. The clock-sync state (``adjtimex``) is not faked: the rig's
device runs with ``activation.require_clock_sync = false``.

Never installed and never part of the agent: it exists only in the rig's work folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

ENV_VAR = "LFR_HIL_WALL_OFFSET_FILE"
# How often the offset file is looked at (a stat, and a read only when it changed): the
# jump reaches the agent at most this long after the rig wrote it.
RECHECK_S = 0.05


class WallClockOffset:
    """The offset in ``path``, re-read when the file changes (checked every ``RECHECK_S``)."""

    def __init__(self, path: Path, mono: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._mono = mono
        self._next_check = 0.0
        self._stamp: tuple[int, int, int] | None = None
        self.seconds = 0.0

    def current(self) -> float:
        now = self._mono()
        if now >= self._next_check:
            self._next_check = now + RECHECK_S
            self._refresh()
        return self.seconds

    def _refresh(self) -> None:
        try:
            st = os.stat(self._path)
        except OSError:
            self._stamp, self.seconds = None, 0.0  # no file: the real clock
            return
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self._stamp:
            return
        try:
            value = float(self._path.read_text(encoding="ascii").strip() or "0")
        except (OSError, ValueError, UnicodeDecodeError):
            return  # a half-written or bad file: keep the last good offset
        self._stamp, self.seconds = stamp, value


def install(path: Path) -> WallClockOffset:
    """Replace ``time.time`` and ``time.time_ns`` with the real clock plus the offset."""
    offset = WallClockOffset(path)
    real_time, real_time_ns = time.time, time.time_ns

    def shifted_time() -> float:
        return real_time() + offset.current()

    def shifted_time_ns() -> int:
        return real_time_ns() + int(offset.current() * 1e9)

    time.time = shifted_time
    time.time_ns = shifted_time_ns
    return offset


def write_offset(path: Path, seconds: float) -> None:
    """Set the offset (rig side): a whole new file renamed into place, never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{seconds:.6f}\n", encoding="ascii")
    os.replace(tmp, path)


def prepare(folder: Path) -> tuple[Path, Path]:
    """The rig's shim folder: this file as ``sitecustomize.py`` and an offset file at 0.

    Returns (folder for PYTHONPATH, offset file).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(Path(__file__).read_text(encoding="utf-8"))
    offset_file = folder / "wall-offset"
    write_offset(offset_file, 0.0)
    return folder, offset_file


if __name__ == "sitecustomize" and os.environ.get(ENV_VAR):
    install(Path(os.environ[ENV_VAR]))

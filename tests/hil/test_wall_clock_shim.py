"""The rig's wall-clock shim: a Python process started the way the rig starts the agent
sees the wall clock moved by the offset file, changes to it while it runs, and the
monotonic clock untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hil.rig import wall_clock_shim
from hil.rig.wall_clock_shim import WallClockOffset, prepare, write_offset

CHILD = (
    "import sys, time\n"
    "for line in sys.stdin:\n"
    "    time.sleep(0.2)\n"  # longer than the shim's recheck interval
    "    print(time.time(), time.time_ns() / 1e9, time.monotonic(), flush=True)\n"
)


def test_a_child_process_sees_the_offset_and_its_changes(tmp_path: Path) -> None:
    folder, offset_file = prepare(tmp_path / "shim")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(folder)
    env[wall_clock_shim.ENV_VAR] = str(offset_file)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None

    def sample() -> tuple[float, float, float]:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("\n")
        child.stdin.flush()
        wall, wall_ns, mono = map(float, child.stdout.readline().split())
        real = time.time()
        assert abs(wall - wall_ns) < 1.0
        return wall - real, wall_ns - real, mono - time.monotonic()

    try:
        for offset in (0.0, 7200.0, -10800.0, 0.0):
            write_offset(offset_file, offset)
            shift, shift_ns, mono_shift = sample()
            assert abs(shift - offset) < 2.0, (offset, shift)
            assert abs(shift_ns - offset) < 2.0, (offset, shift_ns)
            assert abs(mono_shift) < 2.0  # the monotonic clock is never moved
    finally:
        child.stdin.close()
        child.wait(10)


def test_without_the_variable_nothing_is_replaced(tmp_path: Path) -> None:
    folder, offset_file = prepare(tmp_path / "shim")
    write_offset(offset_file, 7200.0)
    env = {k: v for k, v in os.environ.items() if k != wall_clock_shim.ENV_VAR}
    env["PYTHONPATH"] = str(folder)
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert abs(float(out.stdout) - time.time()) < 2.0


def test_a_bad_or_missing_file_keeps_a_sane_offset(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    now = [0.0]
    offset = WallClockOffset(path, mono=lambda: now[0])
    assert offset.current() == 0.0  # no file: the real clock
    write_offset(path, 60.0)
    now[0] += 1
    assert offset.current() == 60.0
    path.write_text("not a number")
    now[0] += 1
    assert offset.current() == 60.0  # unreadable: the last good offset stays
    path.unlink()
    now[0] += 1
    assert offset.current() == 0.0

"""The real clock reads the kernel's sync state; the manual clock jumps on demand."""

from __future__ import annotations

from pathlib import Path

from agent.trust.system_clock import ClockSync, SystemClock, kernel_sync_state


def test_kernel_reports_a_state() -> None:
    # This machine's kernel answers adjtimex; the answer depends on the host, not the test.
    assert kernel_sync_state() in (ClockSync.SYNCHRONISED, ClockSync.UNSYNCHRONISED)


def test_system_clock_reads_real_clocks(tmp_path: Path) -> None:
    clock = SystemClock(timesyncd_flag=tmp_path / "synchronized")
    a, b = clock.mono(), clock.mono()
    assert b >= a
    assert clock.wall() > 1_700_000_000
    assert clock.sync_state() == kernel_sync_state()

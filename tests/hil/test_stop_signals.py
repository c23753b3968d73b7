"""A HIL run stopped by SIGTERM, or by SIGINT its shell had set to be ignored, still
runs its teardown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.stop_signals import interrupt_on_stop_signals

RUN = """
import pathlib, sys, time
from hil.stop_signals import interrupt_on_stop_signals
interrupt_on_stop_signals()
marker = pathlib.Path(sys.argv[1])
try:
    marker.write_text("running")
    time.sleep(60)
except KeyboardInterrupt:
    marker.write_text("torn down")
    raise SystemExit(130)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_runs_the_teardown(tmp_path: Path, sig: signal.Signals) -> None:
    marker = tmp_path / "state"
    # SIG_IGN for SIGINT is what a shell gives a job started with "&"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(marker)],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the run did not start"
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
    assert marker.read_text() == "torn down"


def test_the_handlers_are_installed() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        interrupt_on_stop_signals()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])

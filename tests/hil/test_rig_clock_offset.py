"""The real rig's device-clock offset measurement, run against local commands that answer
like the device's shell does over SSH (one clock reading per line sent)."""

from __future__ import annotations

import sys

import pytest

from hil.rig.real_rig import CLOCK_SCRIPT, measure_clock_offset

# A clock 5 s ahead of this machine's, answering each line it is sent.
AHEAD = "import sys, time\nfor _ in sys.stdin:\n    print(time.time() + 5.0, flush=True)\n"


def test_the_rig_script_on_this_machine_finds_no_offset() -> None:
    rtt, offset = measure_clock_offset(["sh", "-c", CLOCK_SCRIPT])
    assert 0 < rtt < 5
    assert abs(offset) <= rtt / 2 + 0.01  # same clock: only the reading's place in the trip


def test_a_clock_ahead_is_measured() -> None:
    rtt, offset = measure_clock_offset([sys.executable, "-c", AHEAD])
    assert abs(offset - 5.0) <= rtt / 2 + 0.01


def test_no_reading_is_an_error() -> None:
    with pytest.raises(ValueError, match="no clock reading"):
        measure_clock_offset(["sh", "-c", "echo not-a-clock"])
    with pytest.raises(ValueError, match="no clock reading"):
        measure_clock_offset(["true"])

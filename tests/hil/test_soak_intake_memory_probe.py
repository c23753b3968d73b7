"""The hub intake memory probe runs the real intake (alert store and clip receiver)."""

from __future__ import annotations

import tracemalloc

import pytest

from hil.soak.intake_memory_probe import main


def test_the_probe_stores_alerts_with_clips_and_prints_each_round(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--warm-up", "1", "--alerts", "2", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "round 1:      3 alerts stored" in out
    assert "round 2:      5 alerts stored" in out
    assert "anonymous RSS" in out and "of which SQLite" in out and "Python objects" in out
    assert "cyclic garbage" in out
    # the probe runs inside test processes too: a tracer left on would slow every later test
    assert not tracemalloc.is_tracing()


def test_bad_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rounds", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err

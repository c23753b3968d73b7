"""Stage timings: the newest durations kept in order, totals and counts, and recording
that never allocates (the daemon records four durations per face, hours on end)."""

from __future__ import annotations

import tracemalloc

import pytest

from agent.vision import stage_timings
from agent.vision.stage_timings import STAGES, StageTimings


def test_samples_come_back_oldest_first_before_and_after_the_ring_wraps() -> None:
    t = StageTimings(keep=4)
    for i in range(3):
        t.record("detect", float(i))
    assert t.samples("detect") == [0.0, 1.0, 2.0]
    for i in range(3, 10):
        t.record("detect", float(i))
    assert t.samples("detect") == [6.0, 7.0, 8.0, 9.0]
    assert t.counts["detect"] == 10
    assert t.totals["detect"] == pytest.approx(sum(range(10)))
    assert t.samples("embed") == []


def test_clear_forgets_everything() -> None:
    t = StageTimings(keep=3)
    for stage in STAGES:
        t.record(stage, 0.5)
    t.clear()
    assert all(t.samples(s) == [] and t.counts[s] == 0 and t.totals[s] == 0 for s in STAGES)
    t.record("match", 0.25)
    assert t.samples("match") == [0.25]


def test_measure_records_one_duration() -> None:
    t = StageTimings()
    with t.measure("align"):
        pass
    assert t.counts["align"] == 1 and t.samples("align")[0] >= 0.0


def test_recording_does_not_grow_memory() -> None:
    """A long run must not grow the daemon: 100 000 durations, no memory kept for them
    (the deque this replaced kept 32 bytes a sample, 3.2 MB here).

    Only memory allocated by the stage-timings module counts: threads other tests left
    running (a hub's change feed reconnecting, say) allocate meanwhile in this process."""
    t = StageTimings(keep=1000)
    only_this_module = [tracemalloc.Filter(True, stage_timings.__file__)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_this_module)
        for i in range(25_000):
            for stage in STAGES:
                t.record(stage, i * 1e-3)
        after = tracemalloc.take_snapshot().filter_traces(only_this_module)
    finally:
        tracemalloc.stop()
    grown = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert grown < 16 * 1024


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep 0"):
        StageTimings(keep=0)

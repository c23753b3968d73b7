"""One alert per track per entry; cool-down across tracks; nothing kept below threshold."""

from __future__ import annotations

from agent.matching.matcher import Matcher


def test_one_alert_per_track_per_entry() -> None:
    m = Matcher(threshold=0.6, cooldown_s=0)
    assert m.decide(1, [("alice", 0.8)], 0.0) == [("alice", 0.8)]
    assert m.decide(1, [("alice", 0.9)], 1.0) == []
    assert m.decide(1, [("bob", 0.7), ("alice", 0.65)], 2.0) == [("bob", 0.7)]
    assert m.decide(2, [("alice", 0.7)], 3.0) == [("alice", 0.7)]  # another track, no cool-down


def test_below_threshold_never_alerts_and_leaves_no_trace() -> None:
    m = Matcher(threshold=0.6, cooldown_s=60)
    assert m.decide(1, [("alice", 0.59), ("bob", 0.3)], 0.0) == []
    assert m._alerted == {} and m._last_alert == {}
    assert not m.has_alerted(1)


def test_cooldown_across_tracks() -> None:
    m = Matcher(threshold=0.5, cooldown_s=60)
    assert m.decide(1, [("alice", 0.8)], 100.0)
    m.track_ended(1)
    assert m.decide(2, [("alice", 0.8)], 159.0) == []
    assert m.decide(3, [("alice", 0.8)], 160.0) == [("alice", 0.8)]
    m.reset()
    assert m._alerted == {} and m._last_alert == {}

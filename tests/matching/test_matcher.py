"""One alert per track per entry; cool-down across tracks; nothing kept below threshold;
no alert below the cosine floor whatever the score kind."""

from __future__ import annotations

from agent.matching.matcher import Matcher


def test_one_alert_per_track_per_entry() -> None:
    m = Matcher(threshold=0.6, cooldown_s=0)
    assert m.decide(1, [("alice", 0.8, 0.8)], 0.0) == [("alice", 0.8)]
    assert m.decide(1, [("alice", 0.9, 0.9)], 1.0) == []
    assert m.decide(1, [("bob", 0.7, 0.7), ("alice", 0.65, 0.65)], 2.0) == [("bob", 0.7)]
    assert m.decide(2, [("alice", 0.7, 0.7)], 3.0) == [
        ("alice", 0.7)
    ]  # another track, no cool-down


def test_below_threshold_never_alerts_and_leaves_no_trace() -> None:
    m = Matcher(threshold=0.6, cooldown_s=60)
    assert m.decide(1, [("alice", 0.59, 0.59), ("bob", 0.3, 0.3)], 0.0) == []
    assert m._alerted == {} and m._last_alert == {}
    assert not m.has_alerted(1)


def test_cooldown_across_tracks() -> None:
    m = Matcher(threshold=0.5, cooldown_s=60)
    assert m.decide(1, [("alice", 0.8, 0.8)], 100.0)
    m.track_ended(1)
    assert m.decide(2, [("alice", 0.8, 0.8)], 159.0) == []
    assert m.decide(3, [("alice", 0.8, 0.8)], 160.0) == [("alice", 0.8)]
    m.reset()
    assert m._alerted == {} and m._last_alert == {}


def test_the_cosine_floor_holds_under_any_score_kind() -> None:
    # S-norm scores: alice is far above the threshold but her cosine is below the floor.
    m = Matcher(threshold=3.0, cooldown_s=0, cosine_floor=0.4)
    ranked = [("alice", 6.0, 0.39), ("bob", 4.0, 0.41), ("carol", 2.9, 0.9)]
    assert m.decide(1, ranked, 0.0) == [("bob", 4.0)]
    assert not m._last_alert.get("alice") and not m._last_alert.get("carol")
    # Exactly at the floor and at the threshold alerts.
    assert m.decide(2, [("dave", 3.0, 0.4)], 0.0) == [("dave", 3.0)]

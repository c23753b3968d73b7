"""The crash-point catalogue and the plan of a run (no LazyFS needed)."""

from __future__ import annotations

import re

import pytest

from hil.power_cut.crash_points import CATALOGUE, DEVICE, ENROLMENT, HUB, plan
from hil.power_cut.lazyfs_mount import MAX_COMMAND_BYTES, CrashFault, TornOp, TornSeq

# The longest path a torn fault can name: the short link, the lower folder, and the
# outbox entry of a sequence number a long-lived camera reaches.
LONGEST_TORN_PATH = "/tmp/lz123abc/lower/state/outbox/.tmp-99999999.alert"


def test_every_place_has_a_unique_name_and_a_target() -> None:
    names = [p.name for p in CATALOGUE]
    assert len(names) == len(set(names))
    assert {p.target for p in CATALOGUE} == {DEVICE, HUB, ENROLMENT}
    kinds = {p.kind for p in CATALOGUE}
    assert kinds == {"op", "torn-op", "torn-seq", "random"}


def test_every_fault_command_fits_what_lazyfs_reads_at_once() -> None:
    for place in CATALOGUE:
        if place.kind == "op":
            command = CrashFault(place.op, place.timing, place.pattern).command()
            assert len(command) + 1 <= MAX_COMMAND_BYTES, place.name
            re.compile(place.pattern)  # a valid pattern (LazyFS uses ECMAScript regex)
    assert len(TornOp(LONGEST_TORN_PATH, 4, (1, 3)).command()) + 1 <= MAX_COMMAND_BYTES
    assert len(TornSeq(LONGEST_TORN_PATH, (2,)).command()) + 1 <= MAX_COMMAND_BYTES


def test_the_first_round_tries_every_place_once() -> None:
    points = plan(len(CATALOGUE), seed=5)
    assert sorted(p.place.name for p in points) == sorted(p.name for p in CATALOGUE)
    assert [p.number for p in points] == list(range(1, len(CATALOGUE) + 1))


def test_a_plan_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    a, b, c = plan(40, seed=1), plan(40, seed=1), plan(40, seed=2)
    assert a == b
    assert [p.place.name for p in a] != [p.place.name for p in c]


def test_rounds_after_the_first_draw_new_parameters() -> None:
    points = plan(3 * len(CATALOGUE), seed=3)
    by_place: dict[str, set[tuple[object, ...]]] = {}
    for p in points:
        by_place.setdefault(p.place.name, set()).add(
            (p.stage, p.alerts_before_arming, p.random_delay_s, p.torn_persist, p.end)
        )
    assert all(len(v) > 1 for v in by_place.values())


def test_torn_parameters_persist_some_parts_but_not_all() -> None:
    for p in plan(400, seed=9):
        if p.place.kind == "torn-op":
            assert 2 <= p.torn_parts <= 4
            assert p.torn_persist and len(p.torn_persist) < p.torn_parts
            assert all(1 <= part <= p.torn_parts for part in p.torn_persist)
        elif p.place.kind == "torn-seq":
            assert p.torn_persist in ((1,), (2,))


def test_what_a_place_needs_is_in_its_work() -> None:
    for p in plan(400, seed=4):
        if "stop" in p.place.needs:
            assert p.end == "stop"
        if "wipe" in p.place.needs:
            assert p.end in ("stop", "expiry")
        assert p.extras >= p.place.needs


def test_only_keeps_the_named_places_and_refuses_an_unknown_name() -> None:
    points = plan(10, seed=1, only="watchlist wipe,enrolment request")
    assert {p.place.name for p in points} <= {
        p.name for p in CATALOGUE if "watchlist wipe" in p.name or "enrolment request" in p.name
    }
    with pytest.raises(ValueError, match="no crash point place has 'no such place'"):
        plan(1, seed=1, only="no such place")

"""The per-vehicle vote: the plate with the most read confidence wins; disagreeing reads
and too few reads lower its confidence; clearing forgets every read."""

from __future__ import annotations

from agent.plates.plate_vote import PlateVote


def test_the_heaviest_plate_wins_and_disagreement_costs_confidence() -> None:
    vote = PlateVote(min_reads=3)
    for _ in range(3):
        vote.add("AB12CDE", 0.9)
    agreed = vote.result()
    assert agreed is not None and agreed.plate == "AB12CDE"
    assert (agreed.agreeing, agreed.reads) == (3, 3)
    vote.add("AB12CDF", 0.9)
    split = vote.result()
    assert split is not None and split.plate == "AB12CDE"
    assert split.confidence < agreed.confidence
    assert (split.agreeing, split.reads) == (3, 4)


def test_a_single_read_is_worth_less_than_several() -> None:
    once = PlateVote(min_reads=3)
    once.add("AB12CDE", 0.9)
    thrice = PlateVote(min_reads=3)
    for _ in range(3):
        thrice.add("AB12CDE", 0.9)
    r1, r3 = once.result(), thrice.result()
    assert r1 is not None and r3 is not None
    assert r1.confidence < r3.confidence


def test_clear_forgets_the_reads() -> None:
    vote = PlateVote(min_reads=2)
    vote.add("AB12CDE", 0.8)
    vote.clear()
    assert vote.result() is None and vote.reads == 0

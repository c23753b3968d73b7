"""A plates activation beside the face-score and recording fields: its threshold is a read
confidence, so it carries no score kind, target rate, calibration or recording, and both
the hub's issuer and the camera's verifier refuse one that does (nothing persisted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from trust.test_calibrated_activation import GOOD, _resign
from trust.trust_world import WATCHLIST, TrustWorld, make_world

from agent.errors import UsageError
from agent.trust import activation_verifier as av
from agent.trust.activation_token import ANALYTIC_PLATES, Activation


@pytest.fixture
def world(tmp_path: Path) -> TrustWorld:
    return make_world(tmp_path)


def _plates(world: TrustWorld, **kw: object) -> bytes:
    return world.activation(analytic=ANALYTIC_PLATES, threshold=0.8, **kw)


def test_a_plates_activation_passes_without_face_fields(world: TrustWorld) -> None:
    act = world.verifier().verify(_plates(world), loaded_watchlist_sha256=WATCHLIST).document
    assert isinstance(act, Activation)
    assert (act.analytic, act.list_sha256, act.watchlist_sha256) == ("plates", WATCHLIST, "")
    assert (act.score, act.target_fpir, act.calibration, act.recording) == (
        "cosine",
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"score": "snorm"}, "score: a plates activation's threshold is a read confidence"),
        (
            {"target_fpir": 1e-3, "calibration": GOOD.body()},
            "target_fpir: a plates activation's threshold is a read confidence",
        ),
        ({"recording": True}, "recording: a plates deployment does not record"),
    ],
)
def test_the_camera_refuses_face_fields_on_a_plates_activation(
    world: TrustWorld, changes: dict[str, object], message: str
) -> None:
    verifier = world.verifier()
    with pytest.raises(av.FieldsInvalid, match=message) as info:
        verifier.verify(
            _resign(world, _plates(world), **changes), loaded_watchlist_sha256=WATCHLIST
        )
    assert "\n" not in str(info.value)
    assert verifier.sequences.last() == 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"score": "snorm"}, "--score and --target-fpir are for faces"),
        ({"target_fpir": 1e-3, "calibration": GOOD}, "--score and --target-fpir are for faces"),
        ({"recording": True}, "--record: a plates deployment does not record"),
    ],
)
def test_the_hub_will_not_issue_one(world: TrustWorld, kw: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _plates(world, **kw)

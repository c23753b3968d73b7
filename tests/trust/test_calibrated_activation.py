"""Activations whose threshold is an S-norm score or came from a target FPIR: what the device
accepts, what it refuses (one line, step 4 or 14), and that old activations keep meaning cosine."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest
from trust.trust_world import FLOOR, WATCHLIST, TrustWorld, make_world

from agent.trust import activation_verifier as av
from agent.trust.activation_token import Activation, Calibration
from agent.trust.signed_document import sign_document

GOOD = Calibration(cohort_size=3000, false_alerts=2, fpir=2 / 3000, fpir_ci95=(0.0002, 0.0024))


@pytest.fixture
def world(tmp_path: Path) -> TrustWorld:
    return make_world(tmp_path)


def _verify(world: TrustWorld, token: bytes, score: str = "snorm") -> av.Verified:
    v = world.verifier()
    v.score = score
    return v.verify(token, loaded_watchlist_sha256=WATCHLIST)


def _calibrated(world: TrustWorld, **kw: object) -> bytes:
    args: dict[str, object] = {
        "threshold": 4.2,
        "score": "snorm",
        "target_fpir": 1e-3,
        "calibration": GOOD,
    }
    args.update(kw)
    return world.activation(**args)


def _resign(world: TrustWorld, token: bytes, **changes: object) -> bytes:
    key, _ = world.hub.operator("alice", "")
    env = json.loads(token)
    body = json.loads(base64.b64decode(env["payload"]))
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return sign_document(env["payloadType"], body, key)


def test_calibrated_snorm_activation_passes(world: TrustWorld) -> None:
    result = _verify(world, _calibrated(world))
    act = result.document
    assert isinstance(act, Activation)
    assert (act.score, act.threshold, act.target_fpir) == ("snorm", 4.2, 1e-3)
    assert act.calibration == GOOD
    assert result.steps[-2:] == ["threshold", "commit"]


def test_an_activation_without_a_score_field_is_cosine_as_before(world: TrustWorld) -> None:
    token = world.activation(threshold=0.6)
    body = json.loads(base64.b64decode(json.loads(token)["payload"]))
    assert "score" not in body and "target_fpir" not in body  # byte-for-byte the old form
    act = _verify(world, token).document
    assert isinstance(act, Activation) and act.score == "cosine" and act.calibration is None


def test_the_floor_binds_cosine_thresholds_only(world: TrustWorld) -> None:
    # An S-norm threshold of 0.3 is a score in standard deviations, not a cosine.
    _verify(world, world.activation(threshold=0.3, score="snorm"))
    with pytest.raises(av.ThresholdBelowFloor, match=f"below the floor {FLOOR}"):
        _verify(world, world.activation(threshold=0.3))


def test_a_device_set_to_cosine_refuses_snorm_thresholds(world: TrustWorld) -> None:
    with pytest.raises(av.ScoreKindRefused, match="matches with cosine only") as info:
        _verify(world, _calibrated(world), score="cosine")
    assert info.value.step == "threshold" and "\n" not in str(info.value)
    _verify(world, world.activation(threshold=0.6), score="cosine")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"score": "tnorm"}, "score: must be one of cosine, snorm"),
        ({"score": 1}, "score: must be a string"),
        ({"threshold": 101.0}, "threshold: must be a number in 0–100 for a snorm score"),
        ({"threshold": -0.5}, "threshold: must be a number in 0–100 for a snorm score"),
        ({"target_fpir": 0}, "target_fpir: must be a rate above 0 and at most 1"),
        ({"target_fpir": 1.5}, "target_fpir: must be a rate above 0 and at most 1"),
        ({"target_fpir": "1/6000"}, "target_fpir: must be a finite number"),
        ({"target_fpir": True}, "target_fpir: must be a finite number"),
        ({"target_fpir": 1 / 6000}, "needs a cohort of at least 18000 non-mated faces"),
        ({"calibration": None}, "one is given without the other"),
        ({"target_fpir": None}, "one is given without the other"),
        ({"calibration": [3000]}, "calibration: must be an object"),
        ({"calibration": {**GOOD.body(), "faces": 1}}, "calibration: unknown field 'faces'"),
        ({"calibration": {**GOOD.body(), "cohort_size": 0}}, "cohort_size: must be an integer ≥ 1"),
        ({"calibration": {**GOOD.body(), "false_alerts": 4000}}, "false_alerts exceeds"),
        (
            {"calibration": {**GOOD.body(), "fpir": 0.0005}},
            "fpir is not false_alerts / cohort_size",
        ),
        (
            {"calibration": {**GOOD.body(), "fpir_ci95": [0.001, 0.002]}},
            "0 ≤ low ≤ fpir ≤ high ≤ 1",
        ),
        ({"calibration": {**GOOD.body(), "fpir_ci95": [0.0002]}}, "fpir_ci95 must be"),
        (
            {"calibration": {**GOOD.body(), "false_alerts": 6, "fpir": 0.002}},
            "fpir 0.002 exceeds target_fpir 0.001",
        ),
    ],
)
def test_bad_threshold_records_are_refused_in_one_line(
    world: TrustWorld, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(av.FieldsInvalid, match=message) as info:
        _verify(world, _resign(world, _calibrated(world), **changes))
    assert "\n" not in str(info.value)
    assert world.verifier().sequences.last() == 0  # nothing persisted


def test_nan_cannot_even_be_signed(world: TrustWorld) -> None:
    with pytest.raises(ValueError):
        _resign(world, _calibrated(world), target_fpir=math.nan)

"""The hub's activation issuer: fields, embedded certificate and revocations, checks before signing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.hub.keys.activation_issuer import ActivationIssuer, parse_duration
from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust.activation_token import ACTIVATION_TYPE, STOP_TYPE, Calibration, parse_body
from agent.trust.key_certificates import open_certificate, open_revocation_list

NOW = 1_790_000_000


@pytest.fixture
def store(tmp_path: Path) -> HubKeyStore:
    s = HubKeyStore.init(tmp_path / "hub", "alice", now=NOW)
    s.add_operator("bob", "operator", 30, s.load_root_key(), now=NOW)
    return s


def _body(doc: bytes) -> tuple[str, dict[str, object]]:
    env = json.loads(doc)
    return env["payloadType"], json.loads(base64.b64decode(env["payload"]))


def test_activation_fields(store: HubKeyStore) -> None:
    doc = ActivationIssuer(store, "alice", "", wall=lambda: NOW + 5).activation(
        "lfr-a", "dep-1", 4 * 3600, 600, "ab" * 32, 0.62, "PS 1"
    )
    ptype, body = _body(doc)
    assert ptype == ACTIVATION_TYPE
    act = parse_body("activation", body)
    assert (act.not_before, act.not_after, act.issued_at) == (NOW + 5, NOW + 5 + 4 * 3600, NOW + 5)  # type: ignore[attr-defined]
    assert act.sequence == 1 and act.threshold == 0.62  # type: ignore[attr-defined]
    cert = open_certificate(base64.b64decode(act.signer_certificate), store.root_public())
    assert cert.subject == "alice"
    assert open_revocation_list(base64.b64decode(act.revocations), store.root_public()).version == 1


def test_stop_and_renewal_take_the_next_sequence(store: HubKeyStore) -> None:
    issuer = ActivationIssuer(store, "bob", "", wall=lambda: NOW + 5)
    _, r = _body(issuer.renewal("lfr-a", "dep-1", 60))
    ptype, s = _body(issuer.stop("lfr-a", "dep-1", "done"))
    assert ptype == STOP_TYPE and (r["sequence"], s["sequence"]) == (1, 2)


def test_operator_role_cannot_activate(store: HubKeyStore) -> None:
    with pytest.raises(UsageError, match="needs supervisor"):
        ActivationIssuer(store, "bob", "").activation("lfr-a", "d", 60, 60, "ab" * 32, 0.6, "x")


def test_expired_operator_cannot_sign(store: HubKeyStore) -> None:
    issuer = ActivationIssuer(store, "bob", "", wall=lambda: NOW + 31 * 86400)
    with pytest.raises(UsageError, match="not valid now"):
        issuer.stop("lfr-a", "d", "")


@pytest.mark.parametrize(
    ("text", "seconds"), [("4h", 14400), ("10m", 600), ("90s", 90), ("1h30m", 5400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text, "--x") == seconds


@pytest.mark.parametrize("text", ["", "4", "h", "0m", "-1h", "4d", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--x"):
        parse_duration(text, "--x")


def test_score_kind_and_calibration_are_written_only_when_they_say_something(
    store: HubKeyStore,
) -> None:
    issuer = ActivationIssuer(store, "alice", "", wall=lambda: NOW)
    _, plain = _body(issuer.activation("lfr-a", "dep-1", 3600, 600, "ab" * 32, 0.62, "PS 1"))
    assert {"score", "target_fpir", "calibration"}.isdisjoint(plain)
    cal = Calibration(cohort_size=400, false_alerts=3, fpir=3 / 400, fpir_ci95=(0.0026, 0.0218))
    doc = issuer.activation(
        "lfr-a", "dep-1", 3600, 600, "ab" * 32, 3.8, "PS 1",
        score="snorm", target_fpir=0.01, calibration=cal,
    )  # fmt: skip
    _, body = _body(doc)
    assert body["score"] == "snorm" and body["target_fpir"] == 0.01
    assert body["calibration"] == cal.body()
    act = parse_body("activation", body)
    assert act.calibration == cal  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"threshold": 3.8}, "must be a number in 0–1 for a cosine score"),
        ({"threshold": 120.0, "score": "snorm"}, "0–100 for a snorm score"),
        ({"threshold": 3.8, "score": "znorm"}, "score: must be one of"),
        ({"threshold": 3.8, "score": "snorm", "target_fpir": 0.01}, "needs its calibration"),
        (
            {"threshold": 3.8, "score": "snorm", "target_fpir": 0.001, "calibration": "small"},
            "needs a cohort of at least 3000",
        ),
        (
            {"threshold": 3.8, "score": "snorm", "target_fpir": 0.0, "calibration": "small"},
            "--target-fpir: must be a rate above 0",
        ),
    ],
)
def test_bad_threshold_records_are_refused_before_signing(
    store: HubKeyStore, kw: dict[str, object], message: str
) -> None:
    small = Calibration(cohort_size=400, false_alerts=0, fpir=0.0, fpir_ci95=(0.0, 0.0095))
    if kw.get("calibration") == "small":
        kw = {**kw, "calibration": small}
    issuer = ActivationIssuer(store, "alice", "", wall=lambda: NOW)
    with pytest.raises(UsageError, match=message):
        issuer.activation("lfr-a", "dep-1", 3600, 600, "ab" * 32, officer="PS 1", **kw)  # type: ignore[arg-type]
    assert store.last_sequence("lfr-a") == 0  # nothing signed, no sequence used

"""Deployment reports at the hub: the receiver keeps only verified reports, once, and
`lfr-hub reports list|show` print what it kept."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.hub_main import main as hub_main
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.topics import event_topic
from agent.runtime.deployment_report import REPORT_TYPE, DeploymentReport, sign_report
from agent.trust.signed_document import canonical_json, sign_document

DEV, OTHER = "lfr-rep-01", "lfr-rep-02"
DEV_KEY, OTHER_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def report(device: str = DEV, deployment: str = "dep-2026-001", seq: int = 7) -> DeploymentReport:
    now = time.time()
    return DeploymentReport(
        device_id=device,
        deployment_id=deployment,
        activation_sequence=seq,
        signer="ops-signer",
        officer="Insp. Lane",
        not_before=int(now) - 3600,
        not_after=int(now),
        opened_at=now - 3500,
        closed_at=now - 10,
        end_reason="stopped",
        watchlist_sha256="ab" * 32,
        watchlist_size=12,
        threshold=0.6,
        detector_model="yunet",
        embedder_model="sface",
        frames=26990,
        frames_dropped=3,
        faces_detected=5120,
        faces_passed_quality=900,
        faces_compared=311,
        embeddings=311,
        tracks=40,
        alerts=2,
        software_version="1.0.0",
    )


CALIBRATION = {"cohort_size": 18000, "false_alerts": 3, "fpir": 1.7e-4, "fpir_ci95": [3e-5, 5e-4]}


def calibrated_report() -> DeploymentReport:
    """A deployment whose S-norm threshold was calibrated for a target of 1/6000."""
    return dataclasses.replace(
        report(deployment="dep-2026-003", seq=9),
        threshold=3.85,
        threshold_kind="snorm",
        target_fpir=1 / 6000,
        calibration=CALIBRATION,
    )


@pytest.fixture
def db(hub_db_url: str) -> str:
    path = hub_db_url
    store = AlertStore(path)
    store.register_device_key(DEV, DEV_KEY.public_key())
    store.register_device_key(OTHER, OTHER_KEY.public_key())
    store.close()
    return path


@pytest.fixture
def receiver(db: str) -> ReportReceiver:
    return ReportReceiver(DeploymentReportStore(db), AlertStore(db).device_key)


def test_a_signed_report_is_stored_once(receiver: ReportReceiver) -> None:
    sent = report()
    signed = sign_report(sent, DEV_KEY)
    assert receiver.receive(event_topic(DEV), signed) == "stored"
    assert receiver.receive(event_topic(DEV), signed) == "duplicate"
    (kept,) = receiver.store.latest()
    assert kept.body == sent.body()
    assert (receiver.stored, receiver.duplicates, receiver.rejected) == (1, 1, 0)


def test_a_calibrated_report_is_stored_and_shown_with_its_target(
    receiver: ReportReceiver, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = calibrated_report()
    assert receiver.receive(event_topic(DEV), sign_report(sent, DEV_KEY)) == "stored"
    (kept,) = receiver.store.latest()
    assert kept.body == sent.body() and kept.body["threshold"] == 3.85
    assert hub_main(["reports", "show", "dep-2026-003", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "  threshold: 3.85" in out and "  threshold_kind: snorm" in out
    assert f"  target_fpir: {1 / 6000}" in out and "'cohort_size': 18000" in out


def _tampered(signed: bytes) -> bytes:
    doc = json.loads(signed)
    body = json.loads(base64.b64decode(doc["payload"]))
    body["alerts"] = 0  # hide the alerts of a deployment
    doc["payload"] = base64.b64encode(canonical_json(body)).decode()
    return canonical_json(doc)


def _signed_body(**changes: object) -> bytes:
    return sign_document(REPORT_TYPE, report().body() | changes, DEV_KEY)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (event_topic(DEV), _tampered(sign_report(report(), DEV_KEY)), "signature"),
        # Another camera's report re-sent on this camera's topic: not signed by this camera.
        (event_topic(DEV), sign_report(report(OTHER), OTHER_KEY), "signature"),
        # Signed by the sending camera itself, but naming another camera.
        (event_topic(OTHER), sign_report(report(DEV), OTHER_KEY), "names device"),
        (event_topic("lfr-rep-03"), sign_report(report("lfr-rep-03"), DEV_KEY), "not enrolled"),
        (event_topic(DEV).replace("event", "alert"), sign_report(report(), DEV_KEY), "kind"),
        ("lfr/v1/../event", sign_report(report(), DEV_KEY), "device id"),
        (event_topic(DEV), b"\x00garbage\xff", "not JSON"),
        (event_topic(DEV), b"[" * 200_000, "nested deeper"),
        (event_topic(DEV), b"1" * 5000, "out of range"),
        (event_topic(DEV), b'{"payload": ' + b"9" * 5000 + b"}", "out of range"),
        (
            event_topic(DEV),
            _signed_body(activation_sequence=2**70),
            "'activation_sequence' must be in",
        ),
        (event_topic(DEV), _signed_body(frames=-1), "'frames' must be in"),
        (event_topic(DEV), _signed_body(alerts="2"), "'alerts' must be an integer"),
        (event_topic(DEV), _signed_body(alerts=True), "'alerts' must be an integer"),
        # Every field is checked against its pattern before it is stored: text from a
        # stolen camera must not reach an operator's terminal as control sequences.
        (
            event_topic(DEV),
            _signed_body(officer="PS 1\x1b]0;owned\x07"),
            "'officer' must be printable",
        ),
        (
            event_topic(DEV),
            _signed_body(officer="PS 1\u202egnp.exe"),
            "'officer' must be printable",
        ),
        (event_topic(DEV), _signed_body(end_reason="stopped\r"), "'end_reason' is not one of"),
        (
            event_topic(DEV),
            _signed_body(detector_model="yunet\x1b[2J"),
            "'detector_model' is not valid",
        ),
        (
            event_topic(DEV),
            _signed_body(software_version="1.0 \x07"),
            "'software_version' is not valid",
        ),
        (event_topic(DEV), _signed_body(signer="Ops"), "'signer' is not valid"),
        (event_topic(DEV), _signed_body(note="hello"), "unknown field 'note'"),
        # A cosine threshold above 1 (a report from before score kinds means cosine).
        (event_topic(DEV), _signed_body(threshold=2.4), "for a cosine threshold"),
        (
            event_topic(DEV),
            _signed_body(threshold=2.4, threshold_kind="cosine"),
            "for a cosine threshold",
        ),
        (event_topic(DEV), _signed_body(threshold_kind="zscore"), "'threshold_kind' is not one"),
        (event_topic(DEV), _signed_body(target_fpir=0), "'target_fpir' must be in"),
        (event_topic(DEV), _signed_body(target_fpir=1.5), "'target_fpir' must be in"),
        (
            event_topic(DEV),
            _signed_body(calibration={**CALIBRATION, "note": "x"}),
            "unknown field 'note'",
        ),
        (
            event_topic(DEV),
            _signed_body(calibration={**CALIBRATION, "fpir_ci95": [0.002]}),
            "'fpir_ci95' must be [low, high]",
        ),
        (
            event_topic(DEV),
            _signed_body(calibration={**CALIBRATION, "fpir_ci95": [0.01, 0.002]}),
            "'fpir_ci95' must be [low, high]",
        ),
        (event_topic(DEV), _signed_body(recording="yes"), "'recording' must be true or false"),
        (
            event_topic(DEV),
            _signed_body(recording_stopped="\x1b[2J"),
            "'recording_stopped' is not one of the known values",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "",
)
def test_bad_reports_are_rejected_with_the_reason(
    receiver: ReportReceiver,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    payload: bytes,
    reason: str,
) -> None:
    assert receiver.receive(topic, payload) == "rejected"
    assert receiver.rejected == 1 and receiver.store.latest() == []
    assert reason in caplog.text and "Traceback" not in caplog.text


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_payloads = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda v: json.dumps(v).encode(), _json),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(0, 100_000)),
    st.builds(lambda n: b'{"a":' + b"7" * n + b"}", st.integers(1, 20_000)),
    st.builds(
        lambda p, s: canonical_json(
            {"payloadType": REPORT_TYPE, "payload": p, "signatures": [{"keyid": "00", "sig": s}]}
        ),
        st.text(max_size=100),
        st.text(max_size=100),
    ),
)
_topics = st.one_of(
    st.just(event_topic(DEV)), st.text(max_size=60), st.builds("lfr/v1/{}/event".format, st.text())
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(topic=_topics, payload=_payloads)
def test_fuzzed_reports_are_rejected_without_raising(
    receiver: ReportReceiver, topic: str, payload: bytes
) -> None:
    assert receiver.receive(topic, payload) == "rejected"


def _fill(db: str) -> None:
    receiver = ReportReceiver(DeploymentReportStore(db), AlertStore(db).device_key)
    for device, key, dep, seq in (
        (DEV, DEV_KEY, "dep-2026-001", 7),
        (DEV, DEV_KEY, "dep-2026-001", 8),
        (OTHER, OTHER_KEY, "dep-2026-002", 1),
    ):
        r = dataclasses.replace(report(device, dep, seq), alerts=seq)
        assert receiver.receive(event_topic(device), sign_report(r, key)) == "stored"


def test_reports_list_shows_every_report(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(db)
    assert hub_main(["reports", "list", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.startswith("report lfr-rep-0") for line in lines)
    assert any(f"{OTHER} dep-2026-002 (activation 1)" in line for line in lines)
    assert hub_main(["reports", "list", "--db", str(db), "--device", DEV, "--json"]) == 0
    bodies = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(b["activation_sequence"] for b in bodies) == [7, 8]
    assert {b["device_id"] for b in bodies} == {DEV}
    assert hub_main(["reports", "list", "--db", str(db), "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_reports_show_prints_one_deployment(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(db)
    assert hub_main(["reports", "show", "dep-2026-001", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.count("report lfr-rep-01 dep-2026-001") == 2
    assert "activation 7" in out and "activation 8" in out and "dep-2026-002" not in out
    assert "  officer: Insp. Lane" in out and "  received 20" in out
    assert hub_main(["reports", "show", "dep-2026-002", "--db", str(db), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["device_id"], body["alerts"], body["faces_compared"]) == (OTHER, 1, 311)


@pytest.mark.parametrize(
    "argv",
    [
        ["reports", "show", "dep-unknown"],
        ["reports", "show", "x" * 5000],
        ["reports", "list", "--limit", "0"],
    ],
)
def test_bad_report_queries_are_one_line_errors(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    _fill(db)
    assert hub_main([*argv, "--db", str(db)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("lfr-hub: error: ") and len(err.splitlines()) == 1
    assert "Traceback" not in err and len(err) < 200


def test_a_report_is_acknowledged_with_its_secret_after_it_is_stored(db: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from agent.protocol.report_ack import decode_report_ack
    from agent.trust.report_ack_secret import derive_secret, report_identity

    hub = X25519PrivateKey.generate()
    sent: list[tuple[str, bytes]] = []
    receiver = ReportReceiver(
        DeploymentReportStore(db),
        AlertStore(db).device_key,
        hub_key=hub,
        acknowledge=lambda topic, payload: sent.append((topic, payload)),
    )
    signed = sign_report(report(), DEV_KEY, hub.public_key())
    assert receiver.receive(event_topic(DEV), signed) == "stored"
    assert receiver.receive(event_topic(DEV), signed) == "duplicate"  # acked again
    expected = derive_secret(DEV_KEY, report_identity(DEV, "dep-2026-001", 7))
    assert [t for t, _ in sent] == ["lfr/v1/lfr-rep-01/report-ack"] * 2
    assert decode_report_ack(sent[0][1]) == [("dep-2026-001", 7, expected)]
    # Sealed to another hub's key: stored, but this hub cannot prove it, so no ack.
    other = sign_report(report(seq=8), DEV_KEY, X25519PrivateKey.generate().public_key())
    assert receiver.receive(event_topic(DEV), other) == "stored"
    assert len(sent) == 2 and receiver.acked == 2

"""Deployment reports at the hub: the receiver keeps only verified reports, once, and
`lfr-hub reports list|show` print what it kept."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.hub_main import main as hub_main
from agent.hub.alert_store import AlertStore
from agent.hub.deployment_reports import DeploymentReportStore, ReportReceiver
from agent.runtime.deployment_report import REPORT_TYPE, DeploymentReport, sign_report
from agent.transport.topics import event_topic
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


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "hub.db"
    store = AlertStore(path)
    store.register_device_key(DEV, DEV_KEY.public_key())
    store.register_device_key(OTHER, OTHER_KEY.public_key())
    store.close()
    return path


@pytest.fixture
def receiver(db: Path) -> ReportReceiver:
    return ReportReceiver(DeploymentReportStore(db), AlertStore(db).device_key)


def test_a_signed_report_is_stored_once(receiver: ReportReceiver) -> None:
    sent = report()
    signed = sign_report(sent, DEV_KEY)
    assert receiver.receive(event_topic(DEV), signed) == "stored"
    assert receiver.receive(event_topic(DEV), signed) == "duplicate"
    (kept,) = receiver.store.latest()
    assert kept.body == sent.body()
    assert (receiver.stored, receiver.duplicates, receiver.rejected) == (1, 1, 0)


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
        (event_topic(DEV), _signed_body(activation_sequence=2**70), "out of range"),
        (event_topic(DEV), _signed_body(frames=-1), "out of range"),
        (event_topic(DEV), _signed_body(alerts="2"), "wrong type"),
        (event_topic(DEV), _signed_body(alerts=True), "wrong type"),
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


def _fill(db: Path) -> None:
    receiver = ReportReceiver(DeploymentReportStore(db), AlertStore(db).device_key)
    for device, key, dep, seq in (
        (DEV, DEV_KEY, "dep-2026-001", 7),
        (DEV, DEV_KEY, "dep-2026-001", 8),
        (OTHER, OTHER_KEY, "dep-2026-002", 1),
    ):
        r = dataclasses.replace(report(device, dep, seq), alerts=seq)
        assert receiver.receive(event_topic(device), sign_report(r, key)) == "stored"


def test_reports_list_shows_every_report(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
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


def test_reports_show_prints_one_deployment(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    _fill(db)
    assert hub_main([*argv, "--db", str(db)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("lfr-hub: error: ") and len(err.splitlines()) == 1
    assert "Traceback" not in err and len(err) < 200

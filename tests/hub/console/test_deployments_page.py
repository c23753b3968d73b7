"""The Deployments page and the public notices: a planned deployment is activated only
after its notice went out before the window start, or with a supervisor's urgent reason
(audited, shown in the public notices and results); the activation is signed with the
session's unlocked key and reaches the camera's topic through a real mosquitto; the
public notice says nothing about the watchlist. Starlette's TestClient against the real
app, a real SQLite hub database and a real hub key store."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.alert_factory import AlertKeys
from support.hub_console import PASSWORD, HubSetup, make_hub
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.console.console_app import create_console_app
from agent.hub.console.console_context import ConsoleContext, make_templates
from agent.hub.console.hold_desk import HoldDesk
from agent.hub.console.plan_calibration import PlanCalibrator
from agent.hub.console.signing_sessions import SigningSessions
from agent.hub.devices.live_leases import LeaseBook
from agent.hub.devices.officer_holds import HoldTiming, OfficerHolds
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.service.control_channel import ControlChannel
from agent.hub.service.hub_config import CalibrationSection
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase
from agent.hub.store.report_store import DeploymentReportStore
from agent.hub.watchlists.hub_maps import HubMaps
from agent.protocol.topics import activation_topic
from agent.runtime.deployment_report import DeploymentReport, sign_report
from agent.transport.mqtt_link import MqttLink
from agent.trust.activation_token import TYPE_BY_KIND
from agent.trust.signed_document import key_id, open_document

SAM_PASSPHRASE = "passphrase of sam"

pytestmark = [pytest.mark.system]

DEV = "lfr-dep-01"
DEPLOYMENT = "dep-2026-12-04-a"
WATCHLIST = "ab" * 32
LEASE_S = 30
PLACE = "Market Street, north end"


def _local(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M")


class DeploymentsConsole:
    def __init__(
        self,
        hub: HubSetup,
        keys: HubKeyStore,
        broker: MosquittoBroker,
        calibration: CalibrationSection | None = None,
    ) -> None:
        self.hub = hub
        self.keys = keys
        self.db = HubDatabase(str(hub.db_path))
        self.store = AlertStore(self.db)
        self.store.register_device_key(DEV, AlertKeys.generate().device.public_key())
        self.audit = hub.audit()
        maps = self.maps = hub.root / "watchlists"
        maps.mkdir()
        (maps / "market.sealed.hub-map.json").write_text(
            json.dumps(
                {
                    "watchlist_hash": WATCHLIST,
                    "deployment_id": DEPLOYMENT,
                    "devices": [DEV],
                    "entries": 12,
                    "expires_at": time.time() + 86400,
                    "refs": {"subject-0001": {"subject": "Jane Roe", "category": "w"}},
                }
            )
        )
        self.link = MqttLink(broker.client_settings(HUB_CN))
        book = LeaseBook()
        channel = ControlChannel(self.link, self.store.device_key, book)
        desk = HoldDesk(book, OfficerHolds(), channel, HoldTiming(60, 3, LEASE_S))
        ctx = ConsoleContext(
            self.store,
            ConsoleAccounts(self.db),
            self.audit,
            make_templates(),
            HubMaps(maps),
            signing=SigningSessions(keys),
            hold_desk=desk,
            calibrator=None if calibration is None else PlanCalibrator(calibration, keys, maps),
        )
        self.app = create_console_app(ctx)
        # The camera's side of its activation topic: what the hub sent.
        self.sent: list[bytes] = []
        self.got = threading.Event()
        self.camera = MqttLink(broker.client_settings(DEV))
        self.camera.subscribe(activation_topic(DEV), self._on_document)
        self.camera.start()
        self.link.start()
        assert self.camera.wait_connected(10) and self.link.wait_connected(10)

    def _on_document(self, _topic: str, payload: bytes) -> None:
        self.sent.append(payload)
        self.got.set()

    def login(self, username: str) -> tuple[TestClient, str]:
        c = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text)
        assert token is not None
        form = {"username": username, "password": PASSWORD, "code": self.hub.code(username)}
        assert c.post("/login", data={**form, "login_token": token.group(1)}).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/deployments").text)
        assert csrf is not None
        return c, csrf.group(1)

    def close(self) -> None:
        self.camera.stop()
        self.link.stop()
        self.audit.close()
        self.db.close()


@pytest.fixture
def console(tmp_path: Path, mqtt_broker: MosquittoBroker) -> Iterator[DeploymentsConsole]:
    keys = HubKeyStore.init(tmp_path / "keys", "sam", "supervisor", passphrase=SAM_PASSPHRASE)
    c = DeploymentsConsole(make_hub(tmp_path / "hub"), keys, mqtt_broker)
    yield c
    c.close()


def plan(client: TestClient, csrf: str, start: float, end: float) -> int:
    form = {
        "csrf": csrf,
        "watchlist": WATCHLIST,
        "camera": DEV,
        "window_start": _local(start),
        "window_end": _local(end),
        "basis": "threshold",
        "threshold": "0.55",
        "officer": "Insp. Jane Doe",
        "place": PLACE,
        "purpose": "public-event-safety",
    }
    return client.post("/deployments", data=form).status_code


def test_a_deployment_with_its_notice_in_time_is_activated_with_the_unlocked_key(
    console: DeploymentsConsole,
) -> None:
    olive, olive_csrf = console.login("olive")
    start = time.time() + 3600
    assert plan(olive, olive_csrf, start, start + 4 * 3600) == 303
    assert (
        olive.post(f"/deployments/{DEPLOYMENT}/notice", data={"csrf": olive_csrf}).status_code
        == 403
    )

    sam, csrf = console.login("sam")
    r = sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf})
    assert r.status_code == 409 and "was not published before the window start" in r.text
    assert sam.post(f"/deployments/{DEPLOYMENT}/notice", data={"csrf": csrf}).status_code == 303
    r = sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf})
    assert r.status_code == 409 and "unlock your signing key first" in r.text
    unlock = {"csrf": csrf, "passphrase": SAM_PASSPHRASE}
    assert sam.post("/signing/unlock", data=unlock).status_code == 303
    assert sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf}).status_code == 303

    assert console.got.wait(10), "no activation reached the camera's topic"
    sam_cert = console.keys.operator_certificate("sam")
    signer = sam_cert.public_key
    body = open_document(
        console.sent[0],
        TYPE_BY_KIND["activation"],
        lambda k: signer if k == key_id(signer) else None,
    ).body
    assert (body["deployment_id"], body["watchlist_sha256"], body["lease_s"]) == (
        DEPLOYMENT,
        WATCHLIST,
        LEASE_S,
    )
    start_minute = int(dt.datetime.fromisoformat(_local(start)).replace(tzinfo=dt.UTC).timestamp())
    assert (body["not_before"], body["not_after"] - body["not_before"]) == (start_minute, 4 * 3600)
    r = sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf})
    assert r.status_code == 409 and "already activated" in r.text
    audit = console.hub.audit_log.read_text()
    for event in ("deployment.planned", "deployment.notice_published", "deployment.activated"):
        assert f'"{event}"' in audit

    notices = TestClient(console.app, base_url="https://testserver").get("/notices.json").json()
    (notice,) = notices["notices"]
    assert (notice["place"], notice["purpose"], notice["urgent_reason"]) == (
        PLACE,
        "public-event-safety",
        None,
    )
    public = (
        json.dumps(notices)
        + TestClient(console.app, base_url="https://testserver").get("/notices").text
    )
    for secret in (WATCHLIST, "Jane Roe", "Insp. Jane Doe", DEV):
        assert secret not in public


def test_a_late_notice_needs_an_urgent_reason_which_the_public_sees(
    console: DeploymentsConsole,
) -> None:
    sam, csrf = console.login("sam")
    start = time.time() - 120  # the window has begun: any notice now is late
    assert plan(sam, csrf, start, start + 3600) == 303
    assert sam.post(f"/deployments/{DEPLOYMENT}/notice", data={"csrf": csrf}).status_code == 303
    assert (
        sam.post("/signing/unlock", data={"csrf": csrf, "passphrase": SAM_PASSPHRASE}).status_code
        == 303
    )
    r = sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf})
    assert r.status_code == 409 and "urgent reason" in r.text
    reason = "Missing child seen near the market"
    r = sam.post(f"/deployments/{DEPLOYMENT}/urgent", data={"csrf": csrf, "reason": reason})
    assert r.status_code == 303
    assert sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf}).status_code == 303
    assert console.got.wait(10)
    assert '"deployment.urgent_override"' in console.hub.audit_log.read_text()
    notice = TestClient(console.app, base_url="https://testserver").get("/notices").text
    assert reason in notice and "Went ahead without notice in advance" in notice

    # The deployment ends; the public results name the urgent override.
    closed = time.time()
    report = DeploymentReport(
        device_id=DEV,
        deployment_id=DEPLOYMENT,
        activation_sequence=1,
        signer="sam",
        officer="Insp. Jane Doe",
        not_before=int(start),
        not_after=int(start + 3600),
        opened_at=start,
        closed_at=closed,
        end_reason="stopped",
        watchlist_sha256=WATCHLIST,
        watchlist_size=12,
        threshold=0.55,
        detector_model="yunet-2023mar-fp32:0123abcd",
        embedder_model="sface-2021dec-fp32:0123abcd",
        frames=100,
        frames_dropped=0,
        faces_detected=40,
        faces_passed_quality=30,
        faces_compared=30,
        embeddings=30,
        tracks=5,
        alerts=0,
        software_version="0.1.0",
    )
    envelope = sign_report(report, AlertKeys.generate().device)
    assert DeploymentReportStore(console.db).add(report.body(), envelope, closed)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    rows = csv.DictReader(io.StringIO(sam.get(f"/results.csv?from={today}&to={today}").text))
    assert [row["urgent_override"] for row in rows] == [reason]
    page = sam.get("/deployments").text
    assert "40 faces seen" in page and f"/reports/{DEV}/{DEPLOYMENT}/1" in page


def test_bad_plans_are_refused_with_the_reason(console: DeploymentsConsole) -> None:
    sam, csrf = console.login("sam")
    start = time.time() + 3600
    r = sam.post("/deployments", data={"csrf": csrf, "watchlist": "cd" * 32})
    assert r.status_code == 400 and "choose one of the hub&#39;s watchlists" in r.text
    assert plan(sam, csrf, start, start - 60) == 400
    assert plan(sam, csrf, start, start + 3600) == 303
    r = sam.post(
        "/deployments",
        data={
            "csrf": csrf,
            "watchlist": WATCHLIST,
            "camera": DEV,
            "window_start": _local(start),
            "window_end": _local(start + 60),
            "basis": "threshold",
            "threshold": "0.55",
            "officer": "x",
            "place": "y",
            "purpose": "public-event-safety",
        },
    )
    assert r.status_code == 400 and "already planned" in r.text

"""The fleet page from the status tracker: statuses the camera code builds are recorded
and shown (state, fps, outbox, model hashes); the last will shows the camera offline
(red); a status that is not the protocol's is ignored; a hostile device id in a topic
is never recorded. Real SQLite hub database, Starlette TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.alert_factory import AlertKeys
from support.hub_console import PASSWORD, make_hub

from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.console.console_app import create_console_app
from agent.hub.console.console_context import ConsoleContext, make_templates
from agent.hub.devices.status_tracker import StatusTracker
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase
from agent.hub.store.device_status_store import DeviceStatusStore
from agent.protocol.topics import status_topic
from agent.runtime.health_status import HealthStatus, ModelStatus

DEV = "lfr-fleet-01"


class _NoLink:
    """The tracker's subscription is not exercised here (the browser test runs it on a
    real broker); ``handle`` is fed the messages directly."""

    def subscribe(self, *_: object) -> None:
        pass


def status(state: str = "active") -> bytes:
    return HealthStatus(
        device_id=DEV,
        state=state,
        version="0.1.0",
        time="2026-11-22T06:46:40+00:00",
        uptime_s=52.0,
        models={"embedder": ModelStatus("sface-2021dec@247a8f88ef05ea21", "cd" * 32)},
        fps=7.4,
        dropped_frames=0,
        outbox_depth=3,
        disk_free_bytes=10**9,
        disk_free_fraction=0.5,
        cpu_temp_c=61.0,
        clock_sync="synchronised",
        alarms=(),
    ).to_json()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[TestClient, StatusTracker]]:
    hub = make_hub(tmp_path)
    db = HubDatabase(str(hub.db_path))
    store = AlertStore(db)
    store.register_device_key(DEV, AlertKeys.generate().device.public_key())
    audit = hub.audit()
    app = create_console_app(ConsoleContext(store, ConsoleAccounts(db), audit, make_templates()))
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    form = {"username": "aud", "password": PASSWORD, "code": hub.code("aud")}
    assert client.post("/login", data={**form, "login_token": token.group(1)}).status_code == 303
    tracker = StatusTracker(_NoLink(), DeviceStatusStore(db))  # type: ignore[arg-type]
    yield client, tracker
    audit.close()
    db.close()


def _row(client: TestClient) -> str:
    html = client.get("/fleet/rows").text
    m = re.search(rf'<tr class="state-([a-z]+)" data-device="{DEV}">(.*?)</tr>', html, re.S)
    assert m is not None, html
    return m.group(1) + " " + re.sub(r"\s+", " ", m.group(2))


def test_fleet_shows_status_and_offline(fleet: tuple[TestClient, StatusTracker]) -> None:
    client, tracker = fleet
    assert _row(client).startswith("unknown")  # enrolled, never heard
    tracker.handle(status_topic(DEV), status("active"))
    row = _row(client)
    assert row.startswith("active") and ">live<" in row and "7.4" in row and ">3<" in row
    assert "cdcdcdcdcdcd" in row
    tracker.handle(status_topic(DEV), b"not json {")
    tracker.handle(status_topic("lfr-other"), status("idle"))  # names another device
    assert _row(client).startswith("active")
    tracker.handle(status_topic(DEV), b"offline")
    assert _row(client).startswith("offline")
    page = client.get("/fleet").text
    assert "not signed" in page and 'src="/static/live_rows.js"' in page

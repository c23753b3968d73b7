"""The console as an operator uses it, in Debian's chromium (Playwright, no browser
download): log in with a TOTP code, see an alert that a camera sent through the real
broker arrive in the open queue page without reloading (cue shown), open it, see its
images, adjudicate it; the adjudication row names the logged-in user, the camera got
its acknowledgement; the fleet page shows the camera live, then offline (red) when it
stops; and the service stops cleanly. Screenshots of every page go to
var/screenshots/ (CI keeps them)."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.alert_factory import AlertKeys, make_content
from support.ci_required import unavailable
from support.hub_console import BrokerLink, HubSetup, make_hub
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.hub.store.alert_store import AlertStore
from agent.protocol.topics import ack_topic, alert_topic, status_topic
from agent.runtime.health_status import HealthStatus, ModelStatus
from agent.transport.mqtt_link import MqttLink
from agent.trust.alert_envelope import decode_ack, seal_alert
from agent.trust.key_files import write_private_key

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"
DEV = "lfr-test-01"
KEYS = AlertKeys.generate()


def live_status() -> bytes:
    return HealthStatus(
        device_id=DEV,
        state="active",
        version="0.1.0",
        time="2026-11-22T06:46:40+00:00",
        uptime_s=52.0,
        models={"embedder": ModelStatus("sface-2021dec@247a8f88ef05ea21", "cd" * 32)},
        fps=7.4,
        dropped_frames=0,
        outbox_depth=0,
        disk_free_bytes=10**9,
        disk_free_fraction=0.5,
        cpu_temp_c=61.0,
        clock_sync="synchronised",
        alarms=(),
    ).to_json()


def face_jpeg() -> bytes:
    """A decodable JPEG (a grey gradient) so the page's images really render."""
    img = np.tile(np.linspace(40, 220, 112, dtype=np.uint8), (112, 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    assert ok
    return bytes(buf)


@pytest.fixture
def served_hub(tmp_path: Path, mqtt_broker: MosquittoBroker) -> Iterator[HubSetup]:
    mqtt_broker.client_settings(HUB_CN)  # issues and grants hub.main
    alert_key = tmp_path / "hub-alert-key.pem"
    write_private_key(alert_key, KEYS.hub)
    link = BrokerLink(f"127.0.0.1:{mqtt_broker.port}", mqtt_broker.pki_dir, alert_key)
    hub = make_hub(tmp_path / "hub", broker=link)
    store = AlertStore(str(hub.db_path))
    store.register_device_key(DEV, KEYS.device.public_key())
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.hub_main", "serve", "--config", str(hub.config)]
    )
    try:
        yield hub
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_operator_sees_a_live_alert_and_adjudicates_it(
    served_hub: HubSetup, mqtt_broker: MosquittoBroker
) -> None:
    if not CHROMIUM.exists():
        unavailable("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    hub = served_hub
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    got_ack = threading.Event()
    camera = MqttLink(mqtt_broker.client_settings(DEV), status_topic=status_topic(DEV))
    camera.subscribe(
        ack_topic(DEV), lambda _t, payload: got_ack.set() if decode_ack(payload) else None
    )
    camera.start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            deadline = time.monotonic() + 60
            while True:  # the service may still be starting
                try:
                    page.goto(f"{hub.url}/login")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            page.screenshot(path=str(SCREENSHOTS / "console-login.png"))
            page.fill("input[name=username]", "olive")
            page.fill("input[name=password]", "correct horse battery")
            page.fill("input[name=code]", hub.code("olive"))
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{hub.url}/alerts")
            expect(page.locator("#queue-rows")).to_contain_text("No alerts.")
            page.click("h1")  # the first interaction arms the sound cue
            page.screenshot(path=str(SCREENSHOTS / "console-alert-queue-empty.png"))

            assert camera.wait_connected(10)
            camera.publish_status(live_status())
            content = dataclasses.replace(
                make_content(DEV, 1, jpeg=face_jpeg()), scene_jpeg=face_jpeg()
            )
            envelope = seal_alert(
                content, seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
            ).envelope
            camera.publish(alert_topic(DEV), envelope)

            row = page.locator("#queue-rows tr[data-open]")
            expect(row).to_have_count(1, timeout=15_000)  # pushed, no reload
            expect(page.locator("#new-alert-cue")).to_be_visible()
            expect(row).to_contain_text(DEV)
            page.screenshot(path=str(SCREENSHOTS / "console-alert-queue-live.png"))
            assert got_ack.wait(10), "the camera got no acknowledgement"

            row.locator("a").click()
            expect(page.locator("#camera")).to_have_text(DEV)
            expect(page.locator("#entry")).to_have_text(content.watchlist_entry)
            images = page.locator(".review img")
            expect(images).to_have_count(2)  # the face crop and the scene
            page.wait_for_function(
                "() => [...document.querySelectorAll('.review img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=str(SCREENSHOTS / "console-alert-review.png"), full_page=True)

            page.fill("textarea[name=note]", "officer confirmed identity on scene")
            page.click("button[value=confirmed-true]")
            expect(page.locator("#outcome")).to_have_text("confirmed-true by olive")
            page.screenshot(path=str(SCREENSHOTS / "console-alert-adjudicated.png"), full_page=True)

            page.click("text=Fleet")
            state = page.locator(f"tr[data-device={DEV}] td.state")
            expect(state).to_have_text("live")
            page.screenshot(path=str(SCREENSHOTS / "console-fleet.png"), full_page=True)
            camera.stop()  # a clean stop publishes "offline"; a dead link, the broker's will
            expect(state).to_have_text("offline", timeout=15_000)
            page.screenshot(path=str(SCREENSHOTS / "console-fleet-offline.png"), full_page=True)
        finally:
            browser.close()
            camera.stop()

    store = AlertStore(str(hub.db_path))
    try:
        (alert,) = store.list_alerts()
        assert store.adjudication_history(alert.row_id)[-1][:2] == ("confirmed-true", "olive")
    finally:
        store.close()
    audit = hub.audit_log.read_text()
    assert '"console.login"' in audit and '"alert.adjudicated"' in audit

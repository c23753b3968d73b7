"""The demo of issue 19 in Debian's chromium: a camera sends an alert and then its clip
in chunks through the real broker to ``lfr-hub serve``; the operator opens the alert
page and its clip plays (the browser decodes the H.264 video: its size is known and
its playback position advances). A screenshot goes to var/screenshots/."""

from __future__ import annotations

import dataclasses
import time

import pytest
from hub.console.test_alert_clip_page import clip_chunks, sealed_clip
from hub.console.test_console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEV,
    KEYS,
    SCREENSHOTS,
    face_jpeg,
    served_hub,
)
from support.alert_factory import make_content
from support.ci_required import unavailable
from support.hub_console import HubSetup
from support.mosquitto_broker import MosquittoBroker

from agent.hub.store.alert_store import AlertStore
from agent.hub.store.media_store import MediaStore
from agent.protocol.topics import alert_topic, clip_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.alert_envelope import seal_alert

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.slow]

__all__ = ["served_hub"]  # the fixture, shared with the console's own browser test


def test_the_alert_page_plays_the_clip_the_camera_sent(
    served_hub: HubSetup, mqtt_broker: MosquittoBroker
) -> None:
    if not CHROMIUM.exists():
        unavailable("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    hub = served_hub
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
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
            page.fill("input[name=username]", "olive")
            page.fill("input[name=password]", "correct horse battery")
            page.fill("input[name=code]", hub.code("olive"))
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{hub.url}/alerts")
            # The service is up (it serves the login page): its intake is subscribed.
            camera = MqttLink(mqtt_broker.client_settings(DEV))
            camera.start()
            try:
                assert camera.wait_connected(10)
                content = dataclasses.replace(
                    make_content(DEV, 1, jpeg=face_jpeg()), scene_jpeg=face_jpeg()
                )
                sealed = seal_alert(
                    content, seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
                )
                camera.publish(alert_topic(DEV), sealed.envelope)
                clip, mp4 = sealed_clip(
                    sealed.header.alert_id, content.deployment_id, frames=30, keys=KEYS
                )
                for payload in clip_chunks(clip):
                    camera.publish(clip_topic(DEV), payload)
                store = AlertStore(str(hub.db_path))
                media = MediaStore(store.database)
                try:
                    deadline = time.monotonic() + 60
                    row_id = None
                    while time.monotonic() < deadline:
                        rows = store.list_alerts()
                        if rows and media.clip(rows[0].row_id, with_video=False) is not None:
                            row_id = rows[0].row_id
                            break
                        time.sleep(0.3)
                    assert row_id is not None, "the alert and its clip never reached the hub"
                    stored = media.clip(row_id)
                    assert stored is not None and stored.state == "complete" and stored.mp4 == mp4
                finally:
                    media.close()
                    store.close()
            finally:
                camera.stop()
            page.goto(f"{hub.url}/alerts/{row_id}")
            video = page.locator("#clip video")
            expect(video).to_have_count(1)
            page.wait_for_function(
                "() => { const v = document.querySelector('#clip video');"
                " return v.readyState >= 2 && v.videoWidth === 320 && v.videoHeight === 180; }",
                timeout=20_000,
            )
            duration = page.evaluate("() => document.querySelector('#clip video').duration")
            assert 2.5 <= duration <= 3.5  # 30 frames at 10 fps
            page.evaluate("() => document.querySelector('#clip video').play()")
            page.wait_for_function(
                "() => document.querySelector('#clip video').currentTime > 0.5", timeout=20_000
            )
            expect(page.locator("#clip figcaption")).to_contain_text("30 frames")
            page.screenshot(path=str(SCREENSHOTS / "console-alert-clip.png"), full_page=True)
        finally:
            browser.close()

"""Plate hits in the console, in Debian's chromium: a camera sends a plate hit through
the real broker to ``lfr-hub serve`` while the operator has the plate hits page open;
the hit appears without reloading (cue shown); the operator opens it, sees the read and
both crops, adjudicates it, and the decision names the logged-in user. A screenshot of
the review page goes to var/screenshots/console-plate-review.png."""

from __future__ import annotations

import dataclasses
import time

import pytest
from hub.console.test_console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEV,
    KEYS,
    SCREENSHOTS,
    face_jpeg,
    served_hub,
)
from support.alert_factory import make_plate_content
from support.ci_required import unavailable
from support.hub_console import HubSetup
from support.mosquitto_broker import MosquittoBroker

from agent.protocol.topics import alert_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.plate_alert_envelope import seal_plate_alert

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.slow]

__all__ = ["served_hub"]  # the fixture, shared with the console's own browser test


def test_operator_sees_a_live_plate_hit_and_adjudicates_it(
    served_hub: HubSetup, mqtt_broker: MosquittoBroker
) -> None:
    if not CHROMIUM.exists():
        unavailable("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    hub = served_hub
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    camera = MqttLink(mqtt_broker.client_settings(DEV))
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
            page.fill("input[name=username]", "olive")
            page.fill("input[name=password]", "correct horse battery")
            page.fill("input[name=code]", hub.code("olive"))
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{hub.url}/alerts")
            page.click("nav >> text=Plates")
            expect(page).to_have_url(f"{hub.url}/plates")
            expect(page.locator("#queue-rows")).to_contain_text("No plate hits.")

            assert camera.wait_connected(10)
            content = dataclasses.replace(
                make_plate_content(DEV, 1, plate="AB12 CDE", jpeg=face_jpeg()),
                vehicle_jpeg=face_jpeg(),
            )
            envelope = seal_plate_alert(
                content, seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
            ).envelope
            camera.publish(alert_topic(DEV), envelope)

            row = page.locator("#queue-rows tr[data-open]")
            expect(row).to_have_count(1, timeout=15_000)  # pushed, no reload
            expect(page.locator("#new-alert-cue")).to_have_text("New plate hit")
            expect(row).to_contain_text("AB12 CDE")

            # Opened by its link's address: a late re-read of the rows (the feed may
            # follow a change with a bare "changed") can swap the link under a click.
            href = row.locator("a").get_attribute("href")
            assert href is not None and href.startswith("/plates/")
            page.goto(f"{hub.url}{href}")
            expect(page.locator("#plate")).to_have_text("AB12 CDE")
            expect(page.locator("#entry")).to_have_text(content.hotlist_entry)
            expect(page.locator("#reads")).to_contain_text("4 of 5 reads")
            images = page.locator(".review img")
            expect(images).to_have_count(2)  # the plate crop and the vehicle
            page.wait_for_function(
                "() => [...document.querySelectorAll('.review img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.click("button[value=confirmed-true]")
            expect(page.locator("#outcome")).to_have_text("confirmed-true by olive")
            expect(page.locator("ol.history li")).to_have_count(1)
            page.screenshot(path=str(SCREENSHOTS / "console-plate-review.png"), full_page=True)
        finally:
            browser.close()
            camera.stop()

"""Legal holds, reports and public results as a supervisor uses them, in Debian's
chromium (Playwright, no browser download) against a real ``lfr-hub serve``: put an
alert on hold with a case reference (a hold without one is refused by the form), see
"on hold (case REF)" on the alert and in the queue, release it; open the reports list
and one report; show the public results of a period. Screenshots go to
var/screenshots/ (CI keeps them). The alert and the report are written to the hub
database before the service starts (the intake over a real broker is covered by
test_console_browser.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_content
from support.ci_required import unavailable
from support.hub_console import HubSetup, make_hub
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, face_jpeg

from agent.hub.store.alert_store import AlertStore
from agent.hub.store.legal_hold_store import LegalHoldStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.runtime.deployment_report import DeploymentReport, sign_report
from agent.trust.alert_envelope import open_alert, seal_alert

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.slow]

DEV = "lfr-test-01"
DEPLOYMENT = "dep-2026-11-22-a"
KEYS = AlertKeys.generate()


def _store_alert_and_report(hub: HubSetup) -> int:
    store = AlertStore(str(hub.db_path))
    try:
        store.register_device_key(DEV, KEYS.device.public_key())
        content = make_content(DEV, 1, jpeg=face_jpeg())
        sealed = seal_alert(content, seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key())
        opened = open_alert(
            sealed.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
        )
        store.store_alert(opened)
        now = time.time()
        report = DeploymentReport(
            device_id=DEV,
            deployment_id=DEPLOYMENT,
            activation_sequence=1,
            signer="op-key-1",
            officer="Inspector Morse",
            not_before=int(now - 4 * 3600),
            not_after=int(now + 3600),
            opened_at=now - 3 * 3600,
            closed_at=now - 60,
            end_reason="stopped",
            watchlist_sha256="ab" * 32,
            watchlist_size=312,
            threshold=0.6,
            detector_model="yunet-2023mar-fp32:0123abcd",
            embedder_model="sface-2021dec-fp32:0123abcd",
            frames=40000,
            frames_dropped=12,
            faces_detected=5123,
            faces_passed_quality=4000,
            faces_compared=3900,
            embeddings=3900,
            tracks=700,
            alerts=1,
            software_version="0.1.0",
        )
        reports = DeploymentReportStore(store.database)
        assert reports.add(report.body(), sign_report(report, KEYS.device), now)
        return store.get(opened.header.alert_id).row_id
    finally:
        store.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HubSetup, int]]:
    hub = make_hub(tmp_path / "hub")  # no broker: the console and the store only
    row = _store_alert_and_report(hub)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.hub_main", "serve", "--config", str(hub.config)]
    )
    try:
        yield hub, row
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_supervisor_holds_an_alert_and_reads_reports_and_results(
    served: tuple[HubSetup, int],
) -> None:
    if not CHROMIUM.exists():
        unavailable("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    hub, row = served
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
            page.fill("input[name=username]", "sam")
            page.fill("input[name=password]", "correct horse battery")
            page.fill("input[name=code]", hub.code("sam"))
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{hub.url}/alerts")

            page.goto(f"{hub.url}/alerts/{row}")
            hold = page.locator("#legal-hold")
            expect(hold).to_contain_text("none")
            page.click("text=Put on legal hold")  # empty case reference: the form refuses
            expect(page).to_have_url(f"{hub.url}/alerts/{row}")
            expect(hold).to_contain_text("none")
            page.fill("input[name=case_ref]", "CROY/2026/0042")
            page.click("text=Put on legal hold")
            expect(hold).to_contain_text("on hold (case CROY/2026/0042)")
            page.screenshot(path=str(SCREENSHOTS / "console-legal-hold.png"), full_page=True)
            page.click("text=Alerts")
            expect(page.locator("#queue-rows")).to_contain_text("on hold (case CROY/2026/0042)")
            page.goto(f"{hub.url}/alerts/{row}")
            page.click("text=Release the legal hold")
            expect(hold).to_contain_text("none")

            page.click("text=Reports")
            expect(page.locator("table.reports")).to_contain_text(DEPLOYMENT)
            page.screenshot(path=str(SCREENSHOTS / "console-reports.png"), full_page=True)
            page.click("table.reports a")
            expect(page.locator("dl.report")).to_contain_text("faces_detected")
            page.screenshot(path=str(SCREENSHOTS / "console-report.png"), full_page=True)

            page.click("nav >> text=Results")
            results = page.locator("table.results tbody")
            expect(results).to_contain_text(DEPLOYMENT)
            expect(results).to_contain_text("5123")
            expect(results).not_to_contain_text("Morse")
            page.screenshot(path=str(SCREENSHOTS / "console-results.png"), full_page=True)
        finally:
            browser.close()

    store = AlertStore(str(hub.db_path))
    try:
        history = LegalHoldStore(store.database).history(row)
    finally:
        store.close()
    assert [(h.case_ref, h.held_by, h.released_by) for h in history] == [
        ("CROY/2026/0042", "sam", "sam")
    ]
    audit = hub.audit_log.read_text()
    assert '"alert.held"' in audit and '"alert.hold_released"' in audit
    assert '"results.exported"' in audit

"""Console latency benchmark: alert stored → visible in an open console page.

Starts ``lfr-hub serve`` (console only) on a throw-away hub, opens the alert queue in
Debian's headless chromium (Playwright, logged in with TOTP), then stores alerts one
at a time from this process, the way an intake worker in another process does (so
the SQLite change feed's cross-process path is what is measured), and times each
from the store's commit until its row is in the page. Prints the figures; asserts
nothing (the machine is shared and noisy).

    python -m hil.console_latency [--alerts 50] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.hub.store.alert_store import AlertStore
from agent.trust.alert_envelope import AlertContent, open_alert, seal_alert
from hil.local_console_hub import PASSWORD, make_hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEV = "lfr-bench-01"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(512) + b"\xff\xd9"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="console_latency", description=__doc__)
    ap.add_argument("--alerts", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    device_key, hub_key = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="lfr-console-bench-") as tmp:
        hub = make_hub(Path(tmp))
        store = AlertStore(str(hub.db_path))
        store.register_device_key(DEV, device_key.public_key())
        command = [sys.executable, "-m", "agent.cli.hub_main", "--log-level", "warning"]
        serve = subprocess.Popen([*command, "serve", "--config", str(hub.config)])
        latencies: list[float] = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_context(ignore_https_errors=True).new_page()
                deadline = time.monotonic() + 60
                while True:
                    try:
                        page.goto(f"{hub.url}/login")
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                page.fill("input[name=username]", "olive")
                page.fill("input[name=password]", PASSWORD)
                page.fill("input[name=code]", hub.code("olive"))
                page.click("button[type=submit]")
                page.wait_for_url(f"{hub.url}/alerts")
                page.wait_for_timeout(1000)  # the event stream is open
                for n in range(1, args.alerts + 1):
                    now = time.time()
                    content = AlertContent(
                        device_id=DEV,
                        deployment_id="bench-001",
                        watchlist_entry=f"W-{n:04d}",
                        score=0.7,
                        threshold=0.6,
                        model_id="sface-2021dec-fp32:0123abcd",
                        track_id=n,
                        first_seen=now - 1,
                        decided_at=now,
                        probe_jpeg=JPEG,
                        scene_jpeg=None,
                        quality={"inter_eye_px": 40.0},
                    )
                    sealed = seal_alert(
                        content, seq=n, device_key=device_key, hub_key=hub_key.public_key()
                    )
                    opened = open_alert(
                        sealed.envelope,
                        sender=DEV,
                        device_key=device_key.public_key(),
                        hub_key=hub_key,
                    )
                    store.store_alert(opened, key=device_key.public_key())
                    stored = time.perf_counter()
                    page.wait_for_function(
                        f"() => document.querySelectorAll('#queue-rows tr[data-open]').length >= {n}",
                        polling="raf",
                        timeout=30_000,
                    )
                    latencies.append(time.perf_counter() - stored)
                browser.close()
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(30)
            store.close()
    figures = {
        "alerts": len(latencies),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3),
        "path": "SQLite, store in another process than the console (PRAGMA data_version feed)",
    }
    print(
        f"alert stored -> visible in the open console page, {figures['alerts']} alerts: "
        f"p50 {figures['p50_s']} s, p95 {figures['p95_s']} s, max {figures['max_s']} s"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

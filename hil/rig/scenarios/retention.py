"""Retention: after a signed stop the deployment's watchlist is wiped from the device and the
signed deployment report reaches the hub; watchlists of deployments that ended for good
earlier (stop, expiry) are gone too."""

from __future__ import annotations

import time

from hil.rig.scenarios.scenario_support import (
    RigDriver,
    RigTimeout,
    ScenarioResult,
    wait_event,
    wait_for,
)

TITLE = "Retention"
FINAL = ("stopped", "expired", "superseded")


def run(rig: RigDriver, result: ScenarioResult) -> None:
    dep = rig.new_deployment("retention")
    wl = rig.load_watchlist(dep)
    rig.activate(dep, wl, 600, 600)
    wait_event(rig, dep, "gate.opened", 30)
    time.sleep(2.0)
    t = rig.stop_deployment(dep, "rig: retention")
    try:
        wiped = wait_for(
            "the watchlist wiped", lambda: not any(wl in f for f in rig.watchlist_files()), 30
        )
        result.figures["wipe_after_stop_s"] = round(wiped - t, 2)
        result.check("watchlist wiped after stop", True, f"{wiped - t:.2f} s after the stop")
    except RigTimeout as exc:
        result.check("watchlist wiped after stop", False, str(exc))
    report: dict[str, object] = {}

    def got_report() -> bool:
        for body in rig.reports():
            if body.get("deployment_id") == dep:
                report.update(body)
                return True
        return False

    try:
        received = wait_for("the deployment report at the hub", got_report, 30)
        result.figures["report_after_stop_s"] = round(received - t, 2)
        frames = report.get("frames")
        result.check(
            "signed deployment report received",
            report.get("end_reason") == "stopped"
            and report.get("watchlist_sha256") == wl
            and isinstance(frames, int)
            and frames > 0,
            f"end_reason {report.get('end_reason')}, {frames} frames, "
            f"{report.get('alerts')} alerts, {received - t:.2f} s after the stop",
        )
    except RigTimeout as exc:
        result.check("signed deployment report received", False, str(exc))

    # Every earlier deployment that ended for good left no watchlist behind.
    ended_final = {
        str(e.fields.get("deployment_id"))
        for e in rig.audit()
        if e.event == "deployment.ended" and e.fields.get("reason") in FINAL
    }
    reports = {str(b.get("deployment_id")) for b in rig.reports()}
    missing = sorted(ended_final - reports)
    result.check(
        "a report for every finished deployment",
        not missing,
        f"{len(ended_final)} finished deployments, reports missing for: {missing or 'none'}",
    )
    hashes = {
        str(e.fields.get("watchlist_sha256"))
        for e in rig.audit()
        if e.event == "gate.opening" and str(e.fields.get("deployment_id")) in ended_final
    }
    files = rig.watchlist_files()
    left = sorted({h[:16] for h in hashes if any(h in f for f in files)})
    result.figures["watchlist_files_left"] = len(files)
    result.check(
        "no watchlist of a finished deployment left on the device",
        not left,
        f"{len(hashes)} watchlists of finished deployments, still on the device: {left or 'none'}",
    )

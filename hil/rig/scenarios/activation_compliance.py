"""Activation compliance: the camera is open only inside a signed activation's bounds, and
closes at most ``MAX_CLOSE_LAG_S`` after expiry, a signed stop, and a lapsed lease.

Every deadline is taken on the hub side before the device could act on it (the time the
stop or renewal was sent, the activation's ``not_after``), so the measured lag is an upper
bound of the true one. Times of opening and closing come from the device's audit log.
"""

from __future__ import annotations

import time

from hil.rig.scenarios.scenario_support import (
    RigDriver,
    ScenarioResult,
    events_for,
    wait_event,
)

TITLE = "Activation compliance"
MAX_CLOSE_LAG_S = 1.0
EXPIRY_S = 5  # window of the expiry deployment
LEASE_S = 3  # lease of the lease-lapse deployment (one renewal, then silence)


def _frames_plausible(
    result: ScenarioResult, rig: RigDriver, dep: str, opened: float, closed: float
) -> None:
    """The device's own count of processed frames fits inside the time the camera was open."""
    fps = rig.truth.spec.fps
    ended = wait_event(rig, dep, "deployment.ended", 30)
    frames = int(ended.fields.get("frames", 0))
    ceiling = fps * (closed - opened) + fps * 0.5 + 2
    result.check(
        f"{dep}: frames only while open",
        0 < frames <= ceiling,
        f"{frames} frames processed, at most {ceiling:.0f} fit in {closed - opened:.1f} s open",
    )


def run(rig: RigDriver, result: ScenarioResult) -> None:
    lags: list[float] = []

    # 1. Expiry: a short window, nothing else sent.
    dep = rig.new_deployment("expiry")
    sent = rig.activate(dep, rig.load_watchlist(dep), EXPIRY_S, EXPIRY_S)
    opened = wait_event(rig, dep, "gate.opened", 30).t
    closed = wait_event(rig, dep, "gate.closed", EXPIRY_S + 30).t
    reason = str(events_for(rig, dep, "gate.closed")[0].fields.get("reason"))
    lag = closed - sent.not_after
    lags.append(lag)
    result.figures["expiry_close_lag_s"] = round(lag, 3)
    result.check(
        "opened inside the window",
        sent.not_before - 1 <= opened and sent.sent_at <= opened < sent.not_after,
        f"opened {opened - sent.sent_at:.2f} s after the activation was sent",
    )
    result.check(
        f"closed <= {MAX_CLOSE_LAG_S:g} s after expiry",
        reason == "expired" and lag <= MAX_CLOSE_LAG_S,
        f"reason {reason}, {lag * 1000:.0f} ms after not_after",
    )
    _frames_plausible(result, rig, dep, opened, closed)

    # 2. Signed stop in the middle of a long window.
    dep = rig.new_deployment("stop")
    rig.activate(dep, rig.load_watchlist(dep), 600, 600)
    opened = wait_event(rig, dep, "gate.opened", 30).t
    time.sleep(2.0)
    stop_sent = rig.stop_deployment(dep, "rig: stop test")
    closed = wait_event(rig, dep, "gate.closed", 30).t
    reason = str(events_for(rig, dep, "gate.closed")[0].fields.get("reason"))
    lag = closed - stop_sent
    lags.append(lag)
    result.figures["stop_close_lag_s"] = round(lag, 3)
    result.check(
        f"closed <= {MAX_CLOSE_LAG_S:g} s after a stop",
        reason == "stopped" and lag <= MAX_CLOSE_LAG_S,
        f"reason {reason}, {lag * 1000:.0f} ms after the stop was sent",
    )
    _frames_plausible(result, rig, dep, opened, closed)

    # 3. Lease: one renewal extends it, then the hub goes silent and the lease lapses.
    dep = rig.new_deployment("lease")
    sent = rig.activate(dep, rig.load_watchlist(dep), 600, LEASE_S)
    opened = wait_event(rig, dep, "gate.opened", 30).t
    time.sleep(LEASE_S / 2)
    renewed_at = rig.renew(dep, LEASE_S)
    deadline = renewed_at + LEASE_S
    closed = wait_event(rig, dep, "gate.closed", LEASE_S + 30).t
    reason = str(events_for(rig, dep, "gate.closed")[0].fields.get("reason"))
    lag = closed - deadline
    lags.append(lag)
    result.figures["lease_close_lag_s"] = round(lag, 3)
    result.check(
        "renewal extended the lease",
        closed > sent.sent_at + LEASE_S,
        f"open {closed - opened:.1f} s with a {LEASE_S} s lease renewed once",
    )
    result.check(
        f"closed <= {MAX_CLOSE_LAG_S:g} s after the lease lapsed",
        reason == "lease-lapsed" and lag <= MAX_CLOSE_LAG_S,
        f"reason {reason}, {lag * 1000:.0f} ms after the renewed lease ran out",
    )
    _frames_plausible(result, rig, dep, opened, closed)

    # Nothing opened the camera except these activations.
    opens = [e for e in rig.audit() if e.event == "gate.opened"]
    starts = [e for e in rig.audit() if e.event == "deployment.started"]
    result.check(
        "every camera opening belongs to an accepted activation",
        len(opens) <= len(starts),
        f"{len(opens)} openings, {len(starts)} accepted activations so far",
    )
    result.figures["max_close_lag_s"] = round(max(lags), 3)
    result.samples["close_lag_s"] = [round(v, 4) for v in lags]

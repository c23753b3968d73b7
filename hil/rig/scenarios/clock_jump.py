"""The clock-jump steps of the faults scenario: the device's wall clock set wrong during a
live deployment, as a lost RTC or a bad time source does (docs/protocol.md, "Time rules").

* Forward past ``not_after``: the wall-clock bound ends the activation at once (gate
  closed, reason ``expired``, within ``MAX_CLOSE_LAG_S`` of the jump). While the clock is
  ahead, a renewal and a new activation are refused at a clock step.
* Back by hours during a short window: the wall clock then says the window has hours to
  run, but the monotonic bound taken at receipt still closes the camera at ``not_after``
  (reason ``expired``), and a renewal sent meanwhile is refused at a clock step.

After each the clock is put right and the deployment re-activated, so the faults
scenario's books (every sealed alert stored once) cover alerts sealed under a wrong clock.
Audit times written while the clock is wrong carry the offset: they are filtered by
position in the log (``after_seq``) and corrected by the known offset before any lag is
computed. Every deadline is the rig's own time before the device could act.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hil.rig.scenarios.scenario_support import (
    ActivationSent,
    AuditEvent,
    RigDriver,
    ScenarioResult,
    last_seq,
    wait_event,
    wait_for,
)

MAX_CLOSE_LAG_S = 1.0
FORWARD_S = 2 * 3600.0  # past the scenario's one-hour window, short of the watchlist's expiry
BACK_S = -3 * 3600.0
WINDOW_S = 8  # the short window the backward jump happens in
# The verification steps that read the wall clock (docs/protocol.md, section 7); "clock"
# on a real device, whose kernel marks the clock unsynchronised once it is set by hand.
CLOCK_STEPS = ("validity", "clock", "time-window")

Reactivate = Callable[[RigDriver, ActivationSent, ScenarioResult], ActivationSent]


def _rejection(rig: RigDriver, after_seq: int, what: str) -> AuditEvent:
    found: list[AuditEvent] = []

    def seen() -> bool:
        found[:] = [e for e in rig.audit() if e.event == "control.rejected" and e.seq > after_seq]
        return bool(found)

    wait_for(f"the device to refuse {what}", seen, 15)
    return found[0]


def _refused(e: AuditEvent) -> str:
    return f"{e.fields.get('step')} ({str(e.fields.get('detail', ''))[:120]})"


def jump_forward(
    rig: RigDriver, sent: ActivationSent, result: ScenarioResult, reactivate: Reactivate
) -> ActivationSent:
    dep = sent.deployment_id
    mark = last_seq(rig)
    t = rig.set_wall_clock_offset(FORWARD_S)
    try:
        closed = wait_event(rig, dep, "gate.closed", 15, after_seq=mark)
        wait_event(rig, dep, "deployment.ended", 30, after_seq=mark)
        lag = closed.t - FORWARD_S - t
        reason = str(closed.fields.get("reason"))
        result.figures["clock_forward_close_lag_s"] = round(lag, 3)
        result.check(
            "clock jump forward past not_after",
            reason == "expired" and lag <= MAX_CLOSE_LAG_S,
            f"wall clock set {FORWARD_S / 3600:g} h ahead "
            f"({t + FORWARD_S - sent.not_after:.0f} s past not_after): gate closed with "
            f"{reason} {lag * 1000:.0f} ms after the jump",
        )
        mark = last_seq(rig)
        rig.renew(dep, sent.lease_s)
        renewal = _rejection(rig, mark, "a renewal while its clock is ahead")
        mark = last_seq(rig)
        rig.activate(dep, sent.watchlist_hash, 3600, 3600)
        activation = _rejection(rig, mark, "an activation while its clock is ahead")
        result.check(
            "clock ahead: renewal and activation refused",
            renewal.fields.get("step") in CLOCK_STEPS
            and activation.fields.get("step") in CLOCK_STEPS,
            f"renewal refused at {_refused(renewal)}; activation refused at {_refused(activation)}",
        )
    finally:
        rig.set_wall_clock_offset(0.0)
    return reactivate(rig, sent, result)


def jump_back(
    rig: RigDriver, sent: ActivationSent, result: ScenarioResult, reactivate: Reactivate
) -> ActivationSent:
    dep = sent.deployment_id
    # The live one-hour activation is stopped first, so the short one is not a supersede.
    mark = last_seq(rig)
    rig.stop_deployment(dep, "rig: clock jump back")
    wait_event(rig, dep, "deployment.ended", 30, after_seq=mark)
    watchlist = sent.watchlist_hash
    if not any(watchlist in f for f in rig.watchlist_files()):
        watchlist = rig.load_watchlist(dep)
    mark = last_seq(rig)
    short = rig.activate(dep, watchlist, WINDOW_S, WINDOW_S)
    wait_event(rig, dep, "gate.opened", 30, after_seq=mark)
    rig.set_wall_clock_offset(BACK_S)
    try:
        time.sleep(1.0)
        renew_mark = last_seq(rig)
        rig.renew(dep, WINDOW_S)
        renewal = _rejection(rig, renew_mark, "a renewal while its clock is behind")
        closed = wait_event(rig, dep, "gate.closed", WINDOW_S + 15, after_seq=mark)
        wait_event(rig, dep, "deployment.ended", 30, after_seq=mark)
    finally:
        rig.set_wall_clock_offset(0.0)
    lag = closed.t - BACK_S - short.not_after
    # Sealed while the clock was behind: stamped hours before the window even began.
    result.figures["alerts_sealed_clock_behind"] = sum(
        1
        for e in rig.audit()
        if e.event == "alert.sealed" and e.seq > mark and e.t < short.sent_at - 3600
    )
    reason = str(closed.fields.get("reason"))
    result.figures["clock_back_close_lag_s"] = round(lag, 3)
    result.check(
        "clock jump back does not extend the window",
        reason == "expired" and -0.5 <= lag <= MAX_CLOSE_LAG_S,
        f"wall clock set {-BACK_S / 3600:g} h back in a {WINDOW_S} s window: gate closed "
        f"with {reason} {lag * 1000:.0f} ms after not_after (monotonic bound)",
    )
    result.check(
        "clock behind: renewal refused",
        renewal.fields.get("step") in CLOCK_STEPS,
        f"renewal refused at {_refused(renewal)}",
    )
    return reactivate(rig, short, result)


def run(
    rig: RigDriver, sent: ActivationSent, result: ScenarioResult, reactivate: Reactivate
) -> ActivationSent:
    """Both jumps; returns the activation live afterwards (the clock put right)."""
    sent = jump_forward(rig, sent, result, reactivate)
    return jump_back(rig, sent, result, reactivate)

"""Faults during a live deployment, then the books balanced: every alert the device sealed
is stored at the hub exactly once, torn outbox entries never arrive.

Faults, in order, while the looping scene keeps producing alerts: broker restart,
network partition (nftables in the device's namespace, or broker stop/start on loopback),
camera feed lost and back, agent SIGKILL with torn outbox writes left behind, clock jump
forward and back (``clock_jump``).
"""

from __future__ import annotations

import time

from hil.rig.scenarios import clock_jump
from hil.rig.scenarios.scenario_support import (
    ActivationSent,
    AuditEvent,
    NotAvailable,
    RigDriver,
    RigTimeout,
    ScenarioResult,
    events_for,
    last_seq,
    sealed_ids,
    wait_event,
    wait_for,
)

TITLE = "Faults"
ALERT_WAIT_S = 60.0


def _stored_ids(rig: RigDriver) -> set[str]:
    return {a.alert_id for a in rig.stored_alerts()}


def _new_alert_sealed(rig: RigDriver, after: set[str], what: str) -> float:
    return wait_for(what, lambda: bool(sealed_ids(rig) - after), ALERT_WAIT_S)


def _reactivate(rig: RigDriver, sent: ActivationSent, result: ScenarioResult) -> ActivationSent:
    """What the hub does once it learns the deployment ended early: activate it again,
    sending the watchlist again only if the device no longer holds it."""
    dep, wl = sent.deployment_id, sent.watchlist_hash
    if not any(wl in f for f in rig.watchlist_files()):
        wl = rig.load_watchlist(dep)
        result.notes.append(f"{dep}: watchlist sent again before re-activation")
    mark = last_seq(rig)
    again = rig.activate(dep, wl, 3600, 3600)
    wait_event(rig, dep, "gate.opened", 60, after_seq=mark)
    return again


# What the agent audits when it finds a torn outbox entry at start-up.
TORN_EVENTS = ("outbox.incomplete_write_discarded", "outbox.entry_quarantined")


def _torn_outcomes(rig: RigDriver, torn: list[str]) -> tuple[list[str], list[str]]:
    """(what happened to each torn entry, the ids with no safe outcome).

    Safe: an audit entry names it (discarded or quarantined), or it is gone from the
    outbox; and in either case the hub never stored it.
    """
    audit: list[AuditEvent] = [e for e in rig.audit() if e.event in TORN_EVENTS]
    left = rig.outbox_entries()
    stored = _stored_ids(rig)
    outcomes, bad = [], []
    for aid in torn:
        named = [e.event.rsplit(".", 1)[1] for e in audit if aid in str(e.fields.get("file"))]
        gone = not any(aid in name for name in left)
        delivered = aid in stored
        outcomes.append(
            f"{aid[:8]}: {', '.join(named) or 'not audited'}, "
            f"{'gone from' if gone else 'still in'} the outbox"
            f"{', DELIVERED to the hub' if delivered else ''}"
        )
        if delivered or not (named or gone):
            bad.append(aid)
    return outcomes, bad


def run(rig: RigDriver, result: ScenarioResult) -> None:
    dep = rig.new_deployment("faults")
    sent = rig.activate(dep, rig.load_watchlist(dep), 3600, 3600)
    wait_event(rig, dep, "gate.opened", 30)
    wait_for("a first alert at the hub", lambda: bool(_stored_ids(rig)), ALERT_WAIT_S)
    extra_expected: set[str] = set()
    torn: list[str] = []

    # Broker restart.
    try:
        before = _stored_ids(rig)
        t = time.time()
        rig.restart_broker()
        back = wait_for(
            "an alert stored after the broker restart",
            lambda: bool(_stored_ids(rig) - before),
            ALERT_WAIT_S,
        )
        result.figures["broker_restart_to_next_alert_s"] = round(back - t, 1)
        result.check("broker restart", True, f"next alert stored {back - t:.1f} s later")
    except NotAvailable as exc:
        result.not_run("broker restart", str(exc))
    except RigTimeout as exc:
        result.check("broker restart", False, str(exc))

    # Partition while alerts are being sealed.
    try:
        part_s = rig.desc.partition_s
        sealed_before = sealed_ids(rig)
        rig.network.partition()
        try:
            time.sleep(part_s)
            during = sealed_ids(rig) - sealed_before
            queued = len(rig.outbox_entries())
        finally:
            rig.network.heal()
        t = time.time()
        drained = wait_for("the outbox to drain", lambda: not rig.outbox_entries(), 120)
        result.figures["partition_s"] = part_s
        result.figures["sealed_during_partition"] = len(during)
        result.figures["partition_drain_s"] = round(drained - t, 1)
        result.check(
            "partition during alerts",
            during <= _stored_ids(rig) and queued > 0,
            f"{len(during)} sealed and {queued} held in the outbox while cut "
            f"({rig.network.mode}); delivered {drained - t:.1f} s after healing",
        )
    except NotAvailable as exc:
        result.not_run("partition during alerts", str(exc))
    except RigTimeout as exc:
        result.check("partition during alerts", False, str(exc))

    # Camera feed lost, then back (a new activation resumes the deployment).
    try:
        t = time.time()
        rig.feed_lost()
        try:
            closed = wait_event(rig, dep, "gate.closed", 30, after=t)
            # The hub re-activates once the device reports the deployment over.
            wait_event(rig, dep, "deployment.ended", 30, after=t)
        finally:
            rig.feed_back()
        reason = str(closed.fields.get("reason"))
        sealed_before = sealed_ids(rig)
        sent = _reactivate(rig, sent, result)
        _new_alert_sealed(rig, sealed_before, "an alert after the feed came back")
        result.figures["feed_lost_close_lag_s"] = round(closed.t - t, 2)
        result.check(
            "camera feed lost and back",
            reason in ("source-died", "source-ended") and closed.t - t <= 1.0,
            f"gate closed with {reason} {closed.t - t:.2f} s after the feed went; "
            "reopened by a new activation and alerting again",
        )
    except NotAvailable as exc:
        result.not_run("camera feed lost and back", str(exc))
    except RigTimeout as exc:
        result.check("camera feed lost and back", False, str(exc))

    # Agent SIGKILL, with torn outbox writes left behind as a power cut would.
    try:
        rig.kill_device()
        # Entries written but not yet audited when the kill landed are still owed to the hub.
        extra_expected = {
            name.split("-", 1)[1].removesuffix(".alert") for name in rig.outbox_entries()
        }
        torn = rig.tear_outbox()
        rig.start_device()
        sealed_before = sealed_ids(rig)
        sent = _reactivate(rig, sent, result)
        _new_alert_sealed(rig, sealed_before, "an alert after the restart")
        outcomes, bad = _torn_outcomes(rig, torn)
        result.check(
            "agent SIGKILL + torn outbox write",
            bool(torn) and not bad,
            f"restarted, reactivated, alerting again; {len(torn)} torn entries left: "
            + "; ".join(outcomes),
        )
    except NotAvailable as exc:
        result.not_run("agent SIGKILL + torn outbox write", str(exc))
    except RigTimeout as exc:
        result.check("agent SIGKILL + torn outbox write", False, str(exc))

    try:
        sent = clock_jump.run(rig, sent, result, _reactivate)
    except NotAvailable as exc:
        result.not_run("clock jump", str(exc))
    except RigTimeout as exc:
        result.check("clock jump", False, str(exc))

    # The books: sealed on the device == stored at the hub, each once; torn never.
    mark = last_seq(rig)
    rig.stop_deployment(dep, "rig: faults done")
    wait_event(rig, dep, "deployment.ended", 30, after_seq=mark)
    try:
        wait_for("the outbox to drain", lambda: not rig.outbox_entries(), 120)
        expected = (sealed_ids(rig) | extra_expected) - set(torn)
        wait_for("every sealed alert at the hub", lambda: expected <= _stored_ids(rig), 60)
    except RigTimeout as exc:
        result.notes.append(str(exc))
    expected = (sealed_ids(rig) | extra_expected) - set(torn)
    stored = _stored_ids(rig)
    lost = expected - stored
    unknown = stored - expected
    receipts = [r for _, r in rig.receipts()]
    redelivered = sum(1 for r in receipts if r.outcome == "duplicate")
    stored_twice = sum(1 for r in receipts if r.outcome == "stored") - len(
        {r.alert.header.alert_id for r in receipts if r.outcome == "stored" and r.alert}
    )
    result.figures.update(
        {
            "alerts_sealed": len(expected),
            "alerts_stored": len(stored),
            "lost": len(lost),
            "duplicated": stored_twice,
            "redeliveries_absorbed": redelivered,
            "torn_delivered": len(set(torn) & stored),
        }
    )
    result.check(
        "zero alerts lost or duplicated",
        not lost and not unknown and stored_twice == 0 and not set(torn) & stored,
        f"{len(expected)} sealed, {len(stored)} stored once each, {len(lost)} lost, "
        f"{len(unknown)} unknown, {redelivered} redeliveries absorbed by the hub",
    )
    ended = events_for(rig, dep, "deployment.ended")
    result.figures["deployment_ends"] = ", ".join(str(e.fields.get("reason")) for e in ended)

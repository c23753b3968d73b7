"""The renewal keeper: a background task of ``lfr-hub serve`` that renews a live
deployment's lease only while officers are confirmed present.

A renewal is signed and sent for a deployment only while all of these hold
(``renewals_due``): the camera's receipts say it is live; someone pressed 'Officers
present' for it less than ``[hold] confirm_every_s`` ago; that person's console session
is still live with its signing key unlocked (the renewal is signed with that key); and
the last renewal went out at least ``[hold] renew_every_s`` ago. When any of these stops
holding (no confirmation, logout, a lock-out, the hub stopped or crashed) no renewal
goes out and the camera closes at the end of its lease, by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from agent.errors import LfrError
from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.audit.hub_audit_log import HubAudit
from agent.hub.console.signing_sessions import SigningSessions
from agent.hub.devices.live_leases import LiveLease
from agent.hub.devices.officer_holds import Hold, HoldTiming, OfficerHolds
from agent.hub.service.control_channel import ControlChannel

log = logging.getLogger(__name__)
TICK_S = 1.0

Key = tuple[str, str]


def renewals_due(
    now: float,
    holds: Mapping[Key, Hold],
    leases: Iterable[LiveLease],
    *,
    signers: Collection[str],
    last_sent: Mapping[Key, float],
    timing: HoldTiming,
) -> list[Hold]:
    """The holds whose deployment is to be renewed now (see the module's docstring)."""
    due = []
    for lease in leases:
        hold = holds.get(lease.key)
        if lease.ended is not None or hold is None:
            continue
        if now - hold.confirmed_at >= timing.confirm_every_s:
            continue
        if hold.session_key not in signers:
            continue
        sent = last_sent.get(lease.key)
        if sent is not None and now - sent < timing.renew_every_s:
            continue
        due.append(hold)
    return due


class RenewalKeeper:
    def __init__(
        self,
        channel: ControlChannel,
        holds: OfficerHolds,
        signing: SigningSessions,
        accounts: ConsoleAccounts,
        audit: HubAudit,
        timing: HoldTiming,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel, self.holds, self.signing = channel, holds, signing
        self.accounts, self.audit, self.timing, self.clock = accounts, audit, timing, clock
        self._sent: dict[Key, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="renewal-keeper", daemon=True)

    def tick(self) -> list[Hold]:
        """Drop keys of ended sessions, then send what is due; the holds renewed."""
        for gone in self.signing.prune(self.accounts.live_session_keys()):
            self.audit.record("signing.locked", username=gone.username, reason="session ended")
        now = self.clock()
        live = self.channel.book.live()
        live_keys = {lease.key for lease in live}
        # What ended needs no more bookkeeping: a later activation starts afresh.
        for key in self.holds.snapshot():
            if key not in live_keys:
                self.holds.release(*key)
        self._sent = {k: t for k, t in self._sent.items() if k in live_keys}
        due = renewals_due(
            now,
            self.holds.snapshot(),
            live,
            signers=self.signing.unlocked_keys(),
            last_sent=self._sent,
            timing=self.timing,
        )
        renewed = []
        for hold in due:
            unlocked = self.signing.of_session(hold.session_key)
            if unlocked is None:
                continue
            self._sent[hold.key] = now
            try:
                doc = unlocked.issuer.renewal(
                    hold.device_id, hold.deployment_id, self.timing.lease_s
                )
                self.channel.send(hold.device_id, doc, self.timing.lease_s)
            except LfrError as exc:
                log.error("renewal of %s/%s not sent: %s", *hold.key, exc)
                self.audit.record(
                    "deployment.renewal_failed",
                    device=hold.device_id,
                    deployment=hold.deployment_id,
                    username=hold.username,
                    reason=str(exc)[:200],
                )
                continue
            self.audit.record(
                "deployment.renewed",
                device=hold.device_id,
                deployment=hold.deployment_id,
                username=hold.username,
                lease_s=self.timing.lease_s,
                confirmed_at=hold.confirmed_at,
            )
            renewed.append(hold)
        return renewed

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except LfrError as exc:
                log.error("renewal keeper: %s", exc)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

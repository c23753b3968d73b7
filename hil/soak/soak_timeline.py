"""What happens during a soak, and when: the deployment kept alive by signed renewals on
the real lease interval, alerts acknowledged by an operator, and the three faults (a
broker restart, a network cut, a daemon stop and start on the same state folder).

The faults all fall in the first half of the run so that the second half, the one the
verdict is drawn from, shows the system *after* it has recovered from each of them: a
leak left behind by a reconnect or a restart shows there as a slope.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hil.rig.scenarios.scenario_support import (
    ActivationSent,
    RigTimeout,
    last_seq,
    wait_event,
    wait_for,
)
from hil.soak.soak_rig import SoakRig
from hil.soak.soak_sampler import SoakSampler

#: The lease an operator signs (``lfr-hub activate --lease 10m``, docs/operator.md) and
#: the renewal interval that keeps it alive with one renewal to spare.
LEASE_S = 600
RENEW_EVERY_S = 300.0
ADJUDICATE_EVERY_S = 60.0
#: The activation window outlasts the run by this much (the final stop ends it).
WINDOW_MARGIN_S = 600
#: A device caps an activation's window at 12 h (``[activation] max_duration_h``): a soak
#: runs inside one window, so it is at most this long (a longer one would need a shift
#: change, a new activation, which the soak does not do).
MAX_RUN_S = 12 * 3600 - WINDOW_MARGIN_S
OPERATOR = "soak-operator"
GATE_WAIT_S = 90.0
TICK_S = 1.0


@dataclass(frozen=True)
class SoakPlan:
    run_s: float
    lease_s: int = LEASE_S
    renew_every_s: float = RENEW_EVERY_S
    broker_restart_at_s: float = 0.0
    cut_at_s: float = 0.0
    cut_s: float = 30.0
    daemon_restart_at_s: float = 0.0

    @property
    def faults_end_s(self) -> float:
        return max(self.broker_restart_at_s, self.cut_at_s + self.cut_s, self.daemon_restart_at_s)


def plan_for(
    run_s: float, lease_s: int = LEASE_S, renew_every_s: float = RENEW_EVERY_S
) -> SoakPlan:
    """Faults at 15 %, 25 % and 35 % of the run; the cut is 30 s in a short run, 60 s in a
    run of an hour or more (longer than the broker's keep-alive either way)."""
    return SoakPlan(
        run_s=run_s,
        lease_s=lease_s,
        renew_every_s=renew_every_s,
        broker_restart_at_s=0.15 * run_s,
        cut_at_s=0.25 * run_s,
        cut_s=60.0 if run_s >= 3600 else 30.0,
        daemon_restart_at_s=0.35 * run_s,
    )


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class TimelineResult:
    checks: list[Check] = field(default_factory=list)
    renewals: int = 0
    activations: int = 0
    adjudicated: int = 0
    daemon_stop_exit: int | None = None

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


class SoakTimeline:
    def __init__(
        self,
        rig: SoakRig,
        sampler: SoakSampler,
        plan: SoakPlan,
        say: Callable[[str], None] = print,
    ) -> None:
        self.rig = rig
        self.sampler = sampler
        self.plan = plan
        self.say = say
        self.result = TimelineResult()
        self.deployment = rig.new_deployment("soak")
        self.sent: ActivationSent | None = None
        self._started = time.monotonic()

    def _t(self) -> float:
        return time.monotonic() - self._started

    def _event(self, what: str) -> None:
        self.sampler.mark(what)
        self.say(what)

    # -- the deployment ----------------------------------------------------------------------
    def _activate(self, label: str) -> None:
        rig, dep = self.rig, self.deployment
        wl = self.sent.watchlist_hash if self.sent else ""
        if not wl or not any(wl in f for f in rig.watchlist_files()):
            wl = rig.load_watchlist(dep)
        mark = last_seq(rig)
        remaining = max(self.plan.lease_s, int(self.plan.run_s - self._t()) + WINDOW_MARGIN_S)
        self.sent = rig.activate(dep, wl, remaining, self.plan.lease_s)
        wait_event(rig, dep, "gate.opened", GATE_WAIT_S, after_seq=mark)
        self.result.activations += 1
        self._event(f"{label}: activated {dep} (lease {self.plan.lease_s} s)")

    def _renew(self) -> None:
        self.rig.renew(self.deployment, self.plan.lease_s)
        self.result.renewals += 1
        self.sampler.mark("renewal")

    def _adjudicate(self) -> None:
        for row in self.rig.store.list_alerts(
            device_id=self.rig.device_id, limit=500, unadjudicated=True
        ):
            self.rig.store.adjudicate(row.alert_id, "true-alert", OPERATOR, device_id=row.device_id)
            self.result.adjudicated += 1

    # -- the faults --------------------------------------------------------------------------
    def _stored(self) -> int:
        return self.rig.store.count()

    def _broker_restart(self) -> None:
        before = self._stored()
        t = time.time()
        self._event("fault: broker restart")
        self.rig.restart_broker()
        try:
            back = wait_for(
                "an alert stored after the broker restart", lambda: self._stored() > before, 120
            )
            self.result.check("broker restart", True, f"next alert stored {back - t:.1f} s later")
        except RigTimeout as exc:
            self.result.check("broker restart", False, str(exc))

    def _network_cut(self) -> None:
        self._event(f"fault: network cut for {self.plan.cut_s:.0f} s ({self.rig.network.mode})")
        self.rig.network.partition()
        try:
            time.sleep(self.plan.cut_s)
            queued = len(self.rig.outbox_entries())
        finally:
            self.rig.network.heal()
        self._event("network healed")
        t = time.time()
        try:
            # The scene keeps making alerts: "drained" is the backlog gone, not zero.
            drained = wait_for(
                "the outbox to drain after the cut",
                lambda: len(self.rig.outbox_entries()) <= 2,
                180,
            )
            self.result.check(
                "network cut",
                queued > 0,
                f"{queued} alerts held in the outbox during the cut, delivered "
                f"{drained - t:.1f} s after healing",
            )
        except RigTimeout as exc:
            self.result.check("network cut", False, str(exc))

    def _daemon_restart(self) -> None:
        # systemd is not PID 1 on this machine: the restart is what `systemctl restart`
        # does to the unit, SIGTERM and a fresh start on the same state folder.
        self._event("fault: daemon stop (SIGTERM) and start on the same state folder")
        code = self.rig.stop_device()
        self.result.daemon_stop_exit = code
        t = time.time()
        self.rig.start_device()
        self._event(f"daemon ready again {time.time() - t:.0f} s after its exit (code {code})")
        before = self._stored()
        try:
            # A stop ends the deployment; the hub activates it again, as an operator would.
            self._activate("after the daemon restart")
            back = wait_for(
                "an alert stored after the daemon restart", lambda: self._stored() > before, 120
            )
            self.result.check(
                "daemon stop and start",
                code == 0,
                f"exit code {code}; reactivated; next alert stored {back - t:.1f} s after the stop",
            )
        except RigTimeout as exc:
            self.result.check("daemon stop and start", False, str(exc))

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> TimelineResult:
        plan = self.plan
        self._activate("start")
        faults: list[tuple[float, Callable[[], None]]] = sorted(
            [
                (plan.broker_restart_at_s, self._broker_restart),
                (plan.cut_at_s, self._network_cut),
                (plan.daemon_restart_at_s, self._daemon_restart),
            ],
            key=lambda f: f[0],
        )
        next_renew = self._t() + plan.renew_every_s
        next_adjudicate = self._t() + ADJUDICATE_EVERY_S
        while self._t() < plan.run_s:
            now = self._t()
            if faults and now >= faults[0][0]:
                faults.pop(0)[1]()
                continue
            if now >= next_renew:
                self._renew()
                next_renew += plan.renew_every_s
            if now >= next_adjudicate:
                self._adjudicate()
                next_adjudicate += ADJUDICATE_EVERY_S
            time.sleep(TICK_S)
        self._finish()
        return self.result

    def _finish(self) -> None:
        rig, dep = self.rig, self.deployment
        self._adjudicate()
        ended = [e for e in rig.audit() if e.event == "gate.closed"]
        lapses = [e for e in ended if "lease" in str(e.fields.get("reason", ""))]
        self.result.check(
            "lease kept alive",
            not lapses,
            f"{self.result.renewals} renewals every {self.plan.renew_every_s:.0f} s "
            f"on a {self.plan.lease_s} s lease; {len(lapses)} lease lapses",
        )
        mark = last_seq(rig)
        rig.stop_deployment(dep, "soak done")
        try:
            wait_event(rig, dep, "deployment.ended", 60, after_seq=mark)
            wait_for("the outbox to drain", lambda: not rig.outbox_entries(), 120)
        except RigTimeout as exc:
            self.result.check("deployment stopped and outbox drained", False, str(exc))
        sealed = {str(e.fields["alert_id"]) for e in rig.audit() if e.event == "alert.sealed"}
        with contextlib.suppress(RigTimeout):
            wait_for(
                "every sealed alert at the hub",
                lambda: sealed <= {a.alert_id for a in rig.stored_alerts()},
                60,
            )
        stored = {a.alert_id for a in rig.stored_alerts()}
        lost = sealed - stored
        self.result.check(
            "every alert delivered",
            bool(sealed) and not lost,
            f"{len(sealed)} sealed on the device, {len(stored)} stored at the hub, {len(lost)} lost",
        )

"""One deployment, driven the way the hub's operators drive one, with a place to arm a fault.

watchlist → activation (sometimes after a revocation) → alerts at the hub → (renewal) →
(an operator's adjudication) → end: a signed stop, the window running out, or the lease
lapsing → the report at the hub → (a hub retention purge).

Every wait goes through ``guard``, which raises ``PowerLost`` the moment a LazyFS fault
fired (the site's watcher has already SIGKILLed the processes on that mount) or the
crash point's random moment has come.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hil.power_cut.crash_points import (
    BEFORE_ACTIVATION,
    BEFORE_ADJUDICATION,
    BEFORE_END,
    BEFORE_HUB_PURGE,
    BEFORE_RENEWAL,
    BEFORE_WATCHLIST,
    DURING_ALERTS,
    CrashPoint,
)
from hil.power_cut.ledger import Ledger
from hil.power_cut.power_cut_site import PowerCutSite

STEP_TIMEOUT_S = 60.0
WINDOW_S = 120
EXPIRY_WINDOW_S = 8
LEASE_S = 60
SHORT_LEASE_S = 5


class PowerLost(Exception):
    """The power went (a fault fired, or the random moment came) on ``target``."""

    def __init__(self, target: str, fired: bool) -> None:
        super().__init__(target)
        self.target = target
        self.fired = fired


class WorkStalled(Exception):
    """Something the work waits for did not happen in time (reported, then cut)."""


class DeploymentCycle:
    def __init__(
        self,
        site: PowerCutSite,
        ledger: Ledger,
        deployment_id: str,
        point: CrashPoint,
        arm: Callable[[str], None],
        guard: Callable[[], None],
    ) -> None:
        self.site = site
        self.ledger = ledger
        self.dep = deployment_id
        self.point = point
        self._arm = arm
        self._guard = guard

    def wait(
        self, what: str, condition: Callable[[], bool], timeout: float = STEP_TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._guard()
            if condition():
                return
            if time.monotonic() > deadline:
                raise WorkStalled(f"{self.dep}: {what} did not happen within {timeout:.0f} s")
            time.sleep(0.02)

    def _observe(self) -> None:
        """Note what is durable on the device now (the sequence, the revocation list)."""
        self._guard()
        if self.site.device_fs.alive:
            self.ledger.observe_durable(self.site.lower_snapshot())

    def run(self) -> None:
        site, p, dep = self.site, self.point, self.dep
        self._guard()
        if "revocation" in p.extras:
            site.revoke_a_spare_operator()
        bundle = site.build_watchlist(dep)
        self.ledger.add_bundle(bundle.watchlist_hash, dep, bundle.data)
        self._arm(BEFORE_WATCHLIST)
        site.send_watchlist(bundle)
        self.wait(
            "the watchlist stored",
            lambda: site.audit.count("watchlist.loaded", deployment_id=dep) > 0,
        )
        self._arm(BEFORE_ACTIVATION)
        window = EXPIRY_WINDOW_S if p.end == "expiry" else WINDOW_S
        lease = min(window, SHORT_LEASE_S if p.end == "lease" else LEASE_S)
        self.ledger.docs.append(site.activate(dep, bundle, window, lease))
        self.wait(
            "the camera opened",
            lambda: (
                site.audit.count("gate.opened", deployment_id=dep) > 0
                or site.audit.count("deployment.refused", deployment_id=dep) > 0
            ),
        )
        self._observe()
        if site.audit.count("deployment.refused", deployment_id=dep):
            raise WorkStalled(
                f"{dep}: the activation was refused ({site.audit.events('deployment.refused', deployment_id=dep)[-1]})"
            )
        self.wait(
            f"{p.alerts_before_arming} alert(s) at the hub",
            lambda: len(site.hub.stored_for(dep)) >= p.alerts_before_arming,
        )
        self._arm(DURING_ALERTS)
        have = len(site.hub.stored_for(dep))
        self.wait("one more alert at the hub", lambda: len(site.hub.stored_for(dep)) > have)
        if "renewal" in p.extras and p.end != "lease":
            self._arm(BEFORE_RENEWAL)
            renewed = site.audit.count("gate.renewed", deployment_id=dep)
            self.ledger.docs.append(site.renew(dep, LEASE_S))
            self.wait(
                "the renewal taken",
                lambda: site.audit.count("gate.renewed", deployment_id=dep) > renewed,
            )
            self._observe()
        if "adjudicate" in p.extras:
            self._arm(BEFORE_ADJUDICATION)
            self._adjudicate()
        self._arm(BEFORE_END)
        if p.end == "stop":
            self.ledger.docs.append(site.stop(dep))
        self.wait(
            "the deployment ended",
            lambda: site.audit.count("deployment.ended", deployment_id=dep) > 0,
            timeout=STEP_TIMEOUT_S + window,
        )
        self._observe()
        self.wait("the report at the hub", lambda: site.hub.has_report(dep))
        if "hub-purge" in p.extras:
            self._arm(BEFORE_HUB_PURGE)
            self._purge()

    def _adjudicate(self) -> None:
        stored = self.site.hub.stored_for(self.dep)
        if not stored:
            return
        alert_id = stored[0]
        code, out = self.site.hub_tool(
            "alerts", "adjudicate", alert_id, "--outcome", "true-alert", "--by", "PC 22 Operator"
        )
        self._guard()
        if code == 0:
            self.ledger.adjudications[alert_id] = "true-alert"
        else:
            raise WorkStalled(f"adjudication failed ({code}): {out.strip()[-200:]}")

    def _purge(self) -> None:
        code, out = self.site.hub_tool("alerts", "purge", "--older-than", "1m")
        self._guard()
        if code == 0:
            self.ledger.purges += 1
        else:
            raise WorkStalled(f"hub purge failed ({code}): {out.strip()[-200:]}")

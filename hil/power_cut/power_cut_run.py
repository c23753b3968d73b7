"""The run: crash point after crash point on one site, every promise checked after each.

For each crash point: arm the fault (or draw the random moment) at its stage of the
work, drive the work until the power goes, cut it (SIGKILL, LazyFS's cache dropped),
check what survived, bring the machine back, measure the agent's start-up, and check
every promise against the running system. A fault the work never reached still ends in
a cut at the end of the work (counted as "not reached").
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hil.power_cut.crash_points import (
    AT_START_UP,
    DEVICE,
    ENROLMENT,
    HUB,
    CrashPoint,
)
from hil.power_cut.device_cycle import DeploymentCycle, PowerLost, WorkStalled
from hil.power_cut.enrolment_trial import EnrolmentTrial
from hil.power_cut.lazyfs_mount import CrashFault, Fault, LazyFsMount, TornOp, TornSeq
from hil.power_cut.ledger import Ledger
from hil.power_cut.power_cut_site import PowerCutSite
from hil.power_cut.promises import (
    ALERTS,
    KEYS,
    REPORTS,
    Findings,
    check_alerts,
    check_hub_store,
    check_reports,
    check_running_device,
    check_survivors,
)
from hil.power_cut.promises import (
    HUB as HUB_PROMISE,
)

CYCLES_PER_POINT = 3  # deployments tried before a fault counts as not reached


@dataclass
class PointResult:
    number: int
    label: str
    target: str
    kind: str
    outcome: str  # fired | random | not reached | stalled
    recovery_s: float | None = None
    findings: Findings = field(default_factory=Findings)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class PowerCutRun:
    def __init__(self, site: PowerCutSite) -> None:
        self.site = site
        self.ledger = Ledger()
        self.deployments = 0
        self.results: list[PointResult] = []
        self.start_up_s: list[float] = []
        # A broken state that lasts is reported at the crash point that made it.
        self._seen_problems: set[str] = set()

    # ---- the run ---------------------------------------------------------------------
    def start(self) -> None:
        self.site.start_device()
        self.start_up_s.append(self.site.wait_ready())
        self._note_durable()

    def try_point(self, cp: CrashPoint) -> PointResult:
        t = time.monotonic()
        result = PointResult(cp.number, cp.label, cp.place.target, cp.place.kind, "not reached")
        try:
            if cp.place.target == HUB:
                self._hub_point(cp, result)
            else:
                self._device_point(cp, result)
        except Exception as exc:  # a rig failure is a finding, never a silent pass
            result.notes.append(f"rig error: {type(exc).__name__}: {exc}")
            result.notes.append(traceback.format_exc(limit=4))
            result.findings.checked("rig", [f"{type(exc).__name__}: {exc}"])
            self._recover_after_rig_error()
        result.seconds = time.monotonic() - t
        self._drop_old_problems(result)
        self.results.append(result)
        return result

    def _drop_old_problems(self, result: PointResult) -> None:
        lasting = 0
        for promise, problems in result.findings.problems.items():
            new = [p for p in problems if p not in self._seen_problems]
            lasting += len(problems) - len(new)
            self._seen_problems.update(new)
            result.findings.problems[promise] = new
        if lasting:
            result.notes.append(f"{lasting} problem(s) first seen at an earlier crash point remain")

    def finish(self) -> Findings:
        """A clean stop at the end; every alert must still arrive."""
        f = Findings()
        code = self.site.stop_device()
        if code != 0:
            f.checked("rig", [f"lfr-agent exited {code} at the final stop"])
        self.site.start_device()
        self.start_up_s.append(self.site.wait_ready())
        f.checked(ALERTS, check_alerts(self.site, self.ledger, self.site.running_snapshot()))
        f.checked(HUB_PROMISE, check_hub_store(self.site, self.ledger))
        return f

    # ---- faults ---------------------------------------------------------------------------
    def _faults(self, cp: CrashPoint) -> list[Fault]:
        place = cp.place
        if place.kind == "random":
            return []
        if place.kind == "op":
            return [CrashFault(place.op, place.timing, place.pattern)]
        fs = self.site.device_fs
        if place.name.startswith("audit"):
            files = [fs.fault_path("state/audit.jsonl")]
        elif place.name.startswith("outbox"):
            # The next alerts' temporary entry files, by their sequence numbers.
            current = self._outbox_sequence()
            files = [fs.fault_path(f"state/outbox/.tmp-{current + i}.alert") for i in (1, 2, 3)]
        else:  # the watchlist wiped at the end of this deployment
            files = [fs.fault_path(f"state/watchlists/{self._current_bundle()}.lfrwl")]
        if place.kind == "torn-op":
            return [TornOp(f, cp.torn_parts, cp.torn_persist) for f in files]
        return [TornSeq(f, cp.torn_persist) for f in files]

    def _outbox_sequence(self) -> int:
        path = self.site.device_fs.lower_dir / "state" / "outbox" / "sequence"
        try:
            return int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _current_bundle(self) -> str:
        dep = f"pc-{self.deployments}"
        for h, b in self.ledger.bundles.items():
            if b.deployment_id == dep:
                return h
        return "0" * 64

    def _arm_at(self, cp: CrashPoint, fs: LazyFsMount, armed: list[bool]) -> Callable[[str], None]:
        def arm(stage: str) -> None:
            if armed[0] or stage != cp.stage or not fs.alive:
                return
            faults = self._faults(cp)
            if cp.place.name == "watchlist wipe torn write":
                # The bundle's file name is too long for LazyFS's FIFO: restart the device
                # cleanly with the fault in LazyFS's config.
                self._clean_reboot([f for f in faults if not isinstance(f, CrashFault)])
            else:
                for fault in faults:
                    fs.arm(fault)
            armed[0] = True

        return arm

    def _clean_reboot(self, injections: list[TornOp | TornSeq]) -> None:
        """An orderly restart of the device (SIGTERM, everything written out, unmount),
        with ``injections`` armed in LazyFS from the mount on."""
        site = self.site
        site.stop_device()
        site.device_fs.checkpoint()
        site.device_fs.unmount()
        site.device_fs.mount(injections=tuple(injections))
        site.audit.reset()
        site.start_device()
        self.start_up_s.append(site.wait_ready())

    # ---- a camera's power cut -----------------------------------------------------------
    def _device_point(self, cp: CrashPoint, result: PointResult) -> None:
        site = self.site
        deadline = time.monotonic() + cp.random_delay_s if cp.place.kind == "random" else None
        armed = [cp.place.kind == "random"]

        def guard() -> None:
            if not site.device_fs.alive:
                raise PowerLost(DEVICE, fired=True)
            if deadline is not None and time.monotonic() > deadline:
                raise PowerLost(DEVICE, fired=False)
            if not site.device_alive:
                raise WorkStalled("lfr-agent exited by itself")

        arm = self._arm_at(cp, site.device_fs, armed)
        try:
            if cp.place.target == ENROLMENT:
                self._enrolment_work(cp, result, guard, arm)
            else:
                if cp.stage == AT_START_UP:
                    self._restart_with_aged_state(cp, arm, guard)
                for _ in range(CYCLES_PER_POINT):
                    self._cycle(cp, arm, guard)
                    if cp.place.kind == "random":
                        # The work ended before the random moment: cut now.
                        raise PowerLost(DEVICE, fired=False)
        except PowerLost as lost:
            result.outcome = "fired" if lost.fired else "random"
        except WorkStalled as exc:
            result.outcome = "stalled"
            result.notes.append(str(exc))
        if result.outcome == "not reached" and not armed[0]:
            result.notes.append("the fault's stage never came")
        self._cut_device_and_check(result)
        if cp.place.target == ENROLMENT and result.outcome != "stalled":
            self._enrolment_recovery(cp, result)

    def _cycle(self, cp: CrashPoint, arm: Callable[[str], None], guard: Callable[[], None]) -> None:
        self.deployments += 1
        DeploymentCycle(self.site, self.ledger, f"pc-{self.deployments}", cp, arm, guard).run()

    def _restart_with_aged_state(
        self, cp: CrashPoint, arm: Callable[[str], None], guard: Callable[[], None]
    ) -> None:
        """An orderly shutdown, a month off (state older than the retention period left
        behind, as on a camera cut off from its hub), power on, arm, start: the purges
        run as the agent starts."""
        site = self.site
        reports = site.device_fs.lower_dir / "state" / "reports"
        if "aged-report" in cp.place.needs and not any(reports.glob("*.json")):
            self._cycle(cp, lambda _stage: None, guard)  # a report to grow old
        site.stop_device()
        site.device_fs.checkpoint()
        site.device_fs.unmount()
        if "aged-entry" in cp.place.needs:
            site.plant_aged_outbox_entry(cp.number)
        if "aged-report" in cp.place.needs:
            site.age_reports()
        site.device_power_on()
        arm(AT_START_UP)
        site.start_device()
        deadline = time.monotonic() + 60
        while site.notify.ready_count() <= site._ready_seen:
            if not site.device_fs.alive:
                raise PowerLost(DEVICE, fired=True)
            if not site.device_alive or time.monotonic() > deadline:
                raise WorkStalled("lfr-agent did not start after the orderly shutdown")
            time.sleep(0.02)
        # The purges run as the agent starts; give them a moment to reach the fault.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            guard()
            time.sleep(0.02)

    def _cut_device_and_check(self, result: PointResult) -> None:
        site, ledger = self.site, self.ledger
        site.device_power_off()
        ledger.read_agent_log(site.site.device_dir / "agent.log")
        surv = site.lower_snapshot()
        f = result.findings
        for promise, problems in check_survivors(surv, ledger).problems.items():
            f.checked(promise, problems)
        ledger.take_audit_facts(surv)
        ledger.take_outbox(surv)
        if surv.sequence is not None and surv.sequence > 0:
            ledger.accepted_sequences.add(surv.sequence)
        site.device_power_on()
        site.start_device()
        recovery = site.wait_ready()
        result.recovery_s = recovery
        self.start_up_s.append(recovery)
        # The watchlist tick (every 0.5 s) wipes what a finished window left.
        time.sleep(1.2)
        now = site.running_snapshot()
        for promise, problems in check_running_device(site, ledger, surv, now).problems.items():
            f.checked(promise, problems)
        f.checked(ALERTS, check_alerts(site, ledger, now))
        f.checked(REPORTS, check_reports(site, site.running_snapshot()))
        f.checked(HUB_PROMISE, check_hub_store(site, ledger))
        self._note_durable()

    def _note_durable(self) -> None:
        lower = self.site.lower_snapshot()
        self.ledger.observe_durable(lower)
        self.ledger.durable_audit = lower.audit

    # ---- the hub's power cut --------------------------------------------------------------
    def _hub_point(self, cp: CrashPoint, result: PointResult) -> None:
        site = self.site
        deadline = time.monotonic() + cp.random_delay_s if cp.place.kind == "random" else None
        armed = [cp.place.kind == "random"]

        def guard() -> None:
            if not site.hub_fs.alive:
                raise PowerLost(HUB, fired=True)
            if deadline is not None and time.monotonic() > deadline:
                raise PowerLost(HUB, fired=False)
            if not site.device_fs.alive or not site.device_alive:
                raise WorkStalled("the device went down during a hub crash point")

        arm = self._arm_at(cp, site.hub_fs, armed)
        try:
            for _ in range(CYCLES_PER_POINT):
                self._cycle(cp, arm, guard)
                if cp.place.kind == "random":
                    raise PowerLost(HUB, fired=False)
        except PowerLost as lost:
            result.outcome = "fired" if lost.fired else "random"
        except WorkStalled as exc:
            result.outcome = "stalled"
            result.notes.append(str(exc))
        site.hub_power_off()
        site.hub_power_on()
        f = result.findings
        f.checked(HUB_PROMISE, check_hub_store(site, self.ledger))
        f.checked(ALERTS, check_alerts(site, self.ledger, site.running_snapshot()))
        if not site.device_alive:
            # The device must never notice a hub cut beyond a redelivery.
            f.checked(ALERTS, ["lfr-agent died during the hub's power cut"])
            self._recover_after_rig_error()

    # ---- enrolment -----------------------------------------------------------------------
    def _enrolment_work(
        self,
        cp: CrashPoint,
        result: PointResult,
        guard: Callable[[], None],
        arm: Callable[[str], None],
    ) -> None:
        if cp.place.kind == "random":
            deadline = time.monotonic() + cp.random_delay_s / 3

            def timed_guard() -> None:
                guard()
                if time.monotonic() > deadline:
                    raise PowerLost(DEVICE, fired=False)

            trial = EnrolmentTrial(self.site, cp.number, timed_guard)
        else:
            trial = EnrolmentTrial(self.site, cp.number, guard)
        self._trial = trial
        arm(cp.stage)
        problems = trial.run()
        result.findings.checked(KEYS, problems)

    def _enrolment_recovery(self, cp: CrashPoint, result: PointResult) -> None:
        trial = self._trial
        trial._guard = lambda: None
        result.findings.checked(KEYS, trial.run())

    def _recover_after_rig_error(self) -> None:
        site = self.site
        with contextlib.suppress(Exception):
            site.hub_power_off()
        site.hub_power_on()
        site.device_power_off()
        site.device_power_on()
        site.start_device()
        self.start_up_s.append(site.wait_ready())
        self._note_durable()


def audit_path(site: PowerCutSite) -> Path:
    return site.state_dir / "audit.jsonl"

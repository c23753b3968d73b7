"""The promises, checked after every power cut and restart.

Each check returns the problems it found (none: the promise held). The checks read the
device's folders directly (``device_snapshot``), the hub's database read-only, and drive
the running agent only the way the hub can: by sending a document again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.trust.audit_log import AuditLogError, verify_audit_log
from agent.trust.device_keys import load_device_keys, load_device_signing_public
from agent.trust.key_files import KeyFileError
from hil.power_cut.device_snapshot import DeviceSnapshot, audit_events
from hil.power_cut.ledger import Ledger
from hil.power_cut.power_cut_site import AGED_ID_PREFIX, PowerCutSite

ALERTS = "alerts"
AUDIT = "audit"
SEQUENCE = "sequence"
WATCHLIST = "watchlist"
KEYS = "keys"
HUB = "hub store"
REPORTS = "reports"

#: The promises, in the order the table lists them, with what each one means.
PROMISES: tuple[tuple[str, str], ...] = (
    (
        ALERTS,
        "every alert the outbox accepted or the hub acknowledged is stored at the hub exactly once; none corrupt",
    ),
    (
        AUDIT,
        "the audit log verifies (chain, signatures, the hub's anchors) and keeps every entry it had synced; a torn last line is recovered and audited",
    ),
    (
        SEQUENCE,
        "the activation sequence and revocation list never go backwards; a replayed activation is refused",
    ),
    (
        WATCHLIST,
        "a sealed watchlist is whole or absent; a wipe is never undone (a wiped bundle sent again is refused)",
    ),
    (KEYS, "keys and enrolment state are whole and match each other"),
    (HUB, "the hub store keeps every stored alert, adjudication, purge record and report"),
    (REPORTS, "every ended deployment's signed report reaches the hub"),
)

DELIVERY_TIMEOUT_S = 45.0
REPLAY_TIMEOUT_S = 6.0


@dataclass
class Findings:
    """Problems per promise for one crash point; a promise absent here was not checked."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    def checked(self, promise: str, problems: list[str]) -> None:
        self.problems.setdefault(promise, []).extend(problems)

    def held(self, promise: str) -> bool | None:
        if promise not in self.problems:
            return None
        return not self.problems[promise]

    def all_held(self) -> bool:
        return all(not p for p in self.problems.values())


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)


# ---- right after the cut: what survived --------------------------------------------------
def check_survivors(surv: DeviceSnapshot, ledger: Ledger) -> Findings:
    """The lower folder after the cut, before the agent runs again."""
    f = Findings()
    audit: list[str] = []
    if not surv.audit.startswith(ledger.durable_audit):
        audit.append(
            f"the audit log lost synced entries: {len(ledger.durable_audit)} bytes were durable, "
            f"the surviving log differs within them ({len(surv.audit)} bytes)"
        )
    f.checked(AUDIT, audit)
    seq: list[str] = []
    stored = surv.sequence
    if stored == -1:
        seq.append("the activation sequence file is unreadable after the cut")
    elif (stored or 0) < ledger.durable_sequence:
        seq.append(
            f"the activation sequence went back from {ledger.durable_sequence} to {stored or 0}"
        )
    if surv.revocation_version < ledger.durable_revocation:
        seq.append(
            f"the revocation list went back from version {ledger.durable_revocation} "
            f"to {surv.revocation_version}"
        )
    f.checked(SEQUENCE, seq)
    return f


# ---- once the agent runs again --------------------------------------------------------------
def check_running_device(
    site: PowerCutSite, ledger: Ledger, surv: DeviceSnapshot, now: DeviceSnapshot
) -> Findings:
    f = Findings()
    f.checked(AUDIT, _audit(site, ledger, surv, now))
    f.checked(SEQUENCE, _sequence(site, ledger, surv, now))
    f.checked(WATCHLIST, _watchlists(site, ledger, now))
    f.checked(KEYS, _device_keys(site))
    return f


def _audit(
    site: PowerCutSite, ledger: Ledger, surv: DeviceSnapshot, now: DeviceSnapshot
) -> list[str]:
    problems = []
    if not now.audit.startswith(
        surv.audit.rstrip(b"\n") if not surv.audit.endswith(b"\n") else surv.audit
    ):
        problems.append("start-up rewrote the surviving audit log instead of appending to it")
    anchors = {s: h for s, h in site.hub.anchors.items() if s <= _last_seq(now.audit)}
    try:
        report = verify_audit_log(now.audit, site.device_public, anchors)
    except AuditLogError as exc:
        problems.append(f"the audit log does not verify: {exc}")
        return problems
    beyond = {s for s in site.hub.anchors if s > report.head[0]}
    if beyond:
        problems.append(
            f"the audit log ends at seq {report.head[0]}, before entries the hub's reports "
            f"anchored (seq {min(beyond)})"
        )
    if report.torn_tail_line is not None:
        problems.append(f"a torn line {report.torn_tail_line} was left unrecovered at start-up")
    return problems


def _last_seq(audit: bytes) -> int:
    import json

    for line in reversed(audit.split(b"\n")):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def _sequence(
    site: PowerCutSite, ledger: Ledger, surv: DeviceSnapshot, now: DeviceSnapshot
) -> list[str]:
    problems = []
    if (now.sequence or 0) < (surv.sequence or 0):
        problems.append(f"start-up moved the activation sequence back to {now.sequence}")
    owed = ledger.revocation_owed()
    if now.revocation_version < owed:
        problems.append(
            f"the device accepted a document carrying revocation list version {owed} but "
            f"holds version {now.revocation_version}"
        )
    activation = ledger.last_accepted_activation()
    if activation is None:
        return problems
    rejected = len(site.audit_events("control.rejected"))
    site.resend(activation)
    if not wait_until(
        lambda: len(site.audit_events("control.rejected")) > rejected, REPLAY_TIMEOUT_S
    ):
        problems.append(
            f"activation {activation.sequence} of {activation.deployment_id}, accepted before "
            "the cut, was not refused when sent again"
        )
    started = [
        e
        for e in site.audit_events("deployment.started")
        if e.get("sequence") == activation.sequence
    ]
    if len(started) > 1:
        problems.append(f"activation {activation.sequence} started a deployment twice")
    return problems


def _watchlists(site: PowerCutSite, ledger: Ledger, now: DeviceSnapshot) -> list[str]:
    problems = []
    sent = ledger.bundle_by_sha256()
    for name, sha in sorted(now.watchlist_files.items()):
        bundle = sent.get(sha)
        if bundle is None or name != f"{bundle.watchlist_hash}.lfrwl":
            problems.append(f"watchlist folder holds {name}, which is not a whole sealed bundle")
    held = {n.removesuffix(".lfrwl") for n in now.watchlist_files if n.endswith(".lfrwl")}
    if now.index_hashes == "unreadable":
        problems.append("the watchlist index is unreadable")
    elif isinstance(now.index_hashes, set) and now.index_hashes != held:
        problems.append(
            f"the watchlist index lists {sorted(h[:12] for h in now.index_hashes)} but the "
            f"folder holds {sorted(h[:12] for h in held)}"
        )
    stopped = ledger.stops_accepted()
    for h in sorted(held):
        b = ledger.bundles.get(h)
        if h in ledger.wiped:
            problems.append(f"watchlist {h[:12]} is back after its wipe was recorded")
        elif b is not None and b.deployment_id in stopped:
            problems.append(
                f"watchlist {h[:12]} of {b.deployment_id} is still held after its stop was accepted"
            )
    gone = [ledger.bundles[h] for h in ledger.wiped if h in ledger.bundles]
    if gone:
        again = max(gone, key=lambda b: b.deployment_id)
        refused = len(site.audit_events("watchlist.refused"))
        site.send_watchlist_bytes(again.data)
        if not wait_until(
            lambda: len(site.audit_events("watchlist.refused")) > refused, REPLAY_TIMEOUT_S
        ):
            problems.append(
                f"wiped watchlist {again.watchlist_hash[:12]} sent again was not refused"
            )
        if (site.state_dir / "watchlists" / f"{again.watchlist_hash}.lfrwl").exists():
            problems.append(f"wiped watchlist {again.watchlist_hash[:12]} was stored again")
    return problems


def _device_keys(site: PowerCutSite) -> list[str]:
    keys_dir = site.site.keys_dir
    try:
        keys = load_device_keys(keys_dir)
        public = load_device_signing_public(keys_dir)
    except KeyFileError as exc:
        return [f"device keys: {exc}"]
    if public != keys.signing.public_key() or public != site.device_public:
        return ["the device's public signing key no longer matches its private key"]
    return []


# ---- alerts, at the hub --------------------------------------------------------------------
def hub_alert_ids(site: PowerCutSite) -> tuple[set[str], set[str], list[str]]:
    """(stored, tombstoned, problems) read from the hub database (read-only)."""
    problems: list[str] = []
    try:
        db = sqlite3.connect(f"file:{site.site.hub_db}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return set(), set(), [f"hub store: cannot open: {exc}"]
    try:
        stored = {r[0] for r in db.execute("SELECT alert_id FROM alerts")}
        purged = {r[0] for r in db.execute("SELECT alert_id FROM purged_alerts")}
        dup = db.execute(
            "SELECT device_id, key_id, seq, COUNT(*) FROM (SELECT device_id, key_id, seq FROM "
            "alerts UNION ALL SELECT device_id, key_id, seq FROM purged_alerts) "
            "GROUP BY device_id, key_id, seq HAVING COUNT(*) > 1"
        ).fetchall()
        for device, _kid, seq, n in dup:
            problems.append(f"alert sequence {seq} of {device} is held {n} times at the hub")
        both = stored & purged
        if both:
            problems.append(f"{len(both)} alerts are both stored and purged at the hub")
    except sqlite3.Error as exc:
        problems.append(f"hub store: cannot read: {exc}")
        stored, purged = set(), set()
    finally:
        db.close()
    return stored, purged, problems


def check_alerts(site: PowerCutSite, ledger: Ledger, now: DeviceSnapshot | None) -> list[str]:
    """Every accepted alert ends up at the hub (waits for the outbox to drain)."""
    owed = ledger.accepted_alerts | site.hub.stored_ids() | site.acks.acked_ids()
    owed = {a for a in owed if not a.startswith(AGED_ID_PREFIX)}
    problems: list[str] = []
    held: set[str] = set()

    def delivered() -> bool:
        nonlocal held
        stored, purged, _ = hub_alert_ids(site)
        held = stored | purged
        return owed <= held

    wait_until(delivered, DELIVERY_TIMEOUT_S, poll=0.3)
    missing = owed - held
    if missing:
        problems.append(
            f"{len(missing)} accepted alert(s) never reached the hub: "
            + ", ".join(sorted(m[:12] for m in missing)[:5])
        )
    _, _, dup = hub_alert_ids(site)
    problems += dup
    if now is not None:
        bad = [q for q in now.quarantined if any(a in q for a in owed)]
        if bad:
            problems.append(f"accepted alert entries were quarantined as damaged: {bad[:3]}")
    return problems


# ---- the hub's own records ------------------------------------------------------------------
#: How long the checker retries a read of the hub's database that SQLite refused (the hub
#: may be recovering its write-ahead log right after its restart). A refusal that lasts
#: longer is a broken promise.
HUB_READ_RETRY_S = 20.0


def check_hub_store(site: PowerCutSite, ledger: Ledger) -> list[str]:
    deadline = time.monotonic() + HUB_READ_RETRY_S
    refused: list[str] = []
    while True:
        problems = _check_hub_store_once(site, ledger)
        unreadable = [p for p in problems if p.startswith("hub store: cannot")]
        if not unreadable or time.monotonic() > deadline:
            break
        refused.append(unreadable[0])
        time.sleep(0.5)
    if refused and not unreadable:
        # Said on the console, not counted: the hub's own data was whole once readable.
        print(
            f"  (hub store: the read-only check was refused {len(refused)} time(s) while the "
            f"hub restarted, first: {refused[0]}; then read)",
            flush=True,
        )
    return problems


def _check_hub_store_once(site: PowerCutSite, ledger: Ledger) -> list[str]:
    problems: list[str] = []
    committed = site.hub.stored_ids() | site.acks.acked_ids()
    stored, purged, dup = hub_alert_ids(site)
    problems += dup
    lost = committed - stored - purged
    if lost:
        problems.append(
            f"{len(lost)} alert(s) the hub committed or acknowledged are gone from its store: "
            + ", ".join(sorted(a[:12] for a in lost)[:5])
        )
    try:
        db = sqlite3.connect(f"file:{site.site.hub_db}?mode=ro", uri=True, timeout=30)
        try:
            outcomes = {
                (r[0], r[1])
                for r in db.execute(
                    "SELECT a.alert_id, j.outcome FROM adjudications j "
                    "JOIN alerts a ON a.row_id = j.alert_row_id"
                )
            }
            runs = db.execute("SELECT COUNT(*) FROM purge_log").fetchone()[0]
            reports = {
                (r[0], int(r[1]))
                for r in db.execute(
                    "SELECT deployment_id, activation_sequence FROM deployment_reports"
                )
            }
            check = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return [*problems, f"hub store: cannot read: {exc}"]
    if check != "ok":
        problems.append(f"hub store integrity check: {check}")
    for alert_id, outcome in sorted(ledger.adjudications.items()):
        if (alert_id, outcome) not in outcomes and alert_id not in purged:
            problems.append(
                f"adjudication of {alert_id[:12]} ({outcome}) is gone from the hub store"
            )
    if runs < ledger.purges:
        problems.append(f"the hub's purge record holds {runs} runs, {ledger.purges} were done")
    missing = site.hub.reports - reports
    if missing:
        problems.append(f"{len(missing)} stored report(s) gone from the hub store")
    return problems


def check_reports(site: PowerCutSite, now: DeviceSnapshot) -> list[str]:
    """Every deployment the device's audit log says ended has its report at the hub."""
    ended = {str(e.get("deployment_id")) for e in audit_events(now.audit, "deployment.ended")}

    def arrived() -> bool:
        return ended <= site.hub.report_deployments()

    if wait_until(arrived, DELIVERY_TIMEOUT_S, poll=0.3):
        return []
    missing = ended - site.hub.report_deployments()
    return [f"report(s) of {sorted(missing)[:3]} never reached the hub"]


def device_public(site: PowerCutSite) -> Ed25519PublicKey:
    return site.device_public

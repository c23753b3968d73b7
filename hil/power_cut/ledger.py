"""What the site promised so far: every fact the checks hold the device and the hub to.

Facts come only from places that outlive a power cut of the machine they describe: the
lower folder of its LazyFS mount (what was fsynced), the other machine (the hub's
printed commits and acknowledgements for the device, the rig's own records), and the
agent's log, which is written to the ordinary disk.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from hil.power_cut.device_snapshot import DeviceSnapshot
from hil.power_cut.power_cut_site import AGED_ID_PREFIX, SentDocument

_SEALED_LOG_RE = re.compile(r"alert sealed and queued \[.*alert_id=([0-9a-f]{32})")


@dataclass(frozen=True)
class SentBundle:
    watchlist_hash: str
    deployment_id: str
    sha256: str  # of the sealed bytes as sent
    data: bytes = field(repr=False)


@dataclass
class Ledger:
    bundles: dict[str, SentBundle] = field(default_factory=dict)
    docs: list[SentDocument] = field(default_factory=list)
    #: Alerts the device took into its outbox (or the hub stored or acknowledged).
    accepted_alerts: set[str] = field(default_factory=set)
    #: Activation sequences seen durable on the device (stored, or named by the audit log),
    #: and the highest revocation list version seen durable.
    accepted_sequences: set[int] = field(default_factory=set)
    durable_revocation: int = 0
    #: The device's audit log as durable at the last check: it must stay a prefix.
    durable_audit: bytes = b""
    #: Deployments whose end for good (a signed stop) was accepted.
    stopped: set[str] = field(default_factory=set)
    #: Watchlists recorded as stored, and those of them whose wipe is on record (a bundle
    #: whose import a cut interrupted is wiped as an orphan: it was never stored).
    loaded: set[str] = field(default_factory=set)
    wiped: set[str] = field(default_factory=set)
    #: Hub side: adjudications and purge runs the hub's CLI reported done.
    adjudications: dict[str, str] = field(default_factory=dict)
    purges: int = 0
    _log_read: int = 0

    def add_bundle(self, watchlist_hash: str, deployment_id: str, data: bytes) -> None:
        self.bundles[watchlist_hash] = SentBundle(
            watchlist_hash, deployment_id, hashlib.sha256(data).hexdigest(), data
        )

    def bundle_by_sha256(self) -> dict[str, SentBundle]:
        return {b.sha256: b for b in self.bundles.values()}

    def observe_durable(self, lower: DeviceSnapshot) -> None:
        """Take in what the lower folder holds (durable) while the agent runs."""
        if lower.sequence is not None and lower.sequence > 0:
            self.accepted_sequences.add(lower.sequence)
        self.durable_revocation = max(self.durable_revocation, lower.revocation_version)
        self.take_audit_facts(lower)

    def take_audit_facts(self, snap: DeviceSnapshot) -> None:
        """Alerts sealed, stops applied, watchlists wiped: facts the audit log records."""
        for f in snap.audit_events("alert.sealed"):
            self.accepted_alerts.add(str(f.get("alert_id")))
        for f in snap.audit_events("control.stop"):
            self.stopped.add(str(f.get("deployment_id")))
        for f in snap.audit_events("watchlist.loaded"):
            self.loaded.add(str(f.get("watchlist_hash")))
        for f in snap.audit_events("watchlist.wiped"):
            h = str(f.get("watchlist_hash"))
            if h in self.loaded:
                self.wiped.add(h)
        for event in ("deployment.started", "gate.opening", "gate.opened"):
            for f in snap.audit_events(event):
                seq = f.get("sequence")
                if isinstance(seq, int):
                    self.accepted_sequences.add(seq)

    def take_outbox(self, snap: DeviceSnapshot) -> None:
        self.accepted_alerts.update(i for i in snap.outbox_ids if not i.startswith(AGED_ID_PREFIX))

    def read_agent_log(self, path: Path) -> None:
        """Alerts the agent logged as sealed and queued (logged after the outbox took them)."""
        try:
            with path.open("rb") as f:
                f.seek(self._log_read)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._log_read += end
        for m in _SEALED_LOG_RE.finditer(data[:end].decode("utf-8", "replace")):
            self.accepted_alerts.add(m.group(1))

    @property
    def durable_sequence(self) -> int:
        return max(self.accepted_sequences, default=0)

    def accepted_docs(self) -> list[SentDocument]:
        return [d for d in self.docs if d.sequence in self.accepted_sequences]

    def last_accepted_activation(self) -> SentDocument | None:
        done = [d for d in self.accepted_docs() if d.kind == "activation"]
        return max(done, key=lambda d: d.sequence) if done else None

    def stops_accepted(self) -> set[str]:
        return self.stopped | {d.deployment_id for d in self.accepted_docs() if d.kind == "stop"}

    def revocation_owed(self) -> int:
        """The revocation version the device must hold: every control document carries
        the hub's list, and the device adopts it with the document."""
        return max((d.revocation_version for d in self.accepted_docs()), default=0)

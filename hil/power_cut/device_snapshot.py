"""What a device's folders hold at one moment, read without the agent's code paths.

Read from LazyFS's lower folder right after a power cut, a snapshot is exactly what
survived the cut (LazyFS writes file data to the lower folder only when it is fsynced);
read through the mount while the agent runs, it is what the agent works with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from agent.trust.hub_trust_store import REVOCATIONS_FILE
from agent.trust.key_certificates import CertificateError, open_revocation_list
from agent.trust.sequence_store import SEQUENCE_FILE
from agent.trust.signed_document import loads_untrusted

_ENTRY_RE = re.compile(r"^([0-9]{20})-([0-9a-f]{32})\.alert$")
#: Files of the watchlist folder that are neither a sealed bundle nor a temporary one.
WATCHLIST_BOOKKEEPING = frozenset({"index.json", ".lock"})


@dataclass
class DeviceSnapshot:
    audit: bytes = b""
    #: The stored activation sequence; None when the file is absent, -1 when unreadable.
    sequence: int | None = None
    #: The stored revocation list's version; -1 when unreadable.
    revocation_version: int = 0
    outbox_ids: set[str] = field(default_factory=set)
    outbox_other: list[str] = field(default_factory=list)  # temporary or unexpected names
    quarantined: list[str] = field(default_factory=list)
    #: Every file in the watchlist folder but the bookkeeping ones: name → SHA-256.
    watchlist_files: dict[str, str] = field(default_factory=dict)
    #: Hashes the watchlist index lists; None when absent, "unreadable" otherwise.
    index_hashes: set[str] | str | None = None
    index_high_water: dict[str, float] = field(default_factory=dict)
    reports: set[str] = field(default_factory=set)

    def audit_events(self, event: str) -> list[dict[str, object]]:
        return audit_events(self.audit, event)


def take(state_dir: Path, keys_dir: Path, root_public: object) -> DeviceSnapshot:
    """Read the state and key folders (``root_public`` verifies the revocation list)."""
    snap = DeviceSnapshot()
    with contextlib.suppress(FileNotFoundError):
        snap.audit = (state_dir / "audit.jsonl").read_bytes()
    snap.sequence = _sequence(state_dir / SEQUENCE_FILE)
    snap.revocation_version = _revocation_version(keys_dir / REVOCATIONS_FILE, root_public)
    outbox = state_dir / "outbox"
    if outbox.is_dir():
        for p in outbox.iterdir():
            if p.is_dir():
                continue
            m = _ENTRY_RE.match(p.name)
            if m:
                snap.outbox_ids.add(m.group(2))
            elif p.name != "sequence":
                snap.outbox_other.append(p.name)
        quarantine = outbox / "quarantine"
        if quarantine.is_dir():
            snap.quarantined = sorted(p.name for p in quarantine.iterdir())
    wl = state_dir / "watchlists"
    if wl.is_dir():
        for p in wl.iterdir():
            if p.name in WATCHLIST_BOOKKEEPING or p.is_dir():
                continue
            try:
                snap.watchlist_files[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
            except FileNotFoundError:
                continue  # wiped while this was read
        snap.index_hashes, snap.index_high_water = _index(wl / "index.json")
    reports = state_dir / "reports"
    if reports.is_dir():
        snap.reports = {p.name for p in reports.iterdir()}
    return snap


def _sequence(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        value = loads_untrusted(data)["last_sequence"]
    except (ValueError, KeyError, TypeError):
        return -1
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _revocation_version(path: Path, root_public: object) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    try:
        return open_revocation_list(data, root_public).version  # type: ignore[arg-type]
    except (CertificateError, ValueError):
        return -1


def _index(path: Path) -> tuple[set[str] | str | None, dict[str, float]]:
    try:
        raw = json.loads(path.read_bytes())
        return set(raw["stored"]), {str(k): float(v) for k, v in raw["high_water"].items()}
    except FileNotFoundError:
        return None, {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unreadable", {}


def audit_events(audit: bytes, event: str) -> list[dict[str, object]]:
    """The fields of every well-formed entry of ``event`` (a torn line is skipped)."""
    out = []
    for line in audit.split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            fields = entry.get("fields")
            out.append(fields if isinstance(fields, dict) else {})
    return out

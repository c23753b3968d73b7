"""A hub with its console set up in a folder, for the tests and the console latency
benchmark: the CA and the console's HTTPS certificate, the audit key, the hub config
(``serve`` without a broker unless told), and one user per role whose TOTP codes the
caller can compute."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp

from agent.hub.accounts.console_accounts import TOTP_STEP_S, ConsoleAccounts
from agent.hub.audit.hub_audit_log import HubAudit, make_audit_key
from agent.hub.keys.pki import init_ca, issue_console_cert
from agent.hub.store.database import HubDatabase

PASSWORD = "correct horse battery"
USERS = {"olive": "operator", "sam": "supervisor", "aud": "auditor"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HubSetup:
    root: Path
    config: Path
    db_path: Path
    audit_log: Path
    audit_key: Path
    port: int
    secrets: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def code(self, username: str, *, step_offset: int = 0) -> str:
        """A TOTP code for the user; ``step_offset`` picks a neighbouring time step."""
        at = time.time() + step_offset * TOTP_STEP_S
        return pyotp.TOTP(self.secrets[username]).at(int(at))

    def audit(self) -> HubAudit:
        return HubAudit.open(self.audit_log, self.audit_key, 20)


@dataclass(frozen=True)
class BrokerLink:
    """Where ``serve``'s intake connects: the broker's address and PKI folder (holding
    ``clients/hub.main-*.pem``) and the hub alert key file."""

    address: str
    pki_dir: Path
    alert_key: Path


def make_hub(
    root: Path, *, database_url: str | None = None, broker: BrokerLink | None = None
) -> HubSetup:
    pki = root / "pki"
    init_ca(pki)
    issue_console_cert(pki, ["127.0.0.1", "localhost"])
    keys = root / "keys"
    keys.mkdir(mode=0o700)
    audit_key = keys / "hub-audit-key.pem"
    make_audit_key(audit_key)
    db_path = root / "hub.db"
    url = database_url or str(db_path)
    port = free_port()
    config = root / "hub.toml"
    broker_section = "[broker]\nenabled = false"
    if broker is not None:
        broker_section = (
            f'[broker]\naddress = "{broker.address}"\npki_dir = "{broker.pki_dir}"\n'
            f'alert_key = "{broker.alert_key}"\npurge_every_s = 600.0'
        )
    config.write_text(
        f"""
[database]
url = "{url}"

{broker_section}

[console]
port = {port}
tls_cert = "{pki / "console-cert.pem"}"
tls_key = "{pki / "console-key.pem"}"

[audit]
log = "{root / "audit" / "hub-audit.jsonl"}"
signing_key = "{audit_key}"
"""
    )
    db = HubDatabase(url)
    secrets: dict[str, str] = {}
    try:
        accounts = ConsoleAccounts(db)
        for name, role in USERS.items():
            accounts.add_user(name, role, PASSWORD)
            secrets[name] = accounts.totp_secret(name, PASSWORD)
    finally:
        db.close()
    return HubSetup(
        root, config, db_path, root / "audit" / "hub-audit.jsonl", audit_key, port, secrets
    )

"""A hub (key store, broker CA, alert database) and a device folder, both in a temp dir.

Everything is real: keys, certificates, signatures and files. The device config starts
with the example device id, as a fresh install leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support.operator_passphrase import PASSPHRASE, passphrase_file

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.keys.pki import init_ca
from agent.trust.signed_document import key_id


@dataclass
class Site:
    root: Path
    hub_dir: Path
    pki_dir: Path
    db: Path
    keys_dir: Path
    config: Path
    device_id: str
    broker_url: str

    @property
    def root_fingerprint(self) -> str:
        return key_id(HubKeyStore.open(self.hub_dir).root_public())

    def cfg(self) -> list[str]:
        return ["-c", str(self.config)]

    def request(self, out: Path | None = None) -> Path:
        out = out or self.root / "request.json"
        assert (
            agent_main(["enrol", "request", "--id", self.device_id, "--out", str(out), *self.cfg()])
            == 0
        )
        return out

    def approve(self, request: Path, *extra: str) -> Path:
        out = self.root / "bundle.json"
        rc = hub_main(
            [
                "device",
                "approve",
                str(request),
                "--out",
                str(out),
                "--hub-dir",
                str(self.hub_dir),
                "--pki-dir",
                str(self.pki_dir),
                "--broker-url",
                self.broker_url,
                "--db",
                str(self.db),
                "--passphrase-file",
                str(passphrase_file(self.root)),
                *extra,
            ]
        )
        assert rc == 0
        return out

    def complete(self, bundle: Path, *extra: str) -> int:
        return agent_main(["enrol", "complete", str(bundle), *self.cfg(), *extra])

    def enrol(self) -> None:
        bundle = self.approve(self.request())
        assert self.complete(bundle, "--root-fingerprint", self.root_fingerprint) == 0


def make_site(
    root: Path,
    device_id: str = "cam-07",
    *,
    pki_dir: Path | None = None,
    broker_url: str = "mqtts://127.0.0.1:8883",
    extra_config: str = "",
) -> Site:
    hub_dir = root / "hub"
    HubKeyStore.init(hub_dir, "supervisor", passphrase=PASSPHRASE)  # role supervisor: may approve
    if pki_dir is None:
        pki_dir = root / "pki"
        init_ca(pki_dir, name="enrolment test CA")
    device = root / "device"
    keys_dir = device / "keys"
    config = device / "agent.toml"
    device.mkdir(parents=True)
    config.write_text(
        '[device]\nid = "lfr-demo-01"\n\n'
        f'[paths]\nkeys_dir = "{keys_dir}"\nstate_dir = "{device / "state"}"\n'
        f'runtime_dir = "{device / "run"}"\n{extra_config}'
    )
    return Site(
        root,
        hub_dir,
        pki_dir,
        root / "hub-db" / "alerts.db",
        keys_dir,
        config,
        device_id,
        broker_url,
    )

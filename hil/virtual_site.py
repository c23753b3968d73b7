"""A whole site on one machine: hub keys, a broker, one enrolled device with a replay
camera, and the hub's alert database. Used by the end-to-end tests, the demo and the
virtual HIL rig.

Everything is real: keys are generated (the device's on the device side of the tree),
the broker is the shipped mosquitto config with mutual TLS and the ACL, the device
runs ``lfr-agent run`` as its own process. Only the camera is a replay of a scene.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.hub.keys.operator_keys import HubKeyStore, HubKeyStoreError
from agent.hub.keys.pki import hub_identity
from agent.hub.store.alert_store import AlertStore
from agent.matching.watchlist_bundle import SealedBundle, WatchlistContent, build_bundle
from agent.protocol.topics import activation_topic, watchlist_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.device_keys import DeviceKeys, generate_device_keys
from agent.trust.key_files import load_public_key
from hil.local_broker import MosquittoBroker

SUPERVISOR = "supervisor-1"


@dataclass
class DeviceProcess:
    """``lfr-agent run`` as a child process, its output in a log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class VirtualSite:
    root: Path
    broker: MosquittoBroker
    models_dir: Path
    device_id: str = "lfr-demo-01"
    hub: HubKeyStore = field(init=False)
    device_keys: DeviceKeys = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.hub = HubKeyStore.open(self.hub_dir)
        except HubKeyStoreError:
            self.hub = HubKeyStore.init(self.hub_dir, SUPERVISOR, "supervisor")
        # The device side: its keys are born here and only public halves leave it.
        self.hub.export_device_trust(self.keys_dir)
        if (self.keys_dir / "device-ed25519-key.pem").exists():
            from agent.trust.device_keys import load_device_keys

            self.device_keys = load_device_keys(self.keys_dir)
        else:
            self.device_keys = generate_device_keys(self.keys_dir)
        ca, cert, key = self.broker.client_files(self.device_id)
        shutil.copyfile(ca, self.keys_dir / "broker-ca.pem")
        shutil.copyfile(cert, self.keys_dir / "device-cert.pem")
        shutil.copyfile(key, self.keys_dir / "device-tls-key.pem")
        os.chmod(self.keys_dir / "device-tls-key.pem", 0o600)
        store = AlertStore(self.hub_db)
        try:
            store.register_device_key(self.device_id, self.device_keys.signing_public)
        finally:
            store.close()

    # -- layout -----------------------------------------------------------------------------
    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def hub_db(self) -> Path:
        return self.root / "hub" / "alerts.db"

    @property
    def device_dir(self) -> Path:
        return self.root / "device"

    @property
    def keys_dir(self) -> Path:
        return self.device_dir / "keys"

    @property
    def state_dir(self) -> Path:
        return self.device_dir / "state"

    @property
    def config_path(self) -> Path:
        return self.device_dir / "agent.toml"

    # -- device ------------------------------------------------------------------------------
    def write_device_config(
        self, camera: Path, fps: int = 15, loop: bool = True, **extra: str
    ) -> Path:
        """The device's agent.toml: replay camera, this broker, this folder tree."""
        k = self.keys_dir
        text = f"""[device]
id = "{self.device_id}"

[paths]
state_dir = "{self.state_dir}"
keys_dir = "{k}"
models_dir = "{self.models_dir}"
runtime_dir = "{self.device_dir / "run"}"

[camera]
source = "replay"
device = "{camera}"
fps = {fps}
loop = {str(loop).lower()}

[activation]
# This machine's clock is not NTP-synchronised; a deployed device's is.
require_clock_sync = false

[mqtt]
host = "{self.broker.host}"
port = {self.broker.port}
ca_file = "{k / "broker-ca.pem"}"
cert_file = "{k / "device-cert.pem"}"
key_file = "{k / "device-tls-key.pem"}"
keepalive_s = 5
reconnect_min_s = 0.2
reconnect_max_s = 2.0

[health]
status_interval_s = 2.0
"""
        for section, body in extra.items():
            text += f"\n[{section}]\n{body}\n"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(text)
        return self.config_path

    def start_device(self, env: dict[str, str] | None = None) -> DeviceProcess:
        log_path = self.device_dir / "agent.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("OPENBLAS_NUM_THREADS", "1")
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent.cli.agent_main",
                    "run",
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        return DeviceProcess(proc, log_path)

    # -- hub ---------------------------------------------------------------------------------
    def hub_link(self, name: str = "main") -> MqttLink:
        """A hub connection as ``hub.<name>`` (every hub role). The broker binds a session
        to its certificate, so two links that run at once need two names."""
        return MqttLink(self.broker.client_settings(hub_identity(name)))

    def issuer(self) -> ActivationIssuer:
        return ActivationIssuer(self.hub, SUPERVISOR, "")

    def device_exchange_key(self) -> X25519PublicKey:
        return load_public_key(self.keys_dir / "device-x25519-pub.pem", X25519PublicKey)  # type: ignore[type-abstract]

    def build_watchlist(
        self,
        refs: list[str],
        embeddings: object,
        deployment_id: str,
        model_id: str,
        model_sha256: str,
        expires_in_s: float = 12 * 3600,
    ) -> SealedBundle:
        now = time.time()
        content = WatchlistContent(
            deployment_id=deployment_id,
            devices=(self.device_id,),
            created_at=now,
            expires_at=now + expires_in_s,
            model_id=model_id,
            model_sha256=model_sha256,
            refs=refs,
            embeddings=embeddings,  # type: ignore[arg-type]
        )
        return build_bundle(
            content, self.hub.watchlist_signing_key(), {self.device_id: self.device_exchange_key()}
        )

    def send_watchlist(self, link: MqttLink, bundle: SealedBundle) -> None:
        link.publish(watchlist_topic(self.device_id), bundle.data)

    def send_control(self, link: MqttLink, document: bytes) -> None:
        link.publish(activation_topic(self.device_id), document)

"""A local mosquitto run from the shipped broker config, for the demo, the virtual HIL
rig and the tests: a fresh PKI, a free loopback port, start/stop/restart/kill.

The config is ``configs/mosquitto/lfr.conf`` and ``configs/mosquitto/acl`` as shipped,
with paths, the port and (when run as root) ``user root`` rewritten, so what runs here
is the configuration operators install.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from agent.hub.pki import hub_identity, init_ca, issue_broker_cert, issue_client_cert
from agent.transport.mqtt_link import MqttSettings

MOSQUITTO = Path(os.environ.get("LFR_MOSQUITTO", "/usr/sbin/mosquitto"))
REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPO_ROOT / "configs" / "mosquitto" / "lfr.conf"
SHIPPED_ACL = REPO_ROOT / "configs" / "mosquitto" / "acl"
HUB_CN = hub_identity("main")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """One mosquitto process under test control."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pki_dir = workdir / "pki"
        self.data_dir = workdir / "data"
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self.acl_path = workdir / "acl"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # An existing PKI (made with `lfr-hub pki init|issue`) is used as it is.
        if not (self.pki_dir / "ca.pem").exists():
            init_ca(self.pki_dir, name="lfr test CA")
        if not (self.pki_dir / "broker-cert.pem").exists():
            issue_broker_cert(self.pki_dir, ["127.0.0.1", "localhost"])
        shutil.copyfile(SHIPPED_ACL, self.acl_path)
        self.conf_path.write_text(self._render_config(), encoding="utf-8")

    def _render_config(self) -> str:
        replace = {
            "pid_file": f"pid_file {self.workdir / 'mosquitto.pid'}",
            "persistence_location": f"persistence_location {self.data_dir}/",
            "log_dest": f"log_dest file {self.log_path}",
            "acl_file": f"acl_file {self.acl_path}",
            "listener": f"listener {self.port} 127.0.0.1",
            "cafile": f"cafile {self.pki_dir / 'ca.pem'}",
            "certfile": f"certfile {self.pki_dir / 'broker-cert.pem'}",
            "keyfile": f"keyfile {self.pki_dir / 'broker-key.pem'}",
        }
        out = []
        for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines():
            word = line.split(" ", 1)[0]
            out.append(replace.get(word, line))
        if os.geteuid() == 0:
            # Running as root mosquitto would drop to user "mosquitto", which cannot
            # read the 0600 keys in the test folder.
            out.insert(0, "user root")
        out.append("log_type information")
        return "\n".join(out) + "\n"

    # ---- process control --------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start; log:\n{self.log_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("mosquitto did not open its port in time")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (persists its state) or SIGKILL (a crash)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # ---- clients ----------------------------------------------------------------
    def client_files(self, common_name: str) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) for a client with this CN, issued on first use."""
        cert = self.pki_dir / "clients" / f"{common_name}-cert.pem"
        key = self.pki_dir / "clients" / f"{common_name}-key.pem"
        if not cert.exists():
            issue_client_cert(self.pki_dir, common_name)
        return self.pki_dir / "ca.pem", cert, key

    def client_settings(
        self, common_name: str, client_id: str | None = None, *, keepalive_s: int = 5
    ) -> MqttSettings:
        ca, cert, key = self.client_files(common_name)
        return MqttSettings(
            host=self.host,
            port=self.port,
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            client_id=client_id or common_name,
            keepalive_s=keepalive_s,
            session_expiry_s=3600,
            reconnect_min_s=0.1,
            reconnect_max_s=1.0,
        )

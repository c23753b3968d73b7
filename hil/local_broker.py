"""A local mosquitto run from the shipped broker config, for the demo, the virtual HIL
rig and the tests: a fresh PKI, a free loopback port, start/stop/restart/kill.

The config is ``configs/mosquitto/lfr.conf`` as shipped, with only paths, the port and
(when run as root) ``user root`` rewritten, so what runs here is the configuration
operators install: certificate names as identities and client ids, the revocation list,
the dynamic-security plugin with its deny-by-default rules, the size limits.

Clients get their rights the way an operator grants them (``lfr-hub broker grant``):
through the broker administrator's connection (``agent/hub/keys/broker_admin.py``).
``client_settings(cn)`` issues a certificate and grants on first use: a device its own
topics, a hub identity every hub role unless ``roles`` says otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from agent.hub.keys.broker_access import (
    ADMIN_IDENTITY,
    BOOTSTRAP_FILE,
    HUB_ROLES,
    Grant,
    grant_for,
    write_bootstrap,
)
from agent.hub.keys.broker_admin import BrokerAdmin
from agent.hub.keys.pki import (
    crl_path,
    ensure_crl,
    hub_identity,
    init_ca,
    issue_broker_cert,
    issue_client_cert,
)
from agent.transport.mqtt_link import MqttSettings

MOSQUITTO = Path(os.environ.get("LFR_MOSQUITTO", "/usr/sbin/mosquitto"))
REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPO_ROOT / "configs" / "mosquitto" / "lfr.conf"
HUB_CN = hub_identity("main")


def dynsec_plugin() -> Path:
    """The dynamic-security plugin of the installed mosquitto (its folder is per architecture)."""
    found = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))
    if not found:
        raise RuntimeError("mosquitto_dynamic_security.so not found (apt-get install mosquitto)")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """One mosquitto process under test control."""

    def __init__(
        self, workdir: Path, *, pki_dir: Path | None = None, extra_config: Sequence[str] = ()
    ) -> None:
        """``pki_dir``: a CA shared with other brokers of one fleet (default: a new one in
        ``workdir``); ``extra_config``: lines appended to the shipped configuration (a
        bridge). Each broker keeps its own rules: grant a client on every broker it may
        use."""
        self.workdir = workdir
        self.pki_dir = pki_dir or workdir / "pki"
        self.extra_config = list(extra_config)
        self.data_dir = workdir / "data"
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self.rules_path = self.data_dir / BOOTSTRAP_FILE
        self.port = free_port()
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._granted: dict[str, Grant] = {}
        self._pending: list[Grant] = []
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # An existing PKI (made with `lfr-hub pki init|issue`) is used as it is.
        if not (self.pki_dir / "ca.pem").exists():
            init_ca(self.pki_dir, name="lfr test CA")
        if not (self.pki_dir / "broker-cert.pem").exists():
            issue_broker_cert(self.pki_dir, ["127.0.0.1", "localhost"])
        ensure_crl(self.pki_dir)
        # The broker's rule state, as an operator installs it: from the PKI folder if
        # `lfr-hub pki init` wrote one there, else a fresh first state.
        if not self.rules_path.exists():
            made = self.pki_dir / BOOTSTRAP_FILE
            if made.exists():
                shutil.copyfile(made, self.rules_path)
            else:
                write_bootstrap(self.data_dir)
        self.conf_path.write_text(self._render_config(), encoding="utf-8")

    def _render_config(self) -> str:
        replace = {
            "pid_file": f"pid_file {self.workdir / 'mosquitto.pid'}",
            "persistence_location": f"persistence_location {self.data_dir}/",
            "log_dest": f"log_dest file {self.log_path}",
            "plugin": f"plugin {dynsec_plugin()}",
            "plugin_opt_config_file": f"plugin_opt_config_file {self.rules_path}",
            "listener": f"listener {self.port} 127.0.0.1",
            "cafile": f"cafile {self.pki_dir / 'ca.pem'}",
            "certfile": f"certfile {self.pki_dir / 'broker-cert.pem'}",
            "keyfile": f"keyfile {self.pki_dir / 'broker-key.pem'}",
            "crlfile": f"crlfile {crl_path(self.pki_dir)}",
        }
        out = []
        seen = set()
        for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines():
            word = line.split(" ", 1)[0]
            seen.add(word)
            out.append(replace.get(word, line))
        missing = sorted(set(replace) - seen)
        if missing:
            raise RuntimeError(f"{SHIPPED_CONF}: expected settings missing: {', '.join(missing)}")
        if os.geteuid() == 0:
            # Running as root mosquitto would drop to user "mosquitto", which cannot
            # read the 0600 keys in the test folder.
            out.insert(0, "user root")
        out.append("log_type information")
        out.extend(self.extra_config)
        return "\n".join(out) + "\n"

    # ---- process control --------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

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
                    break
            except OSError:
                time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("mosquitto did not open its port in time")
        pending, self._pending = self._pending, []
        for grant in pending:
            self._apply(grant)

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

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads the revocation list (``systemctl reload mosquitto``)."""
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGHUP)
            # The broker handles the signal at its next loop turn; a client connecting
            # after that sees the new list.
            time.sleep(0.3)

    def setting(self, name: str) -> str:
        """The value of ``name`` in the config the broker runs (one word per setting)."""
        for line in self.conf_path.read_text(encoding="utf-8").splitlines():
            word, _, value = line.partition(" ")
            if word == name:
                return value.strip()
        raise KeyError(name)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # ---- clients ----------------------------------------------------------------
    def client_files(
        self, common_name: str, *, roles: tuple[str, ...] | None = None, grant: bool = True
    ) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) for a client with this CN, issued on first use, and (with
        ``grant``) its broker rights: a device's own topics, a hub identity's ``roles``
        (default: every hub role)."""
        cert = self.pki_dir / "clients" / f"{common_name}-cert.pem"
        key = self.pki_dir / "clients" / f"{common_name}-key.pem"
        if not cert.exists():
            issue_client_cert(self.pki_dir, common_name)
        if grant and common_name != ADMIN_IDENTITY:
            self.grant(common_name, roles)
        return self.pki_dir / "ca.pem", cert, key

    def grant(self, common_name: str, roles: tuple[str, ...] | None = None) -> None:
        """Give ``common_name`` its rights at the broker (now, or when it starts)."""
        wanted = grant_for(common_name, HUB_ROLES if roles is None else roles)
        if self._granted.get(common_name) == wanted:
            return
        self._granted[common_name] = wanted
        if self.running:
            self._apply(wanted)
        else:
            self._pending.append(wanted)

    def revoke_access(self, common_name: str) -> bool:
        """Remove a client's rights (the broker disconnects it if connected)."""
        self._granted.pop(common_name, None)
        with BrokerAdmin(self.admin_settings()) as admin:
            return admin.remove(common_name)

    def admin_settings(self) -> MqttSettings:
        return self.client_settings(ADMIN_IDENTITY)

    def _apply(self, grant: Grant) -> None:
        with BrokerAdmin(self.admin_settings()) as admin:
            admin.apply(grant)

    def client_settings(
        self,
        common_name: str,
        client_id: str | None = None,
        *,
        keepalive_s: int = 5,
        roles: tuple[str, ...] | None = None,
    ) -> MqttSettings:
        """Settings for ``common_name``. ``client_id`` is what the client asks for; the broker
        replaces it with ``common_name`` (``use_username_as_clientid``)."""
        ca, cert, key = self.client_files(common_name, roles=roles)
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

"""``make broker-probe``: which MQTT brokers from this machine's package sources can carry
the fleet, checked by running them, not by reading about them.

For each broker (Debian's ``mosquitto``, ``rabbitmq-server`` with its MQTT plugin,
``nats-server`` with its MQTT support) it starts a private instance on free loopback
ports, with TLS that requires a client certificate from a fresh CA and each client's
certificate name as its identity, the way the fleet's broker must run, and checks with
paho-mqtt:

- ``mqtt5``: an MQTT v5 CONNECT is accepted (the product's protocol);
- ``mqtt311``: an MQTT 3.1.1 CONNECT is accepted;
- ``cert_identity``: a client presenting only its certificate is accepted under its
  certificate name, and that name's permissions confine it: a camera cannot read
  another camera's topic;
- ``shared_subscription``: two members of ``$share/hubs/…`` split the messages, each
  delivered to exactly one of them;
- ``persistent_qos1``: QoS 1 messages for an offline persistent session survive a
  broker restart and are delivered when the subscriber returns.

Prints a table and writes it to ``OUT/report.md`` with each broker's log folder beside
it. Exits 0 whatever the brokers support (the report is the result); 2 if a broker
could not be started at all.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.hub.keys.pki import init_ca, issue_broker_cert, issue_client_cert
from hil.local_broker import MOSQUITTO, MosquittoBroker, free_port

REPO = Path(__file__).resolve().parents[1]
#: Two cameras and two hub processes (each hub process has an identity of its own: with
#: the certificate name as the client id, two sharing one would take over each other).
CLIENTS = ("lfr-dev-01", "lfr-dev-02", "hub.main", "hub.second")
CHECKS = ("mqtt5", "mqtt311", "cert_identity", "shared_subscription", "persistent_qos1")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
V5 = MQTTProtocolVersion.MQTTv5
V311 = MQTTProtocolVersion.MQTTv311
NATS = Path("/usr/sbin/nats-server")
EPMD = "/usr/bin/epmd"


@dataclass
class Outcome:
    ok: bool | None  # None: could not be checked (an earlier step failed)
    detail: str

    def cell(self) -> str:
        mark = {True: "yes", False: "no", None: "n/a"}[self.ok]
        return f"{mark}: {self.detail}"


class ProbeBroker(ABC):
    """One broker under test: started, restarted and stopped by the probe."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pki = workdir / "pki"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        init_ca(self.pki, name="lfr probe CA")
        issue_broker_cert(self.pki, ["127.0.0.1", "localhost"])
        for cn in CLIENTS:
            issue_client_cert(self.pki, cn)

    def client_files(self, cn: str) -> tuple[str, str, str]:
        clients = self.pki / "clients"
        return (
            str(self.pki / "ca.pem"),
            str(clients / f"{cn}-cert.pem"),
            str(clients / f"{cn}-key.pem"),
        )

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def start(self) -> None: ...

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and anything started for it."""
        self.stop()

    def wait_port(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start (see {self.workdir})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.3):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not open port {self.port} in {timeout:.0f} s")

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()


class Mosquitto(ProbeBroker):
    """The shipped configuration (``configs/mosquitto/lfr.conf``: certificate names as
    identities and client ids, the dynamic-security plugin), each client granted the
    rights ``lfr-hub broker grant`` gives it."""

    name = "mosquitto"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._broker = MosquittoBroker(workdir / "broker", pki_dir=self.pki)
        for cn in CLIENTS:
            self._broker.grant(cn, ("intake",) if cn.startswith("hub.") else None)

    def version(self) -> str:
        res = subprocess.run([str(MOSQUITTO), "-h"], capture_output=True, text=True, check=False)
        return (res.stdout.splitlines() or ["?"])[0].replace("mosquitto version ", "")

    def start(self) -> None:
        self.port = self._broker.port
        self._broker.start()

    def stop(self) -> None:
        self._broker.stop()


class RabbitMq(ProbeBroker):
    """RabbitMQ with its MQTT plugin; identity from the certificate's CN
    (``ssl_cert_login``), permissions as topic permissions on ``amq.topic``."""

    name = "rabbitmq"

    def _env(self) -> dict[str, str]:
        base = self.workdir
        return {
            **os.environ,
            "HOME": str(base),
            "RABBITMQ_NODENAME": f"lfrprobe{os.getpid()}@localhost",
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "ERL_EPMD_PORT": str(self._epmd_port),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        }

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._dist_port = free_port()
        self._epmd_port = free_port()
        self._epmd: subprocess.Popen[bytes] | None = None
        self._users_made = False

    def version(self) -> str:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
            capture_output=True,
            text=True,
            check=False,
        )
        return res.stdout.strip() or "?"

    def ctl(self, *args: str) -> str:
        res = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {res.stderr.strip()[:300]}")
        return res.stdout

    def start(self) -> None:
        base = self.workdir
        (base / "enabled_plugins").write_text("[rabbitmq_mqtt].\n", encoding="utf-8")
        (base / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    "listeners.tcp = none",
                    "loopback_users = none",
                    "mqtt.listeners.tcp = none",
                    f"mqtt.listeners.ssl.default = 127.0.0.1:{self.port}",
                    "mqtt.allow_anonymous = false",
                    "mqtt.ssl_cert_login = true",
                    "ssl_cert_login_from = common_name",
                    f"ssl_options.cacertfile = {self.pki / 'ca.pem'}",
                    f"ssl_options.certfile = {self.pki / 'broker-cert.pem'}",
                    f"ssl_options.keyfile = {self.pki / 'broker-key.pem'}",
                    "ssl_options.verify = verify_peer",
                    "ssl_options.fail_if_no_peer_cert = true",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        if self._epmd is None or self._epmd.poll() is not None:
            # The Erlang port mapper on a port of its own, as this probe's child, so it
            # is stopped with the probe and shares nothing with any other Erlang node.
            self._epmd = subprocess.Popen(
                [EPMD, "-port", str(self._epmd_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._spawn([str(RABBITMQ_BIN / "rabbitmq-server")], env=self._env())
        self.wait_port(120)
        if not self._users_made:
            # Certificate logins still need the user to exist; the password is unused.
            for cn in CLIENTS:
                self.ctl("add_user", cn, os.urandom(12).hex())
                self.ctl("set_permissions", "-p", "/", cn, ".*", ".*", ".*")
            for dev in CLIENTS[:2]:
                # MQTT topic levels become dot-separated routing keys on amq.topic.
                mine = "^lfr\\.v1\\." + dev.replace("-", "\\-") + "\\..*"
                self.ctl("set_topic_permissions", "-p", "/", dev, "amq.topic", mine, mine)
            self._users_made = True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctl("stop")
        super().stop()

    def close(self) -> None:
        self.stop()
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.terminate()
            self._epmd.wait(timeout=10)


class Nats(ProbeBroker):
    """nats-server's MQTT support (needs JetStream); identity from the certificate
    (``verify_and_map``), permissions per mapped user."""

    name = "nats"

    def version(self) -> str:
        res = subprocess.run([str(NATS), "--version"], capture_output=True, text=True, check=False)
        return res.stdout.strip().replace("nats-server: ", "") or "?"

    def start(self) -> None:
        base = self.workdir
        tls = (
            f'cert_file: "{self.pki / "broker-cert.pem"}"\n'
            f'    key_file: "{self.pki / "broker-key.pem"}"\n'
            f'    ca_file: "{self.pki / "ca.pem"}"\n'
            "    verify_and_map: true"
        )
        users = []
        for cn in CLIENTS:
            if cn.startswith("lfr-dev"):
                mine = f"lfr.v1.{cn}.>"
                perms = f'{{publish: ["{mine}", "$MQTT.>"], subscribe: ["{mine}", "$MQTT.>"]}}'
            else:
                perms = '{publish: [">"], subscribe: [">"]}'
            users.append(f'    {{user: "CN={cn}", permissions: {perms}}}')
        (base / "nats.conf").write_text(
            f"""server_name: lfrprobe
host: 127.0.0.1
port: {free_port()}
jetstream {{ store_dir: "{base / "js"}" }}
authorization {{
  users: [
{chr(10).join(users)}
  ]
}}
tls {{
    {tls}
}}
mqtt {{
  host: 127.0.0.1
  port: {self.port}
  tls {{
    {tls}
  }}
}}
""",
            encoding="utf-8",
        )
        self._spawn([str(NATS), "-c", str(base / "nats.conf"), "-l", str(base / "broker.log")])
        self.wait_port()


# ---- the checks --------------------------------------------------------------------
class Client:
    """A paho client with the probe's certificate, recording what it receives."""

    def __init__(
        self,
        broker: ProbeBroker,
        cn: str,
        client_id: str,
        version: MQTTProtocolVersion,
        *,
        clean: bool = True,
    ) -> None:
        self.version = version
        self.clean = clean
        self.messages: list[tuple[str, bytes]] = []
        self.connack: Any = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.granted: list[int] = []
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=version,
            clean_session=None if version == V5 else clean,
        )
        ca, cert, key = broker.client_files(cn)
        self.client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = self._on_subscribe
        self.broker = broker

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self.connack = reason
        if not reason.is_failure:
            self.connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, reasons: Any, _p: Any = None) -> None:
        self.granted = [int(getattr(r, "value", r)) for r in reasons]
        self.subscribed.set()

    def connect(self, timeout: float = 10.0) -> bool:
        kwargs: dict[str, Any] = {"keepalive": 30}
        if self.version == V5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0 if self.clean else 3600
            kwargs |= {"clean_start": self.clean, "properties": props}
        try:
            self.client.connect("127.0.0.1", self.broker.port, **kwargs)
        except OSError as exc:
            self.connack = exc
            return False
        self.client.loop_start()
        ok = self.connected.wait(timeout)
        if not ok:
            self.close()
        return ok

    def subscribe(self, topic: str) -> bool:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        return self.subscribed.wait(10) and all(g < 0x80 for g in self.granted)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def check_connect(broker: ProbeBroker, version: MQTTProtocolVersion) -> Outcome:
    c = Client(broker, "hub.main", f"probe-v{version}", version)
    if c.connect():
        c.close()
        return Outcome(True, "CONNACK success")
    if c.connack is None:
        return Outcome(False, "connection closed without a CONNACK")
    return Outcome(False, f"refused ({c.connack})")


def check_identity(broker: ProbeBroker, version: MQTTProtocolVersion) -> Outcome:
    spy = Client(broker, "lfr-dev-02", "lfr-dev-02", version)
    victim = Client(broker, "lfr-dev-01", "lfr-dev-01", version)
    if not (spy.connect() and victim.connect()):
        return Outcome(False, f"a client with only its certificate was refused ({spy.connack})")
    try:
        own = spy.subscribe("lfr/v1/lfr-dev-02/activation")
        spy.subscribe("lfr/v1/lfr-dev-01/alert")  # another camera's: must not deliver
        time.sleep(0.5)
        victim.publish("lfr/v1/lfr-dev-01/alert", b"secret")
        leaked = _wait_for(lambda: any(t.endswith("lfr-dev-01/alert") for t, _ in spy.messages), 2)
    finally:
        spy.close()
        victim.close()
    if leaked:
        return Outcome(False, "accepted by certificate, but a camera read another camera's topic")
    return Outcome(
        True,
        "certificate name is the identity; another camera's topic is not delivered"
        + ("" if own else " (even its own subscription was refused)"),
    )


def check_shared(broker: ProbeBroker, version: MQTTProtocolVersion) -> Outcome:
    members = [
        Client(broker, cn, f"probe-hub-{i}", version)
        for i, cn in enumerate(("hub.main", "hub.second"), 1)
    ]
    sender = Client(broker, "lfr-dev-01", "lfr-dev-01", version)
    if not all(m.connect() for m in members) or not sender.connect():
        return Outcome(None, "could not connect")
    try:
        granted = [m.subscribe("$share/hubs/lfr/v1/+/alert") for m in members]
        if not all(granted):
            return Outcome(False, f"subscription to $share/hubs/… refused ({members[0].granted})")
        time.sleep(0.5)
        for i in range(20):
            sender.publish("lfr/v1/lfr-dev-01/alert", f"m{i}".encode())
        _wait_for(lambda: sum(len(m.messages) for m in members) >= 20, 5)
        time.sleep(0.5)
        counts = [len(m.messages) for m in members]
        topics = {t for m in members for t, _ in m.messages}
    finally:
        for m in members:
            m.close()
        sender.close()
    if counts == [20, 20]:
        return Outcome(False, "both members got every message (treated as an ordinary topic)")
    if sum(counts) == 20 and min(counts) > 0:
        return Outcome(True, f"20 messages split {counts[0]}/{counts[1]}, each delivered once")
    if sum(counts) == 0:
        return Outcome(False, "subscription granted but nothing delivered")
    return Outcome(False, f"deliveries {counts} for 20 messages (topics {sorted(topics)[:2]})")


def check_persistent(broker: ProbeBroker, version: MQTTProtocolVersion) -> Outcome:
    hub = Client(broker, "hub.main", "probe-hub-persist", version, clean=False)
    if not hub.connect() or not hub.subscribe("lfr/v1/+/alert"):
        return Outcome(None, "could not subscribe")
    hub.close()
    sender = Client(broker, "lfr-dev-01", "lfr-dev-01", version)
    if not sender.connect():
        return Outcome(None, "sender could not connect")
    for i in range(5):
        sender.publish("lfr/v1/lfr-dev-01/alert", f"q{i}".encode())
    sender.close()
    broker.restart()
    back = Client(broker, "hub.main", "probe-hub-persist", version, clean=False)
    if not back.connect():
        return Outcome(False, "the persistent subscriber could not reconnect after the restart")
    _wait_for(lambda: len(back.messages) >= 5, 10)
    got = len(back.messages)
    back.close()
    if got >= 5:
        return Outcome(True, "5 of 5 queued QoS 1 messages delivered after a broker restart")
    return Outcome(False, f"{got} of 5 queued QoS 1 messages delivered after a broker restart")


def probe(broker: ProbeBroker) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    broker.start()
    try:
        results["mqtt5"] = check_connect(broker, V5)
        results["mqtt311"] = check_connect(broker, V311)
        version = V5 if results["mqtt5"].ok else V311
        if not (results["mqtt5"].ok or results["mqtt311"].ok):
            for name in CHECKS[2:]:
                results[name] = Outcome(None, "no MQTT version connects")
            return results
        suffix = "" if version == V5 else " (MQTT 3.1.1)"
        for name, check in (
            ("cert_identity", check_identity),
            ("shared_subscription", check_shared),
            ("persistent_qos1", check_persistent),
        ):
            try:
                outcome = check(broker, version)
            except Exception as exc:  # a broker that misbehaves is a finding, not a crash
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}"[:160])
            outcome.detail += suffix
            results[name] = outcome
    finally:
        broker.close()
    return results


BROKERS: dict[str, type[ProbeBroker]] = {"mosquitto": Mosquitto, "rabbitmq": RabbitMq, "nats": Nats}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make broker-probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", choices=[*BROKERS, "all"], default="all")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "broker-probe")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    names = list(BROKERS) if args.broker == "all" else [args.broker]
    rows = []
    failed = False
    for name in names:
        broker = BROKERS[name](out / name)
        try:
            version = broker.version()
            print(f"broker-probe: {name} {version} …", flush=True)
            results = probe(broker)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"broker-probe: {name}: {exc}", flush=True)
            failed = True
            continue
        rows.append(f"| {name} {version} | " + " | ".join(results[c].cell() for c in CHECKS) + " |")
        print(rows[-1], flush=True)
    head = "| broker | " + " | ".join(CHECKS) + " |\n|---|" + "---|" * len(CHECKS) + "\n"
    report = head + "\n".join(rows) + "\n"
    (out / "report.md").write_text(report, encoding="utf-8")
    print(report)
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

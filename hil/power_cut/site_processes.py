"""The processes of the power-cut site besides the agent: the hub receiver (``lfr-hub alerts
watch``), an observer of the device's acknowledgement topic, and systemd's notify socket.

Each records what it saw with the time it saw it; the ledger reads those records.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.errors import LfrError
from agent.hub.keys.broker_access import RECEIVE, SUBSCRIBE_LITERAL, BrokerRule, Grant
from agent.hub.keys.broker_admin import BrokerAdmin
from agent.hub.keys.pki import hub_identity
from agent.protocol.topics import ack_topic
from agent.transport.mqtt_link import MqttLink, MqttSettings
from agent.trust.alert_envelope import AlertEnvelopeError, decode_ack
from hil.local_broker import MosquittoBroker

LFR_HUB = [sys.executable, "-m", "agent.cli.hub_main"]


class NotifySocket:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET``; counts READY=1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._ready_at: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if b"READY=1" in data.split(b"\n"):
                self._ready_at.append(time.monotonic())

    def ready_count(self) -> int:
        return len(self._ready_at)

    def ready_time(self, index: int) -> float:
        return self._ready_at[index]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        self.path.unlink(missing_ok=True)


class HubReceiver:
    """``lfr-hub alerts watch --json`` as its own process (the hub's receiver and store).

    Every line it prints is an alert it committed and acknowledged, or a deployment report
    it stored; both are recorded (with the hub run that printed them)."""

    def __init__(self, db: Path, broker: MqttSettings, alert_key: Path, log_path: Path) -> None:
        self.db = db
        self.broker = broker
        self.alert_key = alert_key
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._lock = threading.Lock()
        #: alert id → deployment, for every alert the hub printed as committed
        self.stored: dict[str, str] = {}
        #: (deployment id, activation sequence) of reports the hub stored
        self.reports: set[tuple[str, int]] = set()
        #: audit anchors reports carried: audit seq → line hash
        self.anchors: dict[int, str] = {}
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        b = self.broker
        cmd = [
            *LFR_HUB,
            "alerts",
            "watch",
            "--db",
            str(self.db),
            "--broker",
            f"{b.host}:{b.port}",
            "--ca",
            str(b.ca_file),
            "--cert",
            str(b.cert_file),
            "--key",
            str(b.key_file),
            "--identity",
            b.client_id.removeprefix("hub."),
            "--alert-key",
            str(self.alert_key),
            "--json",
        ]
        self.runs += 1
        with self.log_path.open("ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        self._reader = threading.Thread(
            target=self._read, args=(self.proc,), name="hub-out", daemon=True
        )
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            with self._lock:
                if "alert_id" in obj:
                    self.stored.setdefault(str(obj["alert_id"]), str(obj.get("deployment")))
                elif "activation_sequence" in obj:
                    self.reports.add((str(obj["deployment_id"]), int(obj["activation_sequence"])))
                    if obj.get("audit_sha256"):
                        self.anchors[int(obj["audit_seq"])] = str(obj["audit_sha256"])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sigkill(self) -> None:
        """Only the signal (safe from another thread); ``kill()`` reaps."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL (the hub's part of a power cut)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)

    def stored_ids(self) -> set[str]:
        with self._lock:
            return set(self.stored)

    def stored_for(self, deployment_id: str) -> list[str]:
        with self._lock:
            return [a for a, d in self.stored.items() if d == deployment_id]

    def has_report(self, deployment_id: str) -> bool:
        with self._lock:
            if any(d == deployment_id for d, _ in self.reports):
                return True
        return deployment_id in self.stored_report_deployments()

    def report_deployments(self) -> set[str]:
        """Deployments whose report the hub holds: those it printed, and those in its store.
        A report committed just before a cut, whose line the killed hub never printed, comes
        again from the camera (its outbox keeps it until acknowledged) and is then a
        duplicate, which the hub acknowledges without printing: only its store shows it."""
        with self._lock:
            printed = {d for d, _ in self.reports}
        return printed | self.stored_report_deployments()

    def stored_report_deployments(self) -> set[str]:
        """The deployments of the reports in the hub's store (read-only; empty while the
        store cannot be read, as when the hub is mid-cut)."""
        try:
            db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                return {
                    str(r[0])
                    for table in ("deployment_reports", "plate_deployment_reports")
                    for r in db.execute(f"SELECT deployment_id FROM {table}")
                }
            finally:
                db.close()
        except sqlite3.Error:
            return set()


def ack_observer_settings(broker: MosquittoBroker, device_id: str) -> MqttSettings:
    """A test-only broker identity (``hub.pc-ack-observer``) that may only subscribe to and
    receive one device's ack topic: it watches what the hub acknowledged without taking
    over the device's session (the broker makes a certificate's name the client id)."""
    identity = hub_identity("pc-ack-observer")
    ca, cert, key = broker.client_files(identity, grant=False)
    acks = ack_topic(device_id)
    rules = (BrokerRule(SUBSCRIBE_LITERAL, acks), BrokerRule(RECEIVE, acks))
    with BrokerAdmin(broker.admin_settings()) as admin:
        admin.apply(Grant(identity, {"lfr-test-ack-observer": rules}))
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        client_id=identity,
        keepalive_s=5,
        session_expiry_s=0,
        reconnect_min_s=0.1,
        reconnect_max_s=1.0,
    )


class AckObserver:
    """Listens on the device's ack topic (with the device's own certificate and a client
    id of its own) and records every alert id the hub acknowledged with a proof."""

    def __init__(self, settings: MqttSettings, device_id: str) -> None:
        self.link = MqttLink(settings)
        self.acked: set[str] = set()
        self._lock = threading.Lock()
        self.link.subscribe(ack_topic(device_id), self._on_ack)

    def _on_ack(self, _topic: str, payload: bytes) -> None:
        try:
            proofs = decode_ack(payload)
        except AlertEnvelopeError:
            return
        with self._lock:
            self.acked.update(alert_id for alert_id, _ in proofs)

    def start(self, timeout: float = 20.0) -> None:
        self.link.start()
        if not self.link.wait_connected(timeout):
            raise LfrError("power cut: the ack observer could not connect to the broker")

    def acked_ids(self) -> set[str]:
        with self._lock:
            return set(self.acked)

    def stop(self) -> None:
        self.link.stop(graceful=False)


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

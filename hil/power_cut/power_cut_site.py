"""The site the power cuts are tried on: one camera and one hub, each on its own LazyFS.

* the device's ``keys/`` and ``state/`` folders live on the ``device`` LazyFS mount, the
  hub's alert database on the ``hub`` mount (a camera and the monitoring room lose power
  separately);
* mosquitto (the shipped config: mutual TLS, ACL), the hub's key folder, the device's
  config file and its log live on the ordinary disk;
* ``lfr-agent run`` is its own process (replay camera on a generated street scene), the
  hub receiver is ``lfr-hub alerts watch`` in its own process, and the rig sends
  watchlists and signed control documents as the hub's operators would.

A power cut of the device: SIGKILL ``lfr-agent``, drop LazyFS's unsynced data (LazyFS
is stopped with its cache), empty the runtime folder (a tmpfs on the device), mount
again. The same for the hub with ``lfr-hub``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.hub.keys.operator_keys import ALERT_KEY_FILE
from agent.hub.keys.pki import hub_identity
from agent.matching.watchlist_bundle import SealedBundle, WatchlistContent, build_bundle
from agent.protocol.topics import activation_topic, watchlist_topic
from agent.transport.alert_outbox import encode_entry
from agent.trust.device_keys import load_device_signing_public
from agent.trust.signed_document import loads_untrusted, parse_envelope
from hil.local_broker import MosquittoBroker
from hil.power_cut.audit_follower import AuditFollower
from hil.power_cut.device_snapshot import DeviceSnapshot, take
from hil.power_cut.lazyfs_mount import LazyFsMount
from hil.power_cut.scene_material import TestMaterial, make_material
from hil.power_cut.site_processes import (
    AckObserver,
    HubReceiver,
    NotifySocket,
    ack_observer_settings,
    kill_process,
)
from hil.virtual_site import SUPERVISOR_PASSPHRASE, VirtualSite

DEVICE_ID = "lfr-pc-01"
THRESHOLD = 0.5
OFFICER = "PS 2200 Power"
READY_TIMEOUT_S = 120.0
#: Prefix of the ids of outbox entries the rig plants, already past retention.
AGED_ID_PREFIX = "00a9ed"
RETENTION_DAYS = 31.0


@dataclass
class _CutSite(VirtualSite):
    """A virtual site whose device keys and state and whose hub database are on LazyFS."""

    device_mount: Path = Path()
    hub_mount: Path = Path()

    @property
    def keys_dir(self) -> Path:
        return self.device_mount / "keys"

    @property
    def state_dir(self) -> Path:
        return self.device_mount / "state"

    @property
    def hub_db(self) -> Path:
        return self.hub_mount / "alerts.db"


@dataclass(frozen=True)
class SentDocument:
    """A signed control document the rig sent, and what it was."""

    kind: str  # activation | renewal | stop
    deployment_id: str
    sequence: int
    data: bytes = field(repr=False)
    revocation_version: int = 0


class PowerCutSite:
    def __init__(self, work: Path, models_dir: Path, shared_data: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.device_fs = LazyFsMount(work, "device-fs")
        self.hub_fs = LazyFsMount(work, "hub-fs")
        self.device_fs.mount()
        self.hub_fs.mount()
        self.broker = MosquittoBroker(work / "broker")
        self.broker.start()
        self.material: TestMaterial = make_material(work, shared_data, models_dir)
        self.site = _CutSite(
            work / "site",
            self.broker,
            models_dir,
            device_id=DEVICE_ID,
            device_mount=self.device_fs.mount_dir,
            hub_mount=self.hub_fs.mount_dir,
        )
        self.site.write_device_config(
            self.material.scene_dir,
            fps=10,
            loop=True,
            matching="cooldown_s = 0.0",
            outbox=f"resend_after_s = 2.0\nretention_days = {RETENTION_DAYS}",
            models="threads = 1",
        )
        # The rig wrote the provisioned files with plain copies: make them durable the
        # way a technician's install does before the first power cut.
        self.device_fs.checkpoint()
        self.hub_fs.checkpoint()
        self.device_public: Ed25519PublicKey = load_device_signing_public(self.site.keys_dir)
        # The hub has the device's public keys from its enrolment: never read them from the
        # device's disk again (it may be without power).
        self.device_exchange = self.site.device_exchange_key()
        self.control = self.site.hub_link("pc-control")
        self.control.start()
        if not self.control.wait_connected(20):
            raise RuntimeError("power cut: the hub's control link did not connect")
        # The receiver is a hub process of its own (hub.pc-receiver, the intake role): the
        # broker makes a certificate's name the client id, so it may not share one.
        hub_settings = self.broker.client_settings(hub_identity("pc-receiver"), roles=("intake",))
        self.hub = HubReceiver(
            self.site.hub_db,
            hub_settings,
            self.site.hub_dir / ALERT_KEY_FILE,
            work / "hub-receiver.log",
        )
        self.hub.start()
        self.acks = AckObserver(ack_observer_settings(self.broker, DEVICE_ID), DEVICE_ID)
        self.acks.start()
        self.notify = NotifySocket(work / "notify.sock")
        self.audit = AuditFollower(self.state_dir / "audit.jsonl")
        self.device: subprocess.Popen[bytes] | None = None
        #: Other processes working on a mount (enrolment commands, hub tools): they die
        #: with its power.
        self.device_tools: list[subprocess.Popen[bytes]] = []
        self.hub_tools: list[subprocess.Popen[bytes]] = []
        self.device_fs.on_death = self._device_power_lost
        self.hub_fs.on_death = self._hub_power_lost
        self._spawned_at = 0.0
        self._ready_seen = 0
        self._dummy_operators = 0
        self.issuer = self.site.issuer()

    # ---- power -----------------------------------------------------------------------
    def _device_power_lost(self) -> None:
        # Called from LazyFS's watcher thread: no reaping here, only the kill.
        for proc in [self.device, *self.device_tools]:
            if proc is not None and proc.poll() is None:
                _sigkill(proc)

    def _hub_power_lost(self) -> None:
        self.hub.sigkill()
        for proc in self.hub_tools:
            if proc.poll() is None:
                _sigkill(proc)

    def lower_snapshot(self) -> DeviceSnapshot:
        """What is durable on the device now (or what survived, after a cut)."""
        lower = self.device_fs.lower_dir
        return take(lower / "state", lower / "keys", self.site.hub.root_public())

    def running_snapshot(self) -> DeviceSnapshot:
        return take(self.state_dir, self.site.keys_dir, self.site.hub.root_public())

    # ---- the device process ---------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.site.state_dir

    @property
    def runtime_dir(self) -> Path:
        return self.site.device_dir / "run"

    def start_device(self) -> None:
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = str(self.notify.path)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        log_path = self.site.device_dir / "agent.log"
        self._ready_seen = self.notify.ready_count()
        self._spawned_at = time.monotonic()
        with log_path.open("ab") as log:
            self.device = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent.cli.agent_main",
                    "run",
                    "--config",
                    str(self.site.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds from starting ``lfr-agent run`` to its READY=1."""
        deadline = time.monotonic() + timeout
        while self.notify.ready_count() <= self._ready_seen:
            if self.device is None or self.device.poll() is not None:
                code = None if self.device is None else self.device.returncode
                raise RuntimeError(f"lfr-agent exited at start-up (code {code}); see agent.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"lfr-agent not ready within {timeout:.0f} s")
            time.sleep(0.02)
        return self.notify.ready_time(self._ready_seen) - self._spawned_at

    @property
    def device_alive(self) -> bool:
        return self.device is not None and self.device.poll() is None

    def kill_device(self) -> None:
        if self.device is not None:
            kill_process(self.device)

    def stop_device(self) -> int:
        """A clean stop (SIGTERM), as systemd does."""
        if self.device is None:
            return 0
        if self.device.poll() is None:
            self.device.terminate()
            try:
                self.device.wait(60)
            except subprocess.TimeoutExpired:
                kill_process(self.device)
        return int(self.device.returncode)

    def device_power_off(self) -> None:
        """SIGKILL the agent (and any tool on the device), drop LazyFS's unsynced data,
        empty the runtime tmpfs. The lower folder then holds what survived."""
        self.kill_device()
        for proc in self.device_tools:
            kill_process(proc)
        self.device_tools.clear()
        if self.device_fs.alive:
            self.device_fs.clear_cache()
        self.device_fs.power_cut()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def device_power_on(self) -> None:
        self.device_fs.mount()
        self.audit.reset()

    def hub_power_off(self) -> None:
        self.hub.kill()
        for proc in self.hub_tools:
            kill_process(proc)
        self.hub_tools.clear()
        if self.hub_fs.alive:
            self.hub_fs.clear_cache()
        self.hub_fs.power_cut()

    def hub_power_on(self) -> None:
        self.hub_fs.mount()
        self.hub.start()

    # ---- what the hub's operators do ------------------------------------------------
    def build_watchlist(self, deployment_id: str, expires_in_s: float = 3600.0) -> SealedBundle:
        m = self.material
        now = time.time()
        content = WatchlistContent(
            deployment_id=deployment_id,
            devices=(DEVICE_ID,),
            created_at=now,
            expires_at=now + expires_in_s,
            model_id=m.embedder.model_id,
            model_sha256=m.embedder.sha256,
            refs=list(m.refs),
            embeddings=m.embeddings,
        )
        return build_bundle(
            content,
            self.site.hub.watchlist_signing_key(),
            {DEVICE_ID: self.device_exchange},
        )

    def send_watchlist(self, bundle: SealedBundle) -> None:
        self.send_watchlist_bytes(bundle.data)

    def send_watchlist_bytes(self, data: bytes) -> None:
        self.control.publish(watchlist_topic(DEVICE_ID), data)

    def _send(self, kind: str, deployment_id: str, data: bytes) -> SentDocument:
        _, body, _ = parse_envelope(data)
        fields = loads_untrusted(body)
        self.control.publish(activation_topic(DEVICE_ID), data)
        return SentDocument(
            kind,
            deployment_id,
            int(fields["sequence"]),
            data,
            self.site.hub.revocations().version,
        )

    def activate(
        self, deployment_id: str, bundle: SealedBundle, duration_s: int, lease_s: int
    ) -> SentDocument:
        doc = self.issuer.activation(
            DEVICE_ID, deployment_id, duration_s, lease_s, bundle.watchlist_hash, THRESHOLD, OFFICER
        )
        return self._send("activation", deployment_id, doc)

    def renew(self, deployment_id: str, lease_s: int) -> SentDocument:
        return self._send(
            "renewal", deployment_id, self.issuer.renewal(DEVICE_ID, deployment_id, lease_s)
        )

    def stop(self, deployment_id: str) -> SentDocument:
        doc = self.issuer.stop(DEVICE_ID, deployment_id, "officers left")
        return self._send("stop", deployment_id, doc)

    def resend(self, doc: SentDocument) -> None:
        """Send a document again, byte for byte (a replay)."""
        self.control.publish(activation_topic(DEVICE_ID), doc.data)

    def revoke_a_spare_operator(self) -> int:
        """Certify and revoke a spare operator: the next control documents carry a newer
        revocation list, which the device adopts and persists. Returns its version."""
        self._dummy_operators += 1
        name = f"spare-{self._dummy_operators}"
        root = self.site.hub.load_root_key()
        self.site.hub.add_operator(name, "operator", 30, root, SUPERVISOR_PASSPHRASE)
        return self.site.hub.revoke_operator(name, root).version

    # ---- the hub's own tools -------------------------------------------------------
    def hub_tool(self, *args: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run an ``lfr-hub`` command on the hub's database; (exit code, output). A hub
        power cut kills it (exit code -9)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.hub_main", *args, "--db", str(self.site.hub_db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.hub_tools.append(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc)
            out = b"timed out"
        finally:
            if proc in self.hub_tools:
                self.hub_tools.remove(proc)
        return proc.returncode, out.decode("utf-8", "replace")

    def device_tool(self, *args: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run an ``lfr-agent`` command on the device; a device power cut kills it."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.agent_main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.device_tools.append(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc)
            out = b"timed out"
        finally:
            if proc in self.device_tools:
                self.device_tools.remove(proc)
        return proc.returncode, out.decode("utf-8", "replace")

    # ---- old state, for the retention purges ------------------------------------------
    def plant_aged_outbox_entry(self, n: int) -> str:
        """An outbox entry sealed longer ago than the retention period (a device that was
        cut off from its hub for a month): the agent must purge it, audited. Written
        into the lower folder while the device is off."""
        alert_id = f"{AGED_ID_PREFIX}{n:026x}"
        seq = 10**12 + n  # far above any live sequence, so it never blocks one
        created = time.time() - (RETENTION_DAYS + 2) * 86400.0
        data = encode_entry(alert_id, seq, b"aged" * 64, created)
        folder = self.device_fs.lower_dir / "state" / "outbox"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{seq:020d}-{alert_id}.alert"
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return alert_id

    def age_reports(self) -> int:
        """Make the device's stored reports look older than the retention period (in the
        lower folder, while the device is off: LazyFS keeps its own times of files it
        caches)."""
        folder = self.device_fs.lower_dir / "state" / "reports"
        old = time.time() - (RETENTION_DAYS + 2) * 86400.0
        aged = 0
        for path in folder.glob("*.json") if folder.is_dir() else []:
            os.utime(path, (old, old))
            aged += 1
        return aged

    def audit_events(self, event: str, **match: object) -> list[dict[str, object]]:
        return self.audit.events(event, **match)

    def close(self) -> None:
        for step in (
            self.stop_device,
            self.hub.stop,
            self.acks.stop,
            lambda: self.control.stop(graceful=False),
            self.notify.close,
            self.broker.stop,
            self.device_fs.unmount,
            self.hub_fs.unmount,
            self.device_fs.remove_link,
            self.hub_fs.remove_link,
        ):
            try:
                step()
            except Exception as exc:  # every part must get its chance to stop
                print(f"power cut: cleanup step failed: {exc}", file=sys.stderr)


def _sigkill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)

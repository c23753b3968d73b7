"""The real rig: the same scenarios against an installed device, reached over SSH (its files,
journal and service) and over the site's MQTT broker (activations, watchlists, alerts).

Wiring (see ``hil/rigs/real-rig.example.toml`` and ``hil/README.md``):

* the device runs ``lfr-agent`` as the systemd service ``lfr-agent``; the rig's SSH user
  may run ``sudo -n`` for one fixed helper only (``hil/rigs/lfr-hil-helper``, installed
  on the device), which reads public keys, the audit log and file names, drives the
  service, nftables and the clock, and nothing else;
* its camera looks at a monitor on the rig machine, which shows the synthetic scene in a
  loop (``show_scene``); the scene clock is the moment the loop started;
* the rig acts as the hub for the device: it holds the operator key store that enrolled
  the device (``[hub] hub_dir``) and receives alerts with the hub's broker client files.
  Stop the site's own alert worker during a run, or it will take the alerts first.

What a real device cannot do on command is reported as "not run" with the reason: a torn
outbox write needs a power cut, a lost feed needs the camera unplugged, a broker restart
needs the broker's host. The clock jump turns NTP off and sets the clock with ``date -s``;
putting it right sets it from the rig's clock, turns NTP back on and waits until the
device says it is synchronised again.

The device's clock is not the rig's: at set-up the rig measures the offset over SSH
(``date +%s.%N``, the sample with the shortest round trip, corrected by half of it) and
takes it off every audit time, so close lags and latencies compare like with like.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shlex
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.errors import UsageError
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.store.alert_store import AlertRow, AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.matching.watchlist_bundle import WatchlistContent, build_bundle
from agent.protocol.topics import ALL_EVENTS, activation_topic, watchlist_topic
from agent.transport.mqtt_link import MqttLink, MqttSettings
from agent.trust.audit_log import verify_audit_log
from agent.trust.key_files import load_public_key
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser
from hil.rig.network_faults import NetworkFaults
from hil.rig.rig_description import RigDescription
from hil.rig.scenarios.scenario_support import (
    ActivationSent,
    AuditEvent,
    NotAvailable,
    parse_audit,
    wait_for,
)
from hil.rig.virtual_rig import ENROLMENT_PHOTO, make_scene
from hil.synthetic_scene import SceneTruth

CLOCK_SAMPLES = 7
RESYNC_TIMEOUT_S = 180.0


# One clock reading per line the rig sends: the samples need no connection set-up.
CLOCK_SCRIPT = f"for i in $(seq {CLOCK_SAMPLES}); do read -r _ || exit 0; date +%s.%N; done"


def measure_clock_offset(command: list[str]) -> tuple[float, float]:
    """(round trip, other clock minus this one) from ``command``, which answers each line
    sent to it with its clock (Unix seconds). The sample with the shortest round trip
    wins, its reading taken as made half-way through it. ``ValueError`` if none came."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    samples: list[tuple[float, float]] = []
    try:
        for _ in range(CLOCK_SAMPLES):
            t0 = time.time()
            proc.stdin.write("\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            t1 = time.time()
            try:
                samples.append((t1 - t0, float(line) - (t0 + t1) / 2))
            except ValueError:
                break
    except BrokenPipeError:
        pass  # the other end went away: the samples so far count
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not samples:
        raise ValueError("no clock reading")
    return min(samples)


def service_exit_status(show: str) -> int:
    """ExecMainStatus from ``systemctl show`` KEY=value lines (-1 if absent or not a number)."""
    props = dict(line.partition("=")[::2] for line in show.splitlines() if "=" in line)
    status = props.get("ExecMainStatus", "").strip()
    return int(status) if re.fullmatch(r"[0-9]+", status) else -1


class SshPartition:
    """A partition made on the device: nftables drops the broker's port (SSH stays up)."""

    mode = "device nftables"

    def __init__(self, rig: RealRig, port: int) -> None:
        self.rig, self.port = rig, port
        self.note = f"real device; partition = nftables drop of port {port} on the device"

    def partition(self) -> None:
        self.rig.helper("partition", str(self.port))

    def heal(self) -> None:
        self.rig.helper("heal")


class RealRig:
    def __init__(
        self,
        desc: RigDescription,
        out_dir: Path,
        models_dir: Path,
        shared_data: Path,
        say: Any = print,
    ) -> None:
        self.desc = desc
        self.models_dir, self.shared_data = models_dir, shared_data
        self.device_id = desc.device.id
        self.work_dir = out_dir / "work"
        self.say = say
        self.notes: list[str] = []
        self.state = desc.device.state_dir
        self.network: NetworkFaults = SshPartition(self, desc.broker.port)
        self._receipts: list[tuple[float, Receipt]] = []
        self._reports: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._deployments = 0
        self._display_started = 0.0
        self._stop_display = threading.Event()
        self._closers: list[Any] = []
        self.clock_offset_s = 0.0  # device clock minus rig clock, measured at set-up
        self._wall_offset = 0.0  # the clock jump in force
        self.metadata: dict[str, Any] = {}

    # -- SSH -----------------------------------------------------------------------------------
    def ssh(self, command: str, timeout: float = 60.0) -> str:
        proc = subprocess.run(
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                self.desc.device.ssh,
                command,
            ],
            capture_output=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise UsageError(
                f"rig: ssh {self.desc.device.ssh}: {err[-1] if err else proc.returncode}"
            )
        return proc.stdout.decode(errors="replace")

    def helper(self, *args: str, timeout: float = 60.0) -> str:
        """Run the device's root helper (the one command the rig user may sudo)."""
        return self.ssh(
            f"sudo -n {shlex.quote(self.desc.device.helper)} {shlex.join(args)}", timeout
        )

    def _measure_clock_offset(self) -> None:
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", self.desc.device.ssh]
        try:
            rtt, offset = measure_clock_offset([*ssh, CLOCK_SCRIPT])
        except ValueError:
            raise UsageError(
                f"rig: ssh {self.desc.device.ssh}: could not read the device clock"
            ) from None
        self.clock_offset_s = offset
        self.metadata["device_clock_offset_s"] = round(offset, 4)
        self.metadata["device_clock_offset_rtt_s"] = round(rtt, 4)
        self.say(
            f"device clock {offset * 1000:+.1f} ms from the rig's (round trip {rtt * 1000:.1f} ms)"
        )

    # -- set-up --------------------------------------------------------------------------------
    def setup(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.ssh("true")
        self._measure_clock_offset()
        self.truth: SceneTruth = make_scene(
            self.desc, self.work_dir / "scene", self.shared_data, self.models_dir
        )
        self.hub = HubKeyStore.open(Path(self.desc.hub_dir))
        self._enrol()
        self.store = AlertStore(self.work_dir / "hub-alerts.db")
        self.store.register_device_key(self.device_id, self._device_signing_public())
        self.report_store = DeploymentReportStore(self.work_dir / "hub-alerts.db")
        self._closers += [self.store.close, self.report_store.close]
        b = self.desc.broker
        self.link = MqttLink(
            MqttSettings(
                host=b.host,
                port=b.port,
                ca_file=Path(b.ca_file),
                cert_file=Path(b.cert_file),
                key_file=Path(b.key_file),
                client_id=f"hub-hil-{secrets.token_hex(3)}",
                keepalive_s=5,
                session_expiry_s=3600,
                reconnect_min_s=0.2,
                reconnect_max_s=2.0,
            )
        )
        self.worker = HubAlertWorker(
            self.link,
            AlertReceiver(self.store, self.hub.alert_private_key()),
            on_receipt=self._on_receipt,
        )
        self.link.subscribe(
            ALL_EVENTS,
            ReportReceiver(
                self.report_store,
                self.store.device_key,
                self._on_report,
                hub_key=self.hub.alert_private_key(),
                acknowledge=self.link.publish,
            ).handle,
        )
        self.worker.start()
        self._closers.append(self.worker.stop)
        if not self.link.wait_connected(20):
            raise UsageError(f"rig: cannot reach the broker at {b.host}:{b.port}")
        self.helper("mark")
        self._show_scene()

    def _device_public(self, name: str, kind: Any) -> Any:
        local = self.work_dir / name
        local.write_text(self.helper("pubkey", name))
        return load_public_key(local, kind)

    def _device_signing_public(self) -> Ed25519PublicKey:
        key: Ed25519PublicKey = self._device_public("device-ed25519-pub.pem", Ed25519PublicKey)
        return key

    def _show_scene(self) -> None:
        """Loop the scene full-screen on the monitor the device's camera looks at."""
        frames = []
        for f in self.truth.frames:
            image = cv2.imread(str(self.truth.frames_dir / f.file))
            if image is None:
                raise UsageError(f"rig: scene frame {f.file} unreadable")
            frames.append(image)
        fps = self.truth.spec.fps
        cv2.namedWindow("lfr-hil", cv2.WND_PROP_FULLSCREEN)
        cv2.setWindowProperty("lfr-hil", cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        self._display_started = time.time()

        def loop() -> None:
            while not self._stop_display.is_set():
                i = int((time.time() - self._display_started) * fps) % len(frames)
                cv2.imshow("lfr-hil", frames[i])
                cv2.waitKey(max(1, int(500 / fps)))

        threading.Thread(target=loop, daemon=True).start()

    def scene_origin(self, gate_opened: float) -> float:
        pass_s = len(self.truth.frames) / self.truth.spec.fps
        loops = -(-(gate_opened - self._display_started) // pass_s)
        return self._display_started + loops * pass_s

    def teardown(self) -> None:
        if self._wall_offset:
            try:
                self.set_wall_clock_offset(0.0)
            except Exception as exc:  # tear-down goes on; the technician must set it right
                self.notes.append(f"tear-down: device clock not put right: {exc}")
        self._stop_display.set()
        for close in reversed(self._closers):
            close()

    def _on_receipt(self, receipt: Receipt) -> None:
        with self._lock:
            self._receipts.append((time.time(), receipt))

    def _on_report(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._reports.append(body)

    # -- deployments (as the hub) -------------------------------------------------------------
    def _issuer(self) -> ActivationIssuer:
        return ActivationIssuer(self.hub, self.desc.hub_operator, "")

    def new_deployment(self, label: str) -> str:
        self._deployments += 1
        return f"hil-{self._deployments:02d}-{label}-{secrets.token_hex(2)}"

    def _enrol(self) -> None:
        """Embeddings of the watched and distractor identities' enrolment photos."""
        models = resolve_models(self.models_dir)
        analyser = StillPhotoAnalyser(models)
        self.ref_identity: dict[str, str] = {}
        rows = []
        feed = self.desc.feed
        for k, ident in enumerate((*feed.watched, *feed.distractors)):
            image = cv2.imread(str(self.shared_data / "faces" / ident / ENROLMENT_PHOTO))
            emb = analyser.embed_central(image) if image is not None else None
            if emb is None:
                raise UsageError(f"rig: identity {ident}: no face found in {ENROLMENT_PHOTO}")
            self.ref_identity[f"subject-{k + 1:04d}"] = ident
            rows.append(emb)
        self._embeddings = np.stack(rows)
        self._model = models["embedder"]

    def load_watchlist(self, deployment_id: str) -> str:
        now = time.time()
        content = WatchlistContent(
            deployment_id=deployment_id,
            devices=(self.device_id,),
            created_at=now,
            expires_at=now + 12 * 3600,
            model_id=self._model.model_id,
            model_sha256=self._model.sha256,
            refs=list(self.ref_identity),
            embeddings=self._embeddings,
        )
        exchange = self._device_public("device-x25519-pub.pem", X25519PublicKey)
        bundle = build_bundle(content, self.hub.watchlist_signing_key(), {self.device_id: exchange})
        self.link.publish(watchlist_topic(self.device_id), bundle.data)
        wait_for(
            "the watchlist stored on the device",
            lambda: any(bundle.watchlist_hash in f for f in self.watchlist_files()),
            60,
            poll=1.0,
        )
        return bundle.watchlist_hash

    def activate(
        self, deployment_id: str, watchlist_hash: str, duration_s: int, lease_s: int
    ) -> ActivationSent:
        not_before = int(time.time())
        doc = self._issuer().activation(
            self.device_id,
            deployment_id,
            duration_s,
            lease_s,
            watchlist_hash,
            0.5,
            "HIL rig",
            not_before=not_before,
        )
        sent = time.time()
        self.link.publish(activation_topic(self.device_id), doc)
        return ActivationSent(
            deployment_id, watchlist_hash, sent, not_before, not_before + duration_s, lease_s
        )

    def renew(self, deployment_id: str, lease_s: int) -> float:
        doc = self._issuer().renewal(self.device_id, deployment_id, lease_s)
        sent = time.time()
        self.link.publish(activation_topic(self.device_id), doc)
        return sent

    def stop_deployment(self, deployment_id: str, reason: str) -> float:
        doc = self._issuer().stop(self.device_id, deployment_id, reason)
        sent = time.time()
        self.link.publish(activation_topic(self.device_id), doc)
        return sent

    # -- the hub's view -----------------------------------------------------------------------
    def stored_alerts(self) -> list[AlertRow]:
        """As stored, with the device's own times (sealed, first seen, decided) moved onto
        the rig's clock like the audit times; ``received_at`` is the rig's already."""
        off = self.clock_offset_s
        return [
            replace(
                a,
                sealed_at=a.sealed_at - off,
                first_seen=a.first_seen - off,
                decided_at=a.decided_at - off,
            )
            for a in self.store.list_alerts(device_id=self.device_id, limit=100_000)
        ]

    def receipts(self) -> list[tuple[float, Receipt]]:
        with self._lock:
            return list(self._receipts)

    def reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._reports)

    # -- the device over SSH ------------------------------------------------------------------
    def audit(self) -> list[AuditEvent]:
        """The audit log with times on the rig's clock (the measured offset taken off)."""
        events = parse_audit(self.helper("audit"))
        return [replace(e, t=e.t - self.clock_offset_s) for e in events]

    def audit_verified(self) -> str:
        data = self.helper("audit").encode()
        verify_audit_log(data, self._device_signing_public())
        entries = data.count(b"\n")
        return f"{entries} entries verified against the device key"

    def _ls(self, folder: str) -> list[str]:
        return sorted(n for n in self.helper("list", folder).splitlines() if n)

    def outbox_entries(self) -> list[str]:
        return self._ls("outbox")

    def watchlist_files(self) -> list[str]:
        return self._ls("watchlists")

    def device_log_text(self) -> str:
        return self.helper("journal")

    def _wait_active(self) -> None:
        wait_for(
            "the agent service active",
            lambda: self.ssh("systemctl is-active lfr-agent || true").strip() == "active",
            120,
            poll=1.0,
        )

    def start_device(self) -> None:
        self.helper("service", "start")
        self._wait_active()

    def stop_device(self) -> int:
        self.helper("service", "stop")
        return service_exit_status(self.helper("service", "status"))

    def kill_device(self) -> None:
        self.helper("service", "kill")

    def tear_outbox(self) -> list[str]:
        raise NotAvailable("a torn write on a real device needs a power cut mid-alert (by hand)")

    def feed_lost(self) -> None:
        raise NotAvailable("unplug the camera by hand; the rig cannot cut a real camera's feed")

    def feed_back(self) -> None:
        raise NotAvailable("re-plug the camera by hand")

    def restart_broker(self) -> None:
        raise NotAvailable("the site broker runs on the hub host; restart it there by hand")

    def set_wall_clock_offset(self, seconds: float) -> float:
        """NTP off and the device clock stepped to the true time plus ``seconds``; 0 puts
        it back (then NTP on, waiting for the device to resync). The device adds the step
        to its own clock: an absolute time sent from here would land late by the trip."""
        t = time.time()
        self.helper("clock", "shift", f"{seconds - self._wall_offset:.3f}")
        self._wall_offset = seconds
        if seconds == 0.0:
            self.helper("clock", "ntp")
            wait_for(
                "the device clock synchronised again (NTP)",
                lambda: self.ssh("timedatectl show -p NTPSynchronized --value").strip() == "yes",
                RESYNC_TIMEOUT_S,
                poll=2.0,
            )
        return t

    def writable_changes(self) -> tuple[list[str], list[str] | None]:
        changed = self.helper("changed").splitlines()
        new = [p for p in changed if p and not p.startswith(self.state + "/")]
        tmp = [p for p in new if p.startswith(("/tmp/", "/var/tmp/"))]
        return [p for p in new if p not in tmp], tmp

    def unexpected_egress(self) -> tuple[int, list[str]]:
        raise NotAvailable("watch the device's uplink at the site switch (port mirror) instead")

    def plaintext_images(self) -> tuple[int, list[str]]:
        lines = self.helper("images").splitlines()
        count = lines[0].strip() if lines else ""
        return int(count) if count.isdigit() else 0, lines[1:]

"""The virtual rig: a whole site on this machine, wired for faults.

mosquitto (the shipped config, mutual TLS, ACL) and the hub run in one network namespace,
``lfr-agent run`` in another, a veth between them (``network_faults.NamespacePair``); the
agent's camera is a replay of a synthetic scene with ground truth. Without namespaces it
falls back to loopback and says so. The agent also gets a private ``/tmp`` (bind mount
in its own mount namespace) so the privacy scenario sees every temporary file it makes.

Call ``setup()`` before this process starts any thread: joining the hub namespace moves
only the calling thread, and threads started later inherit it.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import agent
from agent.errors import UsageError
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.keys.pki import issue_broker_cert
from agent.hub.store.alert_store import AlertRow, AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.matching.watchlist_bundle import SealedBundle
from agent.protocol.topics import ALL_EVENTS
from agent.transport.alert_outbox import encode_entry
from agent.transport.mqtt_link import MqttLink
from agent.trust.audit_log import verify_audit_log
from agent.trust.device_keys import load_device_signing_public
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser
from hil.local_broker import MosquittoBroker
from hil.rig import wall_clock_shim
from hil.rig.network_faults import BrokerOutage, NamespacePair, NetworkFaultError, NetworkFaults
from hil.rig.rig_description import RigDescription
from hil.rig.scenarios.scenario_support import (
    IMAGE_MAGIC,
    ActivationSent,
    AuditEvent,
    NotAvailable,
    parse_audit,
    wait_for,
)
from hil.rig.unit_environment import unit_environment
from hil.synthetic_scene import SceneSpec, SceneTruth, generate_scene, load_truth
from hil.virtual_site import DeviceProcess, VirtualSite

ENROLMENT_PHOTO = "1.jpg"  # never pasted into the scene: the watchlist is enrolled from it
READY_TIMEOUT_S = 180.0


class RigBroker(MosquittoBroker):
    """The shipped broker config, listening on the hub namespace's veth address if given."""

    def __init__(self, workdir: Path, listen_addr: str | None) -> None:
        self._listen = listen_addr
        super().__init__(workdir)
        if listen_addr:
            issue_broker_cert(self.pki_dir, [listen_addr, "127.0.0.1", "localhost"], force=True)
            self.host = listen_addr

    def _render_config(self) -> str:
        text = super()._render_config()
        if self._listen:
            text = text.replace(
                f"listener {self.port} 127.0.0.1", f"listener {self.port} {self._listen}"
            )
        return text


def make_scene(
    desc: RigDescription, scene_dir: Path, shared_data: Path, models_dir: Path
) -> SceneTruth:
    """The rig's synthetic scene (watched people and passers-by; enrolment photos left out)."""
    feed = desc.feed
    spec = SceneSpec(
        width=feed.width,
        height=feed.height,
        fps=float(feed.fps),
        seconds=feed.seconds,
        identities=(*feed.watched, *feed.passers_by),
        exclude_photos=tuple(f"{w}/{ENROLMENT_PHOTO}" for w in feed.watched),
        seed=feed.seed,
    )
    generate_scene(
        scene_dir,
        spec,
        shared_data / "faces",
        shared_data / "scenes" / "no_faces",
        models_dir=models_dir,
    )
    return load_truth(scene_dir)


def _snapshot(root: Path) -> set[str]:
    return (
        {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else set()
    )


class VirtualRig:
    def __init__(
        self,
        desc: RigDescription,
        out_dir: Path,
        models_dir: Path,
        shared_data: Path,
        say: Any = print,
    ) -> None:
        self.desc = desc
        self.device_id = desc.device.id
        self.work_dir = out_dir / "work"
        self.models_dir = models_dir
        self.shared_data = shared_data
        self.say = say
        self.notes: list[str] = []
        self._pair: NamespacePair | None = None
        self._device: DeviceProcess | None = None
        self._receipts: list[tuple[float, Receipt]] = []
        self._reports: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._bundles: dict[str, SealedBundle] = {}
        self._deployments = 0
        self._ready_seen = 0

    # -- set-up and tear-down ---------------------------------------------------------------
    def setup(self) -> None:
        for d in (self.desc.feed.watched, self.desc.feed.passers_by, self.desc.feed.distractors):
            for ident in d:
                if not (self.shared_data / "faces" / ident / ENROLMENT_PHOTO).is_file():
                    raise UsageError(
                        f"rig: identity {ident}: no {ENROLMENT_PHOTO} under "
                        f"{self.shared_data / 'faces' / ident}"
                    )
        if self.work_dir.exists():
            shutil.rmtree(self.work_dir)
        self.work_dir.mkdir(parents=True)
        self._setup_network()
        listen = self._pair.hub_addr if self._pair else None
        self.broker = RigBroker(self.work_dir / "broker", listen)
        self.broker.start()
        if self._pair:
            self._pair.watch_egress(self.broker.port)
        self.network: NetworkFaults = self._pair or BrokerOutage(
            self.broker.stop, self.broker.start, self._fallback_reason
        )
        self.site = VirtualSite(
            self.work_dir / "site", self.broker, self.models_dir, self.device_id
        )
        self.say(f"network: {self.network.note}")
        self._make_scene()
        self._enrol()
        self._start_hub()
        self.private_tmp = self.work_dir / "device-tmp"
        self.private_tmp.mkdir()
        probe = ["unshare", "--mount", "--propagation", "private", "true"]
        self._private_tmp_ok = subprocess.run(probe, capture_output=True).returncode == 0
        if not self._private_tmp_ok:
            self.notes.append("no mount namespace (unshare refused): /tmp writes not observed")
        self.site.write_device_config(
            self.scene_dir, fps=int(self.truth.spec.fps), loop=True, matching="cooldown_s = 0"
        )
        (self.site.device_dir / "home").mkdir(exist_ok=True)
        # Outside the device tree: the privacy scenario must not count the rig's own files.
        self._shim_dir, self._offset_file = wall_clock_shim.prepare(self.work_dir / "clock-shim")
        self._baseline = _snapshot(self.site.device_dir)
        self.start_device()

    def _setup_network(self) -> None:
        self._fallback_reason = ""
        if self.desc.isolation == "loopback":
            self._fallback_reason = "loopback chosen in the rig description"
            return
        pair = NamespacePair()
        try:
            pair.create()
            pair.enter_hub()
        except (NetworkFaultError, OSError) as exc:
            pair.destroy()
            if self.desc.isolation == "netns":
                raise UsageError(f"rig: {exc}") from None
            self._fallback_reason = f"namespaces not permitted: {exc}"
            self.notes.append(f"fell back to loopback: {exc}")
            return
        self._pair = pair

    def _make_scene(self) -> None:
        self.scene_dir = self.work_dir / "scene"
        t = time.monotonic()
        self.truth = make_scene(self.desc, self.scene_dir, self.shared_data, self.models_dir)
        feed = self.desc.feed
        self.say(
            f"scene: {len(self.truth.frames)} frames {feed.width}x{feed.height} at {feed.fps} fps, "
            f"{len(feed.watched)} watched + {len(feed.passers_by)} passers-by "
            f"({time.monotonic() - t:.1f} s)"
        )

    def _enrol(self) -> None:
        models = resolve_models(self.models_dir)
        analyser = StillPhotoAnalyser(models)
        self.ref_identity: dict[str, str] = {}
        embeddings = []
        for k, ident in enumerate((*self.desc.feed.watched, *self.desc.feed.distractors)):
            image = cv2.imread(str(self.shared_data / "faces" / ident / ENROLMENT_PHOTO))
            emb = analyser.embed_central(image) if image is not None else None
            if emb is None:
                raise UsageError(f"rig: identity {ident}: no face found in {ENROLMENT_PHOTO}")
            ref = f"subject-{k + 1:04d}"
            self.ref_identity[ref] = ident
            embeddings.append(emb)
        self._embeddings = np.stack(embeddings)
        self._model_id = models["embedder"].model_id
        self._model_sha = models["embedder"].sha256

    def _start_hub(self) -> None:
        self.store = AlertStore(self.site.hub_db)
        self.report_store = DeploymentReportStore(self.site.hub_db)
        self.hub_link: MqttLink = self.site.hub_link()
        self.worker = HubAlertWorker(
            self.hub_link,
            AlertReceiver(self.store, self.site.hub.alert_private_key()),
            on_receipt=self._on_receipt,
        )
        self.hub_link.subscribe(
            ALL_EVENTS,
            ReportReceiver(
                self.report_store,
                self.store.device_key,
                self._on_report,
                hub_key=self.site.hub.alert_private_key(),
                acknowledge=self.hub_link.publish,
            ).handle,
        )
        self.worker.start()
        if not self.hub_link.wait_connected(15):
            raise UsageError("rig: the hub could not connect to the rig's broker")

    def _on_receipt(self, receipt: Receipt) -> None:
        with self._lock:
            self._receipts.append((time.time(), receipt))

    def _on_report(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._reports.append(body)

    def teardown(self) -> None:
        if self._device is not None:
            self._device.stop()
        # Only what set-up got as far as creating; the rest of tear-down goes on regardless.
        for name, step in (
            ("worker", "stop"),
            ("broker", "stop"),
            ("store", "close"),
            ("report_store", "close"),
        ):
            part = getattr(self, name, None)
            try:
                if part is not None:
                    getattr(part, step)()
            except Exception as exc:
                self.notes.append(f"tear-down: {name}: {exc}")
        if self._pair is not None:
            if self._pair.partitioned:
                self._pair.heal()
            self._pair.destroy()

    # -- deployments -------------------------------------------------------------------------
    def new_deployment(self, label: str) -> str:
        self._deployments += 1
        return f"hil-{self._deployments:02d}-{label}-{secrets.token_hex(2)}"

    def load_watchlist(self, deployment_id: str) -> str:
        bundle = self.site.build_watchlist(
            list(self.ref_identity),
            self._embeddings,
            deployment_id,
            self._model_id,
            self._model_sha,
        )
        self._bundles[deployment_id] = bundle
        self.site.send_watchlist(self.hub_link, bundle)
        wait_for(
            "the watchlist stored on the device",
            lambda: any(bundle.watchlist_hash in f for f in self.watchlist_files()),
            30,
        )
        return bundle.watchlist_hash

    def activate(
        self, deployment_id: str, watchlist_hash: str, duration_s: int, lease_s: int
    ) -> ActivationSent:
        not_before = int(time.time())
        doc = self.site.issuer().activation(
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
        self.site.send_control(self.hub_link, doc)
        return ActivationSent(
            deployment_id, watchlist_hash, sent, not_before, not_before + duration_s, lease_s
        )

    def renew(self, deployment_id: str, lease_s: int) -> float:
        doc = self.site.issuer().renewal(self.device_id, deployment_id, lease_s)
        sent = time.time()
        self.site.send_control(self.hub_link, doc)
        return sent

    def stop_deployment(self, deployment_id: str, reason: str) -> float:
        doc = self.site.issuer().stop(self.device_id, deployment_id, reason)
        sent = time.time()
        self.site.send_control(self.hub_link, doc)
        return sent

    # -- the hub's view ----------------------------------------------------------------------
    def stored_alerts(self) -> list[AlertRow]:
        return self.store.list_alerts(device_id=self.device_id, limit=100_000)

    def receipts(self) -> list[tuple[float, Receipt]]:
        with self._lock:
            return list(self._receipts)

    def reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._reports)

    # -- the device --------------------------------------------------------------------------
    @property
    def _state(self) -> Path:
        return self.site.state_dir

    def audit(self) -> list[AuditEvent]:
        try:
            return parse_audit((self._state / "audit.jsonl").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def audit_verified(self) -> str:
        data = (self._state / "audit.jsonl").read_bytes()
        verify_audit_log(data, load_device_signing_public(self.site.keys_dir))
        entries = data.count(b"\n")
        return f"{entries} entries verified against the device key"

    def outbox_entries(self) -> list[str]:
        return sorted(p.name for p in (self._state / "outbox").glob("*.alert"))

    def watchlist_files(self) -> list[str]:
        folder = self._state / "watchlists"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def device_log_text(self) -> str:
        return self._device.log_text() if self._device else ""

    def _command(self) -> list[str]:
        """The agent's command line inside its namespaces.

        The private /tmp would hide any folder the agent needs that lies under /tmp (the
        rig's work folder under pytest, the models, or the checkout and its virtualenv
        when the project itself was cloned there), so those are first bound to a stash (a
        tmpfs on /mnt, inside the agent's own mount namespace only) and bound back once
        /tmp is covered.
        """
        cmd = [sys.executable, "-m", "agent.cli.agent_main", "run", "--config"]
        cmd.append(str(self.site.config_path))
        needed = {
            self.work_dir.resolve(),
            self.models_dir.resolve(),
            Path(sys.prefix).resolve(),
            Path(agent.__file__).resolve().parents[1],  # the package's checkout
        }
        under_tmp = [f for f in needed if f.is_relative_to("/tmp")]
        # A folder inside another one comes back with it.
        hidden = sorted(
            f for f in under_tmp if not any(f != g and f.is_relative_to(g) for g in under_tmp)
        )
        if not self._private_tmp_ok:
            prefix = self._pair.device_prefix() if self._pair else []
            return [*prefix, *cmd]
        script = ["set -e"]
        if hidden:
            script.append("mount -t tmpfs lfrhil-stash /mnt")
        for i, folder in enumerate(hidden):
            script.append(f"mkdir /mnt/{i}; mount --bind {shlex.quote(str(folder))} /mnt/{i}")
        script.append('mount --bind "$1" /tmp')
        for i, folder in enumerate(hidden):
            q = shlex.quote(str(folder))
            script.append(f"mkdir -p {q}; mount --bind /mnt/{i} {q}")
        if hidden:
            # The working folder is still the covered one: re-enter it through the bound
            # copy, or relative paths would live on another mount than absolute ones
            # (a rename between them fails with EXDEV).
            script.append('cd "$PWD"')
        script.append('shift; exec "$@"')
        private_tmp = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
        private_tmp += ["; ".join(script), "sh", str(self.private_tmp)]
        prefix = self._pair.device_prefix() if self._pair else []
        return [*prefix, *private_tmp, *cmd]

    def start_device(self) -> None:
        log_path = self.site.device_dir / "agent.log"
        env = dict(os.environ)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        # The unit's environment (malloc tuning among it): the rig measures the daemon as
        # systemd runs it. One already set by the caller wins, to compare a variant.
        for key, value in unit_environment().items():
            env.setdefault(key, value)
        # A home of its own inside the watched tree: libraries that write under ~/.cache
        # are then caught by the privacy scenario instead of landing in the rig user's home.
        env["HOME"] = str(self.site.device_dir / "home")
        env.pop("XDG_CACHE_HOME", None)
        # The rig's clock jump: a wall-clock offset only this process sees (wall_clock_shim).
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self._shim_dir), env.get("PYTHONPATH", "")) if p
        )
        env[wall_clock_shim.ENV_VAR] = str(self._offset_file)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self._device = DeviceProcess(proc, log_path)
        device = self._device

        def ready() -> bool:
            if device.proc.poll() is not None:
                raise UsageError(f"rig: the agent exited: {device.log_text()[-600:]}")
            return device.log_text().count("agent ready") > self._ready_seen

        wait_for("the agent ready", ready, READY_TIMEOUT_S, poll=0.2)
        self._ready_seen += 1

    def stop_device(self) -> int:
        if self._device is None:
            return 0
        code = self._device.stop()
        return code

    def kill_device(self) -> None:
        assert self._device is not None
        self._device.proc.kill()
        self._device.proc.wait()

    def tear_outbox(self) -> list[str]:
        """What a power cut mid-write leaves: a partial temporary entry and a truncated one."""
        outbox = self._state / "outbox"
        torn: list[str] = []
        for name_fmt in (".tmp-{seq:020d}-{aid}.alert", "{seq:020d}-{aid}.alert"):
            aid = secrets.token_hex(16)
            seq = 900_000 + len(torn)
            data = encode_entry(aid, seq, secrets.token_bytes(600), time.time())
            (outbox / name_fmt.format(seq=seq, aid=aid)).write_bytes(data[: len(data) // 2])
            torn.append(aid)
        return torn

    def feed_lost(self) -> None:
        self.scene_dir.rename(self.scene_dir.with_name("scene.away"))

    def feed_back(self) -> None:
        away = self.scene_dir.with_name("scene.away")
        if away.exists():
            away.rename(self.scene_dir)

    def restart_broker(self) -> None:
        self.broker.restart()

    def set_wall_clock_offset(self, seconds: float) -> float:
        t = time.time()
        wall_clock_shim.write_offset(self._offset_file, seconds)
        # The agent looks at the offset file every RECHECK_S: once this returns, the step
        # is in force there (a document sent at once must meet the new clock, as it would
        # after a real `date -s`).
        time.sleep(3 * wall_clock_shim.RECHECK_S)
        return t

    def writable_changes(self) -> tuple[list[str], list[str] | None]:
        allowed = (
            str(self._state.relative_to(self.site.device_dir)) + "/",
            str((self.site.device_dir / "run").relative_to(self.site.device_dir)) + "/",
            "agent.log",
        )
        new = _snapshot(self.site.device_dir) - self._baseline
        outside = sorted(p for p in new if not p.startswith(allowed))
        if not self._private_tmp_ok:
            return outside, None
        tmp = [
            f"/tmp/{n} ({(self.private_tmp / n).stat().st_size} B)"
            for n in _snapshot(self.private_tmp)
        ]
        return outside, sorted(tmp)

    def plaintext_images(self) -> tuple[int, list[str]]:
        roots = [self._state, self.site.device_dir / "run", self.private_tmp]
        files = [p for r in roots if r.exists() for p in r.rglob("*") if p.is_file()]
        found = [p.name for p in files if any(m in p.read_bytes() for m in IMAGE_MAGIC)]
        return len(files), found

    def unexpected_egress(self) -> tuple[int, list[str]]:
        if self._pair is None:
            raise NotAvailable("no device namespace (loopback fallback): egress not observable")
        return self._pair.egress()

    def scene_origin(self, gate_opened: float) -> float:
        return gate_opened  # the replay starts with the camera

"""``make demo``: the whole system on this machine, with the commands people type.

Hub PKI and keys → broker (mutual TLS + ACL) on loopback → a device enrolled with keys
born on it → a watchlist built from a few test identities → the hub receiver and the
hub service ``lfr-hub serve`` (intake + web console) and the agent (a replay camera on
a generated street scene) → activate → alerts at the hub (crops and clips saved, and in
the console) → stop → the deployment report and the watchlist wipe → clean shutdown.

At a terminal the hub service then stays up with the demo's alerts in its console
until Ctrl-C; with ``LFR_DEMO_HOLD=0``, ``CI`` set or no terminal (``.ci/run``) the
demo finishes by itself.

Re-runnable: everything lives under ``var/demo`` (wiped at the start).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.cli.hub_commands.passphrase_args import PASSPHRASE_ENV
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.plate_alert_store import PlateAlertStore
from agent.hub.store.report_store import DeploymentReportStore
from hil.rig.unit_environment import unit_environment

REPO = Path(__file__).resolve().parents[1]
DEMO_PASSPHRASE = "demo supervisor passphrase"
SHARED_DATA = Path(os.environ.get("LFR_SHARED_DATA", REPO.parent / "shared" / "data"))
DEVICE = "lfr-demo-01"
DEPLOYMENT = "demo-001"
WATCHLIST_PEOPLE = ("deepface_id01", "deepface_id03")
PASSERS_BY = ("deepface_id10", "deepface_id11")
THRESHOLD = "0.5"
#: The plates deployment: a hotlisted vehicle and one that is not (synthetic plates).
PLATES_DEPLOYMENT = "demo-plates-001"
HOTLISTED_PLATE = "KX19 LMN"
OTHER_PLATE = "GD21 HVW"
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(words: Sequence[str], background: bool = False) -> None:
    """Print a command as a person would type it (program name without its folder)."""
    shown = [Path(words[0]).name, *words[1:]]
    line = "$ " + " ".join(shlex.quote(w) for w in shown)
    print(line + (" &" if background else ""), flush=True)


def start(
    cmd: Sequence[str | Path], stdout: IO[str] | int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start a long-running command in the background, shown like every other."""
    words = [str(c) for c in cmd]
    show(words, background=True)
    return subprocess.Popen(words, stdout=stdout, stderr=subprocess.STDOUT, text=True, env=env)


def run(cmd: Sequence[str | Path], quiet: bool = False) -> str:
    """Run a command as a person would, show it and its output, stop the demo if it fails."""
    words = [str(c) for c in cmd]
    show(words)
    res = subprocess.run(words, capture_output=True, text=True, check=False)
    out = (res.stdout + res.stderr).strip()
    if out and not quiet:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if res.returncode != 0:
        if quiet:
            print("  " + out.replace("\n", "\n  "), flush=True)
        raise SystemExit(f"demo: command failed with exit code {res.returncode}")
    return res.stdout


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"demo: timed out waiting for {what}")


def stream(proc: subprocess.Popen[str], prefix: str) -> threading.Thread:
    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"{prefix}{line.rstrip()}", flush=True)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def alert_count(db: Path) -> int:
    """Alerts the hub has stored (0 before the hub has made its database)."""
    if not db.exists():
        return 0
    store = AlertStore(db)
    try:
        return store.count()
    finally:
        store.close()


def report_bodies(db: Path, deployment_id: str) -> list[dict[str, Any]]:
    """The deployment's reports as the hub stored them (none before the database exists)."""
    if not db.exists():
        return []
    store = DeploymentReportStore(db)
    try:
        return [r.body for r in store.for_deployment(deployment_id)]
    finally:
        store.close()


def clip_state(lfr_hub: Path, db: Path, alert_id: str) -> str:
    """What ``alerts show`` says of the alert's clip (not shown: the demo polls it)."""
    res = subprocess.run(
        [str(lfr_hub), "alerts", "show", alert_id, "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return str(json.loads(res.stdout).get("clip", "")) if res.returncode == 0 else ""


def clip_arrived(lfr_hub: Path, db: Path, alert_id: str) -> bool:
    return clip_state(lfr_hub, db, alert_id) not in ("", "none received (yet)")


def report_count(db: Path, deployment_id: str) -> int:
    """Deployment reports the hub has stored for a deployment."""
    return len(report_bodies(db, deployment_id))


def _publish(lfr_hub: Path, hub: Path, path: Path, hub_tls: Sequence[str | Path]) -> None:
    run(
        [
            lfr_hub, "--log-level", "warning", "publish", path,
            "--device", DEVICE, "--db", hub / "alerts.db", *hub_tls,
        ]
    )  # fmt: skip


def _signed(lfr_hub: Path, hub: Path, action: str, *extra: str | Path) -> Path:
    out = hub / f"plates-{action}.json"
    run(
        [
            lfr_hub, action, "--hub-dir", hub / "keys", "--operator", "supervisor-1",
            "--device", DEVICE, "--deployment", PLATES_DEPLOYMENT, *extra, "--out", out,
        ]
    )  # fmt: skip
    return out


def _plates_deployment(
    out: Path, hub: Path, device: Path, lfr_hub: Path, hub_tls: Sequence[str | Path]
) -> None:
    """Hotlist from a CSV → publish → plates activation → the hotlisted vehicle's plate
    alert at the hub → stop → the plates report (counts only) → hotlist wiped."""
    csv = hub / "hotlist.csv"
    csv.write_text(
        "plate,reason,category,expiry\n"
        f"{HOTLISTED_PLATE},reported stolen (demo),stolen,\n"
        "AB12 CDE,wanted driver (demo),wanted,\n"
    )
    print(f"  hotlist CSV {csv} (stays at the hub)")
    hotlist = hub / f"{PLATES_DEPLOYMENT}.hotlist"
    built = run(
        [
            lfr_hub, "hotlist", "build", "--csv", csv, "--device", DEVICE,
            "--deployment", PLATES_DEPLOYMENT, "--out", hotlist, "--hub-dir", hub / "keys",
            "--device-key", f"{DEVICE}={device / 'keys' / 'device-x25519-pub.pem'}",
        ]
    )  # fmt: skip
    hotlist_hash = built.split("hotlist hash ")[1].split()[0]
    _publish(lfr_hub, hub, hotlist, hub_tls)
    log = device / "agent.log"
    wait_for("the hotlist on the device", lambda: "hotlist stored" in log.read_text(), 60)
    activation = _signed(
        lfr_hub, hub, "activate", "--duration", "1h", "--lease", "10m",
        "--hotlist", hotlist_hash, "--threshold", "0.5", "--officer", "PS 0002 Demo",
    )  # fmt: skip
    _publish(lfr_hub, hub, activation, hub_tls)
    wait_for("a plate alert", lambda: plate_alert_count(hub / "alerts.db") >= 1, 90)
    # Let the other vehicle cross too: it is read, counted, and forgotten on the camera.
    time.sleep(8.0)
    _publish(lfr_hub, hub, _signed(lfr_hub, hub, "stop", "--reason", "demo over"), hub_tls)
    quiet_hub: list[str | Path] = [lfr_hub, "--log-level", "warning"]
    reports = [*quiet_hub, "plates", "reports", "--db", hub / "alerts.db"]
    wait_for(
        "the plates report at the hub",
        lambda: "plates deployment ended" in log.read_text() and bool(run(reports, quiet=True)),
        30,
    )
    run([*quiet_hub, "plates", "list", "--db", hub / "alerts.db"])
    run([*quiet_hub, "plates", "reports", "--db", hub / "alerts.db"])
    listing = run([*quiet_hub, "plates", "list", "--db", hub / "alerts.db", "--json"], quiet=True)
    images = out / "alert-images"
    images.mkdir(exist_ok=True)
    for line in listing.splitlines():
        alert_id = json.loads(line)["alert_id"]
        run(
            [
                *quiet_hub, "plates", "show", alert_id, "--db", hub / "alerts.db",
                "--vehicle", images / f"plate-{alert_id}.jpg",
            ],
            quiet=True,
        )  # fmt: skip
        print(f"  plate alert {alert_id[:12]} vehicle crop → {images / f'plate-{alert_id}.jpg'}")
    state_bytes = b"".join(p.read_bytes() for p in (device / "state").rglob("*") if p.is_file())
    other = OTHER_PLATE.replace(" ", "").encode()
    print(
        f"  {OTHER_PLATE} (not hotlisted) in the device's state folder or log: "
        f"{'FOUND' if other in state_bytes or OTHER_PLATE in log.read_text() else 'nowhere'}"
    )


def plate_alert_count(db: Path) -> int:
    """Plate alerts the hub has stored (its own tables)."""
    if not db.exists():
        return 0
    store = PlateAlertStore(db)
    try:
        return store.count()
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make demo", description=__doc__)
    ap.add_argument("--models-dir", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "demo")
    ap.add_argument("--seconds", type=float, default=10.0, help="scene length")
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    # The demo operator's key is sealed under this; the commands read it from the
    # environment (a real operator types it at the prompt instead).
    os.environ.setdefault(PASSPHRASE_ENV, DEMO_PASSPHRASE)
    if not (SHARED_DATA / "faces").is_dir():
        raise SystemExit(f"demo: test photos not found at {SHARED_DATA} (set LFR_SHARED_DATA)")

    from hil.local_broker import MOSQUITTO, MosquittoBroker
    from hil.synthetic_scene import SceneSpec, generate_scene

    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    hub, device, pki = out / "hub", out / "device", out / "broker" / "pki"
    keys, state = device / "keys", device / "state"
    lfr_hub, lfr_agent = BIN / "lfr-hub", BIN / "lfr-agent"
    procs: list[subprocess.Popen[str]] = []
    broker: MosquittoBroker | None = None
    t0 = time.monotonic()
    try:
        say("1. Hub: the broker's PKI and the hub's signing keys")
        run([lfr_hub, "pki", "init", "--dir", pki, "--name", "lfr demo CA"])
        run(
            [
                lfr_hub,
                "pki",
                "issue",
                "--dir",
                pki,
                "--broker",
                "127.0.0.1",
                "--broker",
                "localhost",
            ]
        )
        # One certificate per hub process: the broker binds a session to a certificate.
        run([lfr_hub, "pki", "issue", "--dir", pki, "--hub", "main"])
        run([lfr_hub, "pki", "issue", "--dir", pki, "--hub", "publish"])
        run([lfr_hub, "keys", "init", "--dir", hub / "keys", "--operator", "supervisor-1"])

        say("2. Broker: mosquitto with mutual TLS and per-client rules, on loopback")
        broker = MosquittoBroker(out / "broker")
        show([str(MOSQUITTO), "-c", str(broker.conf_path)], background=True)
        broker.start()
        broker_addr = f"{broker.host}:{broker.port}"
        print(f"  mosquitto listening on {broker_addr} (config {broker.conf_path})")
        hub_tls: list[str | Path] = ["--broker", broker_addr, "--pki-dir", pki]
        # The broker allows nothing it was not told to: each hub process its role.
        # The service also publishes (the console's stops and the officers-present renewals).
        run([lfr_hub, "broker", "grant", "--hub", "main", "--role", "intake", "--role", "control",
             *hub_tls])  # fmt: skip
        run([lfr_hub, "broker", "grant", "--hub", "publish", "--role", "control", *hub_tls])

        say("3. Device: enrolment, with keys born on the device")
        enrol_device(out, lfr_agent, lfr_hub, hub, pki, keys, state, broker_addr, args.models_dir)

        say("4. Hub: a bespoke watchlist for this deployment, built from reference photos")
        photos = out / "reference-photos"
        for person in WATCHLIST_PEOPLE:
            (photos / person).mkdir(parents=True)
            shutil.copy(SHARED_DATA / "faces" / person / "1.jpg", photos / person / "1.jpg")
        run(
            [
                lfr_hub,
                "watchlist",
                "build",
                "--images",
                photos,
                "--device",
                DEVICE,
                "--deployment",
                DEPLOYMENT,
                "--out",
                hub / f"{DEPLOYMENT}.watchlist",
                "--hub-dir",
                hub / "keys",
                "--models-dir",
                args.models_dir,
                "--device-key",
                f"{DEVICE}={keys / 'device-x25519-pub.pem'}",
            ]
        )
        watchlist_hash = json.loads((hub / f"{DEPLOYMENT}.watchlist.hub-map.json").read_text())[
            "watchlist_hash"
        ]

        say(
            "5. A street scene for the replay camera (two watchlist people, two passers-by,"
            " two vehicles)"
        )
        scene = out / "scene"
        generate_scene(
            scene,
            SceneSpec(
                fps=15.0,
                seconds=args.seconds,
                identities=WATCHLIST_PEOPLE + PASSERS_BY,
                exclude_photos=tuple(f"{p}/1.jpg" for p in WATCHLIST_PEOPLE),
                seed=7,
            ),
            SHARED_DATA / "faces",
            SHARED_DATA / "scenes" / "no_faces",
            models_dir=args.models_dir,
        )
        from hil.synthetic_plates import VehicleSpec, add_vehicles

        add_vehicles(
            scene,
            [
                VehicleSpec(HOTLISTED_PLATE, enter_s=0.5, seconds=3.0, width_px=460),
                VehicleSpec(OTHER_PLATE, enter_s=4.0, seconds=3.0, left_to_right=False),
            ],
            fps=15.0,
            seed=7,
        )
        print(f"  {len(list(scene.glob('*.jpg')))} frames of 1280x720 in {scene}")
        print(
            f"  two vehicles cross it: {HOTLISTED_PLATE} (to be hotlisted) and {OTHER_PLATE}"
            " (synthetic plates, OpenCV's font)"
        )

        say("6. Hub service (intake and web console) and agent start; the camera stays closed")
        console = prepare_console(lfr_hub, hub, pki, broker_addr)
        watcher = start([lfr_hub, "serve", "--config", console.config], stdout=subprocess.PIPE)
        procs.append(watcher)
        stream(watcher, "  hub │ ")
        wait_for("the console", lambda: console_up(console), 60)
        print(f"  console at {console.url} (HTTPS; certificate from the demo CA {pki / 'ca.pem'})")
        agent_log = (device / "agent.log").open("w")
        agent = start(
            [lfr_agent, "run", "--config", device / "agent.toml"],
            stdout=agent_log,
            # As systemd would start it: the unit's Environment= (malloc tuning) too.
            env={**unit_environment(), **os.environ},
        )
        procs.append(agent)
        wait_for("the agent", lambda: "agent ready" in (device / "agent.log").read_text(), 120)
        print("  agent ready, camera closed (no activation yet)")

        say("7. Operator: send the watchlist, then activate (officers present)")
        run(
            [
                lfr_hub,
                "--log-level",
                "warning",
                "publish",
                hub / f"{DEPLOYMENT}.watchlist",
                "--device",
                DEVICE,
                "--db",
                hub / "alerts.db",
                *hub_tls,
            ]
        )
        wait_for(
            "the watchlist on the device",
            lambda: "watchlist stored" in (device / "agent.log").read_text(),
            60,
        )
        run(
            [
                lfr_hub,
                "activate",
                "--hub-dir",
                hub / "keys",
                "--operator",
                "supervisor-1",
                "--device",
                DEVICE,
                "--deployment",
                DEPLOYMENT,
                "--duration",
                "1h",
                "--lease",
                "10m",
                "--watchlist",
                watchlist_hash,
                "--threshold",
                THRESHOLD,
                "--officer",
                "PS 0001 Demo",
                "--out",
                hub / "activation.json",
            ]
        )
        run(
            [
                lfr_hub,
                "--log-level",
                "warning",
                "publish",
                hub / "activation.json",
                "--device",
                DEVICE,
                "--db",
                hub / "alerts.db",
                *hub_tls,
            ]
        )

        say("8. Alerts arrive at the hub while the scene plays")
        wait_for("alerts", lambda: alert_count(hub / "alerts.db") >= len(WATCHLIST_PEOPLE), 90)
        time.sleep(2.0)

        say("9. Operator: stop the deployment (officers leave)")
        reports_before = report_count(hub / "alerts.db", DEPLOYMENT)
        run(
            [
                lfr_hub,
                "stop",
                "--hub-dir",
                hub / "keys",
                "--operator",
                "supervisor-1",
                "--device",
                DEVICE,
                "--deployment",
                DEPLOYMENT,
                "--reason",
                "demo over",
                "--out",
                hub / "stop.json",
            ]
        )
        run(
            [
                lfr_hub,
                "--log-level",
                "warning",
                "publish",
                hub / "stop.json",
                "--device",
                DEVICE,
                "--db",
                hub / "alerts.db",
                *hub_tls,
            ]
        )
        wait_for(
            "the deployment to end on the device",
            lambda: "deployment ended" in (device / "agent.log").read_text(),
            30,
        )
        # The device sends its signed report as it ends; show it once the hub has stored it.
        wait_for(
            "the deployment report in the hub's store",
            lambda: report_count(hub / "alerts.db", DEPLOYMENT) > reports_before,
            30,
        )

        say("10. The deployment report and the watchlist wipe")
        run([lfr_hub, "reports", "show", DEPLOYMENT, "--db", hub / "alerts.db"])
        run([lfr_agent, "watchlist", "status", "--config", device / "agent.toml"])
        wiped = [
            json.loads(line)
            for line in (state / "audit.jsonl").read_text().splitlines()
            if '"watchlist.wiped"' in line
        ]
        for entry in wiped:
            print(f"  audit: watchlist.wiped {json.dumps(entry.get('fields', entry))}")
        # The report the hub holds anchors the device's audit log as it stood then.
        anchors = [
            f"{b['audit_seq']}:{b['audit_sha256']}"
            for b in report_bodies(hub / "alerts.db", DEPLOYMENT)
        ]
        anchor_args = [arg for a in anchors for arg in ("--anchor", a)]
        run([lfr_agent, "audit", "verify", *anchor_args, "--config", device / "agent.toml"])

        say("10b. Number plates: a separate deployment with its own hotlist (docs/anpr.md)")
        _plates_deployment(out, hub, device, lfr_hub, hub_tls)

        say("11. Adjudication material: every alert, its crop saved as an image, its clip as MP4")
        # Names stay at the hub: the map from entry references to subjects never leaves it.
        hub_map = json.loads((hub / f"{DEPLOYMENT}.watchlist.hub-map.json").read_text())["refs"]
        listing = run([lfr_hub, "alerts", "list", "--db", hub / "alerts.db", "--json"], quiet=True)
        images = out / "alert-images"
        images.mkdir(exist_ok=True)
        for line in listing.splitlines():
            alert_id = json.loads(line)["alert_id"]
            run(
                [
                    lfr_hub,
                    "alerts",
                    "show",
                    alert_id,
                    "--db",
                    hub / "alerts.db",
                    "--image",
                    images / f"{alert_id}.jpg",
                ],
                quiet=True,
            )
            row = json.loads(line)
            subject = hub_map.get(row["watchlist_entry"], {}).get("subject", "?")
            print(
                f"  {alert_id[:12]}  entry {row['watchlist_entry']} ({subject})"
                f"  score {row['score']:.3f}  → {images / (alert_id + '.jpg')}"
            )
            # The clip follows its alert (3 s of post-roll, then the transfer).
            wait_for(
                f"the clip of alert {alert_id[:12]}",
                functools.partial(clip_arrived, lfr_hub, hub / "alerts.db", alert_id),
                60,
            )
            if clip_state(lfr_hub, hub / "alerts.db", alert_id).startswith("missing"):
                print(f"  {alert_id[:12]}  clip {clip_state(lfr_hub, hub / 'alerts.db', alert_id)}")
                continue
            clip = images / f"{alert_id}.mp4"
            run([lfr_hub, "alerts", "clip", alert_id, "--db", hub / "alerts.db", "--out", clip])

        say("12. Shut down")
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(60)
        print(
            f"  agent stopped (exit code {code}); outbox left: {len(list((state / 'outbox').glob('*.alert')))}"
        )
        (hub / "report.txt").write_text(
            run([lfr_hub, "reports", "show", DEPLOYMENT, "--db", hub / "alerts.db"], quiet=True)
        )
        print(f"\nAlert images, clips: {images}")
        print(f"Deployment report:   {hub / 'report.txt'}")
        print(f"Device audit log:    {state / 'audit.jsonl'}")
        print(f"Demo finished in {time.monotonic() - t0:.0f} s.")
        print_console_login(console)
        if hold_open():
            print("The hub service keeps running with the demo's alerts: press Ctrl-C to stop.")
            try:
                while watcher.poll() is None:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                print("\nstopping")
        return 0 if code == 0 else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if broker is not None:
            broker.stop()


DEMO_USER, DEMO_PASSWORD = "demo-operator", "demo password only"
# The supervisor's console account has the name of the demo's operator key, so it can
# unlock that key (passphrase DEMO_PASSPHRASE) and plan, activate, hold and stop from
# the console's Deployments and Live pages.
DEMO_SUPERVISOR, DEMO_SUPERVISOR_PASSWORD = "supervisor-1", "demo supervisor password"


@dataclass(frozen=True)
class DemoConsole:
    config: Path
    url: str
    ca: Path
    totp_uri: str
    supervisor_totp_uri: str


def prepare_console(lfr_hub: Path, hub: Path, pki: Path, broker_addr: str) -> DemoConsole:
    """The hub config for ``lfr-hub serve``, the console's certificate, the hub audit
    key and a demo operator account."""
    from hil.local_broker import free_port

    run([lfr_hub, "pki", "issue", "--dir", pki, "--console", "127.0.0.1", "--console", "localhost"])
    run([lfr_hub, "audit", "key", "--out", hub / "keys" / "hub-audit-key.pem"])
    port = free_port()
    config = hub / "hub.toml"
    config.write_text(
        f"""# The demo hub (lfr-hub serve --config {config})
[database]
url = "{hub / "alerts.db"}"

[broker]
address = "{broker_addr}"
pki_dir = "{pki}"
alert_key = "{hub / "keys" / "hub-alert-x25519-key.pem"}"

[console]
port = {port}
tls_cert = "{pki / "console-cert.pem"}"
tls_key = "{pki / "console-key.pem"}"

[watchlists]
maps_dir = "{hub}"

[keys]
dir = "{hub / "keys"}"

[audit]
log = "{hub / "audit" / "hub-audit.jsonl"}"
signing_key = "{hub / "keys" / "hub-audit-key.pem"}"

[logging]
level = "warning"
"""
    )
    uris = []
    for user, role, password in (
        (DEMO_USER, "operator", DEMO_PASSWORD),
        (DEMO_SUPERVISOR, "supervisor", DEMO_SUPERVISOR_PASSWORD),
    ):
        show([str(lfr_hub), "user", "add", user, "--role", role, "--config", str(config)])
        added = subprocess.run(
            [lfr_hub, "user", "add", user, "--role", role, "--config", config, "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        uris.append(next(ln for ln in added.stdout.splitlines() if ln.startswith("otpauth://")))
    return DemoConsole(config, f"https://127.0.0.1:{port}", pki / "ca.pem", uris[0], uris[1])


def console_up(console: DemoConsole) -> bool:
    ctx = ssl.create_default_context(cafile=str(console.ca))
    try:
        with urllib.request.urlopen(f"{console.url}/login", context=ctx, timeout=3) as r:
            return bool(r.status == 200)
    except (OSError, ssl.SSLError):
        return False


def print_console_login(console: DemoConsole) -> None:
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(console.totp_uri).query)["secret"][0]
    print(f"\nConsole:             {console.url}  (trust {console.ca}, or accept the warning)")
    print(f"Demo login:          {DEMO_USER} / {DEMO_PASSWORD}")
    print(f"Its TOTP key:        {secret}  (authenticator app, or: oathtool --totp -b {secret})")
    query = urllib.parse.urlsplit(console.supervisor_totp_uri).query
    sup_secret = urllib.parse.parse_qs(query)["secret"][0]
    print(
        f"Supervisor login:    {DEMO_SUPERVISOR} / {DEMO_SUPERVISOR_PASSWORD}, TOTP key {sup_secret}"
    )
    print(f"Its signing key:     unlock on the Signing page with '{DEMO_PASSPHRASE}'")


def hold_open() -> bool:
    """Keep the hub running for a person at a terminal; never in CI or when told not to."""
    if os.environ.get("LFR_DEMO_HOLD", "").strip() == "0" or os.environ.get("CI"):
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def enrol_device(
    out: Path,
    lfr_agent: Path,
    lfr_hub: Path,
    hub: Path,
    pki: Path,
    keys: Path,
    state: Path,
    broker_addr: str,
    models_dir: Path,
) -> None:
    """The technician's steps: a config, an enrolment request (keys are generated on the
    device and never leave it), the hub's approval, and completing with the hub root
    fingerprint read out by the hub (over the phone, in the field)."""
    device = keys.parent
    config = device / "agent.toml"
    device.mkdir(parents=True, exist_ok=True)
    config.write_text(f"""[device]
id = "{DEVICE}"

[paths]
state_dir = "{state}"
keys_dir = "{keys}"
models_dir = "{models_dir.resolve()}"
runtime_dir = "{device / "run"}"

[camera]
source = "replay"
device = "{out / "scene"}"
fps = 15
loop = true

[activation]
# This demo machine's clock is not NTP-synchronised; a field device's is.
require_clock_sync = false

[health]
status_interval_s = 5.0

[plates]
# Number plates (docs/anpr.md): a separate deployment with its own hotlist.
enabled = true
""")
    print(f"  device config written to {config}")
    run(
        [
            lfr_agent,
            "enrol",
            "request",
            "--id",
            DEVICE,
            "--out",
            device / "enrol.request",
            "--config",
            config,
        ]
    )
    approval = run(
        [
            lfr_hub,
            "device",
            "approve",
            device / "enrol.request",
            "--out",
            hub / f"{DEVICE}.bundle",
            "--hub-dir",
            hub / "keys",
            "--pki-dir",
            pki,
            "--broker-url",
            f"mqtts://{broker_addr}",
            "--operator",
            "supervisor-1",
            "--db",
            hub / "alerts.db",
        ]
    )
    run([lfr_hub, "broker", "grant", "--device", DEVICE, "--broker", broker_addr, "--pki-dir", pki])
    fingerprint = next(
        line.split("hub root", 1)[1].strip()
        for line in approval.splitlines()
        if line.strip().startswith("hub root")
    )
    run(
        [
            lfr_agent,
            "enrol",
            "complete",
            hub / f"{DEVICE}.bundle",
            "--root-fingerprint",
            fingerprint,
            "--config",
            config,
        ]
    )
    run([lfr_agent, "enrol", "status", "--config", config])


if __name__ == "__main__":
    raise SystemExit(main())

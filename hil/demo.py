"""``make demo``: the whole system on this machine, with the commands people type.

Hub PKI and keys → broker (mutual TLS + ACL) on loopback → a device enrolled with keys
born on it → a watchlist built from a few test identities → the hub receiver and the
agent (a replay camera on a generated street scene) → activate → alerts at the hub
(crops saved) → stop → the deployment report and the watchlist wipe → clean shutdown.

Re-runnable: everything lives under ``var/demo`` (wiped at the start).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LFR_SHARED_DATA", REPO.parent / "shared" / "data"))
DEVICE = "lfr-demo-01"
DEPLOYMENT = "demo-001"
WATCHLIST_PEOPLE = ("deepface_id01", "deepface_id03")
PASSERS_BY = ("deepface_id10", "deepface_id11")
THRESHOLD = "0.5"
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(words: Sequence[str], background: bool = False) -> None:
    """Print a command as a person would type it (program name without its folder)."""
    shown = [Path(words[0]).name, *words[1:]]
    line = "$ " + " ".join(shlex.quote(w) for w in shown)
    print(line + (" &" if background else ""), flush=True)


def start(cmd: Sequence[str | Path], stdout: IO[str] | int) -> subprocess.Popen[str]:
    """Start a long-running command in the background, shown like every other."""
    words = [str(c) for c in cmd]
    show(words, background=True)
    return subprocess.Popen(words, stdout=stdout, stderr=subprocess.STDOUT, text=True)


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
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return int(con.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def report_count(db: Path, deployment_id: str) -> int:
    """Deployment reports the hub has stored for a deployment (0 before the table exists)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            query = "SELECT COUNT(*) FROM deployment_reports WHERE deployment_id = ?"
            return int(con.execute(query, (deployment_id,)).fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def report_bodies(hub: Path, deployment_id: str) -> list[dict[str, Any]]:
    """The deployment's reports as the hub stored them."""
    with sqlite3.connect(hub / "alerts.db") as con:
        query = "SELECT body FROM deployment_reports WHERE deployment_id = ? ORDER BY rowid"
        return [json.loads(r[0]) for r in con.execute(query, (deployment_id,))]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make demo", description=__doc__)
    ap.add_argument("--models-dir", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "demo")
    ap.add_argument("--seconds", type=float, default=10.0, help="scene length")
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if not (SHARED_DATA / "faces").is_dir():
        raise SystemExit(f"demo: test photos not found at {SHARED_DATA} (set LFR_SHARED_DATA)")

    from hil.local_broker import HUB_CN, MOSQUITTO, MosquittoBroker
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
        run([lfr_hub, "pki", "issue", "--dir", pki, "--hub", "main"])
        run([lfr_hub, "keys", "init", "--dir", hub / "keys", "--operator", "supervisor-1"])

        say("2. Broker: mosquitto with mutual TLS and the per-device ACL, on loopback")
        broker = MosquittoBroker(out / "broker")
        show([str(MOSQUITTO), "-c", str(broker.conf_path)], background=True)
        broker.start()
        broker_addr = f"{broker.host}:{broker.port}"
        print(f"  mosquitto listening on {broker_addr} (config {broker.conf_path})")
        hub_tls: list[str | Path] = [
            "--broker",
            broker_addr,
            "--ca",
            pki / "ca.pem",
            "--cert",
            pki / "clients" / f"{HUB_CN}-cert.pem",
            "--key",
            pki / "clients" / f"{HUB_CN}-key.pem",
        ]

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

        say("5. A street scene for the replay camera (two watchlist people, two passers-by)")
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
        print(f"  {len(list(scene.glob('*.jpg')))} frames of 1280x720 in {scene}")

        say("6. Hub receiver and agent start; the camera stays closed")
        watcher = start(
            [
                lfr_hub,
                "alerts",
                "watch",
                "--db",
                hub / "alerts.db",
                "--alert-key",
                hub / "keys" / "hub-alert-x25519-key.pem",
                *hub_tls,
            ],
            stdout=subprocess.PIPE,
        )
        procs.append(watcher)
        stream(watcher, "  hub │ ")
        agent_log = (device / "agent.log").open("w")
        agent = start(
            [lfr_agent, "run", "--config", device / "agent.toml"],
            stdout=agent_log,
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
        anchors = [f"{b['audit_seq']}:{b['audit_sha256']}" for b in report_bodies(hub, DEPLOYMENT)]
        anchor_args = [arg for a in anchors for arg in ("--anchor", a)]
        run([lfr_agent, "audit", "verify", *anchor_args, "--config", device / "agent.toml"])

        say("11. Adjudication material: every alert, its crop saved as an image")
        # Names stay at the hub: the map from entry references to subjects never leaves it.
        hub_map = json.loads((hub / f"{DEPLOYMENT}.watchlist.hub-map.json").read_text())["refs"]
        listing = run([lfr_hub, "alerts", "list", "--db", hub / "alerts.db", "--json"], quiet=True)
        images = out / "alert-images"
        images.mkdir()
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

        say("12. Shut down")
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(60)
        print(
            f"  agent stopped (exit code {code}); outbox left: {len(list((state / 'outbox').glob('*.alert')))}"
        )
        (hub / "report.txt").write_text(
            run([lfr_hub, "reports", "show", DEPLOYMENT, "--db", hub / "alerts.db"], quiet=True)
        )
        print(f"\nAlert images:        {images}")
        print(f"Deployment report:   {hub / 'report.txt'}")
        print(f"Device audit log:    {state / 'audit.jsonl'}")
        print(f"Demo finished in {time.monotonic() - t0:.0f} s.")
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

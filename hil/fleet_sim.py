"""``make fleet-sim N=…``: a fleet of simulated cameras against several hub workers sharing
one PostgreSQL database, with faults, proving that every alert is stored exactly once,
and measuring what the hub costs as the fleet grows.

For each fleet size of the ladder (10, 100, 1000, … up to N, and N itself) it starts, on
this machine:

- a private PostgreSQL cluster (``hil/local_postgres.py``) and the shipped mosquitto
  configuration (``hil/local_broker.py``: mutual TLS, per-device ACL, persistence);
- N cameras, each enrolled as the hub enrols one: its own Ed25519 signing key registered
  in the hub database, its own broker certificate from the broker CA
  (``agent/hub/keys/pki.py``), run as light cameras in a few processes
  (``hil/fleet/camera_group.py``: the camera's real link, outbox and publisher, no
  vision); one camera in ten reaches the broker through a relay that can be cut;
- ``--workers`` hub workers in one MQTT shared-subscription group, each the command
  ``HUB_WORKER_COMMAND`` (one parameter, so the hub service can take its place);
- a change-feed subscriber, as a console would be, timing how soon it hears of each
  stored alert.

The cameras seal ``--alerts-per-camera`` alerts each, spread over ``--seconds``, and
publish their status at the camera's real interval. During that window come the faults:
a network cut for the relayed cameras, a hub worker killed (SIGKILL) and restarted,
PostgreSQL stopped abruptly and restarted, the broker restarted. Then the run waits until
every camera's outbox is empty (each alert acknowledged by the hub after its commit) and
compares what the cameras sealed with what the database holds:

- **sent**: alerts sealed by the cameras; **stored**: rows in the database;
- **duplicated**: alerts stored more than once; **lost**: sealed, never stored;
  **phantom**: stored, never sealed (all three must be 0);
- **redeliveries absorbed**: copies the cameras published beyond one per alert, which
  the hub recognised as duplicates;
- **latency** p50/p95/p99: sealed on the camera to committed at the hub, faults included;
- **CPU and memory** (Pss) of the hub workers, PostgreSQL and the broker.

Writes ``OUT/report.md`` (the table), ``OUT/report.json`` and ``OUT/scaling.png``;
exits 1 if any alert was lost, duplicated or phantom.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from agent.hub.keys.broker_access import device_grant
from agent.hub.keys.broker_admin import BrokerAdmin
from agent.hub.keys.pki import hub_identity
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.alert_tables import alerts
from agent.hub.store.database import HubDatabase
from agent.trust.key_files import write_private_key, write_public_key
from hil.fleet.camera_group import DEPLOYMENT
from hil.fleet.fleet_plan import CameraSpec, GroupPlan
from hil.fleet.process_sampler import ProcessSampler, descendants
from hil.fleet.scaling_report import StepResult, save_png, table, write_json
from hil.local_broker import MosquittoBroker
from hil.local_postgres import LocalPostgres
from hil.tcp_cut_proxy import TcpCutProxy

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
log = logging.getLogger("hil.fleet_sim")

#: How a hub worker is started: the one place to change when the hub service replaces
#: ``alerts watch`` (fields: lfr_hub, db, host, port, pki_dir, identity, alert_key,
#: group; each already shell-quoted). Each worker is its own hub identity
#: (``hub.<identity>``, granted the intake role): the broker makes the certificate's
#: name the client id, so two workers sharing one would take each other's session.
HUB_WORKER_COMMAND = (
    "{lfr_hub} alerts watch --db {db} --broker {host}:{port} --pki-dir {pki_dir} "
    "--identity {identity} --alert-key {alert_key} --group {group}"
)
SHARE_GROUP = "fleet"
LADDER = (10, 100, 1000, 10000)
CAMERAS_PER_PROCESS = 250
#: One camera in this many reaches the broker through the cuttable relay.
RELAYED_EVERY = 10
CUT_SECONDS = 20.0
WORKER_DOWN_SECONDS = 5.0
STATUS_INTERVAL_S = 30.0  # the camera default (health.status_interval_s)
RESEND_AFTER_S = 60.0  # the camera default (outbox.resend_after_s)


def worker_name(i: int) -> str:
    return f"fleet-w{i}"


def ladder(n: int) -> list[int]:
    """The fleet sizes to run for ``make fleet-sim N=n``: the ladder below n, then n."""
    return [s for s in LADDER if s < n] + [n]


@dataclass
class HubWorkers:
    """The hub worker processes, restartable under the same client id."""

    argv_for: Callable[[int], list[str]]
    log_dir: Path
    count: int
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, i: int) -> None:
        out = open(self.log_dir / f"hub-worker-{i}.log", "ab")  # noqa: SIM115
        self._logs.append(out)
        self.procs[i] = subprocess.Popen(self.argv_for(i), stdout=out, stderr=subprocess.STDOUT)

    def start_all(self) -> None:
        for i in range(1, self.count + 1):
            self.start(i)

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def pids(self) -> set[int]:
        return {p.pid for p in self.procs.values() if p.poll() is None}

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self._logs:
            f.close()


class FeedTimer:
    """A console's view: how long after its commit each stored alert is heard of."""

    def __init__(self, db: HubDatabase) -> None:
        self._sub = db.changes.subscribe()
        self.delays_ms: list[float] = []
        self.resyncs = 0
        self._thread = threading.Thread(target=self._run, name="feed-timer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._sub.closed:
            change = self._sub.get(timeout=0.5)
            if change is None:
                continue
            if change.kind == "alert.stored":
                self.delays_ms.append(1000.0 * (time.time() - change.at))
            elif change.kind == "resync":
                self.resyncs += 1

    def close(self) -> None:
        self._sub.close()
        self._thread.join(timeout=5)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[k]


def _read_stats(paths: Sequence[Path]) -> dict[str, float]:
    """The camera processes' counters summed; ``at``: when the oldest was written."""
    total = {"submitted": 0.0, "pending": 0.0, "published": 0.0, "acknowledged": 0.0}
    total |= {"connected": 0.0, "at": math.inf}
    for p in paths:
        try:
            stats = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            total["at"] = 0.0  # not written yet: nothing is known
            continue
        for k in ("submitted", "pending", "published", "acknowledged", "connected"):
            total[k] += float(stats.get(k, 0))
        total["at"] = min(total["at"], float(stats.get("at", 0.0)))
    return total


def _all_connected_after(stats_files: Sequence[Path], n: int, since: float) -> Callable[[], bool]:
    """True once counters written after ``since`` show every camera connected."""

    def check() -> bool:
        s = _read_stats(stats_files)
        return s["at"] > since and s["connected"] == n

    return check


def _wait(what: str, condition: Callable[[], bool], timeout: float, every: float = 0.5) -> float:
    """Seconds until ``condition()``; RuntimeError naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"fleet-sim: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


def _enrol(
    n: int, step_dir: Path, broker: MosquittoBroker, store: AlertStore, proxy_port: int
) -> list[CameraSpec]:
    """Enrol n cameras as the hub does: a broker certificate each, a signing key each
    registered in the hub database."""
    cams = []
    for i in range(n):
        dev = f"sim-{i:04d}"
        state = step_dir / "cameras" / dev
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        _ca, cert, key = broker.client_files(dev, grant=False)  # granted below, in one session
        signing = Ed25519PrivateKey.generate()
        write_private_key(state / "signing-key.pem", signing)
        store.register_device_key(dev, signing.public_key())
        relayed = i % RELAYED_EVERY == RELAYED_EVERY - 1
        cams.append(
            CameraSpec(
                device_id=dev,
                host=broker.host,
                port=proxy_port if relayed else broker.port,
                cert_file=str(cert),
                key_file=str(key),
                signing_key_file=str(state / "signing-key.pem"),
                state_dir=str(state),
            )
        )
    # As `lfr-hub broker grant --device` does, over one administrator connection.
    with BrokerAdmin(broker.admin_settings()) as admin:
        for cam in cams:
            admin.apply(device_grant(cam.device_id))
    return cams


def run_step(n: int, args: argparse.Namespace, out: Path) -> StepResult:
    step_dir = out / f"n{n}"
    step_dir.mkdir(parents=True)
    say(f"{n} cameras, {args.workers} hub workers, {n * args.alerts_per_camera} alerts")
    pg = LocalPostgres()
    broker: MosquittoBroker | None = None
    workers: HubWorkers | None = None
    groups: list[subprocess.Popen[bytes]] = []
    proxy: TcpCutProxy | None = None
    feed: FeedTimer | None = None
    db: HubDatabase | None = None
    try:
        pg.start()
        url = pg.create_database("lfr_hub")
        db = HubDatabase(url)
        store = AlertStore(db)
        broker = MosquittoBroker(step_dir / "broker")
        broker.start()
        proxy = TcpCutProxy(broker.port)
        hub_key = X25519PrivateKey.generate()
        write_private_key(step_dir / "hub-alert-key.pem", hub_key)
        write_public_key(step_dir / "hub-alert-public.pem", hub_key.public_key())
        t0 = time.monotonic()
        cameras = _enrol(n, step_dir, broker, store, proxy.port)
        say(f"enrolled {n} cameras in {time.monotonic() - t0:.1f} s")

        for i in range(1, args.workers + 1):
            broker.client_files(hub_identity(worker_name(i)), roles=("intake",))
        q = shlex.quote

        def worker_argv(i: int) -> list[str]:
            return shlex.split(
                HUB_WORKER_COMMAND.format(
                    lfr_hub=q(str(BIN / "lfr-hub")),
                    db=q(url),
                    host=q(broker.host if broker else "127.0.0.1"),
                    port=broker.port if broker else 0,
                    pki_dir=q(str(broker.pki_dir if broker else "")),
                    identity=q(worker_name(i)),
                    alert_key=q(str(step_dir / "hub-alert-key.pem")),
                    group=q(SHARE_GROUP),
                )
            )

        workers = HubWorkers(worker_argv, step_dir, args.workers)
        workers.start_all()
        _wait(
            "the hub workers to connect",
            lambda: (
                all(
                    f"as {hub_identity(worker_name(i))} " in broker.log_text()
                    for i in range(1, args.workers + 1)
                )
                if broker
                else False
            ),
            60,
        )
        feed = FeedTimer(db)

        n_groups = max(1, math.ceil(n / CAMERAS_PER_PROCESS))
        ramp = min(20.0, max(2.0, n / 50))
        send_from = time.time() + ramp + 5.0
        send_until = send_from + args.seconds
        stats_files = []
        for g in range(n_groups):
            plan = GroupPlan(
                name=f"group-{g}",
                cameras=cameras[g::n_groups],
                ca_file=str(broker.pki_dir / "ca.pem"),
                hub_alert_public_key_file=str(step_dir / "hub-alert-public.pem"),
                alerts_per_camera=args.alerts_per_camera,
                send_from=send_from,
                send_until=send_until,
                status_interval_s=STATUS_INTERVAL_S,
                resend_after_s=RESEND_AFTER_S,
                events_file=str(step_dir / f"group-{g}.events.jsonl"),
                stats_file=str(step_dir / f"group-{g}.stats.json"),
                ramp_s=ramp,
            )
            plan.write(step_dir / f"group-{g}.plan.json")
            stats_files.append(Path(plan.stats_file))
            groups.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hil.fleet.camera_group",
                        str(step_dir / f"group-{g}.plan.json"),
                    ],
                    cwd=REPO,
                    stdout=open(step_dir / f"group-{g}.log", "ab"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        connect_s = _wait(
            "every camera to connect",
            lambda: _read_stats(stats_files)["connected"] == n,
            ramp + 120,
        )
        say(f"{n} cameras connected within {connect_s:.1f} s")

        sampler = ProcessSampler()
        sampler.watch("hub", workers.pids)
        sampler.watch("postgresql", lambda: descendants(pg.pid() or -1) if pg.pid() else set())
        sampler.watch("broker", lambda: {broker.pid} if broker and broker.pid else set())
        sampler.watch("cameras", lambda: {p.pid for p in groups if p.poll() is None})
        time.sleep(max(0.0, send_from - time.time()))
        sampler.start()
        faults = _inject_faults(args.seconds, send_from, proxy, workers, pg, broker, stats_files, n)
        time.sleep(max(0.0, send_until - time.time()))
        expected = n * args.alerts_per_camera
        drain_s = _wait(
            "every alert to be acknowledged",
            lambda: (s := _read_stats(stats_files))["submitted"] == expected and s["pending"] == 0,
            2 * RESEND_AFTER_S + 120,
            every=1.0,
        )
        sampler.stop()
        say(f"all {expected} alerts acknowledged {drain_s:.1f} s after the window closed")
        totals = _read_stats(stats_files)
        for p in groups:
            p.terminate()
        for p in groups:
            p.wait(timeout=60)
        return _measure(n, args, step_dir, db, sampler, feed, totals, faults, n_groups, expected)
    finally:
        for p in groups:
            if p.poll() is None:
                p.kill()
                p.wait()
        if feed is not None:
            feed.close()
        if workers is not None:
            workers.stop()
        if proxy is not None:
            proxy.close()
        if broker is not None:
            broker.stop()
        if db is not None:
            db.close()
        pg.cleanup()


def _inject_faults(
    seconds: float,
    send_from: float,
    proxy: TcpCutProxy,
    workers: HubWorkers,
    pg: LocalPostgres,
    broker: MosquittoBroker,
    stats_files: Sequence[Path],
    n: int,
) -> list[str]:
    """The four faults, at 15 %, 35 %, 55 % and 75 % of the sending window."""
    done: list[str] = []

    def at(fraction: float) -> str:
        time.sleep(max(0.0, send_from + fraction * seconds - time.time()))
        return f"t+{time.time() - send_from:.0f}s"

    when = at(0.15)
    proxy.cut()
    time.sleep(CUT_SECONDS)
    proxy.restore()
    restored = time.time()
    back = _wait(
        "relayed cameras to reconnect",
        _all_connected_after(stats_files, n, restored + 0.5),
        120,
        every=0.2,
    )
    done.append(
        f"{when}: network cut for {len(range(RELAYED_EVERY - 1, n, RELAYED_EVERY))} cameras "
        f"for {CUT_SECONDS:.0f} s; all connected again {back:.1f} s after the link returned"
    )
    when = at(0.35)
    workers.kill(1)
    time.sleep(WORKER_DOWN_SECONDS)
    workers.start(1)
    done.append(
        f"{when}: hub worker 1 killed (SIGKILL), restarted {WORKER_DOWN_SECONDS:.0f} s later"
    )
    when = at(0.55)
    t = time.monotonic()
    pg.stop("immediate")
    pg.start()
    done.append(
        f"{when}: PostgreSQL stopped abruptly (immediate) and restarted "
        f"({time.monotonic() - t:.1f} s down)"
    )
    when = at(0.75)
    broker.restart()
    restarted = time.time()
    back = _wait(
        "cameras to reconnect after the broker restart",
        _all_connected_after(stats_files, n, restarted + 0.5),
        180,
        every=0.2,
    )
    done.append(
        f"{when}: broker restarted; all cameras connected again within {back:.1f} s "
        "(counters written once a second)"
    )
    if not workers.alive():
        done.append("a hub worker exited on its own during the run (see its log)")
    for line in done:
        say("fault " + line)
    return done


def _measure(
    n: int,
    args: argparse.Namespace,
    step_dir: Path,
    db: HubDatabase,
    sampler: ProcessSampler,
    feed: FeedTimer,
    totals: dict[str, float],
    faults: list[str],
    n_groups: int,
    expected: int,
) -> StepResult:
    sent: dict[tuple[str, str], float] = {}
    for g in range(n_groups):
        for line in (step_dir / f"group-{g}.events.jsonl").read_text().splitlines():
            e = json.loads(line)
            sent[(e["d"], e["a"])] = float(e["t"])
    with db.read() as conn:
        rows = conn.execute(
            select(alerts.c.device_id, alerts.c.alert_id, alerts.c.seq, alerts.c.received_at).where(
                alerts.c.deployment_id == DEPLOYMENT
            )
        ).all()
    stored_ids = [(str(r[0]), str(r[1])) for r in rows]
    distinct = set(stored_ids)
    duplicated = (len(stored_ids) - len(distinct)) + (
        len(rows) - len({(str(r[0]), int(r[2])) for r in rows})
    )
    lost = len(set(sent) - distinct)
    phantom = len(distinct - set(sent))
    latencies = [
        float(r[3]) - sent[(str(r[0]), str(r[1]))] for r in rows if (str(r[0]), str(r[1])) in sent
    ]
    elapsed = sampler.elapsed_s or 1.0

    def core(name: str) -> float:
        return sampler.usage(name).cpu_s / elapsed

    def mb(name: str) -> float:
        return sampler.usage(name).peak_pss / 2**20

    if feed.resyncs:
        faults.append(f"change feed: {feed.resyncs} resync(s) after the PostgreSQL restart")
    return StepResult(
        cameras=n,
        hub_workers=args.workers,
        seconds=round(elapsed, 1),
        sent=len(sent),
        stored=len(distinct),
        duplicated=duplicated,
        lost=lost,
        phantom=phantom,
        redeliveries=max(0, int(totals["published"]) - len(sent)),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_p99_s=percentile(latencies, 99),
        latency_max_s=max(latencies, default=math.nan),
        hub_cpu_core=core("hub"),
        hub_peak_mb=mb("hub"),
        postgres_cpu_core=core("postgresql"),
        postgres_peak_mb=mb("postgresql"),
        broker_cpu_core=core("broker"),
        broker_peak_mb=mb("broker"),
        cameras_cpu_core=core("cameras"),
        feed_p50_ms=percentile(feed.delays_ms, 50) if feed.delays_ms else None,
        feed_p95_ms=percentile(feed.delays_ms, 95) if feed.delays_ms else None,
        faults=faults,
    )


def say(text: str) -> None:
    print(f"fleet-sim: {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make fleet-sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=50, help="largest fleet (default 50)")
    ap.add_argument("--workers", type=int, default=2, help="hub workers (default 2)")
    ap.add_argument(
        "--alerts-per-camera", type=int, default=10, help="alerts each camera seals (10)"
    )
    ap.add_argument(
        "--seconds", type=float, default=150.0, help="sending window per fleet size (150)"
    )
    ap.add_argument("--only", action="store_true", help="run only --cameras, not the ladder")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "fleet-sim")
    args = ap.parse_args(argv)
    if args.cameras < 1 or args.workers < 1 or args.alerts_per_camera < 1:
        ap.error("--cameras, --workers and --alerts-per-camera must be at least 1")
    if args.seconds < 30:
        ap.error("--seconds: at least 30 (the faults need the window)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    out: Path = args.out.resolve()
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    sizes = [args.cameras] if args.only else ladder(args.cameras)
    results = []
    for n in sizes:
        results.append(run_step(n, args, out))
        print(table(results), flush=True)
    report = table(results)
    faults = "\n".join(
        f"- {r.cameras} cameras: " + "; ".join(r.faults) for r in results if r.faults
    )
    (out / "report.md").write_text(
        f"# Fleet simulator\n\n{report}\nFaults:\n\n{faults}\n", encoding="utf-8"
    )
    write_json(
        out / "report.json",
        results,
        {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "hub_worker": HUB_WORKER_COMMAND},
    )
    save_png(out / "scaling.png", results)
    say(f"report: {out / 'report.md'}, plot: {out / 'scaling.png'}")
    bad = [r for r in results if r.lost or r.duplicated or r.phantom]
    if bad:
        say("FAILED: alerts lost, duplicated or phantom: " + ", ".join(str(r.cameras) for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

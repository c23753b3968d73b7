"""``python -m hil.soak --hours H | --minutes M --out DIR`` (``make soak HOURS=…``)

The endurance soak: the virtual rig's whole site (real broker, the agent on a looping
replay scene, the hub as its own process) runs for the time asked, with a live
deployment kept alive by signed renewals, alerts acknowledged by an operator, one broker
restart, one network cut and one daemon stop/start in the first half. Every 10 s it
samples the daemon, the hub and the broker (a run of an hour or more reads the daemon's
and the hub's memory every second). The verdict is on growth: the least-squares
slope of each resource over the second half, projected to 12 h, against its budget.
Report: DIR/soak.json, soak.md, soak.png (and samples.jsonl, written as the run goes).
Exit code 0 when every budget and check passed, 1 when one failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import LfrError, UsageError
from agent.hub.store.alert_store import AlertStore
from hil.rig.rig_description import load_rig
from hil.soak.hub_process import HUB_COMMAND
from hil.soak.soak_budgets import FULL, SHORT, table_for
from hil.soak.soak_report import judge_all, write_report
from hil.soak.soak_rig import SoakRig
from hil.soak.soak_sampler import (
    INTERVAL_S,
    MEMORY_INTERVAL_S,
    SoakSampler,
    SoakSources,
    find_program,
)
from hil.soak.soak_timeline import LEASE_S, MAX_RUN_S, RENEW_EVERY_S, SoakTimeline, plan_for
from hil.stop_signals import interrupt_on_stop_signals

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Below this the second half holds too few samples for a line worth drawing.
MIN_MINUTES = 4.0


def _say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def run_soak(args: argparse.Namespace) -> int:
    minutes = args.minutes if args.minutes is not None else args.hours * 60.0
    if minutes < MIN_MINUTES:
        raise UsageError(f"soak: {minutes:g} min is too short (at least {MIN_MINUTES:g} min)")
    run_s = minutes * 60.0
    if run_s > MAX_RUN_S:
        raise UsageError(
            f"soak: {minutes / 60:.3g} h is longer than one activation window allows "
            f"(at most {MAX_RUN_S / 3600:.3g} h: a device caps a window at 12 h)"
        )
    table = table_for(minutes / 60.0, args.budgets)
    desc = load_rig(args.rig)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = _load_average()
    rig = SoakRig(desc, out, args.models_dir, args.shared_data, args.hub_command, say=_say)
    _say(f"soak: {minutes:g} min, budgets {table}; setting up the rig")
    sampler: SoakSampler | None = None
    checks: list[tuple[str, bool, str]] = []
    timeline: SoakTimeline | None = None
    try:
        rig.setup()
        counter = AlertStore(rig.site.hub_db)  # the sampler's own handle (its own thread)

        def stored() -> int | None:
            try:
                return counter.count()
            except LfrError:
                return None

        def daemon_pid() -> int | None:
            dev = rig._device
            return find_program(dev.proc.pid if dev else None, "agent.cli.agent_main")

        hub = rig.hub_process
        assert hub is not None
        sources = SoakSources(
            daemon_pid=daemon_pid,
            hub_pid=lambda: hub.pid,
            broker_pid=lambda: rig.broker.pid,
            daemon_log=rig.site.device_dir / "agent.log",
            hub_log=rig.hub_log_path,
            state_dir=rig.site.state_dir,
            hub_db=rig.site.hub_db,
            status=rig.status,
            alerts_stored=stored,
            alerts_adjudicated=lambda: timeline.result.adjudicated if timeline else 0,
        )
        journal = out / "samples.jsonl"
        journal.unlink(missing_ok=True)
        # The long run reads memory every second to resolve the daemon's 40-s cycle; the
        # short form keeps one sample for everything (its memory budgets forgive noise).
        memory_interval = args.memory_interval
        if memory_interval is None and table == FULL:
            memory_interval = MEMORY_INTERVAL_S
        if memory_interval is not None and memory_interval >= args.interval:
            memory_interval = None
        sampler = SoakSampler(
            sources, interval_s=args.interval, journal=journal, memory_interval_s=memory_interval
        )
        plan = plan_for(run_s, args.lease, args.renew_every)
        timeline = SoakTimeline(rig, sampler, plan, say=_say)
        sampler.start()
        _say(f"soak: running until {datetime.fromtimestamp(time.time() + run_s, UTC):%H:%M:%S} UTC")
        result = timeline.run()
        checks = [(c.name, c.ok, c.detail) for c in result.checks]
        if hub.exit_code() is not None:
            checks.append(("hub process alive", False, f"exited with code {hub.exit_code()}"))
    except LfrError as exc:
        checks.append(("soak completed", False, str(exc)))
    finally:
        if sampler is not None:
            sampler.stop()
        rig.teardown()
    if sampler is None:
        raise UsageError(f"soak: the rig could not be set up: {checks[-1][2] if checks else ''}")
    series = sampler.series
    if sampler.errors:
        checks.append(
            ("sampling", False, f"{len(sampler.errors)} failed samples: {sampler.errors[0]}")
        )
    verdict = judge_all(series.points, table, run_s, checks)
    meta = {
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "sample_interval_s": args.interval,
        "memory_interval_s": sampler.memory_interval_s or args.interval,
        "lease_s": args.lease,
        "renew_every_s": args.renew_every,
        "hub_command": args.hub_command,
        "network": rig.network.note,
        "host": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "renewals": timeline.result.renewals if timeline else 0,
        "activations": timeline.result.activations if timeline else 0,
        "adjudicated": timeline.result.adjudicated if timeline else 0,
        "notes": "; ".join(rig.notes) or "none",
    }
    paths = write_report(out, verdict, series.points, series.events, meta)
    for g in verdict.growth:
        if g.verdict != "info":
            print(f"  {g.verdict.upper():4}  {g.resource:28} {g.detail}")
    for name, ok, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL':4}  {name:28} {detail}")
    print(f"\nsoak {'PASS' if verdict.passed else 'FAIL'}; report: {', '.join(map(str, paths))}")
    return 0 if verdict.passed else 1


def rejudge(path: Path, budgets: str | None) -> int:
    """The report of a finished run written again from its soak.json (its samples, events
    and checks) against the budgets as they are now."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        run_s = float(doc["run_s"])
        points = {k: [(float(t), v) for t, v in pts] for k, pts in doc["series"].items()}
        events = [(float(e["t"]), str(e["what"])) for e in doc["events"]]
        checks = [(str(c["name"]), bool(c["ok"]), str(c["detail"])) for c in doc["checks"]]
        meta = dict(doc["meta"])
        table = budgets or str(doc["budgets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"soak: {path}: not a soak report ({exc})") from None
    meta["rejudged"] = datetime.now(UTC).isoformat(timespec="seconds")
    verdict = judge_all(points, table, run_s, checks)
    paths = write_report(path.parent, verdict, points, events, meta)
    print(f"soak {'PASS' if verdict.passed else 'FAIL'} (rejudged); report: {paths[1]}")
    return 0 if verdict.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.soak", description=__doc__.split("\n\n")[1])
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--hours", type=float, help="run length in hours")
    length.add_argument("--minutes", type=float, help="run length in minutes (short forms)")
    length.add_argument(
        "--rejudge", type=Path, metavar="SOAK_JSON", help="judge a finished run's samples again"
    )
    p.add_argument("--out", type=Path, default=REPO_ROOT / "var" / "soak", help="report folder")
    p.add_argument("--budgets", choices=(FULL, SHORT), help="budget table (default: by length)")
    p.add_argument("--rig", type=Path, default=REPO_ROOT / "hil" / "rigs" / "virtual.toml")
    p.add_argument("--hub-command", default=HUB_COMMAND, help="the hub process to soak")
    p.add_argument("--lease", type=int, default=LEASE_S, help="lease of the activation (s)")
    p.add_argument("--renew-every", type=float, default=RENEW_EVERY_S, help="renewal interval (s)")
    p.add_argument("--interval", type=float, default=INTERVAL_S, help="sample interval (s)")
    p.add_argument(
        "--memory-interval",
        type=float,
        help=f"memory sample interval (s; default {MEMORY_INTERVAL_S:g} for runs of an hour or "
        "more, else the sample interval)",
    )
    p.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("LFR_MODELS_DIR", REPO_ROOT / "var" / "models")),
    )
    p.add_argument(
        "--shared-data",
        type=Path,
        default=Path(os.environ.get("LFR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")),
    )
    args = p.parse_args(argv)
    interrupt_on_stop_signals()
    try:
        if args.rejudge is not None:
            return rejudge(args.rejudge, args.budgets)
        if args.renew_every >= args.lease:
            raise UsageError(
                f"soak: --renew-every {args.renew_every:g} s must be shorter than the lease {args.lease} s"
            )
        if not 1.0 <= args.interval <= 60.0:
            raise UsageError(f"soak: --interval {args.interval:g} s: between 1 and 60")
        if args.memory_interval is not None and not 0.2 <= args.memory_interval <= 60.0:
            raise UsageError(
                f"soak: --memory-interval {args.memory_interval:g} s: between 0.2 and 60"
            )
        return run_soak(args)
    except LfrError as exc:
        print(f"hil.soak: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

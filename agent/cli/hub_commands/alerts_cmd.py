"""lfr-hub alerts watch|list|show|adjudicate|purge|purges — receiving and adjudicating
alerts, and the retention purge with its record."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cli.common import require
from agent.cli.hub_commands.broker_args import add_broker_args, settings_from_args
from agent.errors import UsageError
from agent.hub.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.alert_store import OUTCOMES, AlertRow, AlertStore, PurgeRecord
from agent.hub.deployment_reports import DeploymentReportStore, ReportReceiver, summary_line
from agent.transport.mqtt_link import MqttLink
from agent.transport.topics import ALL_EVENTS, shared_subscription
from agent.trust.key_files import load_private_key, write_atomic

DEFAULT_DB = Path("/var/lib/lfr-hub/alerts.db")
DEFAULT_ALERT_KEY = Path("/etc/lfr-hub/keys/hub-alert-x25519-key.pem")
PURGE_EVERY_S = 3600.0


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"alert database (default: $LFR_HUB_DB or {DEFAULT_DB})",
    )


def _store(args: argparse.Namespace) -> AlertStore:
    path = args.db or Path(os.environ.get("LFR_HUB_DB", str(DEFAULT_DB)))
    return AlertStore(path)


def _age(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and d, h or m, e.g. 31d")
    return float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alerts", help="receive, list, show and adjudicate alerts")
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    w = asub.add_parser("watch", help="receive alerts from the broker, store them, acknowledge")
    _db_arg(w)
    add_broker_args(w, client_id="hub-main-1")
    w.add_argument(
        "--alert-key",
        type=Path,
        default=DEFAULT_ALERT_KEY,
        help="hub alert X25519 private key that opens alerts (default: %(default)s)",
    )
    w.add_argument(
        "--group",
        default=None,
        help="MQTT v5 shared subscription group: workers of one group split the alerts",
    )
    w.add_argument("--json", action="store_true", help="print one JSON object per alert")
    w.add_argument(
        "--retention", type=_age, default=_age("31d"), help="purge alerts older than this (31d)"
    )
    w.add_argument(
        "--count",
        type=int,
        default=0,
        help="exit after this many new alerts (default: run until interrupted)",
    )
    w.set_defaults(handler=cmd_watch)

    ls = asub.add_parser("list", help="list recent alerts")
    _db_arg(ls)
    ls.add_argument("--device", default=None, help="only this device")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.add_argument("--open", action="store_true", help="only alerts not yet adjudicated")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.set_defaults(handler=cmd_list)

    sh = asub.add_parser("show", help="show one alert; write its face crop with --image")
    _db_arg(sh)
    sh.add_argument("alert_id", metavar="ID", help="alert id or a unique prefix (6+ hex)")
    sh.add_argument("--image", type=Path, default=None, help="write the probe crop (JPEG)")
    sh.add_argument("--scene", type=Path, default=None, help="write the scene crop (JPEG)")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.set_defaults(handler=cmd_show)

    adj = asub.add_parser("adjudicate", help="record the operator's outcome for an alert")
    _db_arg(adj)
    adj.add_argument("alert_id", metavar="ID", help="alert id or a unique prefix (6+ hex)")
    adj.add_argument("--outcome", required=True, choices=OUTCOMES, help="the outcome")
    adj.add_argument("--by", required=True, help="operator or officer reference")
    adj.set_defaults(handler=cmd_adjudicate)

    pu = asub.add_parser("purge", help="delete alerts (crops, outcomes) older than an age")
    _db_arg(pu)
    pu.add_argument("--older-than", type=_age, default=_age("31d"), help="age such as 31d")
    pu.set_defaults(handler=cmd_purge)

    pl = asub.add_parser("purges", help="the record of retention purges, newest first")
    _db_arg(pl)
    pl.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    pl.add_argument("--json", action="store_true", help="JSON lines")
    pl.set_defaults(handler=cmd_purges)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row_dict(r: AlertRow) -> dict[str, object]:
    return {
        "alert_id": r.alert_id,
        "device": r.device_id,
        "deployment": r.deployment_id,
        "seq": r.seq,
        "watchlist_entry": r.watchlist_entry,
        "score": r.score,
        "threshold": r.threshold,
        "model_id": r.model_id,
        "track_id": r.track_id,
        "quality": r.quality,
        "first_seen": _iso(r.first_seen),
        "decided_at": _iso(r.decided_at),
        "sealed_at": _iso(r.sealed_at),
        "received_at": _iso(r.received_at),
        "outcome": r.outcome,
        "outcome_by": r.outcome_by,
    }


def _line(r: AlertRow) -> str:
    outcome = f"  {r.outcome} by {r.outcome_by}" if r.outcome else "  open"
    return (
        f"{_iso(r.received_at)}  {r.alert_id}  {r.device_id}  dep {r.deployment_id}  "
        f"entry {r.watchlist_entry}  score {r.score:.3f} (threshold {r.threshold:.3f}){outcome}"
    )


def cmd_watch(args: argparse.Namespace) -> int:
    require(args.count >= 0, "--count: must not be negative")
    hub_key = load_private_key(args.alert_key, X25519PrivateKey)  # type: ignore[type-abstract]
    settings = settings_from_args(args)
    link = MqttLink(settings)
    store = _store(args)
    receiver = AlertReceiver(store, hub_key, max_age_s=args.retention)
    new = 0

    def show(receipt: Receipt) -> None:
        nonlocal new
        if receipt.outcome != "stored" or receipt.alert is None:
            return
        new += 1
        row = store.get(receipt.alert.header.alert_id)
        text = json.dumps(_row_dict(row)) if args.json else _line(row)
        print(text, flush=True)

    worker = HubAlertWorker(link, receiver, share_group=args.group, on_receipt=show)
    reports = DeploymentReportStore(store.path)

    def show_report(body: dict[str, object]) -> None:
        print(json.dumps(body, sort_keys=True) if args.json else summary_line(body), flush=True)

    report_receiver = ReportReceiver(reports, store.device_key, on_report=show_report)
    events = ALL_EVENTS if not args.group else shared_subscription(args.group, ALL_EVENTS)
    link.subscribe(events, report_receiver.handle)
    last_purge = 0.0
    worker.start()
    try:
        while args.count == 0 or new < args.count:
            if time.monotonic() - last_purge > PURGE_EVERY_S or last_purge == 0.0:
                record = store.purge(args.retention, by_ref=f"alerts watch {args.client_id}")
                if record.alerts:
                    print(_purge_line(record), file=sys.stderr, flush=True)
                last_purge = time.monotonic()
            time.sleep(0.2)
    finally:
        worker.stop()
        reports.close()
        store.close()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    require(args.limit >= 1, "--limit: must be at least 1")
    store = _store(args)
    for row in store.list_alerts(device_id=args.device, limit=args.limit, unadjudicated=args.open):
        print(json.dumps(_row_dict(row)) if args.json else _line(row))
    return 0


def _write_crop(store: AlertStore, alert_id: str, kind: str, out: Path) -> None:
    jpeg = store.crop(alert_id, kind)
    if jpeg is None:
        raise UsageError(f"alert {alert_id}: has no {kind} crop")
    # Face crops are biometric data: readable by the operator only.
    write_atomic(out, jpeg, 0o600)
    print(f"{kind} crop written to {out}", file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    row = store.get(args.alert_id)
    if args.json:
        print(json.dumps(_row_dict(row), indent=2))
    else:
        for k, v in _row_dict(row).items():
            print(f"{k:16} {v}")
    if args.image is not None:
        _write_crop(store, row.alert_id, "probe", args.image)
    if args.scene is not None:
        _write_crop(store, row.alert_id, "scene", args.scene)
    return 0


def cmd_adjudicate(args: argparse.Namespace) -> int:
    store = _store(args)
    row = store.adjudicate(args.alert_id, args.outcome, args.by)
    print(_line(row))
    return 0


def _purge_line(r: PurgeRecord) -> str:
    return (
        f"{_iso(r.at)}  purge {r.purge_id}: purged {r.alerts} alerts received more than "
        f"{r.older_than_s / 86400:g} days ago (before {_iso(r.cutoff)}), by {r.by_ref}"
    )


def cmd_purge(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        print(_purge_line(store.purge(args.older_than, by_ref="alerts purge")))
    finally:
        store.close()
    return 0


def cmd_purges(args: argparse.Namespace) -> int:
    require(args.limit >= 1, "--limit: must be at least 1")
    store = _store(args)
    try:
        for r in store.purge_log(args.limit):
            if args.json:
                fields = {
                    "purge_id": r.purge_id,
                    "at": _iso(r.at),
                    "older_than_days": r.older_than_s / 86400,
                    "cutoff": _iso(r.cutoff),
                    "alerts": r.alerts,
                    "by": r.by_ref,
                }
                print(json.dumps(fields))
            else:
                print(_purge_line(r))
    finally:
        store.close()
    return 0

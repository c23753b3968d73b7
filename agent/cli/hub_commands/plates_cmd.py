"""lfr-hub plates list|show|adjudicate|purge|reports — plate alerts and plates reports.

Plate records are read from their own tables only (``plate_alert_store``,
``plate_report_store``): nothing here reads a face record or relates one to a plate."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from agent.cli.common import require
from agent.cli.hub_commands.store_args import add_db_arg, age_arg, db_target
from agent.errors import UsageError
from agent.hub.intake.report_receiver import summary_line
from agent.hub.store.alert_store import OUTCOMES
from agent.hub.store.plate_alert_store import PlateAlertRow, PlateAlertStore
from agent.hub.store.plate_report_store import PlateReportStore
from agent.plates.uk_plate_format import display
from agent.trust.key_files import write_atomic


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plates", help="list, show and adjudicate plate alerts; plates reports")
    psub = p.add_subparsers(dest="plates_command", metavar="ACTION", required=True)

    ls = psub.add_parser("list", help="list recent plate alerts")
    ls.add_argument("--device", default=None, help="only this device")
    ls.add_argument("--deployment", default=None, help="only this plates deployment")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.set_defaults(handler=cmd_list)

    sh = psub.add_parser(
        "show", help="show one plate alert; write its crops with --plate/--vehicle"
    )
    sh.add_argument("alert_id", metavar="ID", help="plate alert id")
    sh.add_argument("--device", default=None, help="the camera, when several used the same id")
    sh.add_argument("--plate", type=Path, default=None, help="write the plate crop (JPEG)")
    sh.add_argument("--vehicle", type=Path, default=None, help="write the vehicle crop (JPEG)")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.set_defaults(handler=cmd_show)

    adj = psub.add_parser("adjudicate", help="record the operator's outcome for a plate alert")
    adj.add_argument("alert_id", metavar="ID", help="plate alert id")
    adj.add_argument("--device", default=None, help="the camera, when several used the same id")
    adj.add_argument("--outcome", required=True, choices=OUTCOMES, help="the outcome")
    adj.add_argument("--by", required=True, help="operator or officer reference")
    adj.set_defaults(handler=cmd_adjudicate)

    pu = psub.add_parser("purge", help="delete plate alerts older than an age (tombstones kept)")
    pu.add_argument("--older-than", type=age_arg, default=age_arg("31d"), help="age such as 31d")
    pu.set_defaults(handler=cmd_purge)

    rp = psub.add_parser("reports", help="the latest plates deployment reports, one line each")
    rp.add_argument("--device", default=None, help="only this device")
    rp.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    rp.add_argument("--json", action="store_true", help="JSON lines")
    rp.set_defaults(handler=cmd_reports)
    for q in (ls, sh, adj, pu, rp):
        add_db_arg(q)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def row_dict(r: PlateAlertRow) -> dict[str, object]:
    return {
        "alert_id": r.alert_id,
        "device": r.device_id,
        "deployment": r.deployment_id,
        "seq": r.seq,
        "hotlist_entry": r.hotlist_entry,
        "plate": display(r.plate),
        "plate_format": r.plate_format,
        "colour": r.colour,
        "confidence": r.confidence,
        "threshold": r.threshold,
        "model_id": r.model_id,
        "track_id": r.track_id,
        "reads": r.reads,
        "agreeing": r.agreeing,
        "first_seen": _iso(r.first_seen),
        "decided_at": _iso(r.decided_at),
        "sealed_at": _iso(r.sealed_at),
        "received_at": _iso(r.received_at),
        "outcome": r.outcome,
        "outcome_by": r.outcome_by,
    }


def line(r: PlateAlertRow) -> str:
    outcome = f"  {r.outcome} by {r.outcome_by}" if r.outcome else "  open"
    return (
        f"{_iso(r.received_at)}  {r.alert_id}  {r.device_id}  dep {r.deployment_id}  "
        f"plate {display(r.plate)}  entry {r.hotlist_entry}  confidence {r.confidence:.3f} "
        f"(threshold {r.threshold:.3f}, {r.agreeing}/{r.reads} reads){outcome}"
    )


def _store(args: argparse.Namespace) -> PlateAlertStore:
    return PlateAlertStore(db_target(args))


def cmd_list(args: argparse.Namespace) -> int:
    require(args.limit >= 1, "--limit: must be at least 1")
    store = _store(args)
    try:
        rows = store.list_alerts(args.limit, device_id=args.device, deployment_id=args.deployment)
    finally:
        store.close()
    for row in rows:
        print(json.dumps(row_dict(row)) if args.json else line(row))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        row = store.get(args.alert_id, device_id=args.device)
        if args.json:
            print(json.dumps(row_dict(row), indent=2))
        else:
            for k, v in row_dict(row).items():
                print(f"{k:16} {v}")
        for kind, out in (("plate", args.plate), ("vehicle", args.vehicle)):
            if out is None:
                continue
            jpeg = store.crop(row.row_id, kind)
            if jpeg is None:
                raise UsageError(f"plate alert {row.alert_id}: has no {kind} crop")
            write_atomic(out, jpeg, 0o600)
            print(f"{kind} crop written to {out}", file=sys.stderr)
    finally:
        store.close()
    return 0


def cmd_adjudicate(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        row = store.adjudicate(args.alert_id, args.outcome, args.by, device_id=args.device)
    finally:
        store.close()
    print(line(row))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        n = store.purge(args.older_than)
    finally:
        store.close()
    print(f"purged {n} plate alerts received more than {args.older_than / 86400:g} days ago")
    return 0


def cmd_reports(args: argparse.Namespace) -> int:
    require(args.limit > 0, "--limit: must be positive")
    store = PlateReportStore(db_target(args))
    try:
        for r in store.latest(args.device, args.limit):
            print(json.dumps(r.body, sort_keys=True) if args.json else summary_line(r.body))
    finally:
        store.close()
    return 0

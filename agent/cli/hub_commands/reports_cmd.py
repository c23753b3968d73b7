"""lfr-hub reports list|show: the deployment results summaries devices sent."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from agent.cli.common import require
from agent.cli.hub_commands.store_args import add_db_arg, db_target
from agent.errors import UsageError
from agent.hub.intake.report_receiver import summary_line
from agent.hub.store.report_store import DeploymentReportStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reports", help="list and show deployment reports")
    rsub = p.add_subparsers(dest="reports_command", metavar="ACTION", required=True)
    ls = rsub.add_parser("list", help="the latest reports, one line each")
    ls.add_argument("--device", default=None, help="only this device")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    sh = rsub.add_parser("show", help="every figure of one deployment's reports")
    sh.add_argument("deployment_id", metavar="DEPLOYMENT")
    sh.add_argument("--json", action="store_true", help="print JSON")
    for q in (ls, sh):
        add_db_arg(q)
    ls.set_defaults(handler=cmd_list)
    sh.set_defaults(handler=cmd_show)


def _store(args: argparse.Namespace) -> DeploymentReportStore:
    return DeploymentReportStore(db_target(args))


def cmd_list(args: argparse.Namespace) -> int:
    require(args.limit > 0, "--limit: must be positive")
    store = _store(args)
    try:
        for r in store.latest(args.device, args.limit):
            print(json.dumps(r.body, sort_keys=True) if args.json else summary_line(r.body))
    finally:
        store.close()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        reports = store.for_deployment(args.deployment_id)
    finally:
        store.close()
    if not reports:
        raise UsageError(f"reports: no report for deployment {args.deployment_id[:80]!r}")
    for r in reports:
        if args.json:
            print(json.dumps(r.body, indent=2, sort_keys=True))
            continue
        print(summary_line(r.body))
        received = datetime.fromtimestamp(r.received_at, UTC).isoformat(timespec="seconds")
        print(f"  received {received}")
        for key in sorted(r.body):
            print(f"  {key}: {r.body[key]}")
    return 0

"""lfr-hub results export: the public results of a period as CSV or a printable HTML
page (the console's ``/results``), recorded in the hub audit log."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from agent.cli.hub_commands.hub_config_args import add_hub_config_arg, hub_config
from agent.durable_files import write_atomic
from agent.errors import UsageError
from agent.hub.audit.hub_audit_log import HubAudit
from agent.hub.console.console_context import make_templates
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase
from agent.hub.store.report_store import DeploymentReportStore
from agent.hub.transparency.public_results import (
    parse_period,
    public_results,
    results_csv,
    totals,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("results", help="the public results of deployments per period")
    rsub = p.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    ex = rsub.add_parser("export", help="write a period's results as CSV or printable HTML")
    add_hub_config_arg(ex)
    ex.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD (UTC)")
    ex.add_argument("--to", dest="last", required=True, help="last day, YYYY-MM-DD (UTC)")
    form = ex.add_mutually_exclusive_group(required=True)
    form.add_argument("--csv", type=Path, metavar="OUT", help="write CSV here")
    form.add_argument("--html", type=Path, metavar="OUT", help="write a printable HTML page here")
    ex.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    period = parse_period(args.first, args.last)
    out: Path = args.csv or args.html
    if not out.parent.is_dir():
        raise UsageError(f"{out}: its folder does not exist")
    cfg = hub_config(args)
    database = HubDatabase(cfg.database.url)
    try:
        alerts = AlertStore(database)
        rows = public_results(DeploymentReportStore(database), alerts, period)
    finally:
        database.close()
    if args.csv is not None:
        text = results_csv(rows)
    else:
        page = make_templates().get_template("results.html")
        text = page.render(session=None, period=period, rows=rows, totals=totals(rows))
    write_atomic(out, text.encode("utf-8"), 0o644)  # published: no secret in it
    audit = HubAudit.open(cfg.audit.log, cfg.audit.signing_key, cfg.audit.checkpoint_every)
    try:
        audit.record(
            "results.exported",
            first=period.first.isoformat(),
            last=period.last.isoformat(),
            format="csv" if args.csv is not None else "html",
            rows=len(rows),
            username=f"cli:{getpass.getuser()}",
        )
    finally:
        audit.close()
    print(f"{out}: {len(rows)} deployments from {period.first} to {period.last}")
    return 0

"""lfr-hub pki init|issue — the broker's certificate authority and certificates.

``init`` also prepares the broker's side of access control (``lfr-hub broker init``): the
empty revocation list, the broker administrator's certificate and the first state of the
broker rules. A certificate alone gives no rights at the broker: grant them with
``lfr-hub broker grant``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.common import require
from agent.cli.hub_commands.broker_args import DEFAULT_PKI_DIR
from agent.cli.hub_commands.broker_cmd import cmd_init as broker_init
from agent.hub.keys.pki import (
    bridge_identity,
    hub_identity,
    init_ca,
    issue_broker_cert,
    issue_client_cert,
    issue_console_cert,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pki", help="create the broker CA and issue broker, device and hub certs")
    psub = p.add_subparsers(dest="pki_command", metavar="ACTION", required=True)
    init = psub.add_parser("init", help="create the CA (ca.pem, ca-key.pem) in DIR")
    init.add_argument("--dir", type=Path, default=DEFAULT_PKI_DIR, help="PKI folder")
    init.add_argument("--name", default="lfr broker CA", help="CA common name")
    init.add_argument("--days", type=int, default=3650, help="validity in days")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(handler=cmd_init)
    iss = psub.add_parser(
        "issue",
        help="issue the broker certificate, or a client certificate whose CN is its identity",
    )
    iss.add_argument("--dir", type=Path, default=DEFAULT_PKI_DIR, help="PKI folder")
    who = iss.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--broker",
        metavar="HOST",
        action="append",
        help="broker host name or IP address (repeat for more names)",
    )
    who.add_argument(
        "--console",
        metavar="HOST",
        action="append",
        help="the web console's HTTPS certificate for this host name or address (repeatable)",
    )
    who.add_argument("--device", metavar="ID", help="device id (the certificate CN)")
    who.add_argument("--hub", metavar="NAME", help="hub worker name (CN hub.NAME)")
    who.add_argument(
        "--bridge", metavar="NAME", help="bridge from another broker of the fleet (CN bridge.NAME)"
    )
    iss.add_argument("--days", type=int, default=825, help="validity in days")
    iss.add_argument("--force", action="store_true", help="replace an existing certificate")
    iss.set_defaults(handler=cmd_issue)


def cmd_init(args: argparse.Namespace) -> int:
    require(1 <= args.days <= 36500, f"--days: must be 1–36500, got {args.days}")
    cert = init_ca(args.dir, name=args.name, days=args.days, force=args.force)
    print(f"CA certificate  {cert}")
    print(f"CA private key  {args.dir / 'ca-key.pem'}  (keep it offline)")
    return broker_init(argparse.Namespace(pki_dir=args.dir))


def cmd_issue(args: argparse.Namespace) -> int:
    require(1 <= args.days <= 3650, f"--days: must be 1–3650, got {args.days}")
    if args.broker:
        issued = issue_broker_cert(args.dir, args.broker, days=args.days, force=args.force)
    elif args.console:
        issued = issue_console_cert(args.dir, args.console, days=args.days, force=args.force)
    elif args.device:
        issued = issue_client_cert(args.dir, args.device, days=args.days, force=args.force)
    elif args.bridge:
        cn = bridge_identity(args.bridge)
        issued = issue_client_cert(args.dir, cn, days=args.days, force=args.force)
    else:
        cn = hub_identity(args.hub)
        issued = issue_client_cert(args.dir, cn, days=args.days, force=args.force)
    print(f"{issued.common_name}  certificate {issued.cert_path}")
    print(f"{issued.common_name}  private key {issued.key_path}")
    if not args.broker and not args.console:
        print("next: 'lfr-hub broker grant' gives it its rights at the broker")
    return 0

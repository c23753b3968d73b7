"""lfr-hub operator add|revoke|list: operator keys certified (or revoked) by the root."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from agent.cli.hub_commands.keys_cmd import add_hub_dir_arg
from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust.key_certificates import OPERATOR_ROLES


def _root_key_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root-key",
        type=Path,
        default=None,
        help="root private key file (default: root-key-OFFLINE.pem in the hub folder)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("operator", help="add, revoke or list operator keys")
    osub = p.add_subparsers(dest="operator_command", metavar="ACTION", required=True)
    add = osub.add_parser("add", help="create an operator key with a root-signed certificate")
    add_hub_dir_arg(add)
    add.add_argument("--name", required=True, help="operator reference (e.g. a collar number)")
    add.add_argument(
        "--role",
        choices=OPERATOR_ROLES,
        required=True,
        help="supervisor: activate, renew, stop; operator: renew, stop",
    )
    add.add_argument("--valid-days", type=int, default=365, help="certificate validity in days")
    _root_key_arg(add)
    add.set_defaults(handler=cmd_add)
    rev = osub.add_parser(
        "revoke", help="revoke an operator key (new root-signed revocation list, version + 1)"
    )
    add_hub_dir_arg(rev)
    rev.add_argument("--name", required=True, help="operator to revoke")
    _root_key_arg(rev)
    rev.set_defaults(handler=cmd_revoke)
    ls = osub.add_parser("list", help="list operators, roles, expiry and revocation")
    add_hub_dir_arg(ls)
    ls.set_defaults(handler=cmd_list)


def _date(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_add(args: argparse.Namespace) -> int:
    store = HubKeyStore.open(args.hub_dir)
    cert = store.add_operator(
        args.name, args.role, args.valid_days, store.load_root_key(args.root_key)
    )
    print(
        f"operator {cert.subject} ({cert.role}) key {cert.key_id[:16]} until {_date(cert.not_after)}"
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store = HubKeyStore.open(args.hub_dir)
    rl = store.revoke_operator(args.name, store.load_root_key(args.root_key))
    print(f"operator {args.name} revoked; revocation list version {rl.version}")
    print(
        "send it to each camera now (an idle one would otherwise learn it with its next "
        f"activation): lfr-hub publish {args.hub_dir / 'hub-revocations.json'} --device ID"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = HubKeyStore.open(args.hub_dir)
    revoked = store.revocations().revoked_key_ids
    for c in store.operators():
        state = "REVOKED" if c.key_id in revoked else "valid"
        print(f"{c.subject:20} {c.role:10} until {_date(c.not_after)}  {state}  {c.key_id[:16]}")
    return 0

"""lfr-hub operator add|revoke|list|passwd: operator keys certified (or revoked) by the root,
and the passphrases they are sealed under."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from agent.cli.hub_commands.keys_cmd import add_hub_dir_arg
from agent.cli.hub_commands.passphrase_args import (
    NEW_PASSPHRASE_ENV,
    add_passphrase_arg,
    read_passphrase,
)
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
    add_passphrase_arg(add, "the new operator's")
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
    pw = osub.add_parser("passwd", help="change the passphrase an operator's key is sealed under")
    add_hub_dir_arg(pw)
    pw.add_argument("--name", required=True, help="the operator")
    add_passphrase_arg(pw, "the current")
    pw.add_argument(
        "--new-passphrase-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"file holding the new passphrase (mode 0600); default: ${NEW_PASSPHRASE_ENV}, "
        "else a prompt",
    )
    pw.set_defaults(handler=cmd_passwd)


def _date(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_add(args: argparse.Namespace) -> int:
    store = HubKeyStore.open(args.hub_dir)
    root = store.load_root_key(args.root_key)
    passphrase = read_passphrase(args.passphrase_file, args.name, new=True)
    cert = store.add_operator(args.name, args.role, args.valid_days, root, passphrase)
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
        key = store.operator_key_state(c.subject)
        hint = "  (run 'lfr-hub keys seal-operator')" if key == "in clear" else ""
        print(
            f"{c.subject:20} {c.role:10} until {_date(c.not_after)}  {state}  {c.key_id[:16]}"
            f"  key {key}{hint}"
        )
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    store = HubKeyStore.open(args.hub_dir)
    store.operator_certificate(args.name)  # a typo is reported before the prompt
    old = read_passphrase(args.passphrase_file, args.name)
    new = read_passphrase(
        args.new_passphrase_file,
        args.name,
        new=True,
        flag="--new-passphrase-file",
        env=NEW_PASSPHRASE_ENV,
    )
    store.change_operator_passphrase(args.name, old, new)
    print(f"operator {args.name}: key sealed under the new passphrase")
    return 0

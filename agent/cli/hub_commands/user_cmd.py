"""lfr-hub user add|passwd|disable|enable|list — console accounts.

Passwords are read from the terminal (asked twice) or, for scripts, one line on stdin
with ``--password-stdin``; never from the command line, where other users could see them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys

from agent.cli.hub_commands.hub_config_args import add_hub_config_arg, hub_config
from agent.errors import UsageError
from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.audit.hub_audit_log import HubAudit
from agent.hub.service.hub_config import HubConfig
from agent.hub.store.console_tables import ROLES
from agent.hub.store.database import HubDatabase


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("user", help="console accounts: add, passwd, disable, enable, list")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="add a user; prints the TOTP provisioning URI")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    pw = usub.add_parser(
        "passwd", help="set a user's password and a new TOTP key (ends their sessions)"
    )
    pw.add_argument("username")
    for name, helptext in (("disable", "refuse a user's logins"), ("enable", "allow them again")):
        d = usub.add_parser(name, help=helptext)
        d.add_argument("username")
    ls = usub.add_parser("list", help="list users")
    for q in (add, pw):
        q.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    for q in usub.choices.values():
        add_hub_config_arg(q)
        q.add_argument("--by", default=getpass.getuser(), help="who does this (audit log)")
    add.set_defaults(handler=cmd_add)
    pw.set_defaults(handler=cmd_passwd)
    usub.choices["disable"].set_defaults(handler=cmd_disable)
    usub.choices["enable"].set_defaults(handler=cmd_enable)
    ls.set_defaults(handler=cmd_list)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UsageError("password: the two entries differ")
    return first


def _open(cfg: HubConfig) -> tuple[HubDatabase, ConsoleAccounts, HubAudit]:
    db = HubDatabase(cfg.database.url)
    audit = HubAudit.open(cfg.audit.log, cfg.audit.signing_key, cfg.audit.checkpoint_every)
    return db, ConsoleAccounts(db), audit


def cmd_add(args: argparse.Namespace) -> int:
    cfg = hub_config(args)
    password = _password(args)
    db, accounts, audit = _open(cfg)
    try:
        uri = accounts.add_user(args.username, args.role, password)
        audit.record("user.added", username=args.username, role=args.role, by=args.by[:64])
    finally:
        audit.close()
        db.close()
    print(f"user {args.username} added ({args.role})")
    print("Add this to the user's authenticator app (QR code or key entry), then discard it:")
    print(uri)
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    cfg = hub_config(args)
    password = _password(args)
    db, accounts, audit = _open(cfg)
    try:
        uri = accounts.set_password(args.username, password)
        audit.record(
            "user.password_set", username=args.username, by=args.by[:64], totp_reenrolled=True
        )
    finally:
        audit.close()
        db.close()
    print(f"user {args.username}: password set; their sessions ended")
    # The TOTP secret is sealed under the password, so a new password means a new secret.
    print("Their authenticator needs the new key (the old one no longer works); then discard it:")
    print(uri)
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    db, accounts, audit = _open(hub_config(args))
    try:
        accounts.set_disabled(args.username, disabled)
        event = "user.disabled" if disabled else "user.enabled"
        audit.record(event, username=args.username, by=args.by[:64])
    finally:
        audit.close()
        db.close()
    print(f"user {args.username}: {'disabled' if disabled else 'enabled'}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def cmd_list(args: argparse.Namespace) -> int:
    db = HubDatabase(hub_config(args).database.url)
    try:
        for u in ConsoleAccounts(db).users():
            state = "disabled" if u.disabled else "active"
            created = dt.datetime.fromtimestamp(u.created_at, dt.UTC).strftime("%Y-%m-%d")
            print(f"{u.username:24} {u.role:10} {state:8} created {created}")
    finally:
        db.close()
    return 0

"""lfr-hub broker init|grant|revoke|list — who may do what at the broker.

The broker refuses everything it was not told to allow (``configs/mosquitto/lfr.conf``:
mosquitto's dynamic-security plugin, deny by default). These commands tell it, as the
broker administrator (``hub.broker-admin``), over the broker connection itself; changes
apply at once, no restart:

  init     the administrator's certificate, the empty revocation list and the plugin's
           first state file (dynamic-security.json) in the PKI folder, to install
  grant    a device its own topics (after 'lfr-hub device approve'), a hub identity
           its roles: intake (alerts watch), control (publish), monitor (device list),
           or a bridge from another broker of the fleet every device topic
  revoke   remove an identity's rights; the broker disconnects it at once
  list     the identities that have rights, with their roles

Each broker keeps its own rules: with bridged brokers (--broker A:8883,B:8883) grant and
revoke apply to every broker listed, one after the other; list asks the first.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from agent.cli.hub_commands.broker_args import DEFAULT_PKI_DIR, add_broker_args, settings_from_args
from agent.errors import UsageError
from agent.hub.keys.broker_access import (
    ADMIN_IDENTITY,
    ADMIN_NAME,
    HUB_ROLES,
    Grant,
    bridge_grant,
    device_grant,
    hub_grant,
    write_bootstrap,
)
from agent.hub.keys.broker_admin import BrokerAdmin
from agent.hub.keys.pki import bridge_identity, ensure_crl, hub_identity, issue_client_cert
from agent.protocol.topics import TopicError, check_device_id
from agent.transport.mqtt_link import MqttSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "broker",
        help="grant and revoke broker rights (devices, hub identities)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="broker_command", metavar="ACTION", required=True)

    init = bsub.add_parser(
        "init", help="administrator certificate, empty revocation list, first rules file"
    )
    init.add_argument(
        "--pki-dir", type=Path, default=DEFAULT_PKI_DIR, help="PKI folder (%(default)s)"
    )
    init.set_defaults(handler=cmd_init)

    grant = bsub.add_parser("grant", help="give a device or a hub identity its rights")
    _who(grant, roles=True)
    add_broker_args(grant, identity=ADMIN_NAME)
    grant.set_defaults(handler=cmd_grant)

    revoke = bsub.add_parser("revoke", help="remove an identity's rights (disconnects it)")
    _who(revoke, roles=False)
    add_broker_args(revoke, identity=ADMIN_NAME)
    revoke.set_defaults(handler=cmd_revoke)

    ls = bsub.add_parser("list", help="identities with rights, and their roles")
    add_broker_args(ls, identity=ADMIN_NAME)
    ls.set_defaults(handler=cmd_list)


def _who(p: argparse.ArgumentParser, *, roles: bool) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", metavar="ID", help="a device id")
    who.add_argument("--hub", metavar="NAME", help="a hub identity (certificate CN hub.NAME)")
    who.add_argument(
        "--bridge", metavar="NAME", help="a bridge from another broker (certificate CN bridge.NAME)"
    )
    if roles:
        p.add_argument(
            "--role",
            action="append",
            choices=HUB_ROLES,
            help="hub role (repeat for several); required with --hub",
        )


def _identity(args: argparse.Namespace) -> str:
    if args.device:
        try:
            return check_device_id(args.device)
        except TopicError as exc:
            raise UsageError(f"--device: {exc}") from exc
    if args.bridge:
        return bridge_identity(args.bridge)
    return hub_identity(args.hub)


def _each_broker(args: argparse.Namespace) -> list[MqttSettings]:
    """One connection per broker listed: bridged brokers each keep their own rules."""
    first = settings_from_args(args, session_expiry_s=0)
    endpoints = [(first.host, first.port), *first.fallbacks]
    return [replace(first, host=h, port=p, fallbacks=()) for h, p in endpoints]


def cmd_init(args: argparse.Namespace) -> int:
    crl = ensure_crl(args.pki_dir)
    print(f"revocation list   {crl}  (mosquitto: crlfile)")
    cert = args.pki_dir / "clients" / f"{ADMIN_IDENTITY}-cert.pem"
    if not cert.exists():
        issue_client_cert(args.pki_dir, ADMIN_IDENTITY)
    print(f"administrator     {cert}  (and its key; keep them on the hub)")
    rules = write_bootstrap(args.pki_dir)
    if rules is None:
        print(f"rules file        {args.pki_dir / 'dynamic-security.json'} exists, kept")
    else:
        print(f"rules file        {rules}")
    print(
        "next: install the rules file once as /var/lib/mosquitto/dynamic-security.json "
        "(owner mosquitto, mode 0600), start mosquitto, then 'lfr-hub broker grant'"
    )
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    if args.device:
        if args.role:
            raise UsageError("--role: a device's rights are fixed (its own topics); omit --role")
        grant: Grant = device_grant(_identity(args))
    elif args.bridge:
        if args.role:
            raise UsageError(
                "--role: a bridge's rights are fixed (every device topic); omit --role"
            )
        grant = bridge_grant(args.bridge)
    else:
        if not args.role:
            raise UsageError(f"--role: give at least one of {', '.join(HUB_ROLES)}")
        grant = hub_grant(args.hub, args.role)
    rules = sum(len(r) for r in grant.roles.values())
    for settings in _each_broker(args):
        with BrokerAdmin(settings) as admin:
            admin.apply(grant)
        where = f"{settings.host}:{settings.port}"
        print(f"✓ {grant.identity}: {', '.join(grant.roles)} ({rules} rules) at {where}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    identity = _identity(args)
    for settings in _each_broker(args):
        with BrokerAdmin(settings) as admin:
            removed = admin.remove(identity)
        where = f"{settings.host}:{settings.port}"
        if removed:
            print(f"✓ {identity}: rights removed, disconnected if it was connected ({where})")
        else:
            print(f"{identity}: had no rights at the broker ({where})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with BrokerAdmin(settings_from_args(args, session_expiry_s=0)) as admin:
        rows = [(name, admin.client_roles(name)) for name in admin.clients()]
    for name, roles in rows:
        print(f"{name:40} {', '.join(roles) or '(no roles)'}")
    return 0

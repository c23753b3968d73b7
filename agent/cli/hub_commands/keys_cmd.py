"""lfr-hub keys init|export|add-evidence-key: the hub key hierarchy and what devices are
provisioned with."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.hub.keys.operator_keys import ROOT_KEY_FILE, HubKeyStore
from agent.trust.key_certificates import OPERATOR_ROLES
from agent.trust.key_files import load_private_key


def add_hub_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub-dir", type=Path, required=True, help="the hub key folder (keys init)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create the hub key hierarchy; export device trust files")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    init = ksub.add_parser(
        "init",
        help="create the root key, the first operator, the alert, evidence and watchlist keys in DIR",
    )
    init.add_argument("--dir", type=Path, required=True, help="new hub key folder")
    init.add_argument(
        "--operator", default="supervisor", help="name of the first operator (default supervisor)"
    )
    init.add_argument(
        "--role",
        choices=OPERATOR_ROLES,
        default="supervisor",
        help="role of the first operator (default supervisor: may activate)",
    )
    init.add_argument("--valid-days", type=int, default=365, help="operator certificate validity")
    init.set_defaults(handler=cmd_init)
    exp = ksub.add_parser(
        "export", help="copy the public files a device needs into OUT (its paths.keys_dir)"
    )
    add_hub_dir_arg(exp)
    exp.add_argument("--out", type=Path, required=True, help="folder to write into")
    exp.set_defaults(handler=cmd_export)
    ev = ksub.add_parser(
        "add-evidence-key",
        help="create and certify the evidence key (CCTV recording) of an older key store",
    )
    add_hub_dir_arg(ev)
    ev.add_argument(
        "--root-key", type=Path, required=True, help="the root private key (from offline media)"
    )
    ev.set_defaults(handler=cmd_add_evidence_key)


def cmd_init(args: argparse.Namespace) -> int:
    store = HubKeyStore.init(args.dir, args.operator, args.role, args.valid_days)
    _, cert = store.operator(args.operator, "")
    print(f"hub key store   {store.dir}")
    print(f"root key        {store.dir / ROOT_KEY_FILE}  (move to offline media)")
    print(f"operator        {cert.subject} ({cert.role}) key {cert.key_id[:16]}")
    for subject in ("hub-alert", "hub-evidence", "hub-watchlist"):
        c = store.hub_certificate(subject)
        print(f"{subject:15} {c.role} key {c.key_id[:16]}")
    print("next: 'lfr-hub keys export --hub-dir DIR --out KEYS' and install KEYS on each device")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    for path in HubKeyStore.open(args.hub_dir).export_device_trust(args.out):
        print(path)
    return 0


def cmd_add_evidence_key(args: argparse.Namespace) -> int:
    store = HubKeyStore.open(args.hub_dir)
    root = load_private_key(args.root_key, Ed25519PrivateKey)  # type: ignore[type-abstract]
    cert = store.add_evidence_key(root)
    print(f"hub-evidence    {cert.role} key {cert.key_id[:16]}")
    print("next: 'lfr-hub keys export' again and install the new certificate on each device")
    return 0

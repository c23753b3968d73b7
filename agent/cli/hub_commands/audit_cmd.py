"""lfr-hub audit key|verify — the hub audit log's signing key, and checking the log."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.cli.hub_commands.hub_config_args import add_hub_config_arg, hub_config
from agent.hub.audit.hub_audit_log import make_audit_key, verify_hub_audit
from agent.trust.key_files import load_private_key, load_public_key, write_public_key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="the hub audit log: make its key, verify it")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    k = asub.add_parser("key", help="make the hub audit signing key (and its .pub)")
    k.add_argument("--out", type=Path, required=True, help="private key file to write (0600)")
    k.set_defaults(handler=cmd_key)
    v = asub.add_parser("verify", help="verify the hub audit log's chain and signatures")
    add_hub_config_arg(v)
    v.add_argument("--log", type=Path, help="the log (default: the config's audit.log)")
    v.add_argument(
        "--public-key", type=Path, help="audit public key (default: from audit.signing_key)"
    )
    v.set_defaults(handler=cmd_verify)


def cmd_key(args: argparse.Namespace) -> int:
    public = make_audit_key(args.out)
    pub_path = args.out.with_name(args.out.name.removesuffix(".pem") + ".pub.pem")
    write_public_key(pub_path, public)
    print(f"hub audit key written to {args.out}, public key to {pub_path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    public: Ed25519PublicKey
    if args.log is not None and args.public_key is not None:
        log_path = args.log
        public = load_public_key(args.public_key, Ed25519PublicKey)  # type: ignore[type-abstract]
    else:
        cfg = hub_config(args)
        log_path = args.log or cfg.audit.log
        if args.public_key is not None:
            public = load_public_key(args.public_key, Ed25519PublicKey)  # type: ignore[type-abstract]
        else:
            key = load_private_key(cfg.audit.signing_key, Ed25519PrivateKey)  # type: ignore[type-abstract]
            public = key.public_key()
    report = verify_hub_audit(log_path, public)
    print(
        f"{log_path}: verified: {report.entries} entries, {report.checkpoints} signed "
        f"checkpoints, {report.unsigned_tail} entries after the last checkpoint"
    )
    return 0

"""lfr-agent audit verify: check the audit log's hash chain and signed checkpoints."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.cli.common import add_config_arg, load_args_config
from agent.errors import UsageError
from agent.trust.audit_log import AuditLogError, audit_log_path, verify_audit_log
from agent.trust.device_keys import load_device_signing_public
from agent.trust.key_files import load_public_key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verify the audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    ver = asub.add_parser(
        "verify", help="detect edited, removed, reordered or truncated lines; exit 1 if any"
    )
    ver.add_argument(
        "file", nargs="?", type=Path, default=None, help="log file (default: the config's)"
    )
    ver.add_argument(
        "--key",
        type=Path,
        default=None,
        help="device public signing key PEM (default: device-ed25519-pub.pem in paths.keys_dir)",
    )
    ver.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="SEQ:SHA256",
        help="an entry recorded elsewhere (a deployment report's audit_seq and audit_sha256)"
        " that the log must still hold; repeatable",
    )
    add_config_arg(ver)
    ver.set_defaults(handler=cmd_verify)


def _parse_anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not (
        re.fullmatch(r"[0-9]+", seq) and int(seq) > 0 and re.fullmatch(r"[0-9a-f]{64}", digest)
    ):
        raise UsageError(f"--anchor {text[:80]!r}: expected SEQ:SHA256 (a number, 64 hex digits)")
    return int(seq), digest


def cmd_verify(args: argparse.Namespace) -> int:
    anchors = dict(_parse_anchor(a) for a in args.anchor)
    path: Path | None = args.file
    key: Ed25519PublicKey | None = None
    if args.key is not None:
        key = load_public_key(args.key, Ed25519PublicKey)  # type: ignore[type-abstract]
    if path is None or key is None:
        cfg = load_args_config(args)
        path = path or audit_log_path(cfg)
        key = key or load_device_signing_public(cfg.paths.keys_dir)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"audit: {path}: cannot read ({exc.strerror})") from exc
    try:
        report = verify_audit_log(data, key, anchors)
    except AuditLogError as exc:
        print(f"✗ {path}: {exc}")
        return 1
    print(f"✓ {path}: {report.entries} entries, {report.checkpoints} signed checkpoints")
    if anchors:
        print(f"- holds the {len(anchors)} anchored entr{'y' if len(anchors) == 1 else 'ies'}")
    seq, digest = report.head
    # Compare with the anchor a deployment report carries: a log cut back is shorter.
    print(f"- last entry: seq {seq}, line sha256 {digest}")
    for line in report.recovered_lines:
        print(f"- line {line}: torn by a power cut, recovered (audit.recovered follows it)")
    if report.unsigned_tail:
        print(
            f"- last {report.unsigned_tail} entries follow the last checkpoint (chained, unsigned)"
        )
    if report.torn_tail_line is not None:
        print(
            f"! line {report.torn_tail_line}: torn final line (power cut during a write);"
            " the agent recovers it on its next start"
        )
    return 0

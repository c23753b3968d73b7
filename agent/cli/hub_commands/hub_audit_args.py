"""What a hub command did goes into the hub audit log (``agent/hub/audit/hub_audit_log.py``),
the same log the service and the console write, so an auditor reads one trail.

The log and its signing key are named by the hub config (``--config``, ``$LFR_HUB_CONFIG``
or the default path). A hub installed from ``deploy/`` always has one; a scratch key folder
used for a test or a drill may not, and then the command says on stderr that nothing was
recorded rather than refusing to work.

A signed document is recorded before it is written out: if the log cannot be written, the
command fails and the document never leaves the hub unrecorded.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import sys
from pathlib import Path

from agent.cli.hub_commands.hub_config_args import CONFIG_ENV, add_hub_config_arg
from agent.errors import LfrError
from agent.hub.audit.hub_audit_log import HubAudit
from agent.hub.service.hub_config import DEFAULT_HUB_CONFIG_PATH, load_hub_config
from agent.trust.audit_log import FieldValue
from agent.trust.signed_document import DocumentError, parse_envelope

#: Longest free text (a reason, a name) copied into an audit entry.
MAX_TEXT = 200


def add_hub_audit_arg(p: argparse.ArgumentParser) -> None:
    """``--config``: the hub config naming the audit log (unless the command has it)."""
    if not any("--config" in a.option_strings for a in p._actions):
        add_hub_config_arg(p)


def _config_path(args: argparse.Namespace) -> Path | None:
    given = getattr(args, "hub_config", None) or os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    return DEFAULT_HUB_CONFIG_PATH if DEFAULT_HUB_CONFIG_PATH.exists() else None


def record_hub_event(args: argparse.Namespace, event: str, **fields: FieldValue) -> bool:
    """Append one entry; False (with a note on stderr) when no hub config names a log."""
    path = _config_path(args)
    if path is None:
        print(
            f"note: {event} not recorded in the hub audit log (no hub config: give --config"
            f" or set {CONFIG_ENV})",
            file=sys.stderr,
        )
        return False
    cfg = load_hub_config(path)
    clipped = {k: v[:MAX_TEXT] if isinstance(v, str) else v for k, v in fields.items()}
    # The account that ran the command: CLI actions have no console login behind them.
    clipped.setdefault("os_user", getpass.getuser())
    try:
        audit = HubAudit.open(cfg.audit.log, cfg.audit.signing_key, cfg.audit.checkpoint_every)
    except OSError as exc:
        raise LfrError(f"hub audit log {cfg.audit.log}: cannot open ({exc.strerror})") from exc
    try:
        audit.record(event, **clipped)
    finally:
        audit.close()
    return True


def control_document_fields(data: bytes) -> dict[str, FieldValue]:
    """The audit fields of a signed activation, renewal or stop the hub just produced."""
    try:
        ptype, body, _ = parse_envelope(data)
        doc = json.loads(body)
    except (DocumentError, ValueError) as exc:  # our own output: a bug if it happens
        raise LfrError(f"audit: the signed document does not parse ({exc})") from exc
    fields: dict[str, FieldValue] = {
        "type": ptype,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    for key in ("device_id", "deployment_id", "sequence", "not_before", "not_after"):
        value = doc.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            fields[key] = value
    for key in (
        "watchlist_sha256",
        "hotlist_sha256",
        "analytic",
        "threshold",
        "score",
        "target_fpir",
        "lease_s",
        "officer",
        "reason",
        "recording",
    ):
        value = doc.get(key)
        if isinstance(value, str | int | float | bool):
            fields[key] = value
    return fields

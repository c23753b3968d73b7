"""lfr-agent watchlist import|status|wipe"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.cli.common import add_config_arg, load_args_config
from agent.config import AgentConfig
from agent.errors import LfrError, UsageError
from agent.matching.watchlist_store import WIPE_AFTER_EXPIRY_S, Audit, WatchlistStore
from agent.trust.audit_log import AuditLog, open_device_audit_log
from agent.trust.device_keys import load_device_keys
from agent.trust.hub_trust_store import HubTrustStore
from agent.vision.model_store import resolve_configured_models

#: The device's audit log under ``paths.state_dir``.


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watchlist", help="import, list or wipe the deployment watchlists")
    wsub = p.add_subparsers(dest="watchlist_command", metavar="ACTION", required=True)
    imp = wsub.add_parser(
        "import",
        help="verify a sealed watchlist file from the hub and keep it (still encrypted)",
        description=(
            "Checks the hub signature, that the bundle names this device, the embedder "
            "model, the expiry and that it is newer than any bundle already received for "
            "its deployment; then keeps the sealed file under paths.state_dir. It is "
            "decrypted only when an activation names its hash."
        ),
    )
    imp.add_argument("file", type=Path, help="sealed watchlist file (.lfrwl)")
    add_config_arg(imp)
    imp.set_defaults(handler=cmd_import)
    st = wsub.add_parser("status", help="list the watchlists held on this device")
    add_config_arg(st)
    st.set_defaults(handler=cmd_status)
    wp = wsub.add_parser("wipe", help="destroy watchlists (all, or one deployment's)")
    wp.add_argument("--deployment", default=None, help="only this deployment's watchlist")
    add_config_arg(wp)
    wp.set_defaults(handler=cmd_wipe)


def _audit(cfg: AgentConfig, required: bool) -> tuple[Audit | None, AuditLog | None]:
    try:
        keys = load_device_keys(cfg.paths.keys_dir)
        log = open_device_audit_log(cfg, keys.signing)
    except LfrError as exc:
        if required:
            raise
        print(f"lfr-agent: warning: not audited: {exc}", file=sys.stderr)
        return None, None
    return log.append, log


def _maintenance_store(cfg: AgentConfig, audit: Audit | None) -> WatchlistStore:
    # Listing and wiping need no keys or models: a wipe must work even when they are broken.
    return WatchlistStore(
        cfg.paths.state_dir,
        device_id=cfg.device.id,
        device_key=None,
        find_signing_key=lambda now: lambda kid: None,
        model_id="",
        model_sha256="",
        audit=audit,
    )


def cmd_import(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    limit = cfg.watchlist.max_bundle_mb * 1024 * 1024
    try:
        with Path(args.file).open("rb") as f:
            data = f.read(limit + 1)  # one byte over is enough to refuse it as too large
    except OSError as exc:
        raise UsageError(f"watchlist: {args.file}: cannot read ({exc.strerror})") from exc
    keys = load_device_keys(cfg.paths.keys_dir)
    trust = HubTrustStore.load(cfg.paths.keys_dir)
    embedder = resolve_configured_models(cfg)["embedder"]
    audit, log = _audit(cfg, required=True)
    try:
        store = WatchlistStore.from_config(
            cfg,
            device_key=keys.exchange,
            find_signing_key=trust.watchlist_key_finder,
            embedder=embedder,
            audit=audit,
        )
        result = store.import_bundle(data, source="file")
    finally:
        if log is not None:
            log.close()
    w = result.watchlist
    what = "already held" if result.status == "unchanged" else "stored"
    print(
        f"✓ watchlist {w.watchlist_hash} {what}: deployment {w.deployment_id}, "
        f"{w.count} entries, expires {_iso(w.expires_at)}"
    )
    for h in result.replaced:
        print(f"  replaced and wiped older watchlist {h}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    stored = _maintenance_store(cfg, None).stored()
    if not stored:
        print("no watchlist held")
        return 0
    now = time.time()
    for w in stored:
        state = "expired" if w.expires_at <= now else "valid"
        print(
            f"{w.watchlist_hash}  deployment {w.deployment_id}  {w.count} entries  "
            f"model {w.model_id}  created {_iso(w.created_at)}  expires {_iso(w.expires_at)} "
            f"({state}; wiped by {_iso(w.expires_at + WIPE_AFTER_EXPIRY_S)} at the latest)"
        )
    return 0


def cmd_wipe(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    audit, log = _audit(cfg, required=False)
    try:
        store = _maintenance_store(cfg, audit)
        if args.deployment:
            wiped = store.end_deployment(args.deployment, reason="operator")
        else:
            wiped = store.wipe_all(reason="operator")
    finally:
        if log is not None:
            log.close()
    for h in wiped:
        print(f"✓ wiped {h}")
    if not wiped:
        print("nothing to wipe")
    return 0


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

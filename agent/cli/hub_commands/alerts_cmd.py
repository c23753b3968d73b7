"""lfr-hub alerts watch|list|show|clip|adjudicate|purge|purges — receiving and adjudicating
alerts (and their clips; recording segments too, with an evidence key), and the retention
purge with its record."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cli.common import require
from agent.cli.hub_commands.broker_args import add_broker_args, settings_from_args
from agent.cli.hub_commands.hub_audit_args import add_hub_audit_arg, record_hub_event
from agent.cli.hub_commands.plates_cmd import line as plate_line
from agent.cli.hub_commands.plates_cmd import row_dict as plate_row_dict
from agent.cli.hub_commands.store_args import add_db_arg, age_arg, db_target
from agent.errors import UsageError
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.intake.media_receiver import HubMediaWorker, MediaReceipt, MediaReceiver
from agent.hub.intake.report_receiver import ReportReceiver, summary_line
from agent.hub.store.alert_store import OUTCOMES, AlertRow, AlertStore, PurgeRecord
from agent.hub.store.media_store import MediaStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.topics import ALL_EVENTS, shared_subscription
from agent.transport.mqtt_link import MqttLink
from agent.trust.key_files import load_private_key, write_atomic

DEFAULT_ALERT_KEY = Path("/etc/lfr-hub/keys/hub-alert-x25519-key.pem")
DEFAULT_EVIDENCE_KEY = Path("/etc/lfr-hub/keys/hub-evidence-x25519-key.pem")
PURGE_EVERY_S = 3600.0


def _db_arg(p: argparse.ArgumentParser) -> None:
    add_db_arg(p, "alert database")


def _store(args: argparse.Namespace) -> AlertStore:
    return AlertStore(db_target(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "alerts", help="receive alerts (faces and plates); list, show and adjudicate face alerts"
    )
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    w = asub.add_parser("watch", help="receive alerts from the broker, store them, acknowledge")
    _db_arg(w)
    add_broker_args(w, identity="main")
    w.add_argument(
        "--alert-key",
        type=Path,
        default=DEFAULT_ALERT_KEY,
        help="hub alert X25519 private key that opens alerts (default: %(default)s)",
    )
    w.add_argument(
        "--evidence-key",
        type=Path,
        default=None,
        help="hub evidence X25519 private key: also receive requested recording segments "
        "(checked with it at receipt, stored sealed; default: segments are refused)",
    )
    w.add_argument(
        "--group",
        default=None,
        help="MQTT v5 shared subscription group: workers of one group split the alerts",
    )
    w.add_argument("--json", action="store_true", help="print one JSON object per alert")
    w.add_argument(
        "--retention",
        type=age_arg,
        default=age_arg("31d"),
        help="purge alerts older than this (31d)",
    )
    w.add_argument(
        "--count",
        type=int,
        default=0,
        help="exit after this many new alerts (default: run until interrupted)",
    )
    w.set_defaults(handler=cmd_watch)

    ls = asub.add_parser("list", help="list recent alerts")
    _db_arg(ls)
    ls.add_argument("--device", default=None, help="only this device")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.add_argument("--open", action="store_true", help="only alerts not yet adjudicated")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.set_defaults(handler=cmd_list)

    sh = asub.add_parser("show", help="show one alert; write its face crop with --image")
    _db_arg(sh)
    sh.add_argument("alert_id", metavar="ID", help="alert id or a unique prefix (6+ hex)")
    sh.add_argument(
        "--device", default=None, help="the camera, when several used the same alert id"
    )
    sh.add_argument("--image", type=Path, default=None, help="write the probe crop (JPEG)")
    sh.add_argument("--scene", type=Path, default=None, help="write the scene crop (JPEG)")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.set_defaults(handler=cmd_show)

    cl = asub.add_parser("clip", help="write an alert's video clip (MP4), or say why it has none")
    _db_arg(cl)
    cl.add_argument("alert_id", metavar="ID", help="alert id or a unique prefix (6+ hex)")
    cl.add_argument(
        "--device", default=None, help="the camera, when several used the same alert id"
    )
    cl.add_argument("--out", type=Path, required=True, help="file to write the MP4 to")
    cl.set_defaults(handler=cmd_clip)

    adj = asub.add_parser("adjudicate", help="record the operator's outcome for an alert")
    _db_arg(adj)
    adj.add_argument("alert_id", metavar="ID", help="alert id or a unique prefix (6+ hex)")
    adj.add_argument(
        "--device", default=None, help="the camera, when several used the same alert id"
    )
    adj.add_argument("--outcome", required=True, choices=OUTCOMES, help="the outcome")
    adj.add_argument("--by", required=True, help="operator or officer reference")
    add_hub_audit_arg(adj)
    adj.set_defaults(handler=cmd_adjudicate)

    pu = asub.add_parser("purge", help="delete alerts (crops, outcomes) older than an age")
    _db_arg(pu)
    pu.add_argument("--older-than", type=age_arg, default=age_arg("31d"), help="age such as 31d")
    add_hub_audit_arg(pu)
    pu.set_defaults(handler=cmd_purge)

    pl = asub.add_parser("purges", help="the record of retention purges, newest first")
    _db_arg(pl)
    pl.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    pl.add_argument("--json", action="store_true", help="JSON lines")
    pl.set_defaults(handler=cmd_purges)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row_dict(r: AlertRow) -> dict[str, object]:
    return {
        "alert_id": r.alert_id,
        "device": r.device_id,
        "deployment": r.deployment_id,
        "seq": r.seq,
        "watchlist_entry": r.watchlist_entry,
        "score": r.score,
        "threshold": r.threshold,
        "model_id": r.model_id,
        "track_id": r.track_id,
        "quality": r.quality,
        "first_seen": _iso(r.first_seen),
        "decided_at": _iso(r.decided_at),
        "sealed_at": _iso(r.sealed_at),
        "received_at": _iso(r.received_at),
        "outcome": r.outcome,
        "outcome_by": r.outcome_by,
    }


def _line(r: AlertRow) -> str:
    outcome = f"  {r.outcome} by {r.outcome_by}" if r.outcome else "  open"
    return (
        f"{_iso(r.received_at)}  {r.alert_id}  {r.device_id}  dep {r.deployment_id}  "
        f"entry {r.watchlist_entry}  score {r.score:.3f} (threshold {r.threshold:.3f}){outcome}"
    )


def cmd_watch(args: argparse.Namespace) -> int:

    require(args.count >= 0, "--count: must not be negative")
    hub_key = load_private_key(args.alert_key, X25519PrivateKey)  # type: ignore[type-abstract]
    settings = settings_from_args(args)
    link = MqttLink(settings)
    store = _store(args)
    receiver = AlertReceiver(store, hub_key, max_age_s=args.retention)
    new = 0

    def show(receipt: Receipt) -> None:
        nonlocal new
        if receipt.outcome != "stored":
            return
        if receipt.plate_alert is not None:
            # A plate alert is read back from the plate tables only (never joined to faces).
            new += 1
            prow = receiver.plate_store.get(
                receipt.plate_alert.header.alert_id, device_id=receipt.device_id
            )
            print(json.dumps(plate_row_dict(prow)) if args.json else plate_line(prow), flush=True)
            return
        if receipt.alert is None:
            return
        new += 1
        row = store.get(receipt.alert.header.alert_id, device_id=receipt.device_id)
        text = json.dumps(_row_dict(row)) if args.json else _line(row)
        print(text, flush=True)

    worker = HubAlertWorker(link, receiver, share_group=args.group, on_receipt=show)
    evidence_key = (
        load_private_key(args.evidence_key, X25519PrivateKey)  # type: ignore[type-abstract]
        if args.evidence_key
        else None
    )
    media = MediaStore(store.database)

    def show_media(receipt: MediaReceipt) -> None:
        m = receipt.manifest
        if m is None or receipt.outcome not in ("stored", "noted"):
            return
        what = f"clip of alert {m.alert_id}" if m.kind == "clip" else f"segment {m.media_id}"
        state = "missing: " + m.reason if receipt.outcome == "noted" else "stored"
        print(f"{_iso(time.time())}  {what} from {receipt.device_id}: {state}", flush=True)

    HubMediaWorker(
        link,
        MediaReceiver(store, media, hub_key, evidence_key),
        share_group=args.group,
        on_receipt=show_media,
    )
    reports = DeploymentReportStore(store.database)

    def show_report(body: dict[str, object]) -> None:
        print(json.dumps(body, sort_keys=True) if args.json else summary_line(body), flush=True)

    report_receiver = ReportReceiver(
        reports, store.device_key, on_report=show_report, hub_key=hub_key, acknowledge=link.publish
    )
    events = ALL_EVENTS if not args.group else shared_subscription(args.group, ALL_EVENTS)
    link.subscribe(events, report_receiver.handle)
    last_purge = 0.0
    worker.start()
    try:
        while args.count == 0 or new < args.count:
            if time.monotonic() - last_purge > PURGE_EVERY_S or last_purge == 0.0:
                record = store.purge(args.retention, by_ref=f"alerts watch hub.{args.identity}")
                if record.alerts:
                    print(_purge_line(record), file=sys.stderr, flush=True)
                plates = receiver.plate_store.purge(args.retention)
                if plates:
                    print(f"purged {plates} plate alerts", file=sys.stderr, flush=True)
                segments, _ = media.purge(args.retention)
                if segments:
                    print(f"purged {segments} recording segments", file=sys.stderr, flush=True)
                last_purge = time.monotonic()
            time.sleep(0.2)
    finally:
        worker.stop()
        reports.close()
        media.close()
        store.close()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    require(args.limit >= 1, "--limit: must be at least 1")
    store = _store(args)
    for row in store.list_alerts(device_id=args.device, limit=args.limit, unadjudicated=args.open):
        print(json.dumps(_row_dict(row)) if args.json else _line(row))
    return 0


def _write_crop(store: AlertStore, row: AlertRow, kind: str, out: Path) -> None:
    alert_id = row.alert_id
    jpeg = store.crop(alert_id, kind, device_id=row.device_id)
    if jpeg is None:
        raise UsageError(f"alert {alert_id}: has no {kind} crop")
    # Face crops are biometric data: readable by the operator only.
    write_atomic(out, jpeg, 0o600)
    print(f"{kind} crop written to {out}", file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    row = store.get(args.alert_id, device_id=args.device)
    clip = MediaStore(store.database).clip(row.row_id, with_video=False)
    if clip is None:
        state = "none received (yet)"
    elif clip.state == "missing":
        # The reason is the camera's text: printable only (checked at receipt).
        state = f"missing: {clip.reason}"
    else:
        state = (
            f"{clip.frames} frames {clip.width}x{clip.height} at {clip.fps:g} fps, "
            f"sha256 {clip.sha256[:16]}"
        )
    fields = {**_row_dict(row), "clip": state}
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        for k, v in fields.items():
            print(f"{k:16} {v}")
    if args.image is not None:
        _write_crop(store, row, "probe", args.image)
    if args.scene is not None:
        _write_crop(store, row, "scene", args.scene)
    return 0


def cmd_clip(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        row = store.get(args.alert_id, device_id=args.device)
        clip = MediaStore(store.database).clip(row.row_id)
    finally:
        store.close()
    if clip is None:
        raise UsageError(f"alert {row.alert_id}: no clip received (yet)")
    if clip.state == "missing" or clip.mp4 is None:
        raise UsageError(f"alert {row.alert_id}: clip missing ({clip.reason})")
    # Video of people: readable by the operator only.
    write_atomic(args.out, clip.mp4, 0o600)
    print(f"clip written to {args.out} ({clip.frames} frames, sha256 {clip.sha256})")
    return 0


def cmd_adjudicate(args: argparse.Namespace) -> int:
    store = _store(args)
    row = store.adjudicate(args.alert_id, args.outcome, args.by, device_id=args.device)
    record_hub_event(
        args,
        "alert.adjudicated",
        alert_id=row.alert_id,
        device=row.device_id,
        outcome=args.outcome,
        by=args.by,
    )
    print(_line(row))
    return 0


def _purge_line(r: PurgeRecord) -> str:
    return (
        f"{_iso(r.at)}  purge {r.purge_id}: purged {r.alerts} alerts received more than "
        f"{r.older_than_s / 86400:g} days ago (before {_iso(r.cutoff)}), by {r.by_ref}"
        + (f"; {r.held} kept under legal hold" if r.held else "")
    )


def cmd_purge(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        record = store.purge(args.older_than, by_ref="alerts purge")
        print(_purge_line(record))
        record_hub_event(
            args,
            "retention.purged",
            purge_id=record.purge_id,
            alerts=record.alerts,
            held=record.held,
            older_than_s=record.older_than_s,
            by=record.by_ref,
        )
    finally:
        store.close()
    return 0


def cmd_purges(args: argparse.Namespace) -> int:
    require(args.limit >= 1, "--limit: must be at least 1")
    store = _store(args)
    try:
        for r in store.purge_log(args.limit):
            if args.json:
                fields = {
                    "purge_id": r.purge_id,
                    "at": _iso(r.at),
                    "older_than_days": r.older_than_s / 86400,
                    "cutoff": _iso(r.cutoff),
                    "alerts": r.alerts,
                    "by": r.by_ref,
                }
                print(json.dumps(fields))
            else:
                print(_purge_line(r))
    finally:
        store.close()
    return 0

"""lfr-hub device approve|list — approve enrolment requests and see enrolled devices."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from agent.cli.common import require
from agent.cli.hub_commands.broker_args import (
    DEFAULT_PKI_DIR,
    add_broker_args,
    parse_broker,
    settings_from_args,
)
from agent.errors import UsageError
from agent.hub.device_enrolment import approve, list_devices, open_request
from agent.hub.operator_keys import HubKeyStore
from agent.provisioning.enrolment_bundle import format_fingerprint
from agent.transport.mqtt_link import MqttLinkError, make_tls_client
from agent.trust.key_files import write_atomic
from agent.trust.signed_document import key_id, loads_untrusted

DEFAULT_DB = Path("/var/lib/lfr-hub/alerts.db")
MAX_REQUEST_BYTES = 256 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("device", help="approve device enrolment requests; list devices")
    dsub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    a = dsub.add_parser(
        "approve",
        help="check a request, issue the device certificate, write the signed bundle",
        description="Compare the request fingerprint printed here with the one the "
        "technician reads from the device before handing out the bundle, and give the "
        "technician the hub root fingerprint printed here.",
    )
    a.add_argument(
        "request", type=Path, metavar="REQ", help="request from 'lfr-agent enrol request'"
    )
    a.add_argument("--out", type=Path, required=True, help="bundle file to write")
    a.add_argument("--hub-dir", type=Path, required=True, help="the hub key folder (keys init)")
    a.add_argument(
        "--pki-dir", type=Path, default=DEFAULT_PKI_DIR, help="broker PKI folder (%(default)s)"
    )
    a.add_argument("--broker-url", required=True, help="broker the device uses: mqtts://HOST:PORT")
    a.add_argument(
        "--operator", default="supervisor", help="supervisor who signs the approval (%(default)s)"
    )
    a.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"alert database where the device's signing key is registered "
        f"(default: $LFR_HUB_DB or {DEFAULT_DB})",
    )
    a.add_argument("--cert-days", type=int, default=825, help="certificate validity (%(default)s)")
    a.add_argument(
        "--replace", action="store_true", help="re-enrol a device id that has other keys"
    )
    a.set_defaults(handler=cmd_approve)

    ls = dsub.add_parser(
        "list", help="enrolled devices; with --online also whether each is online now"
    )
    ls.add_argument("--hub-dir", type=Path, required=True, help="the hub key folder (keys init)")
    ls.add_argument(
        "--online",
        action="store_true",
        help="also read each device's retained status from the broker (--broker …)",
    )
    add_broker_args(ls, client_id="hub-device-list")
    ls.add_argument(
        "--wait", type=float, default=2.0, help="seconds to collect status (%(default)s)"
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per device")
    ls.set_defaults(handler=cmd_list)


def cmd_approve(args: argparse.Namespace) -> int:
    try:
        with open(args.request, "rb") as f:
            data = f.read(MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"device approve: cannot read {args.request} ({exc.strerror})") from exc
    require(len(data) <= MAX_REQUEST_BYTES, f"device approve: {args.request} is too large")
    request = open_request(data)
    hw = request.hardware
    print(
        f"✓ request       {request.device_id}: {hw.get('model', '?')}, serial {hw.get('serial', '?')}"
    )
    print(
        f"  fingerprint   {format_fingerprint(request.fingerprint[:32])}  (compare with the device)"
    )
    db = args.db or Path(os.environ.get("LFR_HUB_DB", str(DEFAULT_DB)))
    result = approve(
        request,
        hub_dir=args.hub_dir,
        pki_dir=args.pki_dir,
        operator=args.operator,
        broker_url=args.broker_url,
        alert_db=db,
        cert_days=args.cert_days,
        replace=args.replace,
    )
    try:
        write_atomic(args.out, result.bundle, 0o644)
    except OSError as exc:
        raise UsageError(f"device approve: cannot write {args.out} ({exc.strerror})") from exc
    print(f"✓ certificate   CN={result.device_id}, valid to {result.cert_not_after:%Y-%m-%d}")
    print(f"✓ registered    {result.device_dir} and {db}")
    print(f"✓ bundle        {args.out}")
    print(f"  hub root      {format_fingerprint(result.root_fingerprint)}")
    print("next: on the device 'lfr-agent enrol complete BUNDLE --root-fingerprint <hub root>'")
    return 0


def read_statuses(args: argparse.Namespace) -> dict[str, str]:
    """Device id → online/offline from the retained status messages on the broker."""

    host, port = parse_broker(args.broker)
    for p in (args.ca, args.cert, args.key):
        require(Path(p).is_file(), f"device list: {p}: not found")
    seen: dict[str, str] = {}
    connected = threading.Event()
    lock = threading.Lock()

    def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe("lfr/v1/+/status", qos=1)
            connected.set()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 4:
            return
        payload = bytes(msg.payload)
        state = "offline" if payload.strip() in (b"", b"offline") else "online"
        if state == "online":
            try:
                body = loads_untrusted(payload)
                if isinstance(body, dict) and isinstance(body.get("state"), str):
                    state = f"online ({body['state']})"
            except ValueError:
                pass
        with lock:
            seen[parts[2]] = state

    try:
        client = make_tls_client(settings_from_args(args))
    except MqttLinkError as exc:
        raise UsageError(f"device list: {exc}") from exc
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=10, clean_start=True)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"device list: cannot connect to {host}:{port} ({exc})") from exc
    client.loop_start()
    try:
        if not connected.wait(max(args.wait, 1.0)):
            raise UsageError(f"device list: broker {host}:{port} did not accept the connection")
        time.sleep(max(0.0, args.wait))
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return dict(seen)


def cmd_list(args: argparse.Namespace) -> int:
    root = key_id(HubKeyStore.open(args.hub_dir).root_public())
    devices = list_devices(args.hub_dir)
    if not args.json:
        print(f"hub root fingerprint  {format_fingerprint(root)}")
    statuses = read_statuses(args) if args.online else None
    for d in devices:
        approved = dt.datetime.fromtimestamp(d.approved_at, dt.UTC).strftime("%Y-%m-%d")
        state = None if statuses is None else statuses.get(d.device_id, "never connected")
        if args.json:
            row: dict[str, Any] = {
                "device": d.device_id,
                "approved_at": approved,
                "approved_by": d.approved_by,
                "cert_not_after": d.cert_not_after,
                "hardware": d.hardware,
            }
            if state is not None:
                row["status"] = state
            print(json.dumps(row))
        else:
            extra = f"  {state}" if state is not None else ""
            print(
                f"{d.device_id:24} approved {approved} by {d.approved_by}  "
                f"cert to {d.cert_not_after[:10]}  {d.hardware.get('model', '?')}{extra}"
            )
    if not devices and not args.json:
        print(f"no devices enrolled in {args.hub_dir}")
    return 0

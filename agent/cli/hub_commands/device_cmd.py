"""lfr-hub device approve|list — approve enrolment requests and see enrolled devices."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from agent.cli.common import require
from agent.cli.hub_commands.broker_args import (
    DEFAULT_PKI_DIR,
    add_broker_args,
    client_files,
    parse_broker,
    settings_from_args,
)
from agent.cli.hub_commands.hub_audit_args import add_hub_audit_arg, record_hub_event
from agent.cli.hub_commands.passphrase_args import add_passphrase_arg, read_passphrase
from agent.cli.hub_commands.store_args import add_db_arg, db_target
from agent.errors import UsageError
from agent.hub.devices.device_enrolment import approve, list_devices, open_request
from agent.hub.devices.device_withdrawal import Withdrawal, withdraw_device, withdrawn_record
from agent.hub.keys.broker_access import ADMIN_NAME
from agent.hub.keys.broker_admin import BrokerAdmin, BrokerAdminError
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.store.alert_store import AlertStore
from agent.protocol.device_status import StatusError, parse_status
from agent.protocol.topics import ALL_STATUSES, TopicError, parse_topic
from agent.provisioning.enrolment_bundle import format_fingerprint
from agent.transport.mqtt_link import MqttLinkError, make_tls_client
from agent.trust.key_files import write_atomic
from agent.trust.signed_document import key_id

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
    add_passphrase_arg(a)
    add_db_arg(a, "hub database where the device's signing key is registered")
    a.add_argument("--cert-days", type=int, default=825, help="certificate validity (%(default)s)")
    a.add_argument(
        "--replace", action="store_true", help="re-enrol a device id that has other keys"
    )
    add_hub_audit_arg(a)
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
    add_broker_args(ls, identity="monitor")
    ls.add_argument(
        "--wait", type=float, default=2.0, help="seconds to collect status (%(default)s)"
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per device")
    ls.set_defaults(handler=cmd_list)

    wd = dsub.add_parser(
        "withdraw",
        help="withdraw a camera for good (stolen, lost, decommissioned)",
        description="Revoke its broker certificates (CA revocation list), remove its "
        "rights at the broker (it is disconnected), stop accepting its signing key, mark "
        "it withdrawn and record who, when and why. Then reload the broker so it re-reads "
        "the revocation list.",
    )
    wd.add_argument("device", metavar="ID", help="the device id")
    wd.add_argument("--hub-dir", type=Path, required=True, help="the hub key folder (keys init)")
    wd.add_argument("--by", required=True, help="who withdraws it (operator or officer reference)")
    wd.add_argument("--reason", default="", help="why (printable text, at most 200 characters)")
    add_db_arg(wd)
    add_broker_args(wd, identity=ADMIN_NAME)
    wd.add_argument(
        "--no-broker",
        action="store_true",
        help="do not contact the broker now (run 'lfr-hub broker revoke --device ID' later)",
    )
    add_hub_audit_arg(wd)
    wd.set_defaults(handler=cmd_withdraw)


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
    db = db_target(args)
    result = approve(
        request,
        hub_dir=args.hub_dir,
        pki_dir=args.pki_dir,
        operator=args.operator,
        passphrase=read_passphrase(args.passphrase_file, args.operator),
        broker_url=args.broker_url,
        alert_db=db,
        cert_days=args.cert_days,
        replace=args.replace,
    )
    try:
        write_atomic(args.out, result.bundle, 0o644)
    except OSError as exc:
        raise UsageError(f"device approve: cannot write {args.out} ({exc.strerror})") from exc
    record_hub_event(
        args,
        "device.approved",
        device=result.device_id,
        certificate_not_after=int(result.cert_not_after.timestamp()),
    )
    print(f"✓ certificate   CN={result.device_id}, valid to {result.cert_not_after:%Y-%m-%d}")
    print(f"✓ registered    {result.device_dir} and {db}")
    print(f"✓ bundle        {args.out}")
    print(f"  hub root      {format_fingerprint(result.root_fingerprint)}")
    print("next: on the device 'lfr-agent enrol complete BUNDLE --root-fingerprint <hub root>'")
    return 0


def read_statuses(args: argparse.Namespace) -> dict[str, str]:
    """Device id → online/offline from the retained status messages on the broker."""

    # Bridged brokers hold the same retained statuses: the first one answers for all.
    host, port = parse_broker(str(args.broker).split(",")[0])
    for p in client_files(args):
        require(Path(p).is_file(), f"device list: {p}: not found")
    seen: dict[str, str] = {}
    connected = threading.Event()
    lock = threading.Lock()

    def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe(ALL_STATUSES, qos=1)
            connected.set()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        try:
            device_id, kind = parse_topic(msg.topic)
        except TopicError:
            return
        if kind != "status":
            return
        try:
            status = parse_status(device_id, bytes(msg.payload))
            state = f"online ({status.state})" if status.online else "offline"
        except StatusError as exc:
            # Unsigned and from the camera: shown only as the protocol defines it.
            state = f"online (status refused: {exc})"
        with lock:
            seen[device_id] = state

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
        if withdrawn_record(args.hub_dir, d.device_id) is not None:
            state = "WITHDRAWN"
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


def cmd_withdraw(args: argparse.Namespace) -> int:
    store = AlertStore(db_target(args))
    admin_problem: list[str] = []

    def record(w: Withdrawal) -> bool:
        return store.withdraw_device(
            w.device_id,
            by=w.by,
            reason=w.reason,
            revoked_serials=[f"{s:x}" for s in w.revoked_serials],
            at=w.withdrawn_at,
        )

    def remove_rights(device_id: str) -> bool:
        try:
            with BrokerAdmin(settings_from_args(args, session_expiry_s=0)) as admin:
                return admin.remove(device_id)
        except (BrokerAdminError, UsageError) as exc:
            admin_problem.append(str(exc))
            return False

    try:
        w = withdraw_device(
            args.hub_dir,
            args.pki_dir,
            args.device,
            by=args.by,
            reason=args.reason,
            remove_broker_access=None if args.no_broker else remove_rights,
            unregister_key=record,
        )
    finally:
        store.close()
    serials = ", ".join(f"{s:x}" for s in w.revoked_serials) or "none new"
    record_hub_event(
        args,
        "device.withdrawn",
        device=w.device_id,
        by=w.by,
        reason=w.reason,
        revoked_serials=serials,
        key_unregistered=w.key_unregistered,
        broker_rights_removed=w.broker_access_removed,
    )
    print(f"✓ certificates   on the revocation list {args.pki_dir / 'crl.pem'} ({serials})")
    print(f"✓ signing key    {'no longer accepted' if w.key_unregistered else 'already refused'}")
    print(f"✓ registry       {w.device_id} marked withdrawn by {w.by}")
    if w.broker_access_removed is None:
        print("⚠ broker         not contacted: run 'lfr-hub broker revoke --device ID' now")
    elif admin_problem:
        print(
            f"⚠ broker         not reached ({admin_problem[0]}): run "
            f"'lfr-hub broker revoke --device {w.device_id}' when it is"
        )
    else:
        state = "rights removed, disconnected" if w.broker_access_removed else "had no rights"
        print(f"✓ broker         {state}")
    print(
        "next: copy crl.pem to the broker and 'systemctl reload mosquitto', so its "
        "certificate is refused at the handshake too"
    )
    # Not done until the broker has dropped it too.
    return 0 if w.broker_access_removed is not None and not admin_problem else 1

"""lfr-hub evidence request|list|export — a camera's sealed CCTV recording.

``request`` signs a request (with an operator's key) for the segments a camera recorded
between two times and sends it over the broker; the camera checks it and sends the
sealed segments, which ``lfr-hub alerts watch --evidence-key KEY`` receives, checks
(they must decrypt and decode) and stores sealed. Running ``request`` again resumes:
segments the hub already holds are confirmed at once, half-received ones continue
where they stopped. ``export`` decrypts one stored segment to an MP4 with the evidence
key: segments are opened nowhere else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cli.hub_commands.broker_args import add_broker_args, settings_from_args
from agent.cli.hub_commands.keys_cmd import add_hub_dir_arg
from agent.cli.hub_commands.store_args import add_db_arg, db_target
from agent.errors import CheckFailed, LfrError, UsageError
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.media_store import MediaStore, SegmentRow
from agent.protocol.topics import check_device_id, evidence_request_topic
from agent.transport.mqtt_link import MqttLink, PublishResult
from agent.trust.evidence_request import new_request_id, sign_evidence_request
from agent.trust.key_files import load_private_key, write_atomic
from agent.trust.sealed_media import SealedMediaError, open_manifest, open_media
from agent.trust.signed_document import loads_untrusted, parse_envelope

DEFAULT_EVIDENCE_KEY = Path("/etc/lfr-hub/keys/hub-evidence-x25519-key.pem")
CONNECT_TIMEOUT_S = 15.0


class EvidenceFailed(LfrError):
    exit_code = 3


def parse_time(text: str) -> int:
    """Unix seconds, or an ISO 8601 UTC time such as 2026-12-01T10:00:00Z."""
    if re.fullmatch(r"[0-9]{1,12}", text):
        return int(text)
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give Unix seconds or a time like 2026-12-01T10:00:00Z"
        ) from exc
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the time zone (Z for UTC)")
    return int(t.timestamp())


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _db_arg(p: argparse.ArgumentParser) -> None:
    add_db_arg(p)


def _db_path(args: argparse.Namespace) -> str:
    return db_target(args)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evidence",
        help="request, list and export a camera's sealed CCTV recording segments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    esub = p.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)

    rq = esub.add_parser("request", help="ask a camera for its sealed segments in a time range")
    rq.add_argument("device", metavar="DEVICE", help="device id")
    rq.add_argument("--from", dest="start", type=parse_time, required=True, help="range start")
    rq.add_argument("--to", dest="end", type=parse_time, required=True, help="range end")
    add_hub_dir_arg(rq)
    rq.add_argument("--operator", required=True, help="operator whose key signs the request")
    _db_arg(rq)
    rq.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for the segments to arrive (alerts watch stores them)",
    )
    add_broker_args(rq, identity="evidence")
    rq.set_defaults(handler=cmd_request)

    ls = esub.add_parser("list", help="list the recording segments stored at the hub")
    _db_arg(ls)
    ls.add_argument("--device", default=None, help="only this device")
    ls.add_argument("--from", dest="start", type=parse_time, default=0, help="range start")
    ls.add_argument("--to", dest="end", type=parse_time, default=2**53, help="range end")
    ls.set_defaults(handler=cmd_list)

    ex = esub.add_parser("export", help="decrypt one stored segment to an MP4 file")
    _db_arg(ex)
    ex.add_argument("segment", metavar="ID", help="segment id or a unique prefix (6+ hex)")
    ex.add_argument("--out", type=Path, required=True, help="MP4 file to write")
    ex.add_argument(
        "--evidence-key",
        type=Path,
        default=DEFAULT_EVIDENCE_KEY,
        help="hub evidence X25519 private key (default: %(default)s)",
    )
    ex.set_defaults(handler=cmd_export)


def cmd_request(args: argparse.Namespace) -> int:
    try:
        device = check_device_id(args.device)
    except ValueError as exc:
        raise UsageError(f"DEVICE: {exc}") from exc
    if args.end <= args.start:
        raise UsageError("--to: must be later than --from")
    hub = HubKeyStore.open(args.hub_dir)
    key, cert = hub.operator(args.operator, "")
    request_id = new_request_id()
    data = sign_evidence_request(
        device_id=device,
        start=args.start,
        end=args.end,
        issued_at=int(time.time()),
        signing_key=key,
        signer_certificate=cert.document,
        revocations=hub.revocations().document,
        request_id=request_id,
    )
    media = MediaStore(_db_path(args))
    media.record_request(request_id, device, args.start, args.end, args.operator)
    topic = evidence_request_topic(device)
    link = MqttLink(settings_from_args(args))
    done = threading.Event()
    result: list[PublishResult] = []

    def on_result(r: PublishResult) -> None:
        result.append(r)
        done.set()

    link.start()
    try:
        if not link.wait_connected(CONNECT_TIMEOUT_S):
            raise EvidenceFailed(
                f"evidence: broker {args.broker} not reachable ({link.last_connect_error or 'no answer'})"
            )
        link.publish(topic, data, on_result=on_result)
        if not done.wait(CONNECT_TIMEOUT_S):
            raise EvidenceFailed(f"evidence: no acknowledgement from the broker for {topic}")
    finally:
        link.stop(graceful=False)
    if not result[0].ok:
        raise CheckFailed(f"evidence: broker refused {topic}: {result[0].reason}")
    print(f"request {request_id} → {topic}: {_iso(args.start)} to {_iso(args.end)}")
    seen: set[str] = set()
    deadline = time.monotonic() + args.wait
    while True:
        for s in media.segments(device, args.start, args.end):
            if s.media_id not in seen:
                seen.add(s.media_id)
                print(_segment_line(s), flush=True)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    media.close()
    if args.wait:
        print(f"{len(seen)} segments of {device} in the range are stored at the hub")
    return 0


def _segment_line(s: SegmentRow) -> str:
    return (
        f"{s.media_id}  {s.device_id}  dep {s.deployment_id}  {_iso(s.start)} – {_iso(s.end)}  "
        f"{s.frames} frames  {s.size} bytes sealed"
    )


def cmd_list(args: argparse.Namespace) -> int:
    media = MediaStore(_db_path(args))
    try:
        for s in media.segments(args.device, args.start, args.end):
            print(_segment_line(s))
    finally:
        media.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[0-9a-fA-F]{6,32}", args.segment):
        raise UsageError(f"segment id {args.segment[:40]!r}: give 6–32 hex digits")
    key = load_private_key(args.evidence_key, X25519PrivateKey)  # type: ignore[type-abstract]
    alerts = AlertStore(_db_path(args))
    media = MediaStore(alerts.database)
    try:
        manifest_bytes, box = media.sealed_segment(args.segment)
        # The device that sealed it is named in the manifest; its enrolled key verifies it.
        _, body, _ = parse_envelope(manifest_bytes)
        device = str(loads_untrusted(body).get("device", ""))
        device_key = alerts.device_key(device)
        if device_key is None:
            raise CheckFailed(f"evidence: device {device[:64]!r} is not enrolled here")
        try:
            m = open_manifest(manifest_bytes, sender=device, device_key=device_key)
            opened = open_media(m, box, key)
        except SealedMediaError as exc:
            raise CheckFailed(f"evidence: {exc}") from exc
    finally:
        media.close()
        alerts.close()
    write_atomic(args.out, opened.mp4, 0o600)
    print(
        f"segment {m.media_id} of {m.device} ({_iso(m.start)} – {_iso(m.end)}, "
        f"{opened.info.frames} frames) written to {args.out}",
        file=sys.stderr,
    )
    return 0

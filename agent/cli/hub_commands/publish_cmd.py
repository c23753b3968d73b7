"""lfr-hub publish: send a signed activation, renewal or stop, a revocation list, or a sealed
watchlist to a device over the broker, and show whether the camera applied it.

The files come from ``lfr-hub activate|renew|stop --out``, ``lfr-hub watchlist build
--out`` and the hub key folder (``hub-revocations.json``); the file decides the topic
(lfr/v1/<device>/activation or …/watchlist). The device checks everything itself; this
command only refuses files that are plainly not what they claim to be.

"Delivered" means the camera's signed receipt for this very file arrived (docs/protocol.md,
section 12): it says whether the camera applied or refused it and whether its camera is
now open or closed. Without one within --wait seconds the file is only "accepted by the
broker, not confirmed by the camera" (the camera may be offline; the broker keeps the file
for its session) and the command exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
from pathlib import Path

from agent.cli.hub_commands.broker_args import add_broker_args, settings_from_args
from agent.cli.hub_commands.store_args import add_db_arg, db_target
from agent.errors import CheckFailed, LfrError, UsageError
from agent.hub.intake.control_receipts import Delivery, ReceiptWatch
from agent.hub.store.alert_store import AlertStore
from agent.matching.hotlist_bundle import SEALED_MAGIC as HOTLIST_MAGIC
from agent.matching.watchlist_bundle import SEALED_MAGIC as WATCHLIST_MAGIC
from agent.protocol.topics import activation_topic, check_device_id, watchlist_topic
from agent.transport.mqtt_link import MqttLink, PublishResult
from agent.trust.activation_token import KIND_BY_TYPE
from agent.trust.key_certificates import REVOCATION_LIST_TYPE
from agent.trust.signed_document import DocumentError, parse_envelope

MAX_FILE_BYTES = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 15.0
DEFAULT_WAIT_S = 30.0


class PublishFailed(LfrError):
    exit_code = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        help="send a control document, revocation list or watchlist; wait for the camera",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="signed document or sealed watchlist")
    p.add_argument("--device", required=True, help="device id")
    p.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        help="seconds to wait for the camera's receipt; 0: do not wait (default %(default)g)",
    )
    add_db_arg(p, "hub database holding the devices' registered keys, which verify receipts")
    add_broker_args(p, identity="publish")
    p.set_defaults(handler=cmd_publish)


def classify(data: bytes) -> str:
    """'activation' (activation, renewal, stop, revocation list) or 'watchlist' (a
    watchlist or a plate hotlist: both go on the watchlist topic); raises UsageError
    otherwise."""
    if data.startswith((WATCHLIST_MAGIC, HOTLIST_MAGIC)):
        return "watchlist"
    try:
        ptype, _, _ = parse_envelope(data)
    except DocumentError as exc:
        raise UsageError(f"publish: not a control document or watchlist ({exc})") from exc
    if ptype != REVOCATION_LIST_TYPE and ptype not in KIND_BY_TYPE:
        raise UsageError(f"publish: a {ptype!r} document is not sent to devices")
    return "activation"


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        device = check_device_id(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from exc
    if not 0 <= args.wait <= 3600:
        raise UsageError(f"--wait: must be 0–3600 seconds, got {args.wait:g}")
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"publish: {args.file}: cannot read ({exc.strerror})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"publish: {args.file}: larger than {MAX_FILE_BYTES} bytes")
    kind = classify(data)
    topic = watchlist_topic(device) if kind == "watchlist" else activation_topic(device)
    store = None
    if args.wait > 0:
        store = AlertStore(db_target(args))
        if store.device_key(device) is None:
            store.close()
            raise UsageError(f"publish: {device} is not enrolled (its receipts cannot be verified)")
    # The command's session ends with it: nothing is queued for it between runs.
    link = MqttLink(settings_from_args(args, session_expiry_s=0))
    watch = ReceiptWatch(link, store.device_key, device_id=device) if store else None
    done = threading.Event()
    result: list[PublishResult] = []

    def on_result(r: PublishResult) -> None:
        result.append(r)
        done.set()

    link.start()
    try:
        # Subscribed to the receipt topic before the document goes out: none is missed.
        if not link.wait_connected(CONNECT_TIMEOUT_S):
            raise PublishFailed(
                f"publish: broker {args.broker} not reachable ({link.last_connect_error or 'no answer'})"
            )
        if link.refused_subscriptions:
            raise PublishFailed(
                f"publish: the broker refused hub.{args.identity} the receipt topic "
                "(grant it the control role: lfr-hub broker grant --role control)"
            )
        link.publish(topic, data, on_result=on_result)
        if not done.wait(CONNECT_TIMEOUT_S):
            raise PublishFailed(f"publish: no acknowledgement from the broker for {topic}")
        if not result[0].ok:
            raise CheckFailed(f"publish: broker refused {topic}: {result[0].reason}")
        receipt = watch.wait(data, args.wait) if watch is not None else None
    finally:
        link.stop(graceful=False)
        if store is not None:
            store.close()
    delivery = Delivery(device, hashlib.sha256(data).hexdigest(), True, receipt)
    if watch is None:
        print(f"✓ {args.file.name} → {topic} ({len(data)} bytes, accepted by the broker)")
        return 0
    mark = {"applied": "✓", "refused": "✗"}.get(delivery.state, "⚠")
    print(f"{mark} {args.file.name} → {topic}: {delivery.describe()}")
    return 0 if delivery.state == "applied" else 1

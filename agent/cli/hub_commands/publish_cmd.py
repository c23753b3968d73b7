"""lfr-hub publish: send a signed activation, renewal or stop, or a sealed watchlist, to a
device over the broker, and confirm the broker accepted it.

The files come from ``lfr-hub activate|renew|stop --out`` and ``lfr-hub watchlist build
--out``; the file decides the topic (lfr/v1/<device>/activation or …/watchlist). The
device checks everything itself; this command only refuses files that are plainly not
what they claim to be, so an operator learns at once rather than from the device log.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from agent.cli.hub_commands.broker_args import add_broker_args, settings_from_args
from agent.errors import CheckFailed, LfrError, UsageError
from agent.matching.watchlist_bundle import SEALED_MAGIC as WATCHLIST_MAGIC
from agent.transport.mqtt_link import MqttLink, PublishResult
from agent.transport.topics import activation_topic, check_device_id, watchlist_topic
from agent.trust.activation_token import KIND_BY_TYPE
from agent.trust.signed_document import DocumentError, parse_envelope

MAX_FILE_BYTES = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 15.0


class PublishFailed(LfrError):
    exit_code = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        help="send an activation/renewal/stop or a watchlist file to a device",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="signed control document or sealed watchlist")
    p.add_argument("--device", required=True, help="device id")
    add_broker_args(p, client_id="hub-main-publish")
    p.set_defaults(handler=cmd_publish)


def classify(data: bytes) -> str:
    """'activation' (activation, renewal or stop) or 'watchlist'; raises UsageError otherwise."""
    if data.startswith(WATCHLIST_MAGIC):
        return "watchlist"
    try:
        ptype, _, _ = parse_envelope(data)
    except DocumentError as exc:
        raise UsageError(f"publish: not a control document or watchlist ({exc})") from exc
    kind = KIND_BY_TYPE.get(ptype)
    if kind is None:
        raise UsageError(f"publish: a {ptype!r} document is not sent to devices")
    return "activation"


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        device = check_device_id(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from exc
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"publish: {args.file}: cannot read ({exc.strerror})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"publish: {args.file}: larger than {MAX_FILE_BYTES} bytes")
    kind = classify(data)
    topic = watchlist_topic(device) if kind == "watchlist" else activation_topic(device)
    link = MqttLink(settings_from_args(args))
    done = threading.Event()
    result: list[PublishResult] = []

    def on_result(r: PublishResult) -> None:
        result.append(r)
        done.set()

    link.start()
    try:
        if not link.wait_connected(CONNECT_TIMEOUT_S):
            raise PublishFailed(
                f"publish: broker {args.broker} not reachable ({link.last_connect_error or 'no answer'})"
            )
        link.publish(topic, data, on_result=on_result)
        if not done.wait(CONNECT_TIMEOUT_S):
            raise PublishFailed(f"publish: no acknowledgement from the broker for {topic}")
    finally:
        link.stop(graceful=False)
    if not result[0].ok:
        raise CheckFailed(f"publish: broker refused {topic}: {result[0].reason}")
    print(f"✓ {args.file.name} → {topic} ({len(data)} bytes, accepted by the broker)")
    return 0

"""The broker connection options every hub command that talks MQTT shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.errors import UsageError
from agent.transport.mqtt_link import MqttSettings

DEFAULT_PKI_DIR = Path("/etc/lfr-hub/pki")  # as written by lfr-hub pki init / issue --hub main


def add_broker_args(p: argparse.ArgumentParser, client_id: str) -> None:
    p.add_argument(
        "--broker", default="localhost:8883", help="broker HOST:PORT (default: %(default)s)"
    )
    p.add_argument(
        "--ca",
        type=Path,
        default=DEFAULT_PKI_DIR / "ca.pem",
        help="CA of the broker certificate (default: %(default)s)",
    )
    p.add_argument(
        "--cert",
        type=Path,
        default=DEFAULT_PKI_DIR / "clients" / "hub.main-cert.pem",
        help="hub client certificate (default: %(default)s)",
    )
    p.add_argument(
        "--key",
        type=Path,
        default=DEFAULT_PKI_DIR / "clients" / "hub.main-key.pem",
        help="its private key (default: %(default)s)",
    )
    p.add_argument(
        "--client-id",
        default=client_id,
        help="MQTT client id; keep it stable, it names the broker session (default: %(default)s)",
    )


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--broker {text!r}: expected HOST:PORT")
    return host, int(port)


def settings_from_args(args: argparse.Namespace) -> MqttSettings:
    host, port = parse_broker(args.broker)
    return MqttSettings(
        host=host,
        port=port,
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
        client_id=args.client_id,
    )

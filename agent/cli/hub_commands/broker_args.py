"""The broker connection options every hub command that talks MQTT shares.

Each hub process connects with a certificate of its own (``hub.<name>``): the broker makes
the certificate's name the MQTT client id, so two processes sharing one certificate
would take each other's session over. Each command has a default identity
(``alerts watch``: ``main``, ``publish``: ``publish``, ``device list``: ``monitor``, the
broker administration: ``broker-admin``); ``--identity`` picks another, whose files are
``PKI/clients/hub.<name>-cert.pem`` and ``-key.pem`` (``lfr-hub pki issue --hub NAME``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from agent.errors import UsageError
from agent.hub.keys.pki import PkiError, certificate_common_name, hub_identity, load_certificate
from agent.transport.mqtt_link import MqttSettings

DEFAULT_PKI_DIR = Path("/etc/lfr-hub/pki")  # as written by lfr-hub pki init / issue --hub NAME


def add_broker_args(p: argparse.ArgumentParser, identity: str) -> None:
    p.add_argument(
        "--broker",
        default="localhost:8883",
        help="broker HOST:PORT, or several bridged brokers HOST:PORT,HOST:PORT,… tried in "
        "turn when one cannot be reached (default: %(default)s)",
    )
    p.add_argument(
        "--pki-dir",
        type=Path,
        default=DEFAULT_PKI_DIR,
        help="PKI folder holding ca.pem and clients/ (default: %(default)s)",
    )
    p.add_argument(
        "--identity",
        default=identity,
        metavar="NAME",
        help="hub identity to connect as, certificate CN hub.NAME (default: %(default)s)",
    )
    p.add_argument("--ca", type=Path, help="CA of the broker certificate (default: PKI/ca.pem)")
    p.add_argument(
        "--cert", type=Path, help="client certificate (default: PKI/clients/hub.NAME-cert.pem)"
    )
    p.add_argument(
        "--key", type=Path, help="its private key (default: PKI/clients/hub.NAME-key.pem)"
    )


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--broker {text!r}: expected HOST:PORT")
    return host, int(port)


def client_files(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) the options name."""
    try:
        cn = hub_identity(args.identity)
    except PkiError as exc:
        raise UsageError(f"--identity: {exc}") from exc
    clients = args.pki_dir / "clients"
    return (
        args.ca or args.pki_dir / "ca.pem",
        args.cert or clients / f"{cn}-cert.pem",
        args.key or clients / f"{cn}-key.pem",
    )


def settings_from_args(
    args: argparse.Namespace, *, session_expiry_s: int | None = None
) -> MqttSettings:
    """Connection settings; the client id is the certificate's name (the broker would
    replace any other). ``session_expiry_s`` 0 for a command whose session must not
    outlive it."""
    endpoints = [parse_broker(b) for b in str(args.broker).split(",")]
    (host, port), fallbacks = endpoints[0], tuple(endpoints[1:])
    ca, cert, key = client_files(args)
    # A missing file is reported, naming it, when the connection is set up.
    client_id = hub_identity(args.identity)
    if cert.is_file():
        try:
            client_id = certificate_common_name(load_certificate(cert))
        except PkiError as exc:
            raise UsageError(f"--cert: {exc}") from exc
    settings = MqttSettings(
        host=host,
        port=port,
        fallbacks=fallbacks,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        client_id=client_id,
    )
    if session_expiry_s is not None:
        settings = replace(settings, session_expiry_s=session_expiry_s)
    return settings

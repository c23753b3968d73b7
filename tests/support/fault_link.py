"""The MQTT settings the fault test's separate processes (the alert sender and the hub
worker) use: the test's broker PKI, a short keepalive and a fast, steady reconnect, so
a cut or a broker restart is noticed and healed within a second or two."""

from __future__ import annotations

from pathlib import Path

from agent.transport.mqtt_link import MqttSettings


def fault_test_settings(
    host: str, port: int, pki_dir: Path, common_name: str, client_id: str
) -> MqttSettings:
    return MqttSettings(
        host=host,
        port=port,
        ca_file=pki_dir / "ca.pem",
        cert_file=pki_dir / "clients" / f"{common_name}-cert.pem",
        key_file=pki_dir / "clients" / f"{common_name}-key.pem",
        client_id=client_id,
        keepalive_s=5,
        session_expiry_s=3600,
        reconnect_min_s=1,
        reconnect_max_s=1,
    )

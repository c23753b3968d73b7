"""An attacker's MQTT client for the stolen-camera tests: plain paho with a stolen
certificate and whatever client id, clean-start flag and subscriptions the attacker
chooses (what ``mosquitto_sub --cert … -i ID -t FILTER`` does), no reconnects.

It records what the broker answered: the CONNACK, each SUBACK reason code, each
PUBACK reason code and every message delivered to it.
"""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class AttackerClient:
    def __init__(
        self,
        host: str,
        port: int,
        files: tuple[Path, Path, Path],
        client_id: str,
        *,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        ca, cert, key = files
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.tls_set(
            ca_certs=str(ca),
            certfile=str(cert),
            keyfile=str(key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self.host, self.port = host, port
        self.clean_start, self.session_expiry_s = clean_start, session_expiry_s
        self.connack: Any = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.suback_codes: list[int] = []
        self.puback_codes: list[int] = []
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def connect(self, timeout: float = 10.0) -> bool:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect(
            self.host, self.port, keepalive=30, clean_start=self.clean_start, properties=props
        )
        self.client.loop_start()
        return self.connected.wait(timeout)

    def subscribe(self, topic_filter: str, timeout: float = 10.0) -> int:
        """Subscribe and return the broker's reason code (≥ 0x80: refused)."""
        before = len(self.suback_codes)
        self.client.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + timeout
        while len(self.suback_codes) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.suback_codes[-1] if len(self.suback_codes) > before else -1

    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> int:
        """Publish QoS 1 and return the PUBACK reason code (-1: none came)."""
        before = len(self.puback_codes)
        self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + timeout
        while len(self.puback_codes) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.puback_codes[-1] if len(self.puback_codes) > before else -1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack = rc
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.disconnected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._lock:
            self.suback_codes.extend(int(c.value) for c in codes)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            self.puback_codes.append(int(rc.value))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

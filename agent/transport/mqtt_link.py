"""One MQTT v5 connection over TLS with a client certificate (paho-mqtt 2.x).

What it adds to paho:

- mutual TLS (``tls_set(ca, cert, key)``), a persistent session (clean start off,
  session expiry) and reconnection with exponential backoff, in paho's own thread;
- a retained ``status`` topic: ``online`` payloads are published by the owner, and the
  broker publishes the retained last will ``offline`` if the link dies;
- per-topic message handlers that are re-subscribed on every connect and whose
  exceptions are logged instead of killing the network thread;
- PUBACK reason codes: a publish is reported as delivered only when the broker accepted
  it. A reason code ≥ 0x80 (e.g. 135 "not authorised" from the ACL) is a failure.

paho keeps unacknowledged QoS 1 messages only in memory; durable delivery is the job
of the outbox and the publisher, which re-publish after every reconnect.
"""

from __future__ import annotations

import logging
import math
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttSection
from agent.errors import LfrError

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class MqttLinkError(LfrError):
    """The broker connection could not be set up."""


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    #: Other brokers of the same fleet (bridged with this one), tried in turn when the
    #: current one cannot be reached: no single broker process is needed.
    fallbacks: tuple[tuple[str, int], ...] = ()

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """Every broker this link may use, the configured one first."""
        return ((self.host, self.port), *self.fallbacks)

    @classmethod
    def from_config(cls, section: MqttSection, client_id: str) -> MqttSettings:
        return cls(
            host=section.host,
            port=section.port,
            ca_file=section.ca_file,
            cert_file=section.cert_file,
            key_file=section.key_file,
            client_id=client_id,
            keepalive_s=section.keepalive_s,
            session_expiry_s=section.session_expiry_s,
            reconnect_min_s=section.reconnect_min_s,
            reconnect_max_s=section.reconnect_max_s,
            fallbacks=tuple(parse_endpoint(e) for e in section.fallback),
        )


@dataclass(frozen=True)
class PublishResult:
    """The broker's answer to one QoS 1 publish."""

    mid: int
    ok: bool
    reason_code: int
    reason: str


PublishCallback = Callable[[PublishResult], None]


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port); MqttLinkError naming the problem otherwise."""
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise MqttLinkError(f"mqtt: broker {text[:80]!r}: expected HOST:PORT")
    return host, int(port)


def make_tls_client(s: MqttSettings) -> mqtt.Client:
    """A paho MQTT v5 client with the mutual-TLS files of ``s`` loaded (not yet connected).

    Raises MqttLinkError naming a missing or unreadable file.
    """
    for what, path in (("CA", s.ca_file), ("certificate", s.cert_file), ("key", s.key_file)):
        if not Path(path).is_file():
            raise MqttLinkError(f"mqtt: {what} file {path} not found")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=mqtt.MQTTv5)
    try:
        client.tls_set(
            ca_certs=str(s.ca_file),
            certfile=str(s.cert_file),
            keyfile=str(s.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (ssl.SSLError, OSError) as exc:
        raise MqttLinkError(f"mqtt: cannot load TLS files ({exc})") from exc
    return client


class MqttLink:
    """A started link reconnects by itself until ``stop()``."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        status_topic: str | None = None,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.status_topic = status_topic
        self._connect_listeners: list[Callable[[], None]] = []
        if on_connected is not None:
            self._connect_listeners.append(on_connected)
        self._on_disconnected = on_disconnected
        self._handlers: dict[str, MessageHandler] = {}
        self._lock = threading.Lock()
        self._waiting: dict[int, PublishCallback | None] = {}
        self._early: dict[int, PublishResult] = {}
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._sub_mid: int | None = None
        self._sub_requests: dict[int, list[str]] = {}
        #: Subscriptions the broker refused (reason code ≥ 0x80): rights not granted to this
        #: certificate. Cleared on every connect.
        self.refused_subscriptions: set[str] = set()
        self.last_connect_error: str | None = None
        self._unreachable_logged = False
        self._stopping = False
        self._endpoint = 0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = make_tls_client(s)
        client.reconnect_delay_set(
            max(1, math.ceil(s.reconnect_min_s)), max(1, math.ceil(s.reconnect_max_s))
        )
        if self.status_topic:
            client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.on_connect_fail = self._handle_connect_fail
        return client

    # ---- life cycle ---------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Register a handler; subscriptions are (re)made on every connect."""
        self._handlers[topic_filter] = handler
        if self._connected.is_set():
            _, mid = self._client.subscribe(topic_filter, qos=1)
            if mid is not None:
                self._sub_requests[mid] = [topic_filter]

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every successful connect, reconnects included.

        It runs in paho's network thread, after the subscriptions of that connection were
        requested, so it may publish (e.g. refresh a retained status) but must not block.
        Listeners run in the order added; one that raises is logged and the rest still run.
        """
        self._connect_listeners.append(listener)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self._stopping = False
        host, port = self.endpoint
        self._client.connect_async(
            host,
            port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self, *, graceful: bool = True) -> None:
        """Disconnect. ``graceful`` publishes ``offline`` on the status topic first."""
        self._stopping = True
        if graceful and self.status_topic and self._connected.is_set():
            info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def endpoint(self) -> tuple[str, int]:
        """The broker this link uses now (or tries next)."""
        return self.settings.endpoints[self._endpoint]

    def _try_next_endpoint(self, client: mqtt.Client) -> None:
        """After a failure, reconnect to the next broker of the list (paho's thread,
        connection closed)."""
        endpoints = self.settings.endpoints
        if len(endpoints) < 2 or self._stopping:
            return
        self._endpoint = (self._endpoint + 1) % len(endpoints)
        host, port = endpoints[self._endpoint]
        # paho's public host/port setters refuse while its loop is between a lost
        # connection and the reconnect it is about to make, which is exactly when the
        # broker must change; its reconnect() reads these two attributes (paho 2.x, pinned;
        # tests/transport/test_broker_failover.py fails if that ever changes).
        client._host, client._port = host, port
        self._unreachable_logged = False
        log.info("mqtt: trying broker %s:%d next", host, port)

    def wait_connected(self, timeout: float) -> bool:
        """Wait for CONNACK and for the subscriptions of that connection to be granted."""
        return self._connected.wait(timeout) and (
            not self._handlers or self._subscribed.wait(timeout)
        )

    # ---- publishing ---------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        on_result: PublishCallback | None = None,
    ) -> int:
        """Queue a QoS 1 publish; ``on_result`` gets the PUBACK verdict (in paho's thread).

        Returns the message id. While disconnected paho keeps the message in memory
        and sends it after reconnecting.
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttLinkError(f"mqtt: publish to {topic} refused locally ({info.rc.name})")
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._waiting[info.mid] = on_result
        if early is not None and on_result is not None:
            on_result(early)
        return info.mid

    def publish_status(self, payload: bytes, on_result: PublishCallback | None = None) -> int:
        """Publish a retained status message (health only, never biometrics)."""
        if not self.status_topic:
            raise MqttLinkError("mqtt: this link has no status topic")
        return self.publish(self.status_topic, payload, retain=True, on_result=on_result)

    # ---- paho callbacks (network thread) --------------------------------------------
    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.last_connect_error = str(reason_code)
            log.warning("mqtt: broker refused the connection: %s", reason_code)
            return
        self.last_connect_error = None
        self._unreachable_logged = False
        self._subscribed.clear()
        self.refused_subscriptions.clear()
        if self._handlers:
            filters = list(self._handlers)
            _, mid = client.subscribe([(t, 1) for t in filters])
            self._sub_mid = mid
            if mid is not None:
                self._sub_requests[mid] = filters
        self._connected.set()
        log.info("mqtt: connected to %s:%d", *self.endpoint)
        for listener in self._connect_listeners:
            try:
                listener()
            except Exception:
                log.exception("mqtt: on_connected handler failed")

    def _handle_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # Logged once per outage, not at every backoff step.
        if not self._unreachable_logged:
            self._unreachable_logged = True
            log.warning(
                "mqtt: cannot connect to %s:%d (network, TLS or certificate); retrying",
                *self.endpoint,
            )
        self._try_next_endpoint(client)

    def _handle_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        filters = self._sub_requests.pop(mid, [])
        for i, rc in enumerate(reason_codes):
            if rc.is_failure:
                name = filters[i] if i < len(filters) else "?"
                self.refused_subscriptions.add(name)
                log.error("mqtt: subscription to %s refused by the broker: %s", name[:120], rc)
        if mid == self._sub_mid:
            self._subscribed.set()

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if was and self._stopping:
            log.info("mqtt: disconnected from %s:%d", *self.endpoint)
        elif was:
            log.warning("mqtt: disconnected (%s); reconnecting with backoff", reason_code)
            self._try_next_endpoint(client)
            if self._on_disconnected is not None:
                try:
                    self._on_disconnected()
                except Exception:
                    log.exception("mqtt: on_disconnected handler failed")

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        result = PublishResult(
            mid=mid,
            ok=not reason_code.is_failure,
            reason_code=int(reason_code.value),
            reason=str(reason_code),
        )
        if not result.ok:
            log.error("mqtt: broker rejected message %d: %s", mid, result.reason)
        with self._lock:
            if mid in self._waiting:
                callback = self._waiting.pop(mid)
            else:
                self._early[mid] = result
                return
        if callback is not None:
            try:
                callback(result)
            except Exception:
                log.exception("mqtt: publish result handler failed")

    def _handle_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        for topic_filter, handler in list(self._handlers.items()):
            if mqtt.topic_matches_sub(_strip_share(topic_filter), msg.topic):
                try:
                    handler(msg.topic, bytes(msg.payload))
                except Exception:
                    # A bad message must never stop the link; the handler logs specifics.
                    log.exception("mqtt: handler for %s failed", topic_filter)
                return
        log.warning("mqtt: message on unexpected topic %r ignored", msg.topic[:120])


def _strip_share(topic_filter: str) -> str:
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter

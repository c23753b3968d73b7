"""The device status tracker: every camera's retained status (``lfr/v1/+/status``,
unsigned, monitoring only) checked against the protocol and recorded for the fleet
page; the broker's last will ``offline`` marks a camera whose link died.

When the will comes: the broker publishes it once it has heard nothing from the camera
for 1.5 × its MQTT keepalive (``mqtt.keepalive_s`` in the device config, 30 s by
default: so within 45 s), or at once when the TCP connection is reset. A status that
does not parse is logged (reason only) and ignored.
"""

from __future__ import annotations

import logging

from agent.errors import LfrError
from agent.hub.store.device_status_store import DeviceStatusStore
from agent.protocol.device_status import StatusError, parse_status
from agent.protocol.topics import ALL_STATUSES, TopicError, parse_topic
from agent.transport.mqtt_link import MqttLink

log = logging.getLogger(__name__)


class StatusTracker:
    def __init__(self, link: MqttLink, store: DeviceStatusStore) -> None:
        self.store = store
        link.subscribe(ALL_STATUSES, self.handle)

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            device_id, kind = parse_topic(topic)
            if kind != "status":
                raise StatusError(f"topic kind {kind!r} is not a status")
            status = parse_status(device_id, payload)
        except (TopicError, StatusError) as exc:
            log.warning("status on %r ignored: %s", topic[:120], exc)
            return
        try:
            self.store.record(device_id, status.online, status.body)
        except LfrError as exc:
            log.error("status of %s not recorded: %s", device_id, exc)

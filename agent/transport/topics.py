"""MQTT topic names. The namespace is versioned (``lfr/v1``) so a later protocol can run
beside this one on the same broker.

| topic                       | direction  | retained            | payload                       |
|-----------------------------|------------|---------------------|-------------------------------|
| lfr/v1/<dev>/activation     | hub → dev  | no                  | signed activation/renewal/stop |
| lfr/v1/<dev>/watchlist      | hub → dev  | no                  | signed, encrypted bundle       |
| lfr/v1/<dev>/alert          | dev → hub  | no                  | sealed alert envelope          |
| lfr/v1/<dev>/ack            | hub → dev  | no                  | alert ids stored by the hub    |
| lfr/v1/<dev>/status         | dev → hub  | yes (will: offline) | health, no biometrics          |
| lfr/v1/<dev>/event          | dev → hub  | no                  | audit events, deployment report |

The broker ACL confines every device to ``lfr/v1/<its certificate CN>/…``.
"""

from __future__ import annotations

import re

NAMESPACE = "lfr/v1"
KINDS = ("activation", "watchlist", "alert", "ack", "status", "event")
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

#: What the hub subscribes to for alerts from every device.
ALL_ALERTS = f"{NAMESPACE}/+/alert"
ALL_EVENTS = f"{NAMESPACE}/+/event"


class TopicError(ValueError):
    """A topic or device id that is not part of this namespace."""


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise TopicError(f"device id {device_id[:70]!r}: must match {DEVICE_ID_RE.pattern}")
    return device_id


def topic(device_id: str, kind: str) -> str:
    """``lfr/v1/<device_id>/<kind>``; raises TopicError for an unknown kind or bad id."""
    if kind not in KINDS:
        raise TopicError(f"topic kind {kind!r}: must be one of {', '.join(KINDS)}")
    return f"{NAMESPACE}/{check_device_id(device_id)}/{kind}"


def activation_topic(device_id: str) -> str:
    return topic(device_id, "activation")


def watchlist_topic(device_id: str) -> str:
    return topic(device_id, "watchlist")


def alert_topic(device_id: str) -> str:
    return topic(device_id, "alert")


def ack_topic(device_id: str) -> str:
    return topic(device_id, "ack")


def status_topic(device_id: str) -> str:
    return topic(device_id, "status")


def event_topic(device_id: str) -> str:
    return topic(device_id, "event")


def shared_subscription(group: str, topic_filter: str) -> str:
    """An MQTT v5 shared subscription: the broker hands each message to one group member."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", group):
        raise TopicError(f"share group {group[:70]!r}: use 1–64 letters, digits, _ or -")
    return f"$share/{group}/{topic_filter}"


def parse_topic(name: str) -> tuple[str, str]:
    """Split ``lfr/v1/<dev>/<kind>`` into (device id, kind); raise TopicError otherwise."""
    parts = name.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != NAMESPACE:
        raise TopicError(f"topic {name[:120]!r}: not of the form {NAMESPACE}/<device>/<kind>")
    device_id, kind = parts[2], parts[3]
    check_device_id(device_id)
    if kind not in KINDS:
        raise TopicError(f"topic {name[:120]!r}: unknown kind {kind[:40]!r}")
    return device_id, kind

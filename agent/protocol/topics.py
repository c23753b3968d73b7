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
| lfr/v1/<dev>/receipt        | dev → hub  | no                  | signed control receipt         |
| lfr/v1/<dev>/report-ack     | hub → dev  | no                  | deployment reports stored      |
| lfr/v1/<dev>/clip           | dev → hub  | no                  | chunks of sealed alert clips   |
| lfr/v1/<dev>/evidence       | dev → hub  | no                  | chunks of sealed CCTV segments |
| lfr/v1/<dev>/media-ack      | hub → dev  | no                  | clip/segment progress, receipts |
| lfr/v1/<dev>/evidence-request | hub → dev | no                 | signed request for segments    |

The broker gives every device exactly the rights of its own topics by kind: it may
publish the kinds in ``DEVICE_TO_HUB`` and subscribe to (and receive) those in
``HUB_TO_DEVICE``, on ``lfr/v1/<its certificate CN>/…`` only
(``agent/hub/keys/broker_access.py`` turns these two tuples into broker rules).
"""

from __future__ import annotations

import re

from agent.protocol.fields import DEVICE_ID_RE as DEVICE_ID_RE

NAMESPACE = "lfr/v1"
#: Kinds the hub publishes and a device subscribes to (its own topics only).
HUB_TO_DEVICE = (
    "activation",
    "watchlist",
    "ack",
    "report-ack",
    "media-ack",
    "evidence-request",
)
#: Kinds a device publishes (on its own topics only) and the hub reads.
DEVICE_TO_HUB = ("alert", "status", "event", "receipt", "clip", "evidence")
KINDS = HUB_TO_DEVICE + DEVICE_TO_HUB

#: What the hub subscribes to for alerts from every device.
ALL_ALERTS = f"{NAMESPACE}/+/alert"
ALL_EVENTS = f"{NAMESPACE}/+/event"
ALL_RECEIPTS = f"{NAMESPACE}/+/receipt"
ALL_STATUSES = f"{NAMESPACE}/+/status"
#: Chunks of sealed alert clips and of sealed recording segments from every device.
ALL_CLIPS = f"{NAMESPACE}/+/clip"
ALL_EVIDENCE = f"{NAMESPACE}/+/evidence"


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


def receipt_topic(device_id: str) -> str:
    return topic(device_id, "receipt")


def report_ack_topic(device_id: str) -> str:
    return topic(device_id, "report-ack")


def clip_topic(device_id: str) -> str:
    return topic(device_id, "clip")


def evidence_topic(device_id: str) -> str:
    return topic(device_id, "evidence")


def media_ack_topic(device_id: str) -> str:
    return topic(device_id, "media-ack")


def evidence_request_topic(device_id: str) -> str:
    return topic(device_id, "evidence-request")


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

"""Who may do what at the broker: the exact rights of every client identity.

mosquitto identifies each client by its certificate's Common Name
(``use_identity_as_username``), makes that name its client id as well
(``use_username_as_clientid``: no client can take over another's session), and checks
every publish, delivery and subscription against the rules of mosquitto's
dynamic-security plugin. The plugin's default is to refuse all three, so a client that
has no rules here (a certificate the CA issued but nobody granted, or one withdrawn) can
connect and do nothing. Unlike the plain ACL file, the plugin checks subscriptions: a
camera cannot join a wildcard or ``$share`` subscription outside its own topics (the ACL
file grants every subscription and only filters deliveries, so a camera joining the hub's
share group took its share of other cameras' alerts and the broker dropped them).

Rights, by identity (topic kinds from ``agent.protocol.topics``):

- a **device** (CN = device id) publishes its own ``DEVICE_TO_HUB`` topics and
  subscribes to and receives its own ``HUB_TO_DEVICE`` topics; each one a literal
  topic name, no wildcard.
- a **hub identity** (CN ``hub.<name>``) holds one or more hub roles:

  ``intake``   reads every device's alerts, reports, statuses, receipts, clip chunks and
               recording segment chunks (also through a ``$share/<group>/…``
               subscription) and writes acknowledgements, media acks and signed
               evidence requests
  ``control``  writes activations, renewals, stops, revocation lists and watchlists, and
               reads receipts and statuses (to confirm delivery)
  ``monitor``  reads statuses and receipts only

- a **bridge** (CN ``bridge.<name>``: another broker of the same fleet, connecting with
  ``configs/mosquitto/bridge.example.conf``) sends, subscribes to and receives every
  device topic (``lfr/v1/#``): it carries both directions between the brokers. It can
  speak for every device, as a broker can.
- the **broker administrator** (``hub.broker-admin``) may only send commands to the
  plugin (``$CONTROL/dynamic-security/v1``) and read its answers; it applies these rules
  (``agent/hub/keys/broker_admin.py``).

Rules are data (``BrokerRule``); the administrator turns them into the plugin's commands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.durable_files import write_atomic
from agent.hub.keys.pki import PkiError, bridge_identity, hub_identity
from agent.protocol.fields import DEVICE_ID_RE
from agent.protocol.topics import (
    DEVICE_TO_HUB,
    HUB_TO_DEVICE,
    NAMESPACE,
    TopicError,
    check_device_id,
    topic,
)

#: The plugin's command and answer topics.
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

ADMIN_NAME = "broker-admin"
ADMIN_IDENTITY = hub_identity(ADMIN_NAME)
ADMIN_ROLE = "lfr-broker-admin"

HUB_ROLES = ("intake", "control", "monitor")
#: Topic kinds each hub role reads from every device, and writes to every device.
_HUB_READS: dict[str, tuple[str, ...]] = {
    "intake": ("alert", "event", "status", "receipt", "clip", "evidence"),
    "control": ("receipt", "status"),
    "monitor": ("status", "receipt"),
}
_HUB_WRITES: dict[str, tuple[str, ...]] = {
    "intake": ("ack", "report-ack", "media-ack", "evidence-request"),
    "control": ("activation", "watchlist"),
    "monitor": (),
}

# Plugin ACL types: what a client sends, what it is sent, what it may subscribe to.
SEND = "publishClientSend"
RECEIVE = "publishClientReceive"
SUBSCRIBE_LITERAL = "subscribeLiteral"
SUBSCRIBE_PATTERN = "subscribePattern"


class BrokerAccessError(PkiError):
    """An identity or role the broker rules do not know."""


@dataclass(frozen=True)
class BrokerRule:
    """One plugin ACL entry: allow ``acltype`` on ``topic`` (a literal name or a filter)."""

    acltype: str
    topic: str

    def as_acl(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "priority": 0, "allow": True}


@dataclass(frozen=True)
class Grant:
    """The rights of one client identity: its plugin role names and their rules."""

    identity: str
    roles: dict[str, tuple[BrokerRule, ...]]


def device_role_name(device_id: str) -> str:
    return f"lfr-device.{device_id}"


def hub_role_name(role: str) -> str:
    return f"lfr-hub-{role}"


def device_rules(device_id: str) -> tuple[BrokerRule, ...]:
    """Literal topics only: the plugin cannot put a client's own name into a subscription
    rule, so each device has rules that name its own topics."""
    try:
        check_device_id(device_id)
    except TopicError as exc:
        raise BrokerAccessError(f"broker: {exc}") from exc
    rules = [BrokerRule(SEND, topic(device_id, kind)) for kind in DEVICE_TO_HUB]
    for kind in HUB_TO_DEVICE:
        rules.append(BrokerRule(SUBSCRIBE_LITERAL, topic(device_id, kind)))
        rules.append(BrokerRule(RECEIVE, topic(device_id, kind)))
    return tuple(rules)


def hub_role_rules(role: str) -> tuple[BrokerRule, ...]:
    if role not in HUB_ROLES:
        raise BrokerAccessError(
            f"broker: hub role {role[:40]!r}: use one of {', '.join(HUB_ROLES)}"
        )
    rules: list[BrokerRule] = []
    for kind in _HUB_READS[role]:
        every = f"{NAMESPACE}/+/{kind}"
        rules.append(BrokerRule(SUBSCRIBE_PATTERN, every))
        # Several workers of one role split a kind through a shared subscription.
        rules.append(BrokerRule(SUBSCRIBE_PATTERN, f"$share/+/{every}"))
        rules.append(BrokerRule(RECEIVE, every))
    rules.extend(BrokerRule(SEND, f"{NAMESPACE}/+/{kind}") for kind in _HUB_WRITES[role])
    return tuple(rules)


def admin_rules() -> tuple[BrokerRule, ...]:
    return (
        BrokerRule(SEND, CONTROL_TOPIC),
        BrokerRule(SUBSCRIBE_LITERAL, CONTROL_RESPONSE_TOPIC),
        BrokerRule(RECEIVE, CONTROL_RESPONSE_TOPIC),
    )


def device_grant(device_id: str) -> Grant:
    return Grant(device_id, {device_role_name(device_id): device_rules(device_id)})


def hub_grant(name: str, roles: list[str] | tuple[str, ...]) -> Grant:
    """Rights of ``hub.<name>`` holding ``roles`` (at least one)."""
    identity = hub_identity(name)
    if identity == ADMIN_IDENTITY:
        raise BrokerAccessError(f"broker: {ADMIN_IDENTITY} is the administrator, not a hub role")
    if not roles:
        raise BrokerAccessError(f"broker: {identity} needs at least one role")
    return Grant(identity, {hub_role_name(r): hub_role_rules(r) for r in dict.fromkeys(roles)})


BRIDGE_ROLE = "lfr-bridge"


def bridge_grant(name: str) -> Grant:
    """Rights of ``bridge.<name>``: every device topic, both ways."""
    every = f"{NAMESPACE}/#"
    rules = (
        BrokerRule(SEND, every),
        BrokerRule(SUBSCRIBE_PATTERN, every),
        BrokerRule(RECEIVE, every),
    )
    return Grant(bridge_identity(name), {BRIDGE_ROLE: rules})


def grant_for(identity: str, hub_roles: list[str] | tuple[str, ...] = ()) -> Grant:
    """A device id, a ``hub.<name>`` identity (which needs ``hub_roles``) or a
    ``bridge.<name>`` identity."""
    if DEVICE_ID_RE.fullmatch(identity):
        return device_grant(identity)
    if identity.startswith("hub."):
        return hub_grant(identity[4:], hub_roles)
    if identity.startswith("bridge."):
        return bridge_grant(identity[7:])
    raise BrokerAccessError(
        f"broker: identity {identity[:70]!r}: must be a device id, hub.<name> or bridge.<name>"
    )


def bootstrap_config() -> dict[str, Any]:
    """The plugin's first state file: deny by default; the administrator and its rules only.

    mosquitto owns the file from then on (it rewrites it after every change), so it must
    live where the broker may write (``/var/lib/mosquitto/``).
    """
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            # Dropping a subscription never grants anything.
            "unsubscribe": True,
        },
        "clients": [
            {
                "username": ADMIN_IDENTITY,
                "textname": "lfr hub: applies the broker rules",
                "roles": [{"rolename": ADMIN_ROLE}],
            }
        ],
        "groups": [],
        "roles": [{"rolename": ADMIN_ROLE, "acls": [r.as_acl() for r in admin_rules()]}],
    }


BOOTSTRAP_FILE = "dynamic-security.json"


def write_bootstrap(folder: Path, *, force: bool = False) -> Path | None:
    """Write ``bootstrap_config()`` as ``folder/dynamic-security.json`` unless one exists
    (then None: the broker's own copy, with every grant since, must not be reset)."""
    path = folder / BOOTSTRAP_FILE
    if path.exists() and not force:
        return None
    write_atomic(path, json.dumps(bootstrap_config(), indent=1).encode("utf-8") + b"\n", 0o600)
    return path

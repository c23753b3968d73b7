"""Applying the broker rules (``broker_access.py``) to a running mosquitto.

The hub's broker administrator (certificate CN ``hub.broker-admin``) sends commands to the
dynamic-security plugin on ``$CONTROL/dynamic-security/v1`` and reads the answers on
``…/response`` (the broker sends them to the asking client only). Changes take effect at
once, without a broker restart, and the plugin saves them to its state file:

- ``apply(grant)`` makes an identity's rights exactly the grant's (roles created or
  corrected, the client created or its role list corrected), so it can be run again;
- ``remove(identity)`` deletes the client: the broker disconnects it at once if it is
  connected, and from then on it may do nothing (the plugin refuses unknown clients).

Every answer is checked; a refused command raises ``BrokerAdminError`` naming it.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.errors import LfrError
from agent.hub.keys.broker_access import (
    CONTROL_RESPONSE_TOPIC,
    CONTROL_TOPIC,
    Grant,
    device_role_name,
)
from agent.protocol.fields import DEVICE_ID_RE
from agent.transport.mqtt_link import MqttLinkError, MqttSettings, make_tls_client
from agent.trust.signed_document import UntrustedJsonError, loads_untrusted

DEFAULT_TIMEOUT_S = 10.0


class BrokerAdminError(LfrError):
    """The broker could not be reached, or refused or did not answer a command."""

    exit_code = 3


class BrokerAdmin:
    """One administrator connection; use as a context manager."""

    def __init__(self, settings: MqttSettings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._where = f"{settings.host}:{settings.port}"
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._answered = threading.Condition(self._lock)
        self._problem: str | None = None
        try:
            self._client = make_tls_client(settings)
        except MqttLinkError as exc:
            raise BrokerAdminError(f"broker: {exc}") from exc
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect

    # ---- connection ---------------------------------------------------------------
    def __enter__(self) -> BrokerAdmin:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0  # nothing to keep between administrator runs
        try:
            self._client.connect(
                self.settings.host,
                self.settings.port,
                keepalive=30,
                clean_start=True,
                properties=props,
            )
        except (OSError, ssl.SSLError) as exc:
            raise BrokerAdminError(f"broker {self._where}: cannot connect ({exc})") from exc
        self._client.loop_start()
        if not self._ready.wait(self.timeout_s) or self._problem:
            self.close()
            raise BrokerAdminError(
                f"broker {self._where}: administrator not connected "
                f"({self._problem or 'no answer'})"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            self._problem = f"connection refused: {rc}"
            self._ready.set()
            return
        client.subscribe(CONTROL_RESPONSE_TOPIC, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[Any], props: Any
    ) -> None:
        if any(c.is_failure for c in codes):
            self._problem = (
                "the broker refused its answer topic: this certificate is not the broker "
                "administrator, or the broker runs without the dynamic-security plugin"
            )
        self._ready.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        with self._lock:
            self._problem = self._problem or f"disconnected ({rc})"
            self._answered.notify_all()
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = loads_untrusted(bytes(msg.payload))
        except UntrustedJsonError:
            return
        responses = body.get("responses") if isinstance(body, dict) else None
        if not isinstance(responses, list):
            return
        with self._lock:
            for r in responses:
                if isinstance(r, dict) and isinstance(r.get("correlationData"), str):
                    self._answers.setdefault(r["correlationData"], []).append(r)
            self._answered.notify_all()

    # ---- commands -----------------------------------------------------------------
    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message; return one answer per command, in order."""
        tags = []
        batch = []
        for c in commands:
            tag = secrets.token_hex(8)
            tags.append(tag)
            batch.append({**c, "correlationData": tag})
        info = self._client.publish(
            CONTROL_TOPIC, json.dumps({"commands": batch}).encode("utf-8"), qos=1
        )
        info.wait_for_publish(self.timeout_s)
        with self._lock:
            done = self._answered.wait_for(
                lambda: self._problem is not None or all(t in self._answers for t in tags),
                self.timeout_s,
            )
            if self._problem is not None:
                raise BrokerAdminError(f"broker {self._where}: {self._problem}")
            if not done:
                raise BrokerAdminError(
                    f"broker {self._where}: no answer to {commands[0]['command']} within "
                    f"{self.timeout_s:g} s (is the dynamic-security plugin loaded?)"
                )
            return [self._answers.pop(t)[0] for t in tags]

    def _checked(
        self, commands: list[dict[str, Any]], tolerate: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Run ``commands`` in one message; raise on the first refused one (except the
        errors in ``tolerate``, e.g. "already exists" when a rule is applied again)."""
        if not commands:
            return []
        answers = self.run(commands)
        allowed = set(tolerate)
        for command, answer in zip(commands, answers, strict=True):
            error = answer.get("error")
            if isinstance(error, str) and error not in allowed:
                raise BrokerAdminError(f"broker: {command['command']} refused: {error[:120]}")
        return answers

    def _one(self, command: dict[str, Any], tolerate: Iterable[str] = ()) -> dict[str, Any]:
        return self._checked([command], tolerate)[0]

    # ---- rules ----------------------------------------------------------------------
    def apply(self, grant: Grant) -> None:
        """Make ``grant.identity``'s rights exactly ``grant.roles`` (four round trips)."""
        roles = list(grant.roles)
        self._checked(
            [{"command": "createRole", "rolename": r} for r in roles],
            tolerate=("Role already exists",),
        )
        got = self._checked([{"command": "getRole", "rolename": r} for r in roles])
        fixes: list[dict[str, Any]] = []
        for role, answer in zip(roles, got, strict=True):
            have = {
                (a.get("acltype"), a.get("topic"))
                for a in answer.get("data", {}).get("role", {}).get("acls", [])
                if isinstance(a, dict)
            }
            want = {(r.acltype, r.topic) for r in grant.roles[role]}
            fixes.extend(
                {"command": "removeRoleACL", "rolename": role, "acltype": t, "topic": n}
                for t, n in sorted(have - want, key=str)
            )
            fixes.extend(
                {"command": "addRoleACL", "rolename": role, **r.as_acl()}
                for r in grant.roles[role]
                if (r.acltype, r.topic) not in have
            )
        self._checked(fixes)
        created = self._one(
            {
                "command": "createClient",
                "username": grant.identity,
                "roles": [{"rolename": r} for r in roles],
            },
            tolerate=("Client already exists",),
        )
        if created.get("error") is None:
            return
        current = set(self.client_roles(grant.identity))
        self._checked(
            [
                {"command": "removeClientRole", "username": grant.identity, "rolename": r}
                for r in sorted(current - set(roles))
            ]
            + [
                {"command": "addClientRole", "username": grant.identity, "rolename": r}
                for r in roles
                if r not in current
            ]
        )

    def remove(self, identity: str) -> bool:
        """Delete a client (the broker disconnects it now); False if it had no rights."""
        answer = self._one(
            {"command": "deleteClient", "username": identity}, tolerate=("Client not found",)
        )
        if DEVICE_ID_RE.fullmatch(identity):
            self._one(
                {"command": "deleteRole", "rolename": device_role_name(identity)},
                tolerate=("Role not found",),
            )
        return answer.get("error") is None

    def client_roles(self, identity: str) -> list[str]:
        got = self._one({"command": "getClient", "username": identity})
        roles = got.get("data", {}).get("client", {}).get("roles", [])
        return [r["rolename"] for r in roles if isinstance(r, dict) and "rolename" in r]

    def clients(self) -> list[str]:
        got = self._one({"command": "listClients", "verbose": False, "count": -1, "offset": 0})
        names = got.get("data", {}).get("clients", [])
        return sorted(n for n in names if isinstance(n, str))

"""Broker rights: what each identity may do, applied to a real mosquitto by the
administrator, exactly (again and again), and taken away."""

from __future__ import annotations

import threading
import time

import pytest
from support.attacker_client import AttackerClient
from support.mosquitto_broker import MosquittoBroker

from agent.cli.hub_main import main as hub_main
from agent.hub.keys.broker_access import (
    RECEIVE,
    SEND,
    SUBSCRIBE_LITERAL,
    SUBSCRIBE_PATTERN,
    BrokerAccessError,
    bridge_grant,
    device_grant,
    device_rules,
    grant_for,
    hub_grant,
    hub_role_rules,
)
from agent.hub.keys.broker_admin import BrokerAdmin, BrokerAdminError
from agent.hub.keys.pki import PkiError
from agent.protocol.topics import DEVICE_TO_HUB, HUB_TO_DEVICE, topic
from agent.transport.mqtt_link import MqttLink


def test_a_device_gets_exactly_its_own_topics_by_kind() -> None:
    rules = {(r.acltype, r.topic) for r in device_rules("cam-a")}
    assert rules == (
        {(SEND, topic("cam-a", k)) for k in DEVICE_TO_HUB}
        | {(SUBSCRIBE_LITERAL, topic("cam-a", k)) for k in HUB_TO_DEVICE}
        | {(RECEIVE, topic("cam-a", k)) for k in HUB_TO_DEVICE}
    )
    assert not any("+" in t or "#" in t or "$" in t for _, t in rules)
    with pytest.raises(BrokerAccessError):
        device_rules("cam/a")
    with pytest.raises(BrokerAccessError):
        hub_role_rules("everything")
    with pytest.raises(BrokerAccessError):
        hub_grant("broker-admin", ["intake"])
    with pytest.raises(BrokerAccessError):
        hub_grant("main", [])


def test_a_bridge_carries_every_device_topic_both_ways_and_nothing_else() -> None:
    grant = bridge_grant("b")
    assert grant.identity == "bridge.b" and grant_for("bridge.b") == grant
    rules = {(r.acltype, r.topic) for rs in grant.roles.values() for r in rs}
    assert rules == {(SEND, "lfr/v1/#"), (SUBSCRIBE_PATTERN, "lfr/v1/#"), (RECEIVE, "lfr/v1/#")}
    with pytest.raises(PkiError):
        bridge_grant("B/x")
    with pytest.raises(BrokerAccessError, match="bridge.<name>"):
        grant_for("other.b")


@pytest.mark.system
def test_rights_are_applied_exactly_and_can_be_applied_again(
    mqtt_broker: MosquittoBroker,
) -> None:
    with BrokerAdmin(mqtt_broker.admin_settings()) as admin:
        admin.apply(device_grant("cam-a"))
        admin.apply(device_grant("cam-a"))  # again: nothing changes, nothing fails
        # Drift (someone added a wildcard by hand): applying again takes it out.
        admin.run(
            [
                {
                    "command": "addRoleACL",
                    "rolename": "lfr-device.cam-a",
                    "acltype": SUBSCRIBE_LITERAL,
                    "topic": "lfr/v1/#",
                    "allow": True,
                }
            ]
        )
        admin.apply(device_grant("cam-a"))
        acls = admin.run([{"command": "getRole", "rolename": "lfr-device.cam-a"}])[0]
        held = {(a["acltype"], a["topic"]) for a in acls["data"]["role"]["acls"]}
        assert held == {(r.acltype, r.topic) for r in device_rules("cam-a")}
        admin.apply(hub_grant("w1", ["intake", "monitor"]))
        admin.apply(hub_grant("w1", ["monitor"]))
        assert admin.client_roles("hub.w1") == ["lfr-hub-monitor"]
        assert {"cam-a", "hub.w1", "hub.broker-admin"} <= set(admin.clients())


@pytest.mark.system
def test_removing_rights_disconnects_the_client_and_leaves_it_nothing(
    mqtt_broker: MosquittoBroker,
) -> None:
    dropped = threading.Event()
    link = MqttLink(mqtt_broker.client_settings("cam-a"), on_disconnected=dropped.set)
    link.start()
    try:
        assert link.wait_connected(10)
        assert mqtt_broker.revoke_access("cam-a") is True
        assert dropped.wait(10), "the client stayed connected"
    finally:
        link.stop(graceful=False)
    # Its certificate still connects (until it is on the revocation list), but the
    # broker refuses it everything.
    again = AttackerClient(
        mqtt_broker.host, mqtt_broker.port, mqtt_broker.client_files("cam-a", grant=False), "x"
    )
    try:
        assert again.connect()
        assert again.subscribe(topic("cam-a", "activation")) >= 0x80
        assert again.publish(topic("cam-a", "alert"), b"x") >= 0x80
    finally:
        again.close()


@pytest.mark.system
def test_only_the_administrator_can_change_rights(mqtt_broker: MosquittoBroker) -> None:
    for identity in ("hub.main", "cam-a"):
        with pytest.raises(BrokerAdminError, match="not the broker administrator"):
            BrokerAdmin(mqtt_broker.client_settings(identity), timeout_s=5).__enter__()
    # Nor can anyone publish to the plugin's command topic directly.
    thief = AttackerClient(
        mqtt_broker.host, mqtt_broker.port, mqtt_broker.client_files("hub.main"), "x"
    )
    try:
        assert thief.connect()
        code = thief.publish(
            "$CONTROL/dynamic-security/v1",
            b'{"commands":[{"command":"createClient","username":"cam-b","roles":[]}]}',
        )
        assert code >= 0x80
    finally:
        thief.close()


@pytest.mark.system
def test_the_cli_grants_lists_and_revokes(
    mqtt_broker: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    mqtt_broker.admin_settings()  # the administrator certificate `pki init` makes
    where = ["--broker", f"{mqtt_broker.host}:{mqtt_broker.port}"]
    where += ["--pki-dir", str(mqtt_broker.pki_dir)]
    assert hub_main(["broker", "grant", "--device", "cam-z", *where]) == 0
    assert hub_main(["broker", "grant", "--hub", "main-2", "--role", "intake", *where]) == 0
    assert hub_main(["broker", "list", *where]) == 0
    out = capsys.readouterr().out
    assert "cam-z" in out and "lfr-device.cam-z" in out and "lfr-hub-intake" in out
    assert hub_main(["broker", "revoke", "--device", "cam-z", *where]) == 0
    assert hub_main(["broker", "revoke", "--device", "cam-z", *where]) == 0
    out = capsys.readouterr().out
    assert "rights removed" in out and "had no rights" in out
    assert hub_main(["broker", "grant", "--hub", "x", *where]) == 2
    assert hub_main(["broker", "grant", "--device", "cam-z", "--role", "intake", *where]) == 2
    assert "--role" in capsys.readouterr().err


def test_clips_and_segments_go_only_from_a_camera_to_the_intake_role(
    mqtt_broker: MosquittoBroker,
) -> None:
    """The media kinds follow the roles: a camera sends its own clip and segment chunks
    and receives its own media acks and evidence requests; the intake role reads the
    chunks and writes acks and requests; the control role can do neither; a camera
    cannot send another's chunks nor forge a request to itself or another camera."""
    clients: list[AttackerClient] = []

    def client(cn: str, roles: tuple[str, ...] | None = None) -> AttackerClient:
        c = AttackerClient(
            mqtt_broker.host, mqtt_broker.port, mqtt_broker.client_files(cn, roles=roles), cn
        )
        clients.append(c)
        assert c.connect()
        return c

    try:
        client("cam-b")  # granted: a camera that exists
        cam = client("cam-a")
        intake = client("hub.media", ("intake",))
        control = client("hub.ctl", ("control",))
        for kind in ("clip", "evidence"):
            assert intake.subscribe(f"lfr/v1/+/{kind}") < 0x80
            assert intake.subscribe(f"$share/hubs/lfr/v1/+/{kind}") < 0x80
            assert control.subscribe(f"lfr/v1/+/{kind}") >= 0x80
            assert cam.subscribe(topic("cam-b", kind)) >= 0x80
        for kind in ("media-ack", "evidence-request"):
            assert cam.subscribe(topic("cam-a", kind)) < 0x80
            assert cam.subscribe(topic("cam-b", kind)) >= 0x80
        assert cam.publish(topic("cam-a", "clip"), b"chunk") < 0x80
        assert cam.publish(topic("cam-a", "evidence"), b"chunk") < 0x80
        assert cam.publish(topic("cam-b", "clip"), b"chunk") >= 0x80
        assert cam.publish(topic("cam-a", "evidence-request"), b"forged") >= 0x80
        assert cam.publish(topic("cam-b", "evidence-request"), b"forged") >= 0x80
        assert cam.publish(topic("cam-b", "media-ack"), b"forged") >= 0x80
        assert intake.publish(topic("cam-a", "media-ack"), b"ack") < 0x80
        assert intake.publish(topic("cam-a", "evidence-request"), b"signed") < 0x80
        assert control.publish(topic("cam-a", "evidence-request"), b"signed") >= 0x80
        # What was allowed arrived where it should, and nothing else did.
        deadline = time.monotonic() + 5
        while len(cam.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(cam.messages) == [
            (topic("cam-a", "evidence-request"), b"signed"),
            (topic("cam-a", "media-ack"), b"ack"),
        ]
        # (Once through the plain subscription and once through the shared one.)
        assert set(intake.messages) == {
            (topic("cam-a", "clip"), b"chunk"),
            (topic("cam-a", "evidence"), b"chunk"),
        }
    finally:
        for c in clients:
            c.close()

"""The renewal keeper against a real mosquitto, a real hub key store and a real console
account database: a confirmed deployment gets a renewal signed with the confirming
session's key on the camera's activation topic, once per interval; nothing once the
confirmation is too old, once that session logged out, or after a stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.hub_console import PASSWORD, make_hub
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.hub.accounts.console_accounts import ConsoleAccounts, session_key
from agent.hub.console.signing_sessions import SigningSessions
from agent.hub.devices.live_leases import LeaseBook
from agent.hub.devices.officer_holds import Hold, HoldTiming, OfficerHolds
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.service.control_channel import ControlChannel
from agent.hub.service.renewal_keeper import RenewalKeeper
from agent.hub.store.database import HubDatabase
from agent.protocol.topics import activation_topic, receipt_topic
from agent.runtime.control_receipts import ControlOutcome, build_receipt
from agent.transport.mqtt_link import MqttLink
from agent.trust.activation_token import TYPE_BY_KIND
from agent.trust.signed_document import key_id, open_document

OLIVE_PASSPHRASE = "passphrase of olive"

pytestmark = [pytest.mark.system]

DEV, DEP = "lfr-keep-01", "dep-keep-1"
TIMING = HoldTiming(confirm_every_s=30, renew_every_s=5, lease_s=20)
CAMERA = Ed25519PrivateKey.generate()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Keeping:
    def __init__(self, root: Path, broker: MosquittoBroker) -> None:
        self.clock = Clock()
        self.keys = HubKeyStore.init(
            root / "keys", "olive", "operator", passphrase=OLIVE_PASSPHRASE
        )
        hub = make_hub(root / "hub")
        self.db = HubDatabase(str(hub.db_path))
        self.accounts = ConsoleAccounts(self.db, clock=self.clock)
        login = self.accounts.login("olive", PASSWORD, hub.code("olive"))
        assert login.session is not None
        self.session = login.session
        self.signing = SigningSessions(self.keys, clock=self.clock)
        self.signing.unlock(self.session, OLIVE_PASSPHRASE)
        self.book = LeaseBook(clock=self.clock)
        self.link = MqttLink(broker.client_settings(HUB_CN))
        self.channel = ControlChannel(self.link, {DEV: CAMERA.public_key()}.get, self.book)
        self.holds = OfficerHolds()
        self.audit = hub.audit()
        self.audit_log = hub.audit_log
        self.keeper = RenewalKeeper(
            self.channel, self.holds, self.signing, self.accounts, self.audit, TIMING, self.clock
        )
        self.sent: list[bytes] = []
        self.arrived = threading.Condition()
        self.camera = MqttLink(broker.client_settings(DEV))
        self.camera.subscribe(activation_topic(DEV), self._on_document)
        for link in (self.camera, self.link):
            link.start()
            assert link.wait_connected(10)

    def _on_document(self, _topic: str, payload: bytes) -> None:
        with self.arrived:
            self.sent.append(payload)
            self.arrived.notify_all()

    def camera_applies(self, document: bytes, kind: str) -> None:
        """What the camera does: it signs a receipt for the document and publishes it."""
        outcome = ControlOutcome(kind, "applied", f"{kind} applied", None, 1, DEP)
        receipt = build_receipt(DEV, document, outcome, "open", self.clock.now, CAMERA)
        self.camera.publish(receipt_topic(DEV), receipt)
        assert self.channel.wait(document, 10) is not None, "the hub did not get the receipt"

    def documents(self, count: int) -> list[bytes]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.sent) >= count, 10), self.sent
            return list(self.sent)

    def close(self) -> None:
        self.camera.stop()
        self.link.stop()
        self.audit.close()
        self.db.close()


@pytest.fixture
def keeping(tmp_path: Path, mqtt_broker: MosquittoBroker) -> Iterator[Keeping]:
    k = Keeping(tmp_path, mqtt_broker)
    yield k
    k.close()


def test_renewals_follow_the_confirmation_and_the_session(keeping: Keeping) -> None:
    k = keeping
    k.camera_applies(b"an activation sent with lfr-hub publish", "activation")
    assert k.keeper.tick() == []  # live, but nobody confirmed
    hold = Hold(DEV, DEP, "olive", session_key(k.session.token), k.clock.now)
    k.holds.confirm(hold)

    assert k.keeper.tick() == [hold]
    (renewal,) = k.documents(1)
    cert = k.keys.operator_certificate("olive")
    signer = cert.public_key
    body = open_document(
        renewal, TYPE_BY_KIND["renewal"], lambda kid: signer if kid == key_id(signer) else None
    ).body
    assert (body["device_id"], body["deployment_id"], body["lease_s"]) == (DEV, DEP, 20)
    k.camera_applies(renewal, "renewal")
    assert k.book.live()[0].lease_until == pytest.approx(k.clock.now + 20, abs=0.01)

    k.clock.now += 4
    assert k.keeper.tick() == []  # within renew_every_s
    k.clock.now += 1
    assert k.keeper.tick() == [hold]
    k.documents(2)
    k.clock.now += 26  # the confirmation is now 31 s old
    assert k.keeper.tick() == []

    k.holds.confirm(Hold(DEV, DEP, "olive", hold.session_key, k.clock.now))
    k.accounts.logout(k.session.token)
    assert k.keeper.tick() == []
    assert k.signing.of_session(hold.session_key) is None  # locked with its session
    audit = k.audit_log.read_text()
    assert audit.count('"deployment.renewed"') == 2 and '"reason":"session ended"' in audit


def test_no_renewal_follows_a_stop(keeping: Keeping) -> None:
    k = keeping
    k.camera_applies(b"activation", "activation")
    k.holds.confirm(Hold(DEV, DEP, "olive", session_key(k.session.token), k.clock.now))
    k.camera_applies(b"stop", "stop")
    assert k.keeper.tick() == []
    assert k.holds.snapshot() == {}

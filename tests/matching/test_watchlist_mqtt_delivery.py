"""Delivery over a real mosquitto (shipped config and ACL): the hub publishes a sealed
bundle on ``lfr/v1/<dev>/watchlist`` and the device's handler imports it."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.matching.watchlist_bundle import WatchlistContent, WatchlistError, build_bundle
from agent.matching.watchlist_store import ImportResult, WatchlistStore
from agent.protocol.topics import watchlist_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.signed_document import key_id
from tests.support.mosquitto_broker import HUB_CN, MosquittoBroker

DEVICE = "lfr-dev-07"


@pytest.mark.system
def test_bundle_delivered_over_mqtt(mqtt_broker: MosquittoBroker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sk, dk = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    kid = key_id(sk.public_key())
    events: list[str] = []
    store = WatchlistStore(
        tmp_path / "state",
        device_id=DEVICE,
        device_key=dk,
        find_signing_key=lambda now: lambda k: sk.public_key() if k == kid else None,
        model_id="sface@abab",
        model_sha256="ab" * 32,
        max_bundle_bytes=1_000_000,
        audit=lambda event, **f: events.append(event),
    )
    results: queue.Queue[ImportResult | WatchlistError] = queue.Queue()
    device = MqttLink(mqtt_broker.client_settings(DEVICE))
    device.subscribe(
        watchlist_topic(DEVICE),
        lambda topic, payload: results.put(store.handle_watchlist_message(payload)),
    )
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN))
    device.start()
    hub.start()
    try:
        assert device.wait_connected(10) and hub.wait_connected(10)

        def send(n: int, created: float) -> ImportResult | WatchlistError:
            emb = np.random.default_rng(n).standard_normal((n, 128)).astype(np.float32)
            c = WatchlistContent(
                "dep-9",
                (DEVICE,),
                created,
                time.time() + 3600,
                "sface@abab",
                "ab" * 32,
                [f"w{i}" for i in range(n)],
                emb,
            )
            hub.publish(
                watchlist_topic(DEVICE), build_bundle(c, sk, {DEVICE: dk.public_key()}).data
            )
            return results.get(timeout=30)

        ok = send(300, time.time() - 10)
        assert isinstance(ok, ImportResult) and ok.status == "stored"
        assert len(store.bind(ok.watchlist.watchlist_hash, "dep-9")) == 300
        big = send(10_000, time.time() - 5)  # 2.8 MB: passes the broker, over this device's limit
        assert isinstance(big, WatchlistError) and big.reason == "too-large"
        old = send(10, time.time() - 100)
        assert isinstance(old, WatchlistError) and old.reason == "older"
        assert events == [
            "watchlist.loaded",
            "watchlist.bound",
            "watchlist.refused",
            "watchlist.refused",
        ]
    finally:
        device.stop()
        hub.stop()

"""The hub key store: layout, modes, certificates, revocation, monotonic sequences."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import UsageError
from agent.hub.keys.operator_keys import ROOT_KEY_FILE, HubKeyStore, HubKeyStoreError
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.key_files import write_private_key

NOW = 1_790_000_000


@pytest.fixture
def store(tmp_path: Path) -> HubKeyStore:
    return HubKeyStore.init(tmp_path / "hub", "alice", now=NOW)


def test_init_creates_the_hierarchy_with_private_keys_0600(store: HubKeyStore) -> None:
    for rel in (ROOT_KEY_FILE, "hub-alert-x25519-key.pem", "hub-watchlist-ed25519-key.pem",
                "operators/alice-key.pem"):  # fmt: skip
        assert stat.S_IMODE((store.dir / rel).stat().st_mode) == 0o600, rel
    _, cert = store.operator("alice", "")
    assert cert.role == "supervisor" and cert.not_after == NOW + 365 * 86400
    root = store.root_public()
    assert store.hub_certificate("hub-alert").role == "alert"
    assert (
        store.hub_certificate("hub-watchlist").public_key
        == store.watchlist_signing_key().public_key()
    )
    assert store.revocations().version == 1 and not store.revocations().revoked_key_ids
    assert cert.key_id != root  # the operator key is not the root key


def test_init_refuses_an_existing_store(store: HubKeyStore) -> None:
    with pytest.raises(HubKeyStoreError, match="already holds"):
        HubKeyStore.init(store.dir, "bob")


def test_add_and_revoke_operator(store: HubKeyStore) -> None:
    root = store.load_root_key()
    cert = store.add_operator("bob", "operator", 30, root, now=NOW)
    assert cert.role == "operator" and [c.subject for c in store.operators()] == ["alice", "bob"]
    rl = store.revoke_operator("bob", root, now=NOW)
    assert rl.version == 2 and cert.key_id in rl.revoked_key_ids
    with pytest.raises(HubKeyStoreError, match="already revoked"):
        store.revoke_operator("bob", root)
    with pytest.raises(HubKeyStoreError, match="already exists"):
        store.add_operator("bob", "operator", 30, root)


@pytest.mark.parametrize(
    ("name", "role", "days", "message"),
    [("Bad Name", "operator", 30, "lower-case"), ("carl", "admin", 30, "role"),
     ("carl", "operator", 0, "valid-days")],
)  # fmt: skip
def test_bad_operator_arguments(
    store: HubKeyStore, name: str, role: str, days: int, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        store.add_operator(name, role, days, store.load_root_key())


def test_a_foreign_root_key_is_refused(store: HubKeyStore, tmp_path: Path) -> None:
    other = tmp_path / "other-root.pem"
    write_private_key(other, Ed25519PrivateKey.generate())
    with pytest.raises(HubKeyStoreError, match="not this hub's root key"):
        store.load_root_key(other)


def test_export_gives_a_device_everything_it_needs(store: HubKeyStore, tmp_path: Path) -> None:
    store.export_device_trust(tmp_path / "dev")
    trust = HubTrustStore.load(tmp_path / "dev")
    assert {c.subject for c in trust.certificates} == {"hub-alert", "hub-evidence", "hub-watchlist"}
    assert not list((tmp_path / "dev").glob("*key*.pem")), "a private key was exported"


def test_sequences_are_monotonic_per_device_even_concurrently(store: HubKeyStore) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(10):
            s = HubKeyStore.open(store.dir).next_sequence("dev-a")
            with lock:
                got.append(s)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 41))
    assert store.next_sequence("dev-b") == 1 and store.last_sequence("dev-a") == 40

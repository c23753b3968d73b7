"""Certificates and revocation lists signed by the hub root."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from trust.trust_world import NOW, make_world

from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.key_certificates import (
    CertificateError,
    issue_certificate,
    issue_revocation_list,
    open_certificate,
    open_revocation_list,
)
from agent.trust.key_files import KeyFileError

ROOT = Ed25519PrivateKey.generate()


def test_certificate_round_trip_and_validity() -> None:
    key = Ed25519PrivateKey.generate()
    doc = issue_certificate(ROOT, "alice", "supervisor", key.public_key(), NOW, NOW + 100, NOW)
    cert = open_certificate(doc, ROOT.public_key())
    assert (cert.subject, cert.role, cert.key_type) == ("alice", "supervisor", "ed25519")
    assert cert.valid_at(NOW) and cert.valid_at(NOW + 99) and not cert.valid_at(NOW + 100)
    assert cert.valid_at(NOW + 100, tolerance_s=5)


def test_certificate_by_another_root_is_refused() -> None:
    doc = issue_certificate(
        Ed25519PrivateKey.generate(), "x", "operator", ROOT.public_key(), NOW, NOW + 1, NOW
    )
    with pytest.raises(CertificateError, match="no signature by a trusted key"):
        open_certificate(doc, ROOT.public_key())


def test_role_must_fit_key_type() -> None:
    with pytest.raises(CertificateError, match="x25519"):
        issue_certificate(ROOT, "a", "alert", ROOT.public_key(), NOW, NOW + 1, NOW)
    with pytest.raises(CertificateError, match="ed25519"):
        x = X25519PrivateKey.generate().public_key()
        issue_certificate(ROOT, "a", "supervisor", x, NOW, NOW + 1, NOW)
    with pytest.raises(CertificateError, match="unknown role"):
        issue_certificate(ROOT, "a", "admin", ROOT.public_key(), NOW, NOW + 1, NOW)


def test_revocation_list_round_trip() -> None:
    doc = issue_revocation_list(ROOT, 3, ["ab" * 32], NOW)
    rl = open_revocation_list(doc, ROOT.public_key())
    assert rl.version == 3 and rl.revoked_key_ids == {"ab" * 32}
    with pytest.raises(CertificateError, match="not a key id"):
        issue_revocation_list(ROOT, 4, ["alice"], NOW)


def test_trust_store_adopts_only_newer_revocations_and_persists(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    store = HubTrustStore.load(w.keys_dir)
    assert store.revocation_version == 1
    _, cert = w.hub.operator("bob", "")
    w.hub.revoke_operator("bob", w.hub.load_root_key(), now=NOW)
    v2 = w.hub.revocations().document
    assert store.offer_revocations(v2) and store.is_revoked(cert.key_id)
    assert not store.offer_revocations(v2)  # same version: nothing to do
    reloaded = HubTrustStore.load(w.keys_dir)
    assert reloaded.revocation_version == 2 and reloaded.is_revoked(cert.key_id)


def test_trust_store_serves_alert_and_watchlist_keys(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    store = HubTrustStore.load(w.keys_dir)
    assert store.alert_key(NOW + 5) == w.hub.alert_private_key().public_key()
    watch = w.hub.watchlist_signing_key().public_key()
    find = store.watchlist_key_finder(NOW + 5)
    assert find(w.hub.hub_certificate("hub-watchlist").key_id) == watch
    assert (
        store.watchlist_key_finder(NOW - 5)(w.hub.hub_certificate("hub-watchlist").key_id) is None
    )
    with pytest.raises(CertificateError, match="no valid hub alert key"):
        store.alert_key(NOW + 10 * 365 * 86400)


def test_trust_store_refuses_a_tampered_certificate_file(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    path = next((w.keys_dir / "hub-certificates").glob("*.cert.json"))
    path.write_bytes(path.read_bytes().replace(b'"sig":"', b'"sig":"AA'))
    with pytest.raises(CertificateError, match=path.name):
        HubTrustStore.load(w.keys_dir)


def test_trust_store_needs_the_root_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="hub-root-pub.pem: file not found"):
        HubTrustStore.load(tmp_path)

"""lfr-hub pki: the CA, broker and client certificates (checked with cryptography)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.cli.hub_main import main as hub_main
from agent.hub.keys.pki import (
    PkiError,
    hub_identity,
    init_ca,
    is_revoked,
    issue_broker_cert,
    issue_client_cert,
    load_certificate,
    revoke_certificate,
    revoked_serials,
)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_issued_certificates_chain_to_the_ca_and_carry_the_identity(tmp_path: Path) -> None:
    ca = _cert(init_ca(tmp_path))
    broker = issue_broker_cert(tmp_path, ["broker.example.org", "127.0.0.1"])
    device = issue_client_cert(tmp_path, "lfr-demo-01")
    hub = issue_client_cert(tmp_path, hub_identity("main"))
    for issued, usage in (
        (broker, ExtendedKeyUsageOID.SERVER_AUTH),
        (device, ExtendedKeyUsageOID.CLIENT_AUTH),
        (hub, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert = _cert(issued.cert_path)
        cert.verify_directly_issued_by(ca)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == issued.common_name
        assert usage in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert hub.common_name == "hub.main"
    san = _cert(broker.cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "broker.example.org" in san.value.get_values_for_type(x509.DNSName)
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600


def test_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    init_ca(tmp_path)
    with pytest.raises(PkiError, match="already has a CA"):
        init_ca(tmp_path)
    issue_client_cert(tmp_path, "dev-1")
    with pytest.raises(PkiError, match="already exists"):
        issue_client_cert(tmp_path, "dev-1")
    for bad in ("Dev_1", "a/b", "hub.", "hub.x.y", "+", "#", ""):
        with pytest.raises(PkiError):
            issue_client_cert(tmp_path, bad)
    with pytest.raises(PkiError, match="pki init"):
        issue_client_cert(tmp_path / "nowhere", "dev-2")


def test_cli_init_and_issue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "pki")
    assert hub_main(["pki", "init", "--dir", d]) == 0
    assert hub_main(["pki", "issue", "--dir", d, "--broker", "localhost"]) == 0
    assert hub_main(["pki", "issue", "--dir", d, "--device", "lfr-demo-01"]) == 0
    assert hub_main(["pki", "issue", "--dir", d, "--hub", "main"]) == 0
    assert (tmp_path / "pki" / "clients" / "hub.main-cert.pem").exists()
    assert hub_main(["pki", "issue", "--dir", d, "--device", "BAD"]) == 2
    err = capsys.readouterr().err
    assert "lfr-hub: error: pki: client name 'BAD'" in err and "Traceback" not in err


def test_init_prepares_the_brokers_side_too(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert hub_main(["pki", "init", "--dir", str(d)]) == 0
    assert (d / "crl.pem").exists() and revoked_serials(d) == []
    assert (d / "clients" / "hub.broker-admin-cert.pem").exists()
    rules = json.loads((d / "dynamic-security.json").read_text())
    assert rules["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    assert [c["username"] for c in rules["clients"]] == ["hub.broker-admin"]
    # Run again (an existing PKI): the rules file the broker may own is kept.
    (d / "dynamic-security.json").write_text("{}")
    assert hub_main(["broker", "init", "--pki-dir", str(d)]) == 0
    assert (d / "dynamic-security.json").read_text() == "{}"


def test_a_revoked_certificate_is_on_a_list_that_never_lapses_before_the_ca(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    init_ca(d)
    a = issue_client_cert(d, "cam-a")
    b = issue_client_cert(d, "cam-b")
    cert_a = load_certificate(a.cert_path)
    assert revoke_certificate(d, cert_a) is True
    assert revoke_certificate(d, cert_a) is False  # once
    assert is_revoked(d, cert_a) and not is_revoked(d, load_certificate(b.cert_path))
    crl = x509.load_pem_x509_crl((d / "crl.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    assert crl.next_update_utc is not None and crl.next_update_utc >= ca.not_valid_after_utc
    other = tmp_path / "other"
    init_ca(other)
    with pytest.raises(PkiError, match="not issued by this CA"):
        revoke_certificate(other, cert_a)

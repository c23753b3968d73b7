"""Hub side of enrolment: requests are verified before anything is issued; approval
issues a certificate for the device's own TLS key and records the device."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support.hostile_json import HOSTILE_BODIES, signed_raw
from support.operator_passphrase import PASSPHRASE

from agent.errors import LfrError
from agent.hub.devices.device_enrolment import Approval, approve, list_devices, open_request
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.keys.pki import init_ca
from agent.provisioning.enrolment_request import (
    REQUEST_TYPE,
    HardwareFacts,
    make_csr,
    make_request,
)
from agent.trust.device_keys import load_device_keys
from agent.trust.signed_document import b64e, canonical_json, sign_document

DEV = "cam-21"
FACTS = HardwareFacts(
    "Raspberry Pi 5 Model B Rev 1.0", "10000000abcdef01", "6.6.51", "aarch64", ["video0"]
)


@pytest.fixture
def hub(tmp_path: Path) -> tuple[Path, Path]:
    HubKeyStore.init(tmp_path / "hub", "supervisor", passphrase=PASSPHRASE)
    init_ca(tmp_path / "pki")
    return tmp_path / "hub", tmp_path / "pki"


def _request(tmp_path: Path, device_id: str = DEV) -> bytes:
    out = tmp_path / f"{device_id}.req"
    make_request(device_id, tmp_path / f"keys-{device_id}", out, facts=FACTS)
    return out.read_bytes()


def _approve(hub: tuple[Path, Path], data: bytes, **kw: object) -> Approval:
    hub_dir, pki_dir = hub
    args: dict[str, object] = {
        "hub_dir": hub_dir,
        "pki_dir": pki_dir,
        "operator": "supervisor",
        "passphrase": PASSPHRASE,
        "broker_url": "mqtts://broker.example:8883",
        "alert_db": hub_dir.parent / "alerts.db",
    }
    args.update(kw)
    return approve(open_request(data), **args)  # type: ignore[arg-type]


def test_request_carries_the_facts_and_verifies(tmp_path: Path) -> None:
    req = open_request(_request(tmp_path))
    assert req.device_id == DEV
    assert req.hardware["model"].startswith("Raspberry Pi 5")
    assert req.hardware["cameras"] == ["video0"]


def test_tampered_request_is_refused(tmp_path: Path) -> None:
    data = _request(tmp_path)
    env = json.loads(data)
    body = json.loads(base64.b64decode(env["payload"]))
    body["device_id"] = "cam-22"
    env["payload"] = b64e(canonical_json(body))
    with pytest.raises(LfrError, match="signature: does not verify"):
        open_request(canonical_json(env))
    with pytest.raises(LfrError, match="not JSON"):
        open_request(b"not a request")


def test_csr_for_another_name_is_refused(tmp_path: Path) -> None:
    data = _request(tmp_path)
    keys_dir = tmp_path / f"keys-{DEV}"
    tls = serialization.load_pem_private_key(
        (keys_dir / "device-tls-key.pem").read_bytes(), password=None
    )
    body = json.loads(base64.b64decode(json.loads(data)["payload"]))
    body["tls_csr_pem"] = make_csr("hub.main", tls).decode()  # type: ignore[arg-type]
    resigned = sign_document(REQUEST_TYPE, body, load_device_keys(keys_dir).signing)
    with pytest.raises(LfrError, match="Common Name is not the device id"):
        open_request(resigned)


def test_approval_certifies_the_device_tls_key(hub: tuple[Path, Path], tmp_path: Path) -> None:
    result = _approve(hub, _request(tmp_path))
    folder = hub[0] / "devices" / DEV
    cert = x509.load_pem_x509_certificate((folder / "device-cert.pem").read_bytes())
    tls = serialization.load_pem_private_key(
        (tmp_path / f"keys-{DEV}" / "device-tls-key.pem").read_bytes(), password=None
    )
    assert cert.public_key() == tls.public_key()
    assert b"PRIVATE" not in result.bundle
    [record] = list_devices(hub[0])
    assert record.device_id == DEV and record.approved_by == "supervisor"
    assert record.hardware["serial"] == "10000000abcdef01"


def test_only_a_supervisor_may_approve(hub: tuple[Path, Path], tmp_path: Path) -> None:
    store = HubKeyStore.open(hub[0])
    store.add_operator("olly", "operator", 30, store.load_root_key(), PASSPHRASE)
    with pytest.raises(LfrError, match="a supervisor must approve"):
        _approve(hub, _request(tmp_path), operator="olly")
    assert not (hub[0] / "devices" / DEV).exists()


@pytest.mark.parametrize(
    "url", ["mqtt://broker:1883", "https://broker", "mqtts://", "mqtts://h:99999", "mqtts://h/x"]
)
def test_bad_broker_url_is_refused(hub: tuple[Path, Path], tmp_path: Path, url: str) -> None:
    with pytest.raises(LfrError, match="broker url"):
        _approve(hub, _request(tmp_path), broker_url=url)


def test_missing_ca_is_named(hub: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(LfrError, match="run 'lfr-hub pki init' first"):
        _approve(hub, _request(tmp_path), pki_dir=tmp_path / "nowhere")


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_request_body_is_a_one_line_refusal(body: bytes) -> None:
    from agent.provisioning.enrolment_request import REQUEST_TYPE

    envelope = signed_raw(REQUEST_TYPE, body)
    with pytest.raises(LfrError, match="request: ") as exc:
        open_request(envelope)
    assert "\n" not in str(exc.value)

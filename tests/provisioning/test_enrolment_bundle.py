"""The bundle format: what a validly signed bundle may still not do, and time windows."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from enrolment_world import Site, make_site
from support.hostile_json import HOSTILE_BODIES, signed_raw

from agent.errors import LfrError
from agent.hub.keys.operator_keys import HubKeyStore
from agent.provisioning.enrolment_bundle import (
    BundleCandidate,
    format_fingerprint,
    issue_bundle,
    normalise_fingerprint,
)
from agent.provisioning.enrolment_install import device_signing_key_id

DEV = "cam-41"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, DEV)


def _body(site: Site) -> dict[str, Any]:
    bundle = site.approve(site.request())
    body: dict[str, Any] = json.loads(base64.b64decode(json.loads(bundle.read_bytes())["payload"]))
    return body


def _verify(site: Site, data: bytes, now: float = 0, synced: bool = False) -> object:
    return BundleCandidate(data).verify(
        site.root_fingerprint,
        device_signing_key_id=device_signing_key_id(site.keys_dir),
        now=now,
        clock_synchronised=synced,
    )


def test_signed_bundle_cannot_write_outside_the_key_layout(site: Site) -> None:
    body = _body(site)
    key, _ = HubKeyStore.open(site.hub_dir).operator("supervisor", "")
    body["hub_files"]["../../etc/cron.d/x"] = body["hub_files"]["hub-root-pub.pem"]
    with pytest.raises(LfrError, match="unexpected file"):
        _verify(site, issue_bundle(body, key))


def test_only_a_supervisor_signature_is_accepted(site: Site) -> None:
    body = _body(site)
    store = HubKeyStore.open(site.hub_dir)
    store.add_operator("olly", "operator", 30, store.load_root_key())
    key, cert = store.operator("olly", "")
    body["signer_certificate"] = base64.b64encode(cert.document).decode()
    with pytest.raises(LfrError, match="a supervisor must approve"):
        _verify(site, issue_bundle(body, key))


def test_expiry_is_enforced_only_with_a_synchronised_clock(site: Site) -> None:
    body = _body(site)
    key, _ = HubKeyStore.open(site.hub_dir).operator("supervisor", "")
    data = issue_bundle(body, key)
    late = body["expires_at"] + 1
    with pytest.raises(LfrError, match="expired"):
        _verify(site, data, now=late, synced=True)
    assert _verify(site, data, now=late, synced=False)  # no RTC: the date is not believed
    assert _verify(site, data, now=body["issued_at"] + 60, synced=True)


@pytest.mark.parametrize("text", ["", "xyz", "abc", "0" * 65, "g" * 16])
def test_bad_fingerprint_text_is_a_usage_error(text: str) -> None:
    with pytest.raises(LfrError, match="16 to 64 hex digits"):
        normalise_fingerprint(text)


def test_fingerprint_reads_in_groups() -> None:
    assert normalise_fingerprint("AB12 cd34:ef56 7890") == "ab12cd34ef567890"
    assert format_fingerprint("ab12cd34ef567890") == "ab12 cd34 ef56 7890"


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bundle_body_is_a_one_line_refusal(body: bytes) -> None:
    from agent.provisioning.enrolment_bundle import BUNDLE_TYPE, BundleCandidate

    envelope = signed_raw(BUNDLE_TYPE, body)
    with pytest.raises(LfrError, match="bundle: ") as exc:
        BundleCandidate(envelope)
    assert "\n" not in str(exc.value)

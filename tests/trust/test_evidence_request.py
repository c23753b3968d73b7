"""Signed evidence requests: what the camera checks before it sends any segment."""

from __future__ import annotations

from pathlib import Path

import pytest
from trust.trust_world import DEVICE, NOW, TrustWorld, make_world

from agent.trust.evidence_request import (
    EvidenceRequestRejected,
    sign_evidence_request,
    verify_evidence_request,
)
from agent.trust.hub_trust_store import HubTrustStore


@pytest.fixture
def world(tmp_path: Path) -> TrustWorld:
    return make_world(tmp_path)


def _request(world: TrustWorld, operator: str = "alice", **kw: object) -> bytes:
    key, cert = world.hub.operator(operator, "")
    args: dict[str, object] = {
        "device_id": DEVICE,
        "start": NOW - 3600,
        "end": NOW,
        "issued_at": NOW,
        "signing_key": key,
        "signer_certificate": cert.document,
        "revocations": world.hub.revocations().document,
    }
    args.update(kw)
    return sign_evidence_request(**args)  # type: ignore[arg-type]


def _verify(world: TrustWorld, data: bytes, now: float = NOW + 5):  # type: ignore[no-untyped-def]
    return verify_evidence_request(
        data, trust=HubTrustStore.load(world.keys_dir), device_id=DEVICE, now=now, tolerance_s=120
    )


def test_an_operators_request_is_accepted(world: TrustWorld) -> None:
    req = _verify(world, _request(world, "bob"))
    assert (req.start, req.end, req.signer) == (NOW - 3600, NOW, "bob")


@pytest.mark.parametrize(
    ("kw", "now", "check"),
    [
        ({"device_id": "lfr-other"}, NOW, "device"),
        ({"issued_at": NOW - 2 * 86400}, NOW, "time"),
        ({"start": NOW, "end": NOW - 1}, NOW, "range"),
        ({"start": 0, "end": 40 * 86400}, NOW, "range"),
    ],
)
def test_requests_failing_a_check_are_refused_naming_it(
    world: TrustWorld, kw: dict[str, object], now: float, check: str
) -> None:
    with pytest.raises(EvidenceRequestRejected, match=f"^{check}:"):
        _verify(world, _request(world, **kw), now)


def test_a_tampered_or_wrongly_signed_request_is_refused(world: TrustWorld) -> None:
    data = _request(world)
    with pytest.raises(EvidenceRequestRejected, match="envelope|signature"):
        _verify(world, data.replace(b'"payload":"', b'"payload":"AA', 1))
    other_key, _ = world.hub.operator("bob", "")
    _, alice_cert = world.hub.operator("alice", "")
    forged = _request(world, signing_key=other_key, signer_certificate=alice_cert.document)
    with pytest.raises(EvidenceRequestRejected, match="^signature"):
        _verify(world, forged)


def test_a_revoked_operator_cannot_request(world: TrustWorld) -> None:
    world.hub.revoke_operator("bob", world.hub.load_root_key(), now=NOW)
    with pytest.raises(EvidenceRequestRejected, match="^revocation"):
        _verify(world, _request(world, "bob"))

"""Every verification step of activations, renewals and stops, with real keys and files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trust.trust_world import DEPLOYMENT, NOW, WATCHLIST, TrustWorld, make_world

from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust import activation_verifier as av
from agent.trust.activation_token import ACTIVATION_TYPE, RENEWAL_TYPE
from agent.trust.key_certificates import issue_certificate
from agent.trust.sequence_store import SEQUENCE_FILE
from agent.trust.signed_document import (
    MAX_DOCUMENT_BYTES,
    b64e,
    canonical_json,
    key_id,
    pae,
    sign_document,
)
from agent.trust.system_clock import ClockSync, ManualClock


@pytest.fixture
def world(tmp_path: Path) -> TrustWorld:
    return make_world(tmp_path)


def _verify(world: TrustWorld, token: bytes, **kw: object) -> av.Verified:
    kw.setdefault("loaded_watchlist_sha256", WATCHLIST)
    return world.verifier().verify(token, **kw)  # type: ignore[arg-type]


def _body(token: bytes) -> dict[str, object]:
    body: dict[str, object] = json.loads(base64.b64decode(json.loads(token)["payload"]))
    return body


def _sign_raw(payload_type: str, body: bytes, key: Ed25519PrivateKey) -> bytes:
    """An envelope over arbitrary body bytes (``sign_document`` only signs canonical JSON)."""
    sig = key.sign(pae(payload_type, body))
    env = {"payloadType": payload_type, "payload": b64e(body)}
    env["signatures"] = [{"keyid": key_id(key.public_key()), "sig": b64e(sig)}]  # type: ignore[list-item]
    return canonical_json(env)


def _envelope(token: bytes, **changes: object) -> bytes:
    """The token's envelope with top-level ``changes`` (None removes a key), re-encoded."""
    env = json.loads(token)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return canonical_json(env)


def _resign(token: bytes, key: Ed25519PrivateKey, **changes: object) -> bytes:
    """The same body with ``changes`` applied, signed by ``key`` (as an attacker with a key)."""
    env = json.loads(token)
    body = json.loads(base64.b64decode(env["payload"]))
    body.update(changes)
    return sign_document(env["payloadType"], body, key)


def test_valid_activation_passes_every_step_in_order(world: TrustWorld) -> None:
    result = _verify(world, world.activation())
    assert result.steps == [
        "envelope", "certificate", "signature", "fields", "role", "validity", "revocation",
        "device", "clock", "time-window", "sequence", "watchlist", "threshold", "commit",
    ]  # fmt: skip
    assert result.live is not None and result.live.signer == "alice"
    # The monotonic bound is receipt + what was left of the window at receipt.
    left = result.live.activation.not_after - world.clock.wall()
    assert result.live.end_mono == pytest.approx(world.clock.mono() + left)
    assert result.live.lease_until_mono == pytest.approx(world.clock.mono() + 600)


# -- envelope / signature / chain ---------------------------------------------------
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_flipped_byte_is_rejected(world: TrustWorld, data: st.DataObject) -> None:
    token = world.__dict__.get("_flip_token")
    if token is None:
        token = world.__dict__["_flip_token"] = world.activation()
        # The unchanged token verifies, so a rejection below is due to the flip alone.
        world.verifier().verify(token, loaded_watchlist_sha256=WATCHLIST, commit=False)
    pos = data.draw(st.integers(0, len(token) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(token)
    bad[pos] ^= xor
    with pytest.raises(av.ActivationRejected):
        world.verifier().verify(bytes(bad), loaded_watchlist_sha256=WATCHLIST, commit=False)


def test_flipped_spare_base64_bits_are_rejected(world: TrustWorld) -> None:
    # The last base64 character of a 64-byte signature has 4 spare bits: without the
    # canonical-form check, changing them leaves the same signature bytes.
    token = world.activation()
    env = json.loads(token)
    sig = env["signatures"][0]["sig"]
    assert sig.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    c = sig[-3]
    twin = alphabet[alphabet.index(c) ^ 1]
    env["signatures"][0]["sig"] = sig[:-3] + twin + "=="
    assert base64.b64decode(env["signatures"][0]["sig"]) == base64.b64decode(sig)
    with pytest.raises(av.EnvelopeInvalid, match="canonical"):
        _verify(world, canonical_json(env))


def test_non_canonical_envelope_is_rejected(world: TrustWorld) -> None:
    pretty = json.dumps(json.loads(world.activation()), indent=1).encode()
    with pytest.raises(av.EnvelopeInvalid, match="canonical"):
        _verify(world, pretty)


NASTY_JSON = [
    b"[" * 200_000,  # json raises RecursionError on this
    b'{"a":' * 100_000,
    b'{"payloadType":' + b"7" * 5000 + b"}",  # json raises ValueError (> 4300 digits)
    b'{"payloadType":NaN}',
    b'{"payloadType":"x","payload":"","signatures":[Infinity]}',
    # These once passed the envelope parse and then crashed re-serialising it:
    b'{"payload":"","payloadType":"x","signatures":[{"keyid":"a","sig":"","x":1e400}]}',
    b'{"payload":"","payloadType":"\\ud800","signatures":[{"keyid":"a","sig":""}]}',
    b'{"payload":"","payloadType":"x","payloadType":"y","signatures":[{"keyid":"a","sig":""}]}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe",
]


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"payloadType":"x"}', *NASTY_JSON])
def test_garbage_is_an_envelope_failure(world: TrustWorld, data: bytes) -> None:
    with pytest.raises(av.EnvelopeInvalid):
        _verify(world, data)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000,
        b'{"sequence":' + b"9" * 5000 + b"}",
        b'{"signer_certificate":NaN}',
        b"\xff",
    ],
)
def test_signed_body_that_is_not_usable_json_is_rejected(world: TrustWorld, body: bytes) -> None:
    key, _ = world.hub.operator("alice", "")
    with pytest.raises(av.EnvelopeInvalid, match="no readable signer_certificate"):
        _verify(world, _sign_raw(ACTIVATION_TYPE, body, key))


def test_signed_body_with_a_duplicate_key_is_rejected(world: TrustWorld) -> None:
    # Two readers of one document could otherwise see two different thresholds.
    key, _ = world.hub.operator("alice", "")
    raw = canonical_json(_body(world.activation()))
    assert raw.endswith(b"}")
    with pytest.raises(av.EnvelopeInvalid, match="no readable signer_certificate"):
        _verify(world, _sign_raw(ACTIVATION_TYPE, raw[:-1] + b',"threshold":0.1}', key))


def test_envelope_over_the_size_limit_is_rejected(world: TrustWorld) -> None:
    token = world.activation()
    with pytest.raises(av.EnvelopeInvalid, match="larger than"):
        _verify(world, token + b" " * (MAX_DOCUMENT_BYTES + 1 - len(token)))


def test_unknown_envelope_key_is_rejected(world: TrustWorld) -> None:
    with pytest.raises(av.EnvelopeInvalid, match="unknown envelope field 'extra'"):
        _verify(world, _envelope(world.activation(), extra="x"))


@pytest.mark.parametrize("value", [None, "", 7])
def test_missing_payload_type_is_rejected(world: TrustWorld, value: object) -> None:
    token = _envelope(world.activation(), payloadType=value)
    if value is not None:
        env = json.loads(token)
        env["payloadType"] = value
        token = canonical_json(env)
    with pytest.raises(av.EnvelopeInvalid, match="payloadType'? missing"):
        _verify(world, token)


@pytest.mark.parametrize("signatures", [[], "sig", {"keyid": "x"}])
def test_envelope_without_signatures_is_rejected(world: TrustWorld, signatures: object) -> None:
    with pytest.raises(av.EnvelopeInvalid, match="no signatures"):
        _verify(world, _envelope(world.activation(), signatures=signatures))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"sig": "AAAA"}, "signature field 'keyid' missing"),
        ({"keyid": 5, "sig": "AAAA"}, r"keyid: not 64 lower-case hex"),
        ({"keyid": "AB" * 32, "sig": "AAAA"}, r"keyid: not 64 lower-case hex"),
        ("AAAA", r"signatures\[0\]: not an object"),
        ({"keyid": "ab" * 32}, "signature field 'sig' missing"),
        ({"keyid": "ab" * 32, "sig": 5}, "expected a base64 string"),
        ({"keyid": "ab" * 32, "sig": "not base64!"}, "not valid base64"),
        ({"keyid": "ab" * 32, "sig": "AAAA"}, "not a 64-byte signature"),
        # "AAB=" decodes to the same two bytes as "AAA=": only one spelling is accepted.
        ({"keyid": "ab" * 32, "sig": "A" * 84 + "AB=="}, "base64 is not in canonical form"),
        ({"keyid": "ab" * 32, "sig": "A" * 86 + "==", "z": "x"}, "unknown signature field 'z'"),
    ],
)
def test_malformed_signature_entry_is_rejected(
    world: TrustWorld, entry: object, message: str
) -> None:
    with pytest.raises(av.EnvelopeInvalid, match=message):
        _verify(world, _envelope(world.activation(), signatures=[entry]))


@pytest.mark.parametrize("certificate", [None, "%%%", 12, ["x"]])
def test_missing_signer_certificate_is_rejected(world: TrustWorld, certificate: object) -> None:
    key, _ = world.hub.operator("alice", "")
    body = _body(world.activation())
    if certificate is None:
        del body["signer_certificate"]
    else:
        body["signer_certificate"] = certificate
    token = sign_document(ACTIVATION_TYPE, body, key)
    with pytest.raises(av.EnvelopeInvalid, match="no readable signer_certificate"):
        _verify(world, token)


def test_other_document_type_is_rejected(world: TrustWorld) -> None:
    doc = sign_document(
        "application/vnd.lfr.watchlist+json; v=1", {"a": 1}, Ed25519PrivateKey.generate()
    )
    with pytest.raises(av.EnvelopeInvalid, match="not a control document"):
        _verify(world, doc)


def test_certificate_from_another_root_is_rejected(world: TrustWorld, tmp_path: Path) -> None:
    other = HubKeyStore.init(tmp_path / "other-hub", "mallory", now=NOW)
    other_world = TrustWorld(other, world.keys_dir, world.state_dir, world.device_keys, world.clock)
    with pytest.raises(av.CertificateInvalid):
        _verify(world, other_world.activation(operator="mallory"))


def test_certificate_that_does_not_verify_is_rejected(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    body = _body(world.activation())
    body["signer_certificate"] = base64.b64encode(b"not a certificate").decode()
    with pytest.raises(av.CertificateInvalid, match="certificate"):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


def test_x25519_certified_key_cannot_sign(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    cert = world.hub.hub_certificate("hub-alert")
    body = _body(world.activation())
    body["signer_certificate"] = base64.b64encode(cert.document).decode()
    with pytest.raises(av.SignatureInvalid, match="hub-alert cannot sign"):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


def test_signed_body_that_is_not_a_json_object_is_rejected(world: TrustWorld) -> None:
    # Without an object there is no signer certificate to check a signature against, so
    # this fails before the signature step.
    key, _ = world.hub.operator("alice", "")
    for body in (b"[1,2]", b'"text"', b"42"):
        with pytest.raises(av.EnvelopeInvalid, match="no readable signer_certificate"):
            _verify(world, _sign_raw(ACTIVATION_TYPE, body, key))


def test_signature_by_a_key_other_than_the_certified_one_is_rejected(world: TrustWorld) -> None:
    token = world.activation()
    with pytest.raises(av.SignatureInvalid, match="no signature by a trusted key"):
        _verify(world, _resign(token, Ed25519PrivateKey.generate()))


def test_changed_body_under_the_original_signature_is_rejected(world: TrustWorld) -> None:
    env = json.loads(world.activation())
    body = json.loads(base64.b64decode(env["payload"]))
    body["threshold"] = 0.9
    env["payload"] = base64.b64encode(canonical_json(body)).decode()
    with pytest.raises(av.SignatureInvalid, match="does not verify"):
        _verify(world, canonical_json(env))


def test_unknown_or_missing_field_is_rejected(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    token = world.activation()
    with pytest.raises(av.FieldsInvalid, match="unknown field 'camera'"):
        _verify(world, _resign(token, key, camera="on"))
    env = json.loads(token)
    body = json.loads(base64.b64decode(env["payload"]))
    del body["officer"]
    with pytest.raises(av.FieldsInvalid, match="'officer' missing"):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device_id": "Bad Device"}, "device_id: 'Bad Device' does not match"),
        ({"deployment_id": "Dep/1"}, "deployment_id: 'Dep/1' does not match"),
        ({"deployment_id": 7}, "deployment_id: must be a string"),
        ({"sequence": 0}, "sequence: must be an integer ≥ 1"),
        ({"sequence": 2**53}, "sequence: must be an integer ≥ 1"),
        ({"sequence": True}, "sequence: must be an integer ≥ 1"),
        ({"sequence": 1.5}, "sequence: must be an integer ≥ 1"),
        ({"issued_at": -1}, "issued_at: must be an integer ≥ 0"),
        ({"lease_s": 0}, "lease_s: must be an integer ≥ 1"),
        ({"threshold": 1.5}, "threshold: must be a number in 0–1"),
        ({"threshold": -0.1}, "threshold: must be a number in 0–1"),
        ({"threshold": "0.6"}, "threshold: must be a number in 0–1"),
        ({"threshold": True}, "threshold: must be a number in 0–1"),
        ({"watchlist_sha256": "AB" * 32}, "watchlist_sha256: must be 64 lower-case hex"),
        ({"watchlist_sha256": "ab" * 31}, "watchlist_sha256: must be 64 lower-case hex"),
        ({"officer": "  "}, "officer: must not be empty"),
        ({"officer": "PS 1\n2"}, "officer: contains control characters"),
        ({"officer": "x" * 201}, "officer: longer than 200"),
        ({"revocations": ""}, "revocations: must be base64"),
        ({"not_after": NOW}, "not_after: must be later than not_before"),
    ],
)
def test_wrong_field_form_is_rejected(
    world: TrustWorld, changes: dict[str, object], message: str
) -> None:
    key, _ = world.hub.operator("alice", "")
    token = world.activation(not_before=NOW)
    with pytest.raises(av.FieldsInvalid, match=message):
        _verify(world, _resign(token, key, **changes))


# -- role, validity, revocation -----------------------------------------------------
def test_operator_role_may_not_activate(world: TrustWorld) -> None:
    key, cert = world.hub.operator("bob", "")
    body = json.loads(base64.b64decode(json.loads(world.activation())["payload"]))
    body["signer_certificate"] = base64.b64encode(cert.document).decode()
    with pytest.raises(av.RoleNotPermitted, match="operator key"):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


def test_watchlist_key_may_not_activate(world: TrustWorld) -> None:
    key = world.hub.watchlist_signing_key()
    cert = world.hub.hub_certificate("hub-watchlist")
    body = json.loads(base64.b64decode(json.loads(world.activation())["payload"]))
    body["signer_certificate"] = base64.b64encode(cert.document).decode()
    with pytest.raises(av.RoleNotPermitted, match="watchlist key"):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


def test_expired_operator_certificate_is_rejected(world: TrustWorld) -> None:
    root = world.hub.load_root_key()
    key = Ed25519PrivateKey.generate()
    cert = issue_certificate(
        root, "old", "supervisor", key.public_key(), NOW - 900, NOW - 300, NOW - 900
    )
    body = json.loads(base64.b64decode(json.loads(world.activation())["payload"]))
    body["signer_certificate"] = base64.b64encode(cert).decode()
    with pytest.raises(av.CertificateNotValidNow):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


def test_certificate_not_yet_valid_is_rejected(world: TrustWorld) -> None:
    root = world.hub.load_root_key()
    key = Ed25519PrivateKey.generate()
    cert = issue_certificate(
        root, "early", "supervisor", key.public_key(), NOW + 3600, NOW + 7200, NOW
    )
    body = _body(world.activation())
    body["signer_certificate"] = base64.b64encode(cert).decode()
    with pytest.raises(av.CertificateNotValidNow, match="early is valid"):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))


def test_revoked_operator_is_rejected_and_the_list_persists(world: TrustWorld) -> None:
    old_token = world.activation()  # carries revocation list version 1
    world.hub.revoke_operator("alice", world.hub.load_root_key(), now=NOW)
    world.hub.add_operator("carol", "supervisor", 365, world.hub.load_root_key(), now=NOW)
    # carol's token carries list v2 naming alice; accepting it adopts v2 on the device.
    _verify(world, world.activation(operator="carol"))
    # alice's old token (list v1 embedded) cannot downgrade the device's list.
    with pytest.raises(av.SignerRevoked, match="alice"):
        _verify(world, old_token)


def test_a_list_installed_by_a_technician_counts_without_a_restart(world: TrustWorld) -> None:
    from agent.trust.hub_trust_store import REVOCATIONS_FILE

    verifier = world.verifier()  # the running agent, holding list version 1
    token = world.activation()  # alice's, carrying list version 1
    world.hub.revoke_operator("alice", world.hub.load_root_key(), now=NOW)
    installed = world.keys_dir / REVOCATIONS_FILE
    installed.write_text("not a revocation list")  # a bad copy is ignored, loudly
    verifier.trust.refresh_revocations()
    assert verifier.trust.revocation_version == 1
    installed.write_bytes(world.hub.revocations().document)  # the technician's copy
    with pytest.raises(av.SignerRevoked, match="alice"):
        verifier.verify(token)
    assert verifier.trust.revocation_version == 2


def test_revocation_embedded_in_the_token_itself_applies(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    token = world.activation()
    world.hub.revoke_operator("alice", world.hub.load_root_key(), now=NOW)
    rl = base64.b64encode(world.hub.revocations().document).decode()
    with pytest.raises(av.SignerRevoked):
        _verify(world, _resign(token, key, revocations=rl, sequence=99))
    # The refused document's list is kept: the revocation is not forgotten.
    alice = world.hub.operator("alice", "")[1].key_id
    assert world.verifier().trust.is_revoked(alice)
    assert world.verifier().sequences.last() == 0


def test_forged_revocation_list_is_rejected(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    fake = sign_document(
        "application/vnd.lfr.revocation-list+json; v=1",
        {"version": 9, "issued_at": NOW, "revoked_key_ids": []},
        key,
    )
    token = _resign(world.activation(), key, revocations=base64.b64encode(fake).decode())
    with pytest.raises(av.SignerRevoked, match="revocation list invalid"):
        _verify(world, token)


def test_renewal_for_a_live_activation_whose_signer_is_revoked_is_rejected(
    world: TrustWorld,
) -> None:
    live = _verify(world, world.activation(lease_s=300)).live  # signed by alice
    assert live is not None and not world.verifier().signer_revoked(live)
    world.hub.revoke_operator("alice", world.hub.load_root_key(), now=NOW)
    # bob's renewal carries the newer list, which revokes alice.
    renewal = world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 300)
    verifier = world.verifier()
    with pytest.raises(av.SignerRevoked, match="live activation's signer alice"):
        verifier.verify(renewal, live=live)
    assert verifier.signer_revoked(live)
    # The list was adopted and persisted although the renewal carrying it was refused.
    assert world.verifier().signer_revoked(live)
    assert world.verifier().trust.revocation_version == 2
    assert world.verifier().sequences.last() == 1  # the refused renewal did not advance


def test_the_newer_list_is_on_disk_before_the_sequence(world: TrustWorld) -> None:
    # Power-cut crash point "revocation list before rename": the sequence was stored
    # first, so a cut between the two writes left the document accepted and its list
    # forgotten. The real sequence store, watched: when it stores the sequence, the
    # newer list must already be in the key folder.
    from agent.trust.hub_trust_store import HubTrustStore
    from agent.trust.sequence_store import SequenceStore

    on_disk: list[int] = []

    class WatchedSequenceStore(SequenceStore):
        def advance(self, sequence: int) -> None:
            on_disk.append(HubTrustStore.load(world.keys_dir).revocation_version)
            super().advance(sequence)

    world.hub.add_operator("spare", "operator", 30, world.hub.load_root_key(), now=NOW)
    world.hub.revoke_operator("spare", world.hub.load_root_key(), now=NOW)
    verifier = world.verifier()
    verifier.sequences = WatchedSequenceStore.in_state_dir(world.state_dir)
    verifier.verify(world.activation(), loaded_watchlist_sha256=WATCHLIST)  # carries v2
    assert on_disk == [2]
    assert verifier.sequences.last() == 1


def test_list_revoking_the_live_signer_is_not_adopted_without_commit(world: TrustWorld) -> None:
    live = _verify(world, world.activation()).live
    assert live is not None
    world.hub.revoke_operator("alice", world.hub.load_root_key(), now=NOW)
    renewal = world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 300)
    with pytest.raises(av.SignerRevoked):
        world.verifier().verify(renewal, live=live, commit=False)
    assert not world.verifier().signer_revoked(live)


def test_stop_carrying_a_list_that_revokes_the_live_signer_is_honoured(
    world: TrustWorld,
) -> None:
    live = _verify(world, world.activation()).live
    assert live is not None
    world.hub.revoke_operator("alice", world.hub.load_root_key(), now=NOW)
    stop = world.issuer("bob").stop("lfr-test-01", DEPLOYMENT, "alice's key was lost")
    verifier = world.verifier()
    assert verifier.verify(stop, live=live).names_live
    assert verifier.signer_revoked(live)


# -- device, clock, time window -----------------------------------------------------
def test_wrong_device_is_rejected(world: TrustWorld) -> None:
    with pytest.raises(av.WrongDevice, match="lfr-other-02"):
        _verify(world, world.activation(device_id="lfr-other-02"))


@pytest.mark.parametrize("state", [ClockSync.UNSYNCHRONISED, ClockSync.UNKNOWN])
def test_unsynchronised_clock_refuses_unless_allowed(world: TrustWorld, state: ClockSync) -> None:
    token = world.activation()
    world.clock.sync = state
    with pytest.raises(av.ClockNotSynchronised, match=state.value):
        _verify(world, token)
    assert (
        world.verifier(require_clock_sync=False)
        .verify(token, loaded_watchlist_sha256=WATCHLIST)
        .live
    )


def test_expired_activation_is_rejected(world: TrustWorld) -> None:
    token = world.activation(duration_s=3600)
    world.clock.advance(3600)
    with pytest.raises(av.OutsideTimeWindow, match="expired"):
        _verify(world, token)


def test_not_yet_valid_activation_is_rejected_beyond_tolerance(world: TrustWorld) -> None:
    start = int(world.clock.wall()) + 121
    with pytest.raises(av.OutsideTimeWindow, match="not yet valid"):
        _verify(world, world.activation(not_before=start))
    # Within the 120 s tolerance, a hub clock slightly ahead is accepted.
    _verify(world, world.activation(not_before=start - 2))


def test_future_issued_at_is_rejected(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    token = _resign(world.activation(), key, issued_at=NOW + 3600)
    with pytest.raises(av.OutsideTimeWindow, match="future"):
        _verify(world, token)


def test_window_longer_than_the_cap_is_rejected(world: TrustWorld) -> None:
    token = world.activation(duration_s=13 * 3600)
    with pytest.raises(av.OutsideTimeWindow, match="exceeds the cap"):
        _verify(world, token)


def test_lease_longer_than_window_is_rejected(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    token = _resign(world.activation(duration_s=600, lease_s=600), key, lease_s=601)
    with pytest.raises(av.OutsideTimeWindow, match="lease"):
        _verify(world, token)


def test_renewal_after_the_live_activation_has_ended_is_rejected(world: TrustWorld) -> None:
    live = _verify(world, world.activation(duration_s=600, lease_s=600)).live
    assert live is not None
    world.clock.advance(601)  # past the end on both clocks...
    world.clock.jump_wall(-590)  # ...then the wall clock is set back inside the window
    assert world.clock.wall() < live.not_after
    renewal = world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 300)
    with pytest.raises(av.NotLive, match="has ended"):
        _verify(world, renewal, live=live)


def test_renewal_after_the_wall_clock_end_is_rejected(world: TrustWorld) -> None:
    live = _verify(world, world.activation(duration_s=600, lease_s=600)).live
    assert live is not None
    world.clock.jump_wall(600)  # the monotonic bound still holds; the wall clock does not
    renewal = world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 300)
    with pytest.raises(av.NotLive, match="has ended"):
        _verify(world, renewal, live=live)


# -- renewal, stop, live ------------------------------------------------------------
def test_renewal_extends_the_lease_of_the_live_activation(world: TrustWorld) -> None:
    live = _verify(world, world.activation(lease_s=300)).live
    assert live is not None
    world.clock.advance(200)
    renewal = world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 300)
    result = _verify(world, renewal, live=live)
    assert result.names_live and "live" in result.steps
    renewed = result.live
    assert renewed is not None
    assert renewed.lease_until_mono == pytest.approx(world.clock.mono() + 300)
    assert renewed.start_mono == live.start_mono and renewed.end_mono == live.end_mono


def test_renewal_for_another_deployment_is_rejected(world: TrustWorld) -> None:
    live = _verify(world, world.activation()).live
    other = world.issuer("bob").renewal("lfr-test-01", "dep-other", 300)
    with pytest.raises(av.NotLive, match="names deployment 'dep-other', live is"):
        _verify(world, other, live=live)


def test_renewal_with_nothing_live_is_rejected(world: TrustWorld) -> None:
    with pytest.raises(av.NotLive, match="no live activation"):
        _verify(world, world.issuer().renewal("lfr-test-01", DEPLOYMENT, 300), live=None)


def test_renewal_after_lease_lapse_is_rejected(world: TrustWorld) -> None:
    live = _verify(world, world.activation(lease_s=300)).live
    world.clock.advance(301)
    with pytest.raises(av.NotLive, match="lease has lapsed"):
        _verify(world, world.issuer().renewal("lfr-test-01", DEPLOYMENT, 300), live=live)


def test_renewal_never_extends_past_the_window(world: TrustWorld) -> None:
    live = _verify(world, world.activation(duration_s=600, lease_s=500)).live
    assert live is not None
    world.clock.advance(400)
    renewed = _verify(
        world, world.issuer().renewal("lfr-test-01", DEPLOYMENT, 3600), live=live
    ).live
    assert renewed is not None and renewed.lease_until_mono == live.end_mono


def test_stale_renewal_is_rejected(world: TrustWorld) -> None:
    live = _verify(world, world.activation(lease_s=3600)).live
    renewal = world.issuer().renewal("lfr-test-01", DEPLOYMENT, 600)
    world.clock.advance(121)
    with pytest.raises(av.OutsideTimeWindow, match="stale"):
        _verify(world, renewal, live=live)


def test_stop_names_the_live_deployment(world: TrustWorld) -> None:
    live = _verify(world, world.activation()).live
    stop = world.issuer("bob").stop("lfr-test-01", DEPLOYMENT, "officers left")
    result = _verify(world, stop, live=live)
    assert result.document.kind == "stop" and result.live is None and result.names_live
    with pytest.raises(av.SequenceNotNewer):
        _verify(world, stop, live=live)  # replayed stop


def test_stop_with_nothing_live_is_honoured(world: TrustWorld) -> None:
    # After a lease lapse, a camera failure or a restart: the stop still ends (and wipes)
    # the deployment it names.
    live = _verify(world, world.activation(lease_s=300)).live
    assert live is not None
    world.clock.advance(400)
    stop = world.issuer("bob").stop("lfr-test-01", DEPLOYMENT, "lease lapsed")
    result = _verify(world, stop, live=None)
    assert result.document.deployment_id == DEPLOYMENT and not result.names_live
    assert result.steps[-3:] == ["device", "sequence", "commit"]
    assert world.verifier().sequences.last() == 2


def test_stop_for_another_deployment_is_honoured_and_leaves_the_live_one(
    world: TrustWorld,
) -> None:
    live = _verify(world, world.activation()).live
    stop = world.issuer("bob").stop("lfr-test-01", "dep-earlier", "wipe the old watchlist")
    result = _verify(world, stop, live=live)
    assert result.document.deployment_id == "dep-earlier"
    assert not result.names_live and result.live is None
    # The live activation is untouched: it can still be renewed.
    renewed = _verify(world, world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 60), live=live)
    assert renewed.names_live and renewed.live is not None


def test_stop_still_passes_every_other_check(world: TrustWorld) -> None:
    key, _ = world.hub.operator("bob", "")
    stop = world.issuer("bob").stop("lfr-test-01", DEPLOYMENT, "x")
    with pytest.raises(av.WrongDevice):
        _verify(world, _resign(stop, key, device_id="lfr-other-02"))
    with pytest.raises(av.SignatureInvalid):
        _verify(world, _resign(stop, Ed25519PrivateKey.generate()))
    world.hub.revoke_operator("bob", world.hub.load_root_key(), now=NOW)
    rl = base64.b64encode(world.hub.revocations().document).decode()
    with pytest.raises(av.SignerRevoked, match="bob"):
        _verify(world, _resign(stop, key, revocations=rl))


def test_renewal_issued_in_the_future_is_rejected(world: TrustWorld) -> None:
    live = _verify(world, world.activation()).live
    key, _ = world.hub.operator("bob", "")
    doc = world.issuer("bob").renewal("lfr-test-01", DEPLOYMENT, 60)
    with pytest.raises(av.OutsideTimeWindow, match="renewal issued in the future"):
        _verify(world, _resign(doc, key, issued_at=int(world.clock.wall()) + 121), live=live)


@pytest.mark.parametrize("skew_s", [-3600, 3600])
def test_stop_is_obeyed_whatever_the_clocks_say(world: TrustWorld, skew_s: int) -> None:
    # A camera whose clock drifted while live, or a stop that waited at the broker:
    # still obeyed (it only closes; the sequence refuses a replay).
    live = _verify(world, world.activation()).live
    key, _ = world.hub.operator("bob", "")
    stop = world.issuer("bob").stop("lfr-test-01", DEPLOYMENT, "x")
    skewed = _resign(stop, key, issued_at=int(world.clock.wall()) + skew_s)
    verified = _verify(world, skewed, live=live)
    assert verified.names_live and "time-window" not in verified.steps
    with pytest.raises(av.SequenceNotNewer):
        _verify(world, skewed, live=live)


def test_renewal_signed_as_activation_type_is_rejected(world: TrustWorld) -> None:
    key, _ = world.hub.operator("alice", "")
    env = json.loads(world.issuer().renewal("lfr-test-01", DEPLOYMENT, 60))
    body = json.loads(base64.b64decode(env["payload"]))
    with pytest.raises(av.FieldsInvalid):
        _verify(world, sign_document(ACTIVATION_TYPE, body, key))
    assert env["payloadType"] == RENEWAL_TYPE


# -- sequence, watchlist, threshold -------------------------------------------------
def test_replayed_token_is_rejected(world: TrustWorld) -> None:
    token = world.activation()
    _verify(world, token)
    with pytest.raises(av.SequenceNotNewer, match="not greater than the last accepted 1"):
        _verify(world, token)


def test_downgraded_sequence_is_rejected_after_restart(world: TrustWorld) -> None:
    first, second = world.activation(), world.activation()
    _verify(world, second)  # sequence 2 accepted, then the device restarts
    with pytest.raises(av.SequenceNotNewer, match="1 is not greater than the last accepted 2"):
        world.verifier().verify(first, loaded_watchlist_sha256=WATCHLIST)


@pytest.mark.parametrize("damage", ["directory", "corrupt", "nested", "huge-int", "negative"])
def test_unreadable_sequence_file_is_rejected(world: TrustWorld, damage: str) -> None:
    path = world.state_dir / SEQUENCE_FILE
    world.state_dir.mkdir(parents=True, exist_ok=True)
    if damage == "directory":
        path.mkdir()
    else:
        path.write_bytes(
            {
                "corrupt": b'{"last_seq',
                "nested": b"[" * 200_000,
                "huge-int": b'{"last_sequence":' + b"9" * 5000 + b"}",
                "negative": b'{"last_sequence":-1}',
            }[damage]
        )
    with pytest.raises(av.SequenceNotNewer, match="sequence store"):
        _verify(world, world.activation())


def test_rejected_token_does_not_advance_the_sequence(world: TrustWorld) -> None:
    token = world.activation(threshold=0.3)
    with pytest.raises(av.ThresholdBelowFloor):
        _verify(world, token)
    assert world.verifier().sequences.last() == 0


def test_before_commit_runs_once_verified_and_before_the_sequence_is_stored(
    world: TrustWorld,
) -> None:
    # What a stop must have done (its wipe) is done before the stop counts as accepted:
    # power-cut crash point "activation sequence at a stop after rename".
    verifier = world.verifier()
    seen: list[tuple[str, int]] = []

    def note(doc: object) -> None:
        seen.append((type(doc).__name__, verifier.sequences.last()))

    _verify(world, world.activation(), before_commit=note)
    assert seen == [("Activation", 0)]
    assert verifier.sequences.last() == 1


def test_a_failing_before_commit_stores_nothing(world: TrustWorld) -> None:
    def fail(_doc: object) -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        _verify(world, world.activation(), before_commit=fail)
    assert world.verifier().sequences.last() == 0
    with pytest.raises(av.ThresholdBelowFloor):
        _verify(world, world.activation(threshold=0.3), before_commit=fail)


def test_read_only_verification_never_advances(world: TrustWorld) -> None:
    token = world.activation()
    world.verifier(read_only=True).verify(token, loaded_watchlist_sha256=WATCHLIST, commit=False)
    assert world.verifier().sequences.last() == 0


def test_watchlist_mismatch_and_missing_watchlist_are_rejected(world: TrustWorld) -> None:
    with pytest.raises(av.WatchlistMismatch, match="loaded is"):
        _verify(world, world.activation(), loaded_watchlist_sha256="cd" * 32)
    with pytest.raises(av.WatchlistMismatch, match="no watchlist"):
        _verify(world, world.activation(), loaded_watchlist_sha256=None)


def test_threshold_below_floor_is_rejected(world: TrustWorld) -> None:
    with pytest.raises(av.ThresholdBelowFloor, match="below the floor 0.4"):
        _verify(world, world.activation(threshold=0.39))
    _verify(world, world.activation(threshold=0.4))


def test_each_failure_names_its_step(world: TrustWorld) -> None:
    steps = {cls.step for cls in av.ActivationRejected.__subclasses__()}
    assert len(steps) == len(av.ActivationRejected.__subclasses__()) == 14


def test_live_activation_starts_at_not_before_on_the_monotonic_clock(world: TrustWorld) -> None:
    start = int(world.clock.wall()) + 100  # within the tolerance: accepted early
    live = _verify(world, world.activation(not_before=start)).live
    assert live is not None
    assert live.start_mono == pytest.approx(world.clock.mono() + 100)
    assert live.signer_key_id == world.hub.operator("alice", "")[1].key_id
    now_live = _verify(world, world.activation()).live
    assert now_live is not None and now_live.start_mono == world.clock.mono()


def test_manual_clock_moves_only_when_told() -> None:
    c = ManualClock(wall=100.0, mono=5.0)
    c.jump_wall(50)
    assert (c.wall(), c.mono()) == (150.0, 5.0)
    c.advance(1)
    assert (c.wall(), c.mono()) == (151.0, 6.0)

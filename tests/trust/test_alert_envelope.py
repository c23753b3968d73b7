"""The sealed alert envelope: round trip, sender binding, tampering, and fuzzed garbage."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from support.alert_factory import AlertKeys, make_content

from agent.trust.alert_envelope import (
    ALERT_INFO,
    ALERT_PAYLOAD_TYPE,
    AlertEnvelopeError,
    decode_ack,
    encode_ack,
    open_alert,
    seal_alert,
)
from agent.trust.sealed_box import seal
from agent.trust.signed_document import canonical_json, key_id, sign_document

KEYS = AlertKeys.generate()


def _seal(seq: int = 1, device: str = "lfr-test-01", scene: bool = True) -> bytes:
    return seal_alert(
        make_content(device, seq, scene=scene),
        seq=seq,
        device_key=KEYS.device,
        hub_key=KEYS.hub.public_key(),
    ).envelope


def _open(envelope: bytes, sender: str = "lfr-test-01") -> object:
    return open_alert(
        envelope, sender=sender, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )


def test_round_trip_keeps_every_field() -> None:
    content = make_content("lfr-test-01", 7, scene=True)
    sealed = seal_alert(content, seq=7, device_key=KEYS.device, hub_key=KEYS.hub.public_key())
    opened = open_alert(
        sealed.envelope, sender="lfr-test-01", device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )
    assert opened.content == content
    assert opened.header == sealed.header
    assert opened.header.seq == 7 and len(opened.header.alert_id) == 32
    # The ack secret crosses inside the box: the hub learns exactly what the device kept.
    assert opened.ack_secret == sealed.ack_secret and len(sealed.ack_secret) == 16


def test_each_alert_gets_its_own_ack_secret_never_in_the_clear() -> None:
    a = seal_alert(make_content(), seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key())
    b = seal_alert(make_content(), seq=2, device_key=KEYS.device, hub_key=KEYS.hub.public_key())
    assert a.ack_secret != b.ack_secret
    doc = json.loads(a.envelope)
    body = json.loads(base64.b64decode(doc["payload"]))
    clear = a.envelope + base64.b64decode(body["header"]) + base64.b64decode(body["box"])
    for form in (a.ack_secret, a.ack_secret.hex().encode(), base64.b64encode(a.ack_secret)):
        assert form not in clear
    assert "ack_secret" not in repr(a)


def _seal_raw_meta(meta: dict[str, object], **header_fields: object) -> bytes:
    """Seal content whose metadata JSON is given as is (as another version would)."""
    header = canonical_json(
        {
            "alert_id": "b" * 32,
            "deployment": "dep-2026-11-22-a",
            "device": "lfr-test-01",
            "recipient": key_id(KEYS.hub.public_key()),
            "sealed_at": 1,
            "seq": 1,
            "v": 1,
            **header_fields,
        }
    )
    probe = b"\xff\xd8probe"
    meta_bytes = canonical_json(meta)
    plaintext = b"".join(len(part).to_bytes(4, "big") + part for part in (meta_bytes, probe, b""))
    box = seal(KEYS.hub.public_key(), plaintext, aad=header, info=ALERT_INFO)
    body = {"header": base64.b64encode(header).decode(), "box": base64.b64encode(box).decode()}
    return sign_document(ALERT_PAYLOAD_TYPE, body, KEYS.device)


def _meta(**extra: object) -> dict[str, object]:
    return {
        "device_id": "lfr-test-01",
        "deployment_id": "dep-2026-11-22-a",
        "watchlist_entry": "W-0001",
        "score": 0.7,
        "threshold": 0.6,
        "model_id": "m",
        "track_id": 1,
        "quality": {},
        "first_seen": 1.0,
        "decided_at": 2.0,
        **extra,
    }


def test_content_from_an_older_device_opens_without_an_ack_secret() -> None:
    opened = open_alert(
        _seal_raw_meta(_meta()),
        sender="lfr-test-01",
        device_key=KEYS.device.public_key(),
        hub_key=KEYS.hub,
    )
    assert opened.ack_secret is None and opened.content.watchlist_entry == "W-0001"


@pytest.mark.parametrize("secret", ["", "ab" * 15, "AB" * 16, "zz" * 16, 5, None])
def test_malformed_ack_secret_in_content_is_rejected(secret: object) -> None:
    with pytest.raises(AlertEnvelopeError, match="ack_secret"):
        _open(_seal_raw_meta(_meta(ack_secret=secret)))


@pytest.mark.parametrize(
    ("meta", "header", "field"),
    [
        ({}, {"deployment": "dep-1\x1b]0;owned\x07"}, "header.deployment"),
        ({}, {"deployment": "Dep 1"}, "header.deployment"),
        ({"deployment_id": "dep\r-2026"}, {}, "content.deployment_id"),
        ({"watchlist_entry": "W-0001\x1b[2J"}, {}, "content.watchlist_entry"),
        ({"watchlist_entry": "W-\u202e1000"}, {}, "content.watchlist_entry"),
        ({"model_id": "sface\x07"}, {}, "content.model_id"),
        ({"quality": {"sharp\x1bness": 1.0}}, {}, "content.quality"),
        ({"quality": {f"q{i}": 1.0 for i in range(17)}}, {}, "content.quality"),
    ],
)
def test_fields_a_camera_sends_must_match_the_protocol_patterns(
    meta: dict[str, object], header: dict[str, object], field: str
) -> None:
    """What a stolen camera puts in an alert is shown to an operator: every field is
    checked against its pattern before the alert is accepted (issue 16, finding 4)."""
    envelope = _seal_raw_meta(_meta(**meta), **header)
    with pytest.raises(AlertEnvelopeError, match=field.replace(".", r"\.")):
        _open(envelope)


def test_the_device_never_seals_what_the_hub_would_refuse() -> None:
    bad = make_content()
    for change in ({"watchlist_entry": "W\x1b"}, {"model_id": "m m"}, {"quality": {"Q": 1.0}}):
        with pytest.raises(ValueError, match="not valid|quality"):
            seal_alert(
                dataclasses.replace(bad, **change),  # type: ignore[arg-type]
                seq=1,
                device_key=KEYS.device,
                hub_key=KEYS.hub.public_key(),
            )


def test_no_biometric_byte_is_readable_in_the_envelope() -> None:
    content = make_content(scene=True)
    env = seal_alert(content, seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key())
    raw = env.envelope
    body = json.loads(base64.b64decode(json.loads(raw)["payload"]))
    header = json.loads(base64.b64decode(body["header"]))
    assert set(header) == {"alert_id", "deployment", "device", "recipient", "sealed_at", "seq", "v"}
    box = base64.b64decode(body["box"])
    for secret in (content.probe_jpeg[:64], content.watchlist_entry.encode()):
        assert secret not in raw and secret not in box
        assert base64.b64encode(secret)[:40] not in raw


def test_only_the_hub_key_opens_it_and_the_device_cannot() -> None:
    envelope = _seal()
    # The device holds only its signing key and the hub's public key; any other
    # X25519 private key (e.g. the device's own) does not open the box.
    with pytest.raises(AlertEnvelopeError, match="different hub alert key"):
        open_alert(
            envelope,
            sender="lfr-test-01",
            device_key=KEYS.device.public_key(),
            hub_key=X25519PrivateKey.generate(),
        )


def test_sender_must_match_the_header_device() -> None:
    with pytest.raises(AlertEnvelopeError, match="came from 'lfr-test-02'"):
        _open(_seal(), sender="lfr-test-02")


def test_signature_by_another_device_key_is_rejected() -> None:
    other = Ed25519PrivateKey.generate()
    env = seal_alert(make_content(), seq=1, device_key=other, hub_key=KEYS.hub.public_key())
    with pytest.raises(AlertEnvelopeError, match="no signature by a trusted key"):
        _open(env.envelope)


def _rewrite_body(envelope: bytes, change: str) -> bytes:
    doc = json.loads(envelope)
    body = json.loads(base64.b64decode(doc["payload"]))
    header = bytearray(base64.b64decode(body["header"]))
    box = bytearray(base64.b64decode(body["box"]))
    if change == "header":
        header = bytearray(bytes(header).replace(b'"seq":1', b'"seq":2'))
    else:
        box[-1] ^= 1
    body = {"header": base64.b64encode(header).decode(), "box": base64.b64encode(box).decode()}
    doc["payload"] = base64.b64encode(canonical_json(body)).decode()
    return canonical_json(doc)


@pytest.mark.parametrize("change", ["header", "box"])
def test_tampering_breaks_the_signature(change: str) -> None:
    with pytest.raises(AlertEnvelopeError, match="signature"):
        _open(_rewrite_body(_seal(), change))


@pytest.mark.parametrize("change", ["header", "box"])
def test_tampering_re_signed_by_the_device_still_fails_the_aead(change: str) -> None:
    # Even a body re-signed with the right key cannot move the header or edit the box:
    # the header is the AEAD's associated data.
    doc = json.loads(_rewrite_body(_seal(), change))
    body = json.loads(base64.b64decode(doc["payload"]))
    resigned = sign_document(doc["payloadType"], body, KEYS.device)
    with pytest.raises(AlertEnvelopeError, match="does not decrypt"):
        _open(resigned)


def test_ack_round_trip_and_rejects() -> None:
    proofs = [("0" * 32, bytes(16)), ("f" * 32, bytes(range(16)))]
    payload = encode_ack(proofs)
    assert json.loads(payload) == {
        "ack": [
            {"alert_id": "0" * 32, "secret": "00" * 16},
            {"alert_id": "f" * 32, "secret": bytes(range(16)).hex()},
        ],
        "v": 2,
    }
    assert decode_ack(payload) == proofs
    entry = {"alert_id": "0" * 32, "secret": "00" * 16}
    bad_payloads: list[object] = [
        [],
        {"ack": "x", "v": 2},
        {"ack": ["0" * 32]},  # the format before acks carried a proof
        {"ack": ["0" * 32], "v": 2},
        {"ack": [entry], "v": 1},
        {"ack": [entry], "v": True},
        {"ack": [entry]},
        {"ack": [entry], "v": 2, "x": 1},
        {"ack": [{"alert_id": "0" * 32}], "v": 2},
        {"ack": [{**entry, "extra": 1}], "v": 2},
        {"ack": [{**entry, "alert_id": "XYZ"}], "v": 2},
        {"ack": [{**entry, "secret": "00" * 15}], "v": 2},
        {"ack": [{**entry, "secret": "AA" * 16}], "v": 2},
        {"ack": [{**entry, "secret": 0}], "v": 2},
        {"ack": [entry] * 501, "v": 2},
    ]
    for bad in [b"", b"\xff", b"x" * 70_000, *(json.dumps(b).encode() for b in bad_payloads)]:
        with pytest.raises(AlertEnvelopeError, match="ack"):
            decode_ack(bad)
    with pytest.raises(ValueError):
        encode_ack([("0" * 32, b"short")])
    # The largest ack the hub may send fits under the size limit.
    assert decode_ack(encode_ack([("a" * 32, bytes(16))] * 500))


NASTY_JSON = [
    b"[" * 200_000,  # json raises RecursionError on this
    b'{"v":' + b"2" * 5000 + b"}",  # json raises ValueError (> 4300 digits)
    b'{"ack":[],"v":NaN}',
    b'{"ack":[],"v":Infinity}',
    b'{"ack":[],"v":2,"v":2}',
    b'{"ack":[],"v":2e400}',
    b'{"ack":["\\ud800"],"v":2}',
]


def _valid_header() -> bytes:
    """The canonical header of a well-formed alert, for sealing crafted contents under."""
    return canonical_json(
        {
            "alert_id": "a" * 32,
            "deployment": "d",
            "device": "lfr-test-01",
            "recipient": key_id(KEYS.hub.public_key()),
            "sealed_at": 1,
            "seq": 1,
            "v": 1,
        }
    )


@pytest.mark.parametrize("data", NASTY_JSON)
def test_hostile_json_is_rejected_cleanly(data: bytes) -> None:
    with pytest.raises(AlertEnvelopeError):
        _open(data)
    with pytest.raises(AlertEnvelopeError, match="ack"):
        decode_ack(data[:60_000])
    # As the authenticated header or as the sealed metadata of a device-signed alert.
    header_body = {"header": base64.b64encode(data).decode(), "box": ""}
    with pytest.raises(AlertEnvelopeError, match="header"):
        _open(sign_document(ALERT_PAYLOAD_TYPE, header_body, KEYS.device))
    header = _valid_header()
    content = b"".join(len(p).to_bytes(4, "big") + p for p in (data, b"jpeg", b""))
    box = seal(KEYS.hub.public_key(), content, aad=header, info=ALERT_INFO)
    body = {"header": base64.b64encode(header).decode(), "box": base64.b64encode(box).decode()}
    with pytest.raises(AlertEnvelopeError, match="content"):
        _open(sign_document(ALERT_PAYLOAD_TYPE, body, KEYS.device))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_are_rejected_cleanly(data: bytes) -> None:
    with pytest.raises(AlertEnvelopeError):
        _open(data)


def _json_values() -> st.SearchStrategy[object]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    )


@settings(max_examples=200, deadline=None)
@given(header=st.dictionaries(st.text(max_size=10), _json_values(), max_size=8), box=st.binary())
def test_signed_but_malformed_bodies_are_rejected_cleanly(header: object, box: bytes) -> None:
    body = {
        "header": base64.b64encode(json.dumps(header).encode()).decode(),
        "box": base64.b64encode(box).decode(),
    }
    env = sign_document("application/vnd.lfr.alert+json; v=1", body, KEYS.device)
    with pytest.raises(AlertEnvelopeError):
        _open(env)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_signed_and_sealed_garbage_content_is_rejected_cleanly(plaintext: bytes) -> None:
    # A device key holder could seal anything; the hub must still fail with a clean error.
    header = _valid_header()
    box = seal(KEYS.hub.public_key(), plaintext, aad=header, info=ALERT_INFO)
    body = {"header": base64.b64encode(header).decode(), "box": base64.b64encode(box).decode()}
    with pytest.raises(AlertEnvelopeError):
        _open(sign_document(ALERT_PAYLOAD_TYPE, body, KEYS.device))


def test_envelope_overhead_is_modest() -> None:
    jpeg = bytes(range(256)) * 80  # 20 KB
    env = seal_alert(
        make_content(jpeg=jpeg), seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
    ).envelope
    # Two base64 layers (body, payload) and ~1 KB of metadata around the raw crop.
    assert len(env) < len(jpeg) * 16 / 9 + 2048


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=512),
        st.builds(
            lambda entries, v: json.dumps({"ack": entries, "v": v}).encode(),
            st.lists(
                st.one_of(
                    st.text(max_size=40),
                    st.integers(),
                    st.none(),
                    st.fixed_dictionaries(
                        {
                            "alert_id": st.sampled_from(["a" * 32, "A" * 32, "a" * 31]),
                            "secret": st.one_of(st.text(max_size=34), st.sampled_from(["0" * 32])),
                        }
                    ),
                ),
                max_size=5,
            ),
            st.one_of(st.just(2), st.integers(), st.none()),
        ),
    )
)
def test_fuzzed_acks_decode_or_fail_cleanly(payload: bytes) -> None:
    try:
        proofs = decode_ack(payload)
    except AlertEnvelopeError:
        return
    assert all(len(i) == 32 and int(i, 16) >= 0 and len(s) == 16 for i, s in proofs)

"""The sealed watchlist bundle: round trip, tampering, wrong device, size and load speed."""

from __future__ import annotations

import hashlib
import re
import struct
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.matching.gallery import Gallery
from agent.matching.watchlist_bundle import (
    DEVICE_ID_RE,
    HUB_RECIPIENT,
    INNER_MAGIC,
    SEALED_MAGIC,
    WATCHLIST_PAYLOAD_TYPE,
    WatchlistContent,
    WatchlistError,
    build_bundle,
    check_model,
    new_entry_ref,
    open_bundle,
    open_hub_copy,
    read_sealed_header,
    verify_inner,
)
from agent.trust.activation_token import parse_body
from agent.trust.key_certificates import NAME_PATTERN
from agent.trust.signed_document import key_id, sign_document

MODEL_SHA = "ab" * 32


def _embeddings(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _content(n: int = 5, devices: tuple[str, ...] = ("dev-a",)) -> WatchlistContent:
    now = time.time()
    return WatchlistContent(
        "dep-1",
        devices,
        now,
        now + 3600,
        "sface@abab",
        MODEL_SHA,
        [new_entry_ref() for _ in range(n)],
        _embeddings(n),
    )


@pytest.fixture
def keys() -> dict[str, object]:
    sk = Ed25519PrivateKey.generate()
    return {
        "sk": sk,
        "pk": sk.public_key(),
        "a": X25519PrivateKey.generate(),
        "b": X25519PrivateKey.generate(),
    }


def _finder(keys: dict[str, object]):  # type: ignore[no-untyped-def]
    pk = keys["pk"]
    kid = key_id(pk)  # type: ignore[arg-type]
    return lambda k: pk if k == kid else None


def test_round_trip_for_each_recipient(keys) -> None:  # type: ignore[no-untyped-def]
    c = _content(7, ("dev-a", "dev-b"))
    b = build_bundle(
        c, keys["sk"], {"dev-a": keys["a"].public_key(), "dev-b": keys["b"].public_key()}
    )
    assert [r.device for r in read_sealed_header(b.data).recipients] == ["dev-a", "dev-b"]
    for dev in ("dev-a", "dev-b"):
        o = open_bundle(b.data, dev, keys[dev[-1]], _finder(keys))
        assert o.watchlist_hash == b.watchlist_hash
        assert o.refs == list(c.refs)
        np.testing.assert_array_equal(o.embeddings, c.embeddings.astype(np.float16))
        o.wipe()
        assert not o.embeddings.any()  # the view shares the zeroed buffer


def test_the_hub_copy_opens_with_the_hub_key_and_devices_ignore_it(keys) -> None:  # type: ignore[no-untyped-def]
    hub = X25519PrivateKey.generate()
    c = _content(6)
    b = build_bundle(c, keys["sk"], {"dev-a": keys["a"].public_key()}, hub.public_key())
    assert [r.device for r in read_sealed_header(b.data).recipients] == ["dev-a", HUB_RECIPIENT]
    device = open_bundle(b.data, "dev-a", keys["a"], _finder(keys))
    at_hub = open_hub_copy(b.data, hub, _finder(keys))
    assert at_hub.watchlist_hash == device.watchlist_hash == b.watchlist_hash
    np.testing.assert_array_equal(at_hub.embeddings, device.embeddings)
    # A device key cannot open the hub's box, nor another hub key.
    with pytest.raises(WatchlistError, match="another X25519 key"):
        open_hub_copy(b.data, keys["a"], _finder(keys))
    with pytest.raises(WatchlistError, match="another X25519 key"):
        open_hub_copy(b.data, X25519PrivateKey.generate(), _finder(keys))
    # "@hub" is no device id: no device can be named so and ask for the hub's box.
    assert not DEVICE_ID_RE.fullmatch(HUB_RECIPIENT)
    with pytest.raises(WatchlistError, match="dev-a, not for this device"):
        open_bundle(b.data, "dev-b", keys["b"], _finder(keys))


def test_a_bundle_without_a_hub_copy_says_so_at_the_hub(keys) -> None:  # type: ignore[no-untyped-def]
    b = build_bundle(_content(), keys["sk"], {"dev-a": keys["a"].public_key()})
    with pytest.raises(WatchlistError, match="built without a hub copy") as info:
        open_hub_copy(b.data, X25519PrivateKey.generate(), _finder(keys))
    assert info.value.reason == "no-hub-copy"


def test_no_names_in_sealed_or_plain_form(keys) -> None:  # type: ignore[no-untyped-def]
    b = build_bundle(_content(), keys["sk"], {"dev-a": keys["a"].public_key()})
    assert b"dep-1" not in b.data  # deployment and refs travel encrypted


@pytest.mark.parametrize("where", ["header", "ciphertext", "tail"])
def test_tampered_bundle_is_refused(keys, where: str) -> None:  # type: ignore[no-untyped-def]
    b = build_bundle(_content(), keys["sk"], {"dev-a": keys["a"].public_key()})
    data = bytearray(b.data)
    pos = {"header": 30, "ciphertext": len(data) // 2, "tail": len(data) - 1}[where]
    data[pos] ^= 0x01
    with pytest.raises(WatchlistError) as err:
        open_bundle(bytes(data), "dev-a", keys["a"], _finder(keys))
    assert err.value.reason in {"tampered", "malformed", "undecryptable"}


def test_truncated_and_garbage_are_refused(keys) -> None:  # type: ignore[no-untyped-def]
    b = build_bundle(_content(), keys["sk"], {"dev-a": keys["a"].public_key()})
    for data in (b.data[:-10], b.data[:20], b"", b"hello world" * 10):
        with pytest.raises(WatchlistError):
            open_bundle(data, "dev-a", keys["a"], _finder(keys))


NASTY_HEADERS = [
    b"[" * 60_000,  # json raises RecursionError on this
    b'{"format":' + b"1" * 5000 + b"}",  # json raises ValueError (> 4300 digits)
    b'{"format":NaN,"recipients":[]}',
    b'{"format":1,"recipients":[{"device":"a","key_id":"b","key_box":"","x":1e400}]}',
    b'{"format":1,"format":1,"recipients":[]}',
    b'{"format":1,"recipients":[{"device":"\\ud800","key_id":"b","key_box":""}]}',
    b"\xff\xfe",
    # Exact objects: no key beyond the format's, in the header or in a recipient entry.
    b'{"format":1,"recipients":[{"device":"dev-a","key_id":"'
    + b"a" * 64
    + b'","key_box":""}],"z":1}',
    b'{"format":1,"recipients":[{"device":"dev-a","key_id":"'
    + b"a" * 64
    + b'","key_box":"","z":1}]}',
    b'{"format":1,"recipients":[{"device":"Dev A","key_id":"' + b"a" * 64 + b'","key_box":""}]}',
    b'{"format":1,"recipients":[{"device":"dev-a","key_id":"not hex","key_box":""}]}',
]


@pytest.mark.parametrize("header", NASTY_HEADERS)
def test_hostile_sealed_header_is_refused_cleanly(keys, header: bytes) -> None:  # type: ignore[no-untyped-def]
    data = SEALED_MAGIC + struct.pack(">I", len(header)) + header + bytes(64)
    with pytest.raises(WatchlistError) as err:
        read_sealed_header(data)
    assert err.value.reason == "malformed"
    with pytest.raises(WatchlistError):
        open_bundle(data, "dev-a", keys["a"], _finder(keys))


def _inner(body: dict[str, object], emb: bytes, sk: Ed25519PrivateKey) -> bytearray:
    envelope = sign_document(WATCHLIST_PAYLOAD_TYPE, body, sk)
    return bytearray(INNER_MAGIC + struct.pack(">I", len(envelope)) + envelope + emb)


@pytest.mark.parametrize("deployment", ["Dep-1", "dep:1", "-dep", "d" * 64, ""])
def test_deployment_that_cannot_be_activated_is_refused(keys, deployment: str) -> None:  # type: ignore[no-untyped-def]
    # The same names as activations accept: anything else could never be activated.
    assert not re.fullmatch(NAME_PATTERN, deployment)
    c = _content()
    bad = WatchlistContent(
        deployment, c.devices, c.created_at, c.expires_at, c.model_id, c.model_sha256,
        c.refs, c.embeddings,
    )  # fmt: skip
    with pytest.raises(WatchlistError, match="deployment id") as err:
        build_bundle(bad, keys["sk"], {"dev-a": keys["a"].public_key()})
    assert err.value.reason == "bad-field"
    # A bundle signed by a trusted key with such a name (another hub version) is refused too.
    emb = np.ascontiguousarray(c.embeddings, dtype="<f2").tobytes()
    body = {
        "format": 1, "deployment_id": deployment, "devices": ["dev-a"],
        "created_at": c.created_at, "expires_at": c.expires_at,
        "model": {"id": c.model_id, "sha256": MODEL_SHA}, "count": 5, "dim": 128,
        "dtype": "<f2", "embeddings_sha256": hashlib.sha256(emb).hexdigest(), "refs": list(c.refs),
    }  # fmt: skip
    with pytest.raises(WatchlistError, match="deployment_id") as err:
        verify_inner(_inner(body, emb, keys["sk"]), _finder(keys))
    assert err.value.reason == "malformed"
    body["deployment_id"] = "dep-1"
    assert verify_inner(_inner(body, emb, keys["sk"]), _finder(keys)).deployment_id == "dep-1"


@pytest.mark.parametrize("deployment", ["dep-1", "a", "op.2026_11-x", "d" * 63])
def test_every_activatable_deployment_can_have_a_watchlist(keys, deployment: str) -> None:  # type: ignore[no-untyped-def]
    c = _content()
    ok = WatchlistContent(
        deployment, c.devices, c.created_at, c.expires_at, c.model_id, c.model_sha256,
        c.refs, c.embeddings,
    )  # fmt: skip
    b = build_bundle(ok, keys["sk"], {"dev-a": keys["a"].public_key()})
    assert open_bundle(b.data, "dev-a", keys["a"], _finder(keys)).deployment_id == deployment
    # ...and an activation body naming it passes the field checks.
    body = {
        "device_id": "dev-a", "deployment_id": deployment, "sequence": 1, "issued_at": 1,
        "signer_certificate": "AA==", "revocations": "AA==", "not_before": 1, "not_after": 2,
        "lease_s": 1, "watchlist_sha256": b.watchlist_hash, "threshold": 0.5, "officer": "x",
    }  # fmt: skip
    assert parse_body("activation", body).deployment_id == deployment


def test_signed_by_untrusted_key_is_refused(keys) -> None:  # type: ignore[no-untyped-def]
    rogue = Ed25519PrivateKey.generate()
    b = build_bundle(_content(), rogue, {"dev-a": keys["a"].public_key()})
    with pytest.raises(WatchlistError, match="no signature by a trusted key") as err:
        open_bundle(b.data, "dev-a", keys["a"], _finder(keys))
    assert err.value.reason == "bad-signature"


def test_wrong_device_is_refused(keys) -> None:  # type: ignore[no-untyped-def]
    b = build_bundle(_content(), keys["sk"], {"dev-a": keys["a"].public_key()})
    with pytest.raises(WatchlistError, match="not for this device dev-b") as err:
        open_bundle(b.data, "dev-b", keys["b"], _finder(keys))
    assert err.value.reason == "wrong-device"
    # Right name, other key (device keys regenerated since enrolment).
    with pytest.raises(WatchlistError, match="another X25519 key"):
        open_bundle(b.data, "dev-a", keys["b"], _finder(keys))


def test_wrong_model_names_both_models(keys) -> None:  # type: ignore[no-untyped-def]
    b = build_bundle(_content(), keys["sk"], {"dev-a": keys["a"].public_key()})
    o = open_bundle(b.data, "dev-a", keys["a"], _finder(keys))
    with pytest.raises(WatchlistError, match="made with model sface@abab.*runs other@cdcd"):
        check_model(o, "other@cdcd", "cd" * 32)
    check_model(o, "sface@abab", MODEL_SHA)


def test_bad_content_is_refused_at_build(keys) -> None:  # type: ignore[no-untyped-def]
    c = _content()
    for bad in (
        WatchlistContent(
            "dep 1",
            c.devices,
            c.created_at,
            c.expires_at,
            c.model_id,
            c.model_sha256,
            c.refs,
            c.embeddings,
        ),
        WatchlistContent(
            c.deployment_id,
            c.devices,
            c.created_at,
            c.created_at,
            c.model_id,
            c.model_sha256,
            c.refs,
            c.embeddings,
        ),
        WatchlistContent(
            c.deployment_id,
            c.devices,
            c.created_at,
            c.expires_at,
            c.model_id,
            c.model_sha256,
            ["Jane Doe"] * 5,
            c.embeddings,
        ),
        WatchlistContent(
            c.deployment_id,
            c.devices,
            c.created_at,
            c.expires_at,
            c.model_id,
            c.model_sha256,
            c.refs[:2],
            c.embeddings,
        ),
    ):
        with pytest.raises(WatchlistError):
            build_bundle(bad, keys["sk"], {"dev-a": keys["a"].public_key()})


def test_10k_entries_size_and_load_time(keys, capsys) -> None:  # type: ignore[no-untyped-def]
    """Benchmark: prints the figures; the size budget is a property, the time is reported."""
    c = _content(10_000)
    b = build_bundle(c, keys["sk"], {"dev-a": keys["a"].public_key()})
    assert b.size_bytes < 3_000_000
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        o = open_bundle(b.data, "dev-a", keys["a"], _finder(keys))
        g = Gallery(o.embeddings, o.refs)
        o.wipe()
        times.append(time.perf_counter() - t0)
        assert len(g) == 10_000
    with capsys.disabled():
        print(
            f"\nwatchlist 10k×128: {b.size_bytes} bytes, load (decrypt+verify+gallery) "
            f"best {min(times) * 1000:.1f} ms, worst {max(times) * 1000:.1f} ms"
        )

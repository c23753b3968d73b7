"""The sealed watchlist bundle: round trip, tampering, wrong device, size and load speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.matching.gallery import Gallery
from agent.matching.watchlist_bundle import (
    WatchlistContent,
    WatchlistError,
    build_bundle,
    check_model,
    new_entry_ref,
    open_bundle,
    read_sealed_header,
)
from agent.trust.signed_document import key_id

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

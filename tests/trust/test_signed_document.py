"""loads_untrusted: the one JSON parser for bytes from outside; only its own error escapes."""

from __future__ import annotations

import contextlib
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.trust.signed_document import (
    MAX_JSON_DEPTH,
    DocumentError,
    UntrustedJsonError,
    canonical_json,
    loads_untrusted,
    parse_envelope,
    sign_document,
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 200_000, "nested deeper"),  # json raises RecursionError
        (b'{"a":' * 100_000, "nested deeper"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        (b"7" * 5000, "number is out of range"),  # json raises ValueError (> 4300 digits)
        (b"[1e400]", "number is out of range"),
        (b"[-1e400]", "number is out of range"),
        (b"[NaN]", "NaN is not allowed"),
        (b"[Infinity]", "Infinity is not allowed"),
        (b"-Infinity", "-Infinity is not allowed"),
        (b'{"a":1,"a":2}', "key appears twice"),
        (b'{"o":{"k":1,"k":1}}', "key appears twice"),
        (b'"\\ud800"', "unpaired surrogate"),
        (b'{"\\udfff":1}', "unpaired surrogate"),
        (b"\xff", "not UTF-8"),
        (b"\xef\xbb\xbf{}", "not JSON"),
        (b"", "not JSON"),
        (b"{", "not JSON"),
    ],
)
def test_hostile_input_raises_only_untrusted_json_error(data: bytes, reason: str) -> None:
    with pytest.raises(UntrustedJsonError, match=reason):
        loads_untrusted(data)
    with pytest.raises(DocumentError, match="document:"):
        parse_envelope(data)


def test_plain_json_within_the_limits_parses() -> None:
    deep = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert loads_untrusted(deep) is not None
    assert loads_untrusted(b'{"a":[1,2.5,"\\ud83d\\ude00",null,true]}') == {
        "a": [1, 2.5, "\U0001f600", None, True]
    }
    assert loads_untrusted(b"9" * 4300) == int("9" * 4300)
    assert loads_untrusted("{}") == {}


def test_deep_nesting_is_refused_in_a_worker_thread_too() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loads_untrusted(b"[" * 200_000)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], UntrustedJsonError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256) | st.text(max_size=256).map(lambda t: t.encode("utf-8", "replace")))
def test_any_bytes_parse_or_raise_untrusted_json_error(data: bytes) -> None:
    with contextlib.suppress(UntrustedJsonError):
        loads_untrusted(data)


def _signed() -> dict[str, object]:
    key = Ed25519PrivateKey.generate()
    env = loads_untrusted(sign_document("application/vnd.lfr.test+json; v=1", {"a": 1}, key))
    assert isinstance(env, dict)
    return env


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(z="x"), "unknown envelope field 'z'"),
        (lambda e: e.pop("payload"), "envelope field 'payload' missing"),
        (
            lambda e: e["signatures"][0].update(z="x"),
            r"signatures\[0\]: unknown signature field 'z'",
        ),
        (lambda e: e["signatures"][0].pop("sig"), "signature field 'sig' missing"),
        (lambda e: e["signatures"][0].update(keyid="A" * 64), "not 64 lower-case hex"),
        (lambda e: e.update(signatures=e["signatures"] * 9), "more than 8 signatures"),
        (lambda e: e.update(payload=e["payload"] + "\n"), "not valid base64|not in canonical"),
    ],
)
def test_every_envelope_object_holds_exactly_its_keys(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    """Nothing outside the signed bytes may be added to or removed from an envelope: a
    document that verifies has exactly one spelling of its signatures and payload."""
    env = _signed()
    parse_envelope(canonical_json(env))
    change(env)
    with pytest.raises(DocumentError, match=reason):
        parse_envelope(canonical_json(env))

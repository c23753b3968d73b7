"""loads_untrusted: the one JSON parser for bytes from outside; only its own error escapes."""

from __future__ import annotations

import contextlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.trust.signed_document import (
    MAX_JSON_DEPTH,
    DocumentError,
    UntrustedJsonError,
    loads_untrusted,
    parse_envelope,
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

"""The one signed-document format every signed message uses.

A document is a JSON envelope modelled on DSSE (the "Dead Simple Signing
Envelope" of in-toto/sigstore)::

    {"payloadType": "application/vnd.lfr.activation+json; v=1",
     "payload": "<base64 of the body bytes>",
     "signatures": [{"keyid": "<hex sha-256 of the raw public key>", "sig": "<base64>"}]}

The signature covers the pre-authentication encoding (PAE) of the payload
type and the *exact body bytes received*:

    PAE = b"DSSEv1" SP len(type) SP type SP len(body) SP body      (lengths in ASCII decimal)

so a verifier never re-serialises anything and no two different documents
share signed bytes. Producers write bodies as canonical JSON (sorted keys,
no insignificant white space, UTF-8) so that the same content always gives
the same bytes, which makes hashes of documents stable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.errors import CheckFailed

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# No format of ours nests deeper than a few levels; the limit keeps every later
# walk over a parsed value (re-serialising, field checks) far from recursion limits.
MAX_JSON_DEPTH = 32


class DocumentError(CheckFailed):
    """A signed document is malformed, of the wrong type, or its signature does not verify."""


class UntrustedJsonError(ValueError):
    """Bytes from outside are not one plain JSON value this agent accepts.

    ``str(err)`` is a short reason (no quoted content) for the caller to prefix
    with what was being read and re-raise as its own error type.
    """


def _refuse_constant(name: str) -> Any:
    raise UntrustedJsonError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJsonError("a number is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Two readers could each take a different one of the duplicates.
        raise UntrustedJsonError("a key appears twice in one object")
    return obj


def _check_plain(value: Any) -> None:
    """Bound the nesting depth and refuse strings that cannot be written back as UTF-8."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # a lone surrogate escape (\ud800) raises here
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise UntrustedJsonError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def loads_untrusted(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON that came from outside; only ``UntrustedJsonError`` escapes.

    Refused, beyond syntax errors: text that is not UTF-8, NaN and Infinity
    literals, numbers that overflow (a float beyond its range, an integer with
    more digits than Python converts), duplicate keys, nesting deeper than
    ``MAX_JSON_DEPTH`` (``json`` itself raises RecursionError far deeper), and
    strings holding lone surrogates (they cannot be re-encoded as UTF-8).
    """
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
        _check_plain(value)
    except UntrustedJsonError:
        raise
    except UnicodeEncodeError as exc:
        raise UntrustedJsonError("a string holds an unpaired surrogate") from exc
    except UnicodeDecodeError as exc:
        raise UntrustedJsonError("not JSON (not UTF-8 text)") from exc
    except json.JSONDecodeError as exc:
        raise UntrustedJsonError(f"not JSON ({exc.msg} at character {exc.pos})") from exc
    except RecursionError as exc:
        raise UntrustedJsonError(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        # int() refuses integers longer than sys.get_int_max_str_digits() (4300).
        raise UntrustedJsonError("a number is out of range") from exc
    return value


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as canonical JSON: sorted keys, compact, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding of a payload type and body."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def raw_public_bytes(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | X25519PublicKey) -> str:
    """Stable identifier of a public key: hex SHA-256 of its 32 raw bytes."""
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise DocumentError(f"{what}: expected a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise DocumentError(f"{what}: not valid base64") from exc


@dataclass(frozen=True)
class OpenedDocument:
    """A document whose signature verified: its type, body bytes, parsed body and signer."""

    payload_type: str
    body_bytes: bytes
    body: dict[str, Any]
    signer_key_id: str
    envelope_sha256: str


def sign_document(
    payload_type: str, body: Mapping[str, Any], signing_key: Ed25519PrivateKey
) -> bytes:
    """Serialise ``body`` canonically, sign it and return the envelope bytes."""
    body_bytes = canonical_json(dict(body))
    sig = signing_key.sign(pae(payload_type, body_bytes))
    envelope = {
        "payloadType": payload_type,
        "payload": b64e(body_bytes),
        "signatures": [{"keyid": key_id(signing_key.public_key()), "sig": b64e(sig)}],
    }
    return canonical_json(envelope)


#: The envelope's objects, exactly: any other key is refused, so nothing outside the
#: signed bytes can be added to a document without changing what it is.
ENVELOPE_KEYS = frozenset({"payloadType", "payload", "signatures"})
SIGNATURE_KEYS = frozenset({"keyid", "sig"})
#: More signatures than any document of ours carries; bounds the work of a verifier.
MAX_SIGNATURES = 8
_KEYID_CHARS = frozenset("0123456789abcdef")
_ED25519_SIG_BYTES = 64


def _canonical_b64(text: object, what: str) -> bytes:
    """Decode base64 that must be the one standard encoding of its bytes (padding
    present, unused low bits zero): two spellings of one signature would be two
    envelopes with the same signed content."""
    data = b64d(text, what)
    if b64e(data) != text:
        raise DocumentError(f"{what}: base64 is not in canonical form")
    return data


def _exact_keys(obj: dict[str, Any], keys: frozenset[str], what: str, kind: str) -> None:
    extra = sorted(set(obj) - keys)
    if extra:
        raise DocumentError(f"{what}: unknown {kind} field {extra[0][:40]!r}")
    missing = sorted(keys - set(obj))
    if missing:
        raise DocumentError(f"{what}: {kind} field {missing[0]!r} missing")


def parse_envelope(data: bytes) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """Split envelope bytes into (type, body bytes, [(keyid, sig)]) without verifying.

    Strict: the envelope and each signature object hold exactly their keys, key ids are
    64 lower-case hex digits, signatures 64 bytes, and base64 is canonical.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"document: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        env = loads_untrusted(data)
    except UntrustedJsonError as exc:
        raise DocumentError(f"document: {exc}") from exc
    if not isinstance(env, dict):
        raise DocumentError("document: envelope is not a JSON object")
    _exact_keys(env, ENVELOPE_KEYS, "document", "envelope")
    ptype = env["payloadType"]
    if not isinstance(ptype, str) or not ptype:
        raise DocumentError("document: payloadType missing")
    body = _canonical_b64(env["payload"], "document.payload")
    sigs_raw = env["signatures"]
    if not isinstance(sigs_raw, list) or not sigs_raw:
        raise DocumentError("document: no signatures")
    if len(sigs_raw) > MAX_SIGNATURES:
        raise DocumentError(f"document: more than {MAX_SIGNATURES} signatures")
    sigs: list[tuple[str, bytes]] = []
    for i, s in enumerate(sigs_raw):
        what = f"document.signatures[{i}]"
        if not isinstance(s, dict):
            raise DocumentError(f"{what}: not an object")
        _exact_keys(s, SIGNATURE_KEYS, what, "signature")
        kid = s["keyid"]
        if not isinstance(kid, str) or len(kid) != 64 or not set(kid) <= _KEYID_CHARS:
            raise DocumentError(f"{what}.keyid: not 64 lower-case hex digits")
        sig = _canonical_b64(s["sig"], f"{what}.sig")
        if len(sig) != _ED25519_SIG_BYTES:
            raise DocumentError(f"{what}.sig: not a {_ED25519_SIG_BYTES}-byte signature")
        sigs.append((kid, sig))
    return ptype, body, sigs


def open_document(
    data: bytes,
    expected_type: str,
    find_key: Callable[[str], Ed25519PublicKey | None],
) -> OpenedDocument:
    """Verify an envelope and return its body.

    ``find_key`` maps a key id to a trusted public key, or None when the key
    is not trusted for this document type. The first signature by a trusted
    key must verify; signatures by unknown keys are ignored.
    """
    ptype, body_bytes, sigs = parse_envelope(data)
    if ptype != expected_type:
        raise DocumentError(f"document: type is {ptype!r}, expected {expected_type!r}")
    for kid, sig in sigs:
        key = find_key(kid)
        if key is None:
            continue
        try:
            key.verify(sig, pae(ptype, body_bytes))
        except InvalidSignature as exc:
            raise DocumentError(f"signature: does not verify for key {kid[:16]}") from exc
        try:
            body = loads_untrusted(body_bytes)
        except UntrustedJsonError as exc:
            raise DocumentError(
                f"document.payload: signed body is not usable JSON ({exc})"
            ) from exc
        if not isinstance(body, dict):
            raise DocumentError("document.payload: signed body is not a JSON object")
        return OpenedDocument(ptype, body_bytes, body, kid, hashlib.sha256(data).hexdigest())
    raise DocumentError("signature: no signature by a trusted key")

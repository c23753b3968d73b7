"""Bodies that are not usable JSON, and correctly signed envelopes around them, for the
tests that every reader of signed documents refuses them in one line."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust.signed_document import b64e, canonical_json, key_id, pae

HOSTILE_BODIES = [
    b"[" * 200_000,  # json raises RecursionError on this
    b'{"a":' + b"9" * 5000 + b"}",  # beyond the integer digits Python converts
    b'{"a":1,"a":2}',  # duplicate key: which one counts?
    b"NaN",
    b"Infinity",
]


def signed_raw(payload_type: str, body: bytes) -> bytes:
    """An envelope correctly signed (by a throwaway key) over ``body`` as it is."""
    k = Ed25519PrivateKey.generate()
    sig = {"keyid": key_id(k.public_key()), "sig": b64e(k.sign(pae(payload_type, body)))}
    return canonical_json({"payloadType": payload_type, "payload": b64e(body), "signatures": [sig]})

"""Encryption to an X25519 public key (the HPKE base-mode pattern, fixed suite).

    enc      = ephemeral X25519 public key (32 bytes, fresh per message)
    shared   = X25519(ephemeral private, recipient public)
    key      = HKDF-SHA256(ikm=shared, salt=enc || recipient public, info=info, length=32)
    ct       = ChaCha20-Poly1305(key, nonce=12 zero bytes, plaintext, aad)
    box      = enc || ct

A zero nonce is safe because every key is used for exactly one message. The
``info`` string separates uses (alerts, watchlists) so a box made for one can
never be opened as the other; ``aad`` binds a header that travels in clear.
The sender keeps no secret that opens the box: only the recipient can.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import CheckFailed
from agent.trust.signed_document import raw_public_bytes

ENC_LEN = 32
TAG_LEN = 16
NONCE = b"\x00" * 12


class SealedBoxError(CheckFailed):
    """A sealed box is malformed or was not made for this key, info and header."""


def _key(shared: bytes, enc: bytes, recipient: X25519PublicKey, info: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=enc + raw_public_bytes(recipient), info=info
    ).derive(shared)


def seal(recipient: X25519PublicKey, plaintext: bytes, aad: bytes, info: bytes) -> bytes:
    eph = X25519PrivateKey.generate()
    enc = raw_public_bytes(eph.public_key())
    key = _key(eph.exchange(recipient), enc, recipient, info)
    return enc + ChaCha20Poly1305(key).encrypt(NONCE, plaintext, aad)


def open_box(recipient: X25519PrivateKey, box: bytes, aad: bytes, info: bytes) -> bytes:
    if len(box) < ENC_LEN + TAG_LEN:
        raise SealedBoxError("sealed box: too short")
    enc, ct = box[:ENC_LEN], box[ENC_LEN:]
    try:
        shared = recipient.exchange(X25519PublicKey.from_public_bytes(enc))
    except ValueError as exc:  # all-zero shared secret from a low-order point
        raise SealedBoxError("sealed box: invalid ephemeral key") from exc
    key = _key(shared, enc, recipient.public_key(), info)
    try:
        return ChaCha20Poly1305(key).decrypt(NONCE, ct, aad)
    except InvalidTag as exc:
        raise SealedBoxError(
            "sealed box: does not decrypt (wrong key, header or tampered)"
        ) from exc

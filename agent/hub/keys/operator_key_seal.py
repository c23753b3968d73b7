"""An operator's Ed25519 private key sealed under that operator's passphrase.

The file ``operators/NAME-key.sealed`` holds the 32 private key bytes sealed by
``passphrase_seal`` with the operator's name and key id as associated data: a file
renamed to another operator, or left over from an older key of the same operator,
does not open. Only the operator's passphrase opens it; the hub keeps nothing that
does.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.hub.keys.passphrase_seal import KdfCost, SealError, seal, unseal


def _associated(name: str, key_id: str) -> bytes:
    return b"\0".join((b"lfr operator key", name.encode("utf-8"), key_id.encode("ascii")))


def seal_operator_key(
    key: Ed25519PrivateKey,
    name: str,
    key_id: str,
    passphrase: str,
    cost: KdfCost | None = None,
) -> bytes:
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return seal(raw, passphrase, _associated(name, key_id), cost)


def unseal_operator_key(
    sealed: bytes, name: str, key_id: str, passphrase: str
) -> Ed25519PrivateKey:
    """The key; SealError if the passphrase is wrong or the file is not this key's."""
    raw = unseal(sealed, passphrase, _associated(name, key_id))
    if len(raw) != 32:
        raise SealError("damaged")
    return Ed25519PrivateKey.from_private_bytes(raw)

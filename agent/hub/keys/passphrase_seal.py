"""Sealing a secret under a passphrase: Argon2id derives the key, AES-256-GCM encrypts.

A sealed secret is one canonical JSON object::

    {"format": "lfr-passphrase-sealed", "version": 1,
     "kdf": {"name": "argon2id", "memory_kib": M, "time_cost": T, "parallelism": P,
             "salt": B64},
     "aead": "aes-256-gcm", "nonce": B64, "ciphertext": B64}

The caller's ``associated`` bytes (who the secret belongs to) are authenticated but not
stored: a sealed secret copied to another owner does not open. The cost it was sealed
with travels inside it, so a later change of the default still opens older ones.

The default cost (64 MiB, 3 passes) makes each passphrase guess cost a thief that much
memory and time. Test rigs may lower it for what they seal with
``LFR_TEST_KDF_COST=MEMORY_KIB:TIME_COST`` (never set it on a hub).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.errors import LfrError
from agent.trust.signed_document import canonical_json

SEAL_FORMAT = "lfr-passphrase-sealed"
SEAL_VERSION = 1
TEST_COST_ENV = "LFR_TEST_KDF_COST"
MIN_PASSPHRASE = 12
_SALT_BYTES = 16
_NONCE_BYTES = 12
_KEY_BYTES = 32
# Bounds on a cost read from a sealed secret: a damaged one must not make the hub
# allocate gigabytes or spin for minutes before it says "damaged".
_MIN_MEMORY_KIB, _MAX_MEMORY_KIB = 1024, 4 * 1024 * 1024
_MAX_TIME_COST, _MAX_PARALLELISM = 64, 16


class SealError(LfrError):
    """A sealed secret does not open: wrong passphrase, another owner's, or damaged."""

    exit_code = 2


@dataclass(frozen=True)
class KdfCost:
    memory_kib: int
    time_cost: int
    parallelism: int

    def problem(self) -> str | None:
        if not _MIN_MEMORY_KIB <= self.memory_kib <= _MAX_MEMORY_KIB:
            return f"memory {self.memory_kib} KiB outside {_MIN_MEMORY_KIB}–{_MAX_MEMORY_KIB}"
        if not 1 <= self.time_cost <= _MAX_TIME_COST:
            return f"time cost {self.time_cost} outside 1–{_MAX_TIME_COST}"
        if not 1 <= self.parallelism <= _MAX_PARALLELISM:
            return f"parallelism {self.parallelism} outside 1–{_MAX_PARALLELISM}"
        return None


HUB_COST = KdfCost(memory_kib=64 * 1024, time_cost=3, parallelism=4)


def sealing_cost() -> KdfCost:
    """The cost new seals use: the hub default, or a test rig's ``LFR_TEST_KDF_COST``."""
    given = os.environ.get(TEST_COST_ENV, "").strip()
    if not given:
        return HUB_COST
    try:
        memory, time_cost = (int(part) for part in given.split(":"))
    except ValueError as exc:
        raise SealError(f"{TEST_COST_ENV}={given!r}: want MEMORY_KIB:TIME_COST") from exc
    cost = KdfCost(memory, time_cost, 1)
    if (problem := cost.problem()) is not None:
        raise SealError(f"{TEST_COST_ENV}={given!r}: {problem}")
    return cost


def passphrase_problem(passphrase: str) -> str | None:
    """Why ``passphrase`` may not seal anything, or None."""
    if len(passphrase) < MIN_PASSPHRASE:
        return f"at least {MIN_PASSPHRASE} characters"
    if not passphrase.isprintable():
        return "printable characters only"
    return None


def _derive(passphrase: str, salt: bytes, cost: KdfCost) -> bytes:
    try:
        return hash_secret_raw(
            passphrase.encode("utf-8"),
            salt,
            time_cost=cost.time_cost,
            memory_cost=cost.memory_kib,
            parallelism=cost.parallelism,
            hash_len=_KEY_BYTES,
            type=Type.ID,
        )
    except HashingError as exc:
        raise SealError(f"key derivation failed ({exc})") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal(secret: bytes, passphrase: str, associated: bytes, cost: KdfCost | None = None) -> bytes:
    """``secret`` sealed under ``passphrase``, bound to ``associated``."""
    cost = cost or sealing_cost()
    salt, nonce = secrets.token_bytes(_SALT_BYTES), secrets.token_bytes(_NONCE_BYTES)
    key = _derive(passphrase, salt, cost)
    ciphertext = AESGCM(key).encrypt(nonce, secret, associated)
    return canonical_json(
        {
            "format": SEAL_FORMAT,
            "version": SEAL_VERSION,
            "kdf": {
                "name": "argon2id",
                "memory_kib": cost.memory_kib,
                "time_cost": cost.time_cost,
                "parallelism": cost.parallelism,
                "salt": _b64(salt),
            },
            "aead": "aes-256-gcm",
            "nonce": _b64(nonce),
            "ciphertext": _b64(ciphertext),
        }
    )


def is_sealed(data: bytes | str) -> bool:
    """Whether ``data`` looks like a sealed secret (by its format, not its content)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text.lstrip().startswith("{") and SEAL_FORMAT in text


def unseal(sealed: bytes | str, passphrase: str, associated: bytes) -> bytes:
    """The secret; SealError (one line, no detail on which) if the passphrase is wrong,
    the secret belongs to another owner, or it is damaged."""
    fields = _parse(sealed)
    if fields is None:
        raise SealError("damaged")
    salt, nonce, ciphertext, cost = fields
    key = _derive(passphrase, salt, cost)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated)
    except InvalidTag as exc:
        raise SealError("wrong passphrase or damaged") from exc


def _parse(sealed: bytes | str) -> tuple[bytes, bytes, bytes, KdfCost] | None:
    try:
        doc: Any = json.loads(sealed)
        kdf = doc["kdf"]
        if (
            doc["format"] != SEAL_FORMAT
            or doc["version"] != SEAL_VERSION
            or doc["aead"] != "aes-256-gcm"
            or kdf["name"] != "argon2id"
        ):
            return None
        cost = KdfCost(int(kdf["memory_kib"]), int(kdf["time_cost"]), int(kdf["parallelism"]))
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error):
        return None
    if cost.problem() is not None or len(salt) != _SALT_BYTES or len(nonce) != _NONCE_BYTES:
        return None
    return salt, nonce, ciphertext, cost

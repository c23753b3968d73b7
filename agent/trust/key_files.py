"""Reading and writing key files.

Private keys are PKCS#8 PEM, unencrypted (the file mode 0600 and the service
user protect them), written atomically. Public keys are SubjectPublicKeyInfo
PEM. Errors name the file.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.durable_files import write_atomic
from agent.errors import LfrError

PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey
K = TypeVar("K")

__all__ = [
    "KeyFileError",
    "load_private_key",
    "load_public_key",
    "write_atomic",
    "write_private_key",
    "write_public_key",
]


class KeyFileError(LfrError):
    """A key file is missing, unreadable, of the wrong kind, or too widely readable."""

    exit_code = 2


def write_private_key(path: Path, key: PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, 0o600)


def write_public_key(path: Path, key: PublicKey) -> None:
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_atomic(path, pem, 0o644)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"key: {path}: file not found") from exc
    except PermissionError as exc:
        raise KeyFileError(f"key: {path}: permission denied") from exc
    except IsADirectoryError as exc:
        raise KeyFileError(f"key: {path}: is a directory") from exc


def load_private_key(path: Path, kind: type[K], check_mode: bool = True) -> K:
    """Load a private key of ``kind``; refuse a file that group or others can read."""
    data = _read(path)
    if check_mode:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(f"key: {path}: mode {mode:04o} is too open (want 0600)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"key: {path}: not a PEM private key") from exc
    if not isinstance(key, kind):
        raise KeyFileError(
            f"key: {path}: is not an {kind.__name__.removesuffix('PrivateKey')} private key"
        )
    return key


def load_public_key(path: Path, kind: type[K]) -> K:
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"key: {path}: not a PEM public key") from exc
    if not isinstance(key, kind):
        raise KeyFileError(
            f"key: {path}: is not an {kind.__name__.removesuffix('PublicKey')} public key"
        )
    return key

"""The device's own keys, generated on the device and never leaving it.

keys_dir/device-ed25519-key.pem   signing key (alerts, audit checkpoints)   0600
keys_dir/device-ed25519-pub.pem   its public half, sent to the hub at enrolment
keys_dir/device-x25519-key.pem    key-agreement key (watchlists are sealed to it)  0600
keys_dir/device-x25519-pub.pem    its public half, sent to the hub at enrolment

The four files are one set. Generating them is marked by ``.device-keys-incomplete``
(written first, removed last): a power cut part-way through leaves the marker beside a
partial set that nothing has used yet (the enrolment request is made only after the set
is whole), and the next generation replaces that set instead of refusing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.durable_files import fsync_dir
from agent.trust.key_files import (
    KeyFileError,
    load_private_key,
    load_public_key,
    write_atomic,
    write_private_key,
    write_public_key,
)

SIGNING_KEY_FILE = "device-ed25519-key.pem"
SIGNING_PUB_FILE = "device-ed25519-pub.pem"
EXCHANGE_KEY_FILE = "device-x25519-key.pem"
EXCHANGE_PUB_FILE = "device-x25519-pub.pem"
KEY_FILES = (SIGNING_KEY_FILE, SIGNING_PUB_FILE, EXCHANGE_KEY_FILE, EXCHANGE_PUB_FILE)
INCOMPLETE_MARKER = ".device-keys-incomplete"


@dataclass(frozen=True)
class DeviceKeys:
    signing: Ed25519PrivateKey
    exchange: X25519PrivateKey

    @property
    def signing_public(self) -> Ed25519PublicKey:
        return self.signing.public_key()

    @property
    def exchange_public(self) -> X25519PublicKey:
        return self.exchange.public_key()


def generation_interrupted(keys_dir: Path) -> bool:
    """A key generation was cut short here: the key files present are an unused part-set."""
    return (keys_dir / INCOMPLETE_MARKER).exists()


def generate_device_keys(keys_dir: Path, overwrite: bool = False) -> DeviceKeys:
    """Create both key pairs in ``keys_dir`` (private files 0600). Refuses to replace keys,
    except the part-set an interrupted generation left (see the module docstring)."""
    marker = keys_dir / INCOMPLETE_MARKER
    if not overwrite and not marker.exists():
        for name in (SIGNING_KEY_FILE, EXCHANGE_KEY_FILE):
            if (keys_dir / name).exists():
                raise KeyFileError(f"key: {keys_dir / name}: already exists, not replaced")
    write_atomic(marker, b"device key generation in progress\n", 0o600)
    keys = DeviceKeys(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    write_private_key(keys_dir / SIGNING_KEY_FILE, keys.signing)
    write_public_key(keys_dir / SIGNING_PUB_FILE, keys.signing_public)
    write_private_key(keys_dir / EXCHANGE_KEY_FILE, keys.exchange)
    write_public_key(keys_dir / EXCHANGE_PUB_FILE, keys.exchange_public)
    marker.unlink()
    fsync_dir(keys_dir)
    return keys


def load_device_keys(keys_dir: Path) -> DeviceKeys:
    """Load both private keys; a file readable by group or others is refused."""
    return DeviceKeys(
        load_private_key(keys_dir / SIGNING_KEY_FILE, Ed25519PrivateKey),  # type: ignore[type-abstract]
        load_private_key(keys_dir / EXCHANGE_KEY_FILE, X25519PrivateKey),  # type: ignore[type-abstract]
    )


def load_device_signing_public(keys_dir: Path) -> Ed25519PublicKey:
    """The public signing key, enough to verify the audit log's checkpoints."""
    return load_public_key(keys_dir / SIGNING_PUB_FILE, Ed25519PublicKey)  # type: ignore[type-abstract]

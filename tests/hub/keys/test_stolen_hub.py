"""A stolen hub: with a copy of the hub's disk (key folder, database, config, PKI) and
no operator's passphrase, nothing a camera accepts can be made.

The thief's attack is one function run against three copies of the same hub:

- the hub as deployed (operator keys sealed, root key on offline media): nothing is
  accepted, and no operator key or TOTP secret appears in any copied byte;
- the same hub with its operator keys in clear, as an older hub kept them: the same
  attack is accepted (so this test fails if keys were stored in clear);
- the deployed hub with the root key left on its disk: the thief certifies a key of
  their own, which a camera accepts (why the root key must go offline).

Every document is judged by the camera's own verifier (agent.trust.activation_verifier,
as the daemon runs it) against the device trust files the hub exported.
"""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli.hub_commands.passphrase_args import PASSPHRASE_ENV
from agent.cli.hub_main import main as hub_main
from agent.errors import LfrError
from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.hub.keys.operator_keys import ROOT_KEY_FILE, HubKeyStore
from agent.hub.store.database import HubDatabase
from agent.trust.activation_token import TYPE_BY_KIND
from agent.trust.activation_verifier import (
    ActivationRejected,
    ActivationVerifier,
    LiveActivation,
)
from agent.trust.device_keys import generate_device_keys
from agent.trust.hub_trust_store import ROOT_PUBLIC_FILE, HubTrustStore
from agent.trust.key_certificates import issue_certificate
from agent.trust.key_files import write_private_key
from agent.trust.sequence_store import SequenceStore
from agent.trust.signed_document import sign_document
from agent.trust.system_clock import ManualClock, SystemClock
from hil.local_console_hub import PASSWORD, USERS, make_hub

pytestmark = pytest.mark.slow

DEVICE = "lfr-pole-07"
DEPLOYMENT = "dep-2026-117"
WATCHLIST = "5e" * 32
#: The hub's operators and their passphrases (what the thief does not have).
OPERATORS = {
    "ps1234": ("supervisor", "kettle orbit lantern 1871"),
    "pc5678": ("operator", "a quiet harbour at dusk"),
}
COMMON_PASSPHRASES = [
    "password",
    "password123",
    "passw0rd!",
    "123456789012",
    "qwertyuiop12",
    "letmein12345",
    "changeme1234",
    "welcome12345",
    "iloveyou1234",
    "supervisor",
    "supervisor12",
    "operator1234",
    "passphrase12",
    "correct horse battery staple",
    "lfr-hub-admin",
    "hub passphrase",
    "lfr hub passphrase",
]


@dataclass
class Hub:
    disk: Path  # everything a thief walks away with
    offline: Path  # the root key's offline media
    camera_keys: Path
    camera_state: Path

    @property
    def keys(self) -> Path:
        return self.disk / "hub-keys"


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    disk = tmp_path / "hub-disk"
    setup = make_hub(disk)  # console PKI, audit key, config, database, one user per role
    first, *others = OPERATORS
    store = HubKeyStore.init(
        disk / "hub-keys", first, OPERATORS[first][0], passphrase=OPERATORS[first][1]
    )
    for name in others:
        role, passphrase = OPERATORS[name]
        store.add_operator(name, role, 365, store.load_root_key(), passphrase)
    # As docs/operator.md says: after init, the root key goes to offline media.
    offline = tmp_path / "offline-media"
    offline.mkdir()
    shutil.move(disk / "hub-keys" / ROOT_KEY_FILE, offline / ROOT_KEY_FILE)
    camera_keys = tmp_path / "camera" / "keys"
    store.export_device_trust(camera_keys)
    generate_device_keys(camera_keys)
    # A deployment the hub ran: its sequence and its receipts are on the disk too.
    genuine = ActivationIssuer(store, first, OPERATORS[first][1]).activation(
        DEVICE, DEPLOYMENT, 4 * 3600, 600, WATCHLIST, 0.6, "PS 1234"
    )
    (disk / "sent-activation.json").write_bytes(genuine)
    assert setup.config.is_file() and setup.db_path.is_file()
    return Hub(disk, offline, camera_keys, tmp_path / "camera" / "state")


def _verifier(hub: Hub) -> ActivationVerifier:
    """The camera's verifier, as the daemon builds it, on the camera's trust files."""
    return ActivationVerifier(
        DEVICE,
        HubTrustStore.load(hub.camera_keys),
        SequenceStore.in_state_dir(hub.camera_state),
        ManualClock(wall=SystemClock().wall()),
        max_duration_s=12 * 3600,
        tolerance_s=120.0,
        require_clock_sync=True,
        threshold_floor=0.4,
    )


def _live(hub: Hub) -> LiveActivation:
    """The camera running the hub's genuine deployment (a renewal or stop needs one)."""
    verified = _verifier(hub).verify(
        (hub.disk / "sent-activation.json").read_bytes(),
        loaded_watchlist_sha256=WATCHLIST,
        commit=False,
    )
    assert verified.live is not None
    return verified.live


def accepted_by_the_camera(hub: Hub, documents: list[tuple[str, str, bytes]]) -> set[str]:
    """The kinds among ``documents`` (kind, how made, bytes) the camera accepts."""
    live, accepted = _live(hub), set()
    for kind, _how, data in documents:
        try:
            _verifier(hub).verify(
                data,
                live=None if kind == "activation" else live,
                loaded_watchlist_sha256=WATCHLIST,
                commit=False,
            )
        except ActivationRejected:
            continue
        accepted.add(kind)
    return accepted


# -- the thief ----------------------------------------------------------------------
def _guesses(disk: Path) -> list[str]:
    names = [
        p.name.removesuffix(".cert.json")
        for p in (disk / "hub-keys" / "operators").glob("*.cert.json")
    ]
    words = names + list(USERS)
    return COMMON_PASSPHRASES + [
        guess
        for w in words
        for guess in (w, w * 2, f"{w}123456789", f"{w} passphrase", w.upper() + "!2026")
    ]


def _pem_keys(data: bytes) -> list[Ed25519PrivateKey]:
    """Every unencrypted Ed25519 private key in PEM form anywhere in ``data``."""
    found = []
    for block in re.findall(
        rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", data, re.S
    ):
        try:
            key = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(key, Ed25519PrivateKey):
            found.append(key)
    return found


def _forge(kind: str, key: Ed25519PrivateKey, cert: bytes, revocations: bytes) -> bytes:
    """A document as the hub's issuer writes it, signed with whatever key the thief has."""
    now = int(SystemClock().wall())
    body: dict[str, Any] = {
        "device_id": DEVICE,
        "deployment_id": DEPLOYMENT,
        "issued_at": now,
        "signer_certificate": base64.b64encode(cert).decode("ascii"),
        "revocations": base64.b64encode(revocations).decode("ascii"),
        "sequence": 1_000_000,  # any number above the camera's last
    }
    if kind == "activation":
        body |= {
            "not_before": now,
            "not_after": now + 3600,
            "lease_s": 600,
            "watchlist_sha256": WATCHLIST,
            "officer": "X",
            "threshold": 0.6,
        }
    elif kind == "renewal":
        body["lease_s"] = 600
    else:
        body["reason"] = "x"
    return sign_document(TYPE_BY_KIND[kind], body, key)


def steal(
    disk: Path, monkeypatch: pytest.MonkeyPatch, work: Path, known: tuple[str, ...] = ()
) -> list[tuple[str, str, bytes]]:
    """Everything the thief makes from ``disk`` without any operator's passphrase (or
    with the ``known`` ones, to show the attack works when it has one)."""
    made: list[tuple[str, str, bytes]] = []
    keys = disk / "hub-keys"
    store = HubKeyStore.open(keys)
    names = [c.subject for c in store.operators()]
    # 1. The hub's own tools, with no passphrase and then with every guess.
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    for guess in [None, *_guesses(disk), *known]:
        if guess is not None:
            monkeypatch.setenv(PASSPHRASE_ENV, guess)
        for name in names:
            try:
                issuer = ActivationIssuer(store, name, guess or "")
            except LfrError:
                pass
            else:
                made += [
                    (
                        "activation",
                        "api",
                        issuer.activation(DEVICE, DEPLOYMENT, 3600, 600, WATCHLIST, 0.6, "X"),
                    ),
                    ("renewal", "api", issuer.renewal(DEVICE, DEPLOYMENT, 600)),
                    ("stop", "api", issuer.stop(DEVICE, DEPLOYMENT, "x")),
                ]
            for kind, extra in (
                (
                    "activate",
                    [
                        "--duration",
                        "1h",
                        "--lease",
                        "10m",
                        "--watchlist",
                        WATCHLIST,
                        "--threshold",
                        "0.6",
                        "--officer",
                        "X",
                    ],
                ),
                ("renew", ["--lease", "10m"]),
                ("stop", ["--reason", "x"]),
            ):
                out = work / f"{kind}.json"
                out.unlink(missing_ok=True)
                hub_main(
                    [
                        kind,
                        "--hub-dir",
                        str(keys),
                        "--operator",
                        name,
                        "--device",
                        DEVICE,
                        "--deployment",
                        DEPLOYMENT,
                        "--out",
                        str(out),
                        *extra,
                    ]
                )
                if out.exists():
                    made.append(
                        (
                            {"activate": "activation", "renew": "renewal"}.get(kind, kind),
                            "cli",
                            out.read_bytes(),
                        )
                    )
    # 2. Every private key anywhere on the disk, under every certificate on it; and if
    #    one of them is the root key, a key of the thief's own, certified by it.
    certs = [p.read_bytes() for p in disk.rglob("*.cert.json")]
    revocations = (keys / "hub-revocations.json").read_bytes()
    root_public = serialization.load_pem_public_key((keys / ROOT_PUBLIC_FILE).read_bytes())
    for path in (p for p in disk.rglob("*") if p.is_file()):
        for key in _pem_keys(path.read_bytes()):
            signers = [(key, cert) for cert in certs]
            if key.public_key() == root_public:
                own = Ed25519PrivateKey.generate()
                now = int(SystemClock().wall())
                cert = issue_certificate(
                    key, "thief", "supervisor", own.public_key(), now - 60, now + 86400, now
                )
                signers.append((own, cert))
            for signer, cert in signers:
                made += [
                    (k, f"key in {path.name}", _forge(k, signer, cert, revocations))
                    for k in ("activation", "renewal", "stop")
                ]
    return made


# -- what the disk holds ------------------------------------------------------------
def _secrets_held(disk: Path, secrets: list[bytes]) -> list[str]:
    """Files of ``disk`` holding any of ``secrets``: raw, in hex, in base32/64, or inside
    a base64 (PEM) block."""
    forms = [
        form
        for s in secrets
        for form in (s, s.hex().encode(), base64.b64encode(s), base64.b32encode(s).rstrip(b"="))
    ]
    held = []
    for path in (p for p in disk.rglob("*") if p.is_file()):
        data = path.read_bytes()
        decoded = [
            base64.b64decode(b"".join(block.split()))
            for block in re.findall(rb"-----BEGIN [A-Z ]+-----(.+?)-----END", data, re.S)
        ]
        if any(f in blob for f in forms for blob in (data, *decoded)):
            held.append(str(path.relative_to(disk)))
    return held


def _operator_raw_keys(hub: Hub) -> list[bytes]:
    store = HubKeyStore.open(hub.keys)
    return [
        store.operator(name, passphrase)[0].private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        for name, (_, passphrase) in OPERATORS.items()
    ]


def _totp_secrets(hub: Hub) -> list[bytes]:
    db = HubDatabase(str(hub.disk / "hub.db"))
    try:
        accounts = ConsoleAccounts(db)
        return [base64.b32decode(accounts.totp_secret(name, PASSWORD)) for name in USERS]
    finally:
        db.close()


# -- the tests ----------------------------------------------------------------------
def test_a_stolen_hub_makes_nothing_a_camera_accepts(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _operator_raw_keys(hub) + _totp_secrets(hub)
    stolen = tmp_path / "stolen"
    shutil.copytree(hub.disk, stolen)
    assert {p.name for p in stolen.iterdir()} >= {"hub-keys", "hub.db", "hub.toml", "pki"}
    made = steal(stolen, monkeypatch, tmp_path)
    assert {how for _, how, _ in made} >= {"key in hub-watchlist-ed25519-key.pem"}  # it tried
    assert accepted_by_the_camera(hub, made) == set()
    assert _secrets_held(stolen, secrets) == []


def test_the_thief_s_tools_work_given_a_passphrase(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the hub's tools failed above for want of a passphrase, not for a wrong call."""
    stolen = tmp_path / "stolen"
    shutil.copytree(hub.disk, stolen)
    made = steal(stolen, monkeypatch, tmp_path, known=(OPERATORS["ps1234"][1],))
    for how in ("api", "cli"):
        got = [m for m in made if m[1] == how]
        assert accepted_by_the_camera(hub, got) == {"activation", "renewal", "stop"}, how


def test_the_same_theft_succeeds_when_operator_keys_are_in_clear(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the test above fails if the hub kept operator keys as an older one
    did (plaintext PEM)."""
    store = HubKeyStore.open(hub.keys)
    for name, (_, passphrase) in OPERATORS.items():
        write_private_key(
            hub.keys / "operators" / f"{name}-key.pem", store.operator(name, passphrase)[0]
        )
        (hub.keys / "operators" / f"{name}-key.sealed").unlink()
    secrets = [
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        for p in hub.keys.glob("operators/*-key.pem")
        for key in _pem_keys(p.read_bytes())
    ]
    stolen = tmp_path / "stolen"
    shutil.copytree(hub.disk, stolen)
    made = steal(stolen, monkeypatch, tmp_path)
    assert accepted_by_the_camera(hub, made) == {"activation", "renewal", "stop"}
    assert sorted(_secrets_held(stolen, secrets)) == [
        f"hub-keys/operators/{name}-key.pem" for name in sorted(OPERATORS)
    ]


def test_a_root_key_left_on_the_hub_is_enough_to_activate(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why docs/operator.md sends the root key to offline media: with it, a thief
    certifies a key of their own."""
    shutil.copy2(hub.offline / ROOT_KEY_FILE, hub.keys / ROOT_KEY_FILE)
    stolen = tmp_path / "stolen"
    shutil.copytree(hub.disk, stolen)
    made = steal(stolen, monkeypatch, tmp_path)
    accepted = accepted_by_the_camera(hub, [m for m in made if m[1] == f"key in {ROOT_KEY_FILE}"])
    assert accepted == {"activation", "renewal", "stop"}


def test_the_totp_codes_of_a_stolen_database_need_the_password(hub: Hub) -> None:
    """The console's second factor is not in the database either: the secrets open
    only with each user's password, which the database holds only as an argon2id hash."""
    db = HubDatabase(str(hub.disk / "hub.db"))
    try:
        accounts = ConsoleAccounts(db)
        for name in USERS:
            for guess in _guesses(hub.disk):
                with pytest.raises(LfrError, match="wrong password or damaged TOTP secret"):
                    accounts.totp_secret(name, guess)
            assert pyotp.TOTP(accounts.totp_secret(name, PASSWORD)).now()
    finally:
        db.close()

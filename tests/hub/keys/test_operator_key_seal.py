"""Operator keys sealed at rest: only the operator's passphrase opens one, a sealed file
does not open as another operator's, the passphrase can be changed, and a plaintext key
from an older hub is refused until it is sealed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.operator_passphrase import PASSPHRASE, passphrase_file

from agent.cli.hub_commands.passphrase_args import NEW_PASSPHRASE_ENV, PASSPHRASE_ENV
from agent.cli.hub_main import main as hub_main
from agent.errors import UsageError
from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.hub.keys.operator_keys import HubKeyStore, HubKeyStoreError
from agent.hub.keys.passphrase_seal import HUB_COST, TEST_COST_ENV, SealError, sealing_cost
from agent.trust.key_files import write_private_key

NOW = 1_790_000_000


@pytest.fixture
def store(tmp_path: Path) -> HubKeyStore:
    s = HubKeyStore.init(tmp_path / "hub", "alice", now=NOW, passphrase=PASSPHRASE)
    s.add_operator("bob", "operator", 30, s.load_root_key(), "bob's own passphrase", now=NOW)
    return s


def _raw_of(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw(store: HubKeyStore, name: str, passphrase: str) -> bytes:
    return _raw_of(store.operator(name, passphrase)[0])


def test_the_right_passphrase_opens_the_key_of_the_certificate(store: HubKeyStore) -> None:
    key, cert = store.operator("alice", PASSPHRASE)
    assert key.public_key() == cert.public_key == store.operator_certificate("alice").public_key
    sealed = store.dir / "operators" / "alice-key.sealed"
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    assert _raw(store, "alice", PASSPHRASE) not in sealed.read_bytes()
    assert not list((store.dir / "operators").glob("*.pem"))


@pytest.mark.parametrize("wrong", ["", "test operator passphrasE", "bob's own passphrase"])
def test_a_wrong_passphrase_is_one_line_naming_the_operator(store: HubKeyStore, wrong: str) -> None:
    with pytest.raises(HubKeyStoreError) as err:
        store.operator("alice", wrong)
    assert str(err.value) == "operator 'alice': wrong passphrase or damaged key file"
    with pytest.raises(HubKeyStoreError, match="wrong passphrase"):
        ActivationIssuer(store, "alice", wrong)


def test_a_sealed_file_moved_to_another_operator_does_not_open(store: HubKeyStore) -> None:
    ops = store.dir / "operators"
    # Bob's file under Alice's name, sealed under a passphrase the thief chose for Bob.
    store.change_operator_passphrase("bob", "bob's own passphrase", PASSPHRASE)
    (ops / "alice-key.sealed").write_bytes((ops / "bob-key.sealed").read_bytes())
    with pytest.raises(HubKeyStoreError, match="wrong passphrase or damaged key file"):
        store.operator("alice", PASSPHRASE)


def test_a_damaged_file_is_the_same_one_line(store: HubKeyStore) -> None:
    path = store.dir / "operators" / "alice-key.sealed"
    doc = json.loads(path.read_bytes())
    doc["kdf"]["memory_kib"] = 2**40  # a cost no hub should try to pay
    path.write_text(json.dumps(doc))
    with pytest.raises(HubKeyStoreError, match="wrong passphrase or damaged key file"):
        store.operator("alice", PASSPHRASE)


def test_a_short_passphrase_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="operator 'carol': passphrase: at least 12"):
        HubKeyStore.init(tmp_path / "hub", "carol", passphrase="short")
    assert not (tmp_path / "hub").exists()


def test_changing_the_passphrase_reseals_the_same_key(store: HubKeyStore) -> None:
    before = _raw(store, "alice", PASSPHRASE)
    with pytest.raises(HubKeyStoreError, match="wrong passphrase"):
        store.change_operator_passphrase("alice", "not the passphrase", "a new passphrase!")
    with pytest.raises(UsageError, match="at least 12"):
        store.change_operator_passphrase("alice", PASSPHRASE, "tiny")
    store.change_operator_passphrase("alice", PASSPHRASE, "a new passphrase!")
    assert _raw(store, "alice", "a new passphrase!") == before
    with pytest.raises(HubKeyStoreError, match="wrong passphrase"):
        store.operator("alice", PASSPHRASE)


def test_a_hub_seals_at_the_hub_cost_unless_a_test_rig_lowers_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(TEST_COST_ENV, "2048:2")
    assert (sealing_cost().memory_kib, sealing_cost().time_cost) == (2048, 2)
    monkeypatch.setenv(TEST_COST_ENV, "64:1")
    with pytest.raises(SealError, match="memory 64 KiB outside"):
        sealing_cost()
    monkeypatch.delenv(TEST_COST_ENV)
    assert sealing_cost() == HUB_COST
    store = HubKeyStore.init(tmp_path / "hub", "alice", passphrase=PASSPHRASE)
    kdf = json.loads((store.dir / "operators" / "alice-key.sealed").read_bytes())["kdf"]
    assert (kdf["name"], kdf["memory_kib"], kdf["time_cost"]) == ("argon2id", 65536, 3)
    store.operator("alice", PASSPHRASE)


def _make_legacy(store: HubKeyStore, name: str) -> bytes:
    """Turn ``name``'s key back into the plaintext PEM an older hub kept."""
    key, _ = store.operator(name, PASSPHRASE)
    write_private_key(store.dir / "operators" / f"{name}-key.pem", key)
    (store.dir / "operators" / f"{name}-key.sealed").unlink()
    return _raw_of(key)


def test_a_plaintext_key_is_refused_until_seal_operator_seals_it(
    store: HubKeyStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = _make_legacy(store, "alice")
    assert hub_main(["operator", "list", "--hub-dir", str(store.dir)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].endswith("key in clear  (run 'lfr-hub keys seal-operator')")
    assert listing[1].endswith("key sealed")
    with pytest.raises(HubKeyStoreError) as err:
        store.operator("alice", PASSPHRASE)
    assert str(err.value) == (
        f"operator 'alice': key is stored unsealed; run "
        f"'lfr-hub keys seal-operator alice --hub-dir {store.dir}' first"
    )
    secret = passphrase_file(tmp_path / "secret", "the sealing passphrase")
    argv = ["keys", "seal-operator", "alice", "--hub-dir", str(store.dir)]
    assert hub_main([*argv, "--passphrase-file", str(secret)]) == 0
    assert "sealed; plaintext file removed" in capsys.readouterr().out
    assert store.operator_key_state("alice") == "sealed"
    assert not (store.dir / "operators" / "alice-key.pem").exists()
    assert _raw(store, "alice", "the sealing passphrase") == raw
    assert hub_main([*argv, "--passphrase-file", str(secret)]) == 2
    assert "key is already sealed" in capsys.readouterr().err


def test_passwd_changes_the_passphrase_from_files_or_the_environment(
    store: HubKeyStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    argv = ["operator", "passwd", "--hub-dir", str(store.dir), "--name", "alice"]
    old = passphrase_file(tmp_path / "old")
    new = passphrase_file(tmp_path / "new", "a brand new passphrase")
    assert hub_main([*argv, "--passphrase-file", str(old), "--new-passphrase-file", str(new)]) == 0
    store.operator("alice", "a brand new passphrase")
    monkeypatch.setenv(PASSPHRASE_ENV, "a brand new passphrase")
    monkeypatch.setenv(NEW_PASSPHRASE_ENV, "tiny")
    assert hub_main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("passphrase: at least 12 characters")
    monkeypatch.setenv(PASSPHRASE_ENV, "a wrong passphrase")
    assert hub_main(argv) == 2
    assert "wrong passphrase or damaged key file" in capsys.readouterr().err


def test_a_passphrase_file_others_can_read_is_refused(
    store: HubKeyStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = passphrase_file(tmp_path)
    os.chmod(secret, 0o644)
    argv = ["renew", "--hub-dir", str(store.dir), "--operator", "alice", "--device", "lfr-a"]
    argv += ["--deployment", "d", "--lease", "10m", "--out", str(tmp_path / "r.json")]
    assert hub_main([*argv, "--passphrase-file", str(secret)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--passphrase-file {secret}: mode 0644 is too open (want 0600)")
    assert "\n" not in err
    assert not (tmp_path / "r.json").exists()


def test_without_a_passphrase_or_a_terminal_a_signing_command_stops(
    store: HubKeyStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    argv = ["renew", "--hub-dir", str(store.dir), "--operator", "alice", "--device", "lfr-a"]
    argv += ["--deployment", "d", "--lease", "10m", "--out", str(tmp_path / "r.json")]
    assert hub_main(argv) == 2  # pytest's stdin is not a terminal
    assert "no terminal to ask on" in capsys.readouterr().err

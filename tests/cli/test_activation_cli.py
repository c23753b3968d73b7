"""lfr-hub keys/operator/activate/renew/stop and lfr-agent activation/audit verify, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.hub.keys.operator_keys import HubKeyStore
from agent.matching.watchlist_bundle import WatchlistContent, build_bundle, new_entry_ref
from agent.matching.watchlist_store import WatchlistStore
from agent.trust.audit_log import AuditLog
from agent.trust.device_keys import generate_device_keys, load_device_keys
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.sequence_store import SequenceStore
from agent.trust.system_clock import ClockSync, kernel_sync_state

WL = "cd" * 32
DEVICE = "lfr-cli-01"


@pytest.fixture
def setup(tmp_path: Path, operator_passphrase: str) -> dict[str, Path]:
    hub, keys, state = tmp_path / "hub", tmp_path / "keys", tmp_path / "state"
    assert hub_main(["keys", "init", "--dir", str(hub), "--operator", "sup1"]) == 0
    assert hub_main(["keys", "export", "--hub-dir", str(hub), "--out", str(keys)]) == 0
    generate_device_keys(keys)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "{DEVICE}"\n[paths]\nkeys_dir = "{keys}"\nstate_dir = "{state}"\n'
        "[activation]\nrequire_clock_sync = false\n"
    )
    return {"hub": hub, "keys": keys, "state": state, "cfg": cfg, "tmp": tmp_path}


def _activate(
    s: dict[str, Path], out: str, *extra: str, operator: str = "sup1", watchlist: str = WL
) -> int:
    return hub_main(
        [
            "activate", "--hub-dir", str(s["hub"]), "--operator", operator, "--device", DEVICE,
            "--deployment", "dep-1", "--duration", "4h", "--lease", "10m", "--watchlist", watchlist,
            "--threshold", "0.6", "--officer", "PS 99", "--out", str(s["tmp"] / out), *extra,
        ]
    )  # fmt: skip


def _verify(s: dict[str, Path], token: str, *extra: str) -> int:
    return agent_main(
        [
            "activation",
            "verify",
            "--token",
            str(s["tmp"] / token),
            "--config",
            str(s["cfg"]),
            *extra,
        ]
    )


def test_valid_activation_verifies_read_only(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _activate(setup, "a.json") == 0
    assert _verify(setup, "a.json", "--watchlist-hash", WL) == 0
    out = capsys.readouterr().out
    assert "✓ threshold" in out and "VALID activation" in out and "commit" not in out
    assert SequenceStore.in_state_dir(setup["state"]).last() == 0  # nothing persisted
    # verify twice: still valid, it never advanced
    assert _verify(setup, "a.json", "--watchlist-hash", WL) == 0


def _store_watchlist(s: dict[str, Path], deployment: str = "dep-1") -> str:
    """Import a real signed, sealed watchlist into the device's store; returns its hash."""
    keys = load_device_keys(s["keys"])
    hub = HubKeyStore.open(s["hub"])
    now = time.time()
    content = WatchlistContent(
        deployment, (DEVICE,), now, now + 3600, "sface@abab", "ab" * 32,
        [new_entry_ref() for _ in range(3)], np.eye(3, 8, dtype=np.float32),
    )  # fmt: skip
    bundle = build_bundle(
        content, hub.watchlist_signing_key(), {DEVICE: keys.exchange.public_key()}
    )
    store = WatchlistStore(
        s["state"],
        device_id=DEVICE,
        device_key=keys.exchange,
        find_signing_key=HubTrustStore.load(s["keys"]).watchlist_key_finder,
        model_id="sface@abab",
        model_sha256="ab" * 32,
    )
    store.import_bundle(bundle.data)
    return bundle.watchlist_hash


def test_watchlist_is_checked_against_the_device_store_by_default(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _activate(setup, "a.json")  # names WL, which this device does not hold
    assert _verify(setup, "a.json") == 1
    out = capsys.readouterr().out
    assert "✗ watchlist: no watchlist is loaded" in out and "holds for dep-1: none" in out
    held = _store_watchlist(setup)
    before = sorted(p.name for p in (setup["state"] / "watchlists").iterdir())
    assert _verify(setup, "a.json") == 1
    assert f"holds for dep-1: {held}" in capsys.readouterr().out
    _activate(setup, "b.json", watchlist=held)
    assert _verify(setup, "b.json") == 0
    out = capsys.readouterr().out
    assert "✓ watchlist" in out and "VALID activation" in out
    # Read-only: the store's folder is exactly as it was.
    assert sorted(p.name for p in (setup["state"] / "watchlists").iterdir()) == before


def test_watchlist_of_another_deployment_does_not_count(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    held = _store_watchlist(setup, deployment="dep-2")
    _activate(setup, "a.json", watchlist=held)  # for dep-1
    assert _verify(setup, "a.json") == 1
    assert "✗ watchlist:" in capsys.readouterr().out


def test_skip_watchlist_checks_the_rest_offline(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _activate(setup, "a.json")
    assert _verify(setup, "a.json", "--skip-watchlist") == 0
    out = capsys.readouterr().out
    assert "✓ watchlist" not in out and "not checked (--skip-watchlist)" in out
    assert "VALID activation" in out
    assert not (setup["state"] / "watchlists").exists()  # nothing created either
    with pytest.raises(SystemExit) as err:
        _verify(setup, "a.json", "--skip-watchlist", "--watchlist-hash", WL)
    assert err.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_unusable_watchlist_index_counts_as_no_watchlist(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = setup["state"] / "watchlists"
    folder.mkdir(parents=True)
    _activate(setup, "a.json")
    for index in (b"[" * 200_000, b'{"stored": 5}', b"\xff"):
        (folder / "index.json").write_bytes(index)
        assert _verify(setup, "a.json") == 1
        assert "✗ watchlist: no watchlist is loaded" in capsys.readouterr().out


def test_failing_step_is_printed_and_exit_is_1(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _activate(setup, "a.json")
    assert _verify(setup, "a.json", "--watchlist-hash", "ef" * 32) == 1
    assert "✗ watchlist:" in capsys.readouterr().out
    data = (setup["tmp"] / "a.json").read_bytes()
    (setup["tmp"] / "bad.json").write_bytes(data.replace(b'"sig":"', b'"sig":"A', 1))
    assert _verify(setup, "bad.json", "--skip-watchlist") == 1
    assert "INVALID" in capsys.readouterr().out


def test_clock_step_follows_the_kernel_state(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    setup["cfg"].write_text(setup["cfg"].read_text().replace("false", "true"))
    _activate(setup, "a.json")
    code = _verify(setup, "a.json", "--skip-watchlist")
    if kernel_sync_state() is ClockSync.SYNCHRONISED:
        assert code == 0
    else:
        assert code == 1 and "✗ clock:" in capsys.readouterr().out


def test_operator_role_cannot_activate_but_can_renew_and_stop(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    hub = str(setup["hub"])
    assert (
        hub_main(["operator", "add", "--hub-dir", hub, "--name", "op7", "--role", "operator"]) == 0
    )
    assert _activate(setup, "a.json", operator="op7") == 2
    assert "role operator" in capsys.readouterr().err
    common = ["--hub-dir", hub, "--operator", "op7", "--device", DEVICE, "--deployment", "dep-1"]
    assert (
        hub_main(["renew", *common, "--lease", "10m", "--out", str(setup["tmp"] / "r.json")]) == 0
    )
    assert (
        hub_main(["stop", *common, "--reason", "done", "--out", str(setup["tmp"] / "s.json")]) == 0
    )
    assert _verify(setup, "r.json") == 0 and _verify(setup, "s.json") == 0
    out = capsys.readouterr().out
    assert "live: not checked offline" in out
    assert "a stop is honoured whether or not its deployment is live" in out


def test_revoked_operator_is_refused_by_the_device(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    hub = str(setup["hub"])
    _activate(setup, "old.json")
    hub_main(["operator", "add", "--hub-dir", hub, "--name", "sup2", "--role", "supervisor"])
    assert hub_main(["operator", "revoke", "--hub-dir", hub, "--name", "sup1"]) == 0
    assert _activate(setup, "new.json", operator="sup1") == 2  # the hub refuses too
    assert "revoked" in capsys.readouterr().err
    assert _activate(setup, "ok.json", operator="sup2") == 0
    hub_main(["operator", "list", "--hub-dir", hub])
    assert "REVOKED" in capsys.readouterr().out
    # The device learns the revocation from the list embedded in the newer token...
    from agent.config import load_config
    from agent.trust.activation_verifier import ActivationVerifier

    v = ActivationVerifier.from_config(load_config(setup["cfg"]))
    v.verify((setup["tmp"] / "ok.json").read_bytes(), check_watchlist=False)
    # ...and from then on refuses the revoked operator's older token.
    assert _verify(setup, "old.json", "--skip-watchlist") == 1
    assert "✗ revocation:" in capsys.readouterr().out


def test_sequences_increase_across_invocations(setup: dict[str, Path]) -> None:
    for name in ("1.json", "2.json", "3.json"):
        _activate(setup, name)
    seqs = []
    for name in ("1.json", "2.json", "3.json"):
        env = json.loads((setup["tmp"] / name).read_bytes())
        import base64

        seqs.append(json.loads(base64.b64decode(env["payload"]))["sequence"])
    assert seqs == [1, 2, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "forever"], "not a duration"),
        (["--duration", "25h"], "at most 24h"),
        (["--lease", "5h"], "not longer than --duration"),
        (["--watchlist", "abc"], "64 hex"),
        (["--threshold", "1.5"], "0–1"),
        (["--device", "Bad Device"], "not a device id"),
    ],
)
def test_bad_arguments_give_one_line_errors(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = {
        "--duration": "4h", "--lease": "10m", "--watchlist": WL, "--threshold": "0.6",
        "--device": DEVICE,
    }  # fmt: skip
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["activate", "--hub-dir", str(setup["hub"]), "--operator", "sup1"]
    argv += [x for kv in base.items() for x in kv]
    argv += ["--deployment", "d", "--officer", "x", "--out", str(setup["tmp"] / "x.json")]
    assert hub_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_hub_dir_and_token_are_one_line_errors(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert hub_main(["operator", "list", "--hub-dir", str(setup["tmp"] / "nope")]) == 2
    assert "no hub key store" in capsys.readouterr().err
    assert _verify(setup, "missing.json") == 2
    assert "cannot read" in capsys.readouterr().err


def test_audit_verify_cli(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    log_path = setup["state"] / "audit.jsonl"
    log = AuditLog.open(log_path, load_device_keys(setup["keys"]).signing, 3)
    for i in range(5):
        log.append("test.event", index=i)
    log.close()
    cfg = ["--config", str(setup["cfg"])]
    assert agent_main(["audit", "verify", *cfg]) == 0
    out = capsys.readouterr().out
    assert "7 entries, 2 signed checkpoints" in out
    assert f"last entry: seq 7, line sha256 {log.head()[1]}" in out
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert agent_main(["audit", "verify", str(log_path), *cfg]) == 1
    assert "✗" in capsys.readouterr().out
    log_path.write_bytes(b"".join(lines) + b'{"seq":8,"ti')
    assert agent_main(["audit", "verify", *cfg]) == 0
    assert "torn final line" in capsys.readouterr().out


def test_audit_verify_checks_anchors_from_reports(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = setup["state"] / "audit.jsonl"
    log = AuditLog.open(log_path, load_device_keys(setup["keys"]).signing, 50)
    for i in range(3):
        log.append("test.event", index=i)
    seq, digest = log.head()  # what a deployment report carries to the hub
    for i in range(3):
        log.append("test.event", index=10 + i)
    log.close()
    cfg = ["--config", str(setup["cfg"])]
    anchor = ["--anchor", f"{seq}:{digest}"]
    assert agent_main(["audit", "verify", *anchor, *cfg]) == 0
    assert "holds the 1 anchored entry" in capsys.readouterr().out
    # Cut back to before the anchor and re-signed by someone holding the device key:
    # the log's own chain holds, the anchor does not.
    cut = AuditLog.open(setup["tmp"] / "cut.jsonl", load_device_keys(setup["keys"]).signing, 50)
    cut.append("test.event", index=0)
    cut.close()
    assert agent_main(["audit", "verify", str(setup["tmp"] / "cut.jsonl"), *cfg]) == 0
    capsys.readouterr()
    assert agent_main(["audit", "verify", str(setup["tmp"] / "cut.jsonl"), *anchor, *cfg]) == 1
    assert "cut off its end" in capsys.readouterr().out
    wrong = ["--anchor", f"1:{digest}"]
    assert agent_main(["audit", "verify", *wrong, *cfg]) == 1
    assert "anchored elsewhere" in capsys.readouterr().out
    assert agent_main(["audit", "verify", "--anchor", "x:y", *cfg]) == 2
    assert "--anchor" in capsys.readouterr().err
    # str.isdigit() accepts "²", int() does not: still a one-line usage error.
    assert agent_main(["audit", "verify", "--anchor", f"²:{digest}", *cfg]) == 2
    assert "expected SEQ:SHA256" in capsys.readouterr().err


def test_real_entry_points_run(setup: dict[str, Path]) -> None:
    _activate(setup, "a.json")
    exe = Path(sys.executable).parent / "lfr-agent"
    proc = subprocess.run(
        [str(exe), "activation", "verify", "--token", str(setup["tmp"] / "a.json"), "--config", str(setup["cfg"]), "--skip-watchlist"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "VALID activation" in proc.stdout

"""Hub commands that sign, build, adjudicate, purge or withdraw write the hub audit log the
console and the service write, and a signed document never leaves unrecorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli.hub_main import main as hub_main
from agent.hub.audit.hub_audit_log import verify_hub_audit
from agent.trust.key_files import load_private_key
from hil.local_console_hub import HubSetup, make_hub

DEVICE = "lfr-audit-01"
WL = "ab" * 32


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operator_passphrase: str) -> HubSetup:
    monkeypatch.delenv("LFR_HUB_CONFIG", raising=False)
    site = make_hub(tmp_path / "site")
    assert hub_main(["keys", "init", "--dir", str(tmp_path / "keys"), "--operator", "sup1"]) == 0
    return site


def _entries(site: HubSetup) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in site.audit_log.read_bytes().splitlines()]
    return [{"event": e["event"], **e["fields"]} for e in lines]


def _sign(site: HubSetup, tmp: Path, kind: str, out: Path, *extra: str) -> int:
    common = [
        "--hub-dir", str(tmp / "keys"), "--operator", "sup1", "--device", DEVICE,
        "--deployment", "dep-7", "--out", str(out),
    ]  # fmt: skip
    return hub_main([kind, *common, *extra])


def test_signed_documents_are_recorded_with_their_operator_and_sequence(
    hub: HubSetup, tmp_path: Path
) -> None:
    cfg = ["--config", str(hub.config)]
    act = ["--duration", "1h", "--lease", "5m", "--watchlist", WL, "--threshold", "0.6"]
    assert (
        _sign(hub, tmp_path, "activate", tmp_path / "a.json", *act, "--officer", "PS 1", *cfg) == 0
    )
    assert _sign(hub, tmp_path, "renew", tmp_path / "r.json", "--lease", "5m", *cfg) == 0
    assert _sign(hub, tmp_path, "stop", tmp_path / "s.json", "--reason", "done", *cfg) == 0
    signed = [e for e in _entries(hub) if str(e.get("event", "")).startswith("control.")]
    assert [e["event"] for e in signed] == [
        "control.activation_signed",
        "control.renewal_signed",
        "control.stop_signed",
    ]
    sequences = [e["sequence"] for e in signed]
    assert sequences == sorted(set(sequences)) and len(sequences) == 3
    assert all(e["operator"] == "sup1" and e["device_id"] == DEVICE for e in signed)
    assert signed[0]["watchlist_sha256"] == WL and signed[0]["officer"] == "PS 1"
    assert signed[2]["reason"] == "done"
    assert signed[1]["sha256"] == hashlib.sha256((tmp_path / "r.json").read_bytes()).hexdigest()
    key = load_private_key(hub.audit_key, Ed25519PrivateKey)  # type: ignore[type-abstract]
    assert verify_hub_audit(hub.audit_log, key.public_key()).entries >= 3


def test_a_document_is_not_written_when_the_audit_log_cannot_be(
    hub: HubSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The log's folder is a file: nothing can be appended there.
    broken = tmp_path / "broken.toml"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    broken.write_text(
        hub.config.read_text().replace(str(hub.audit_log), str(blocker / "hub-audit.jsonl"))
    )
    out = tmp_path / "s.json"
    assert _sign(hub, tmp_path, "stop", out, "--config", str(broken)) != 0
    assert not out.exists()
    err = capsys.readouterr().err
    assert "hub audit log" in err and len(err.strip().splitlines()) == 1


def test_without_a_hub_config_the_command_says_nothing_was_recorded(
    hub: HubSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.json"
    assert _sign(hub, tmp_path, "stop", out) == 0
    assert out.exists()
    assert "control.stop_signed not recorded in the hub audit log" in capsys.readouterr().err


def test_cli_purge_and_adjudication_are_recorded(hub: HubSetup) -> None:
    db = ["--db", str(hub.db_path), "--config", str(hub.config)]
    assert hub_main(["alerts", "purge", "--older-than", "31d", *db]) == 0
    (purged,) = [e for e in _entries(hub) if e.get("event") == "retention.purged"]
    assert purged["alerts"] == 0 and purged["by"] == "alerts purge"
    assert purged["older_than_s"] == 31 * 86400
    # An alert that is not there: refused, and nothing recorded.
    assert hub_main(["alerts", "adjudicate", "abcdef12", "--outcome", "false-alert",
                     "--by", "op1", *db]) != 0  # fmt: skip
    assert not [e for e in _entries(hub) if e.get("event") == "alert.adjudicated"]
